"""Argument checks, seeds and the wrapper shared by every corruption."""

import functools
import numbers

import tensorflow as tf

from keras_drelu.arguments import check_number

SEVERITIES = (1, 2, 3, 4, 5)


def check_severity(severity):
    """Returns `severity` as an int after checking it is one of 1 to 5."""
    severity = check_number("severity", severity, integer=True)
    if severity not in SEVERITIES:
        raise ValueError(
            f"Argument `severity` should be one of {SEVERITIES}. "
            f"Received: severity={severity}"
        )
    return int(severity)


def seed_pair(seed):
    """The `[2]` int32 seed of TensorFlow's stateless random ops.

    `None` draws a fresh pair; an int `s` gives `[s, 0]`; a pair (a tuple or
    a tensor of shape `[2]`, as drawn by `RandomCorruption`) is used as is.
    """
    if seed is None:
        return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return tf.constant([int(seed), 0], dtype=tf.int32)
    if isinstance(seed, (tuple, list)) or tf.is_tensor(seed):
        pair = tf.cast(tf.convert_to_tensor(seed), tf.int32)
        if pair.shape.rank == 1 and pair.shape[0] == 2:
            return pair
    raise ValueError(
        "Argument `seed` should be None, an int or a pair of ints. "
        f"Received: seed={seed!r}"
    )


def check_images(images, channels=None):
    """Converts `images` to a float32 tensor after checking its layout."""
    images = tf.convert_to_tensor(images)
    if not images.dtype.is_floating:
        raise TypeError(
            "Corruptions take float images with values in [0, 1]. "
            f"Received: images of dtype {images.dtype.name}"
        )
    if images.shape.rank != 4 or images.shape[-1] is None:
        raise ValueError(
            "Corruptions take a batch of images of shape "
            "(batch, height, width, channels) with known channels. "
            f"Received: images of shape {images.shape}"
        )
    if channels is not None and images.shape[-1] not in channels:
        raise ValueError(
            "This corruption takes images with "
            f"{' or '.join(map(str, channels))} channels. Received: images "
            f"of shape {images.shape}"
        )
    return tf.cast(images, tf.float32)


def batched_corruption(function=None, *, channels=None):
    """Turns `function(images, severity, seed)` into a checked corruption.

    The wrapped function receives float32 images and a seed pair, and its
    result is clipped to [0, 1] and cast back to the input dtype.
    """

    def decorate(function):
        @functools.wraps(function)
        def corruption(images, severity=1, seed=None):
            severity = check_severity(severity)
            dtype = tf.convert_to_tensor(images).dtype
            x = check_images(images, channels)
            out = function(x, severity, seed_pair(seed))
            return tf.cast(tf.clip_by_value(out, 0.0, 1.0), dtype)

        return corruption

    return decorate if function is None else decorate(function)
