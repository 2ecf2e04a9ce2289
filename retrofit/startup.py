"""Loading Keras (and TensorFlow) without TensorFlow's start-up lines.

TensorFlow's C++ runtime writes a few INFO lines to stderr while it loads,
before its logging is initialised, so `TF_CPP_MIN_LOG_LEVEL` cannot stop
them; they would bury the one-line errors the `retrofit` command promises.
The package imports Keras through `load_keras_quietly` before anything else
of it, so that the command and `import retrofit` load it the same way.
"""

import os


def load_keras_quietly():
    """Imports Keras with file descriptor 2 silenced while it loads.

    Sets `TF_CPP_MIN_LOG_LEVEL=2` unless it is set already. Only file
    descriptor 2 is silenced, and only while the libraries load: a failed
    import still raises, after it is restored.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved = os.dup(2)
    silent = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(silent, 2)
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(silent)
        os.close(saved)
