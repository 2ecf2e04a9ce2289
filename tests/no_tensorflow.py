"""Code that makes a fresh interpreter behave as if TensorFlow were absent.

Prepended to the scripts that tests run with `KERAS_BACKEND=jax`. An import
hook refuses `tensorflow` and `tensorflow_datasets` as a missing package
would (`ModuleNotFoundError`), leaving them out of `sys.modules`; setting
`sys.modules["tensorflow"] = None` instead would make Keras believe that
TensorFlow is loaded (its data layers, such as `MixUp`, then ask it whether
they run in a graph).
"""

BLOCK_TENSORFLOW = """
import importlib.abc, sys

class _NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("tensorflow", "tensorflow_datasets"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, _NoTensorFlow())
"""
