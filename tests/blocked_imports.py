"""Code that makes a fresh interpreter behave as if packages were absent.

Prepended to the scripts that tests run in fresh interpreters: on JAX
without TensorFlow, or serving a SavedModel without this project. An
import hook refuses the packages as a missing package would
(`ModuleNotFoundError`), leaving them out of `sys.modules`; setting
`sys.modules["tensorflow"] = None` instead would make Keras believe that
TensorFlow is loaded (its data layers, such as `MixUp`, then ask it whether
they run in a graph).
"""


def blocking(*packages):
    """Python code after which importing any of `packages` fails."""
    return f"""
import importlib.abc, sys

class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {packages!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, _Absent())
"""


BLOCK_TENSORFLOW = blocking("tensorflow", "tensorflow_datasets")
