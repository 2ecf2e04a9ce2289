"""Quiet TensorFlow's C++ logging for the tests and doctests alike."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
