"""Weather corruptions: a fog-like haze."""

import math

import tensorflow as tf

from keras_drelu.corruptions.arguments import batched_corruption

# (haze strength, decay of the haze's amplitude from coarse to fine
# scales), the fog parameters of CIFAR-10-C (Hendrycks & Dietterich, ICLR
# 2019).
FOG_HAZES = ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75))


def fractal_haze(batch, height, width, decay, seed):
    """A smooth random field in [0, 1], one per image, of fractal texture.

    Sums uniform noise on grids of 2, 4, 8, ... cells per side, upsampled
    bilinearly to the image and weighted `decay ** -k` at the k-th finer
    scale, then rescales each field to [0, 1]. It stands in for the
    diamond-square plasma fractal of CIFAR-10-C, which has no batched
    TensorFlow form; both add detail at every scale with the same decay.
    """
    octaves = max(1, math.ceil(math.log2(max(height, width))))
    seeds = tf.random.experimental.stateless_split(seed, num=octaves)
    haze = tf.zeros([batch, height, width, 1])
    for octave in range(octaves):
        cells = 2 ** (octave + 1)
        noise = tf.random.stateless_uniform(
            [batch, cells, cells, 1], seeds[octave], minval=-1.0, maxval=1.0
        )
        haze += tf.image.resize(noise, [height, width]) / decay**octave
    low = tf.reduce_min(haze, axis=[1, 2, 3], keepdims=True)
    high = tf.reduce_max(haze, axis=[1, 2, 3], keepdims=True)
    return (haze - low) / tf.maximum(high - low, 1e-12)


@batched_corruption
def fog(images, severity, seed):
    """Veils each image in a patchy haze and lowers its contrast.

    Formula: `(x + s * haze) * max(x) / (max(x) + s)` with haze strength
    `s` from 0.2 to 1.5, as CIFAR-10-C's fog. The haze is hand-made by
    `fractal_haze`, since neither TensorFlow nor Keras has a fog op.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).uniform(size=(2, 16, 16, 3))
    >>> y = fog(x, severity=3, seed=1)
    >>> y.shape, y.dtype.name
    (TensorShape([2, 16, 16, 3]), 'float64')

    Args:
        images: Float images in [0, 1] of known height and width, shape
            `(batch, height, width, channels)`.
        severity: Int from 1 to 5. Defaults to `1`.
        seed: None, an int or a pair of ints. Defaults to `None`.
    """
    height, width = images.shape[1], images.shape[2]
    if height is None or width is None:
        raise ValueError(
            "`fog` needs images of known height and width. Received: images "
            f"of shape {images.shape}"
        )
    strength, decay = FOG_HAZES[severity - 1]
    haze = fractal_haze(tf.shape(images)[0], height, width, decay, seed)
    peak = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
    return (images + strength * haze) * peak / (peak + strength)
