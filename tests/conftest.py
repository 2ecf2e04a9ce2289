"""Shared fixtures: locate ../shared/data, reset Keras between tests, and
the digits classifiers that several test files attack, trained once per run
(once per pytest-xdist worker); the order in which the workers take files;
the settings of the test processes (Grappler off, the garbage collector).
"""

import collections
import gc
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


class Counting:
    """`fn`, counting its calls: each a trace, inside compiled functions."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def pytest_collection_finish(session):
    """Sets this process up for the tests' many small graphs.

    Runs in each pytest-xdist worker (and in the one process of `-n 0`)
    once it has imported TensorFlow to collect the doctests.
    """
    _graph_optimizer_off()
    _collect_garbage_less_often()


def _graph_optimizer_off():
    """Turns off Grappler, TensorFlow's graph optimizer, in this process.

    Grappler rewrites each traced function when it first runs (folds
    constants, fuses ops, prunes) and keeps the results the same; on the
    tests' tiny models and few steps the rewriting costs more than it
    saves: the suite ran in 586 s without it, 688 s with it (one run each,
    back to back, 2 cores). The processes the tests start (the CLI, the
    quick runs of benchmarks, the fresh interpreters) run as a user's do,
    with it on.
    """
    import tensorflow as tf

    tf.config.optimizer.set_experimental_options(
        {"disable_meta_optimizer": True}
    )


def _collect_garbage_less_often():
    """Makes Python's garbage collector run less often in the tests.

    Tracing a graph makes tens of thousands of Python objects, most of which
    live as long as the graph: with the default thresholds the collector
    walks them again and again (about 5% of the suite's time). What start-up
    made (TensorFlow, Keras, the collected modules) lives as long as the run
    and is put out of its sight; collections run after 50,000 allocations,
    not 700, and older generations less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, the files with the most slow tests come first.

    Each worker takes whole files (`--dist loadfile`: a module fixture, such
    as a finished retrofit run, is made once), in this order: the run does
    not end with one worker on a long file while the other waits.
    """
    if not hasattr(config, "workerinput"):
        return
    slow = collections.Counter(
        item.nodeid.partition("::")[0]
        for item in items
        if item.get_closest_marker("slow")
    )
    items.sort(key=lambda item: -slow[item.nodeid.partition("::")[0]])


@pytest.fixture
def shared_data_dir():
    """`../shared/data` beside the repository root.

    CI always has it. Only a user's clone without it skips, saying why.
    """
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"{SHARED_DATA} is missing: the real data sets live beside the "
            "repository in CI; clone them there to run this test"
        )
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _clear_keras_session():
    import keras

    yield
    # Skip the full garbage collection: it costs about 0.5 s a test.
    keras.backend.clear_session(free_memory=False)


@pytest.fixture(scope="session")
def run_python():
    """Runs a Python snippet in a fresh interpreter; returns its stdout.

    The snippet fails the test with its stderr if it exits non-zero.
    """
    import os
    import subprocess
    import sys
    import textwrap

    def run(code, env=None, cwd=None, timeout=300):
        full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            env=full_env,
            cwd=cwd,
            timeout=timeout,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        return result.stdout

    return run


def _train_digits(activation, name):
    import keras
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(64),
            activation,
            keras.layers.Dense(10),
        ],
        name=name,
    )
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(
        x[:1400], digits.target[:1400], epochs=25, batch_size=32, verbose=0
    )
    return model


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits in [0, 1]: `(x, y)`, 1797 images.

    The digits classifiers train on the first 1400; tests use the rest.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    return x, data.target.astype("int64")


@pytest.fixture(scope="session")
def digits_relu():
    """An undefended ReLU net on 8x8 digits, about 90% test accuracy.

    Shared by the test files: do not train or modify it in a test.
    """
    import keras

    return _train_digits(keras.layers.ReLU(), "digits_relu")


@pytest.fixture(scope="session")
def digits_srelu():
    """The same net with SReLU(0.01): most input gradients are zero.

    Shared by the test files: do not train or modify it in a test.
    """
    from keras_drelu import SReLU

    return _train_digits(SReLU(0.01), "digits_srelu")
