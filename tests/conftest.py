"""Shared fixtures: locate ../shared/data, reset Keras between tests."""

import pathlib


import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


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


@pytest.fixture
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
