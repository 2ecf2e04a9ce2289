"""Noise corruptions: Gaussian, shot (Poisson) and impulse (salt-and-pepper).

Severity parameters are those of CIFAR-10-C (Hendrycks & Dietterich,
"Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019).
"""

import tensorflow as tf

from keras_drelu.corruptions.arguments import batched_corruption

GAUSSIAN_NOISE_STDDEVS = (0.04, 0.06, 0.08, 0.09, 0.10)
SHOT_NOISE_PHOTONS = (500.0, 250.0, 100.0, 75.0, 50.0)
IMPULSE_NOISE_AMOUNTS = (0.01, 0.02, 0.03, 0.05, 0.07)


@batched_corruption
def gaussian_noise(images, severity, seed):
    """Adds zero-mean Gaussian noise to every pixel value.

    Formula: `x + n`, `n ~ N(0, sigma^2)`, sigma from 0.04 to 0.10.

    Example:

    >>> import numpy as np
    >>> x = np.full((1, 4, 4, 3), 0.5, "float32")
    >>> y = gaussian_noise(x, severity=5, seed=0)
    >>> y.shape, 0.2 < float(np.std(y)) * 10 < 1.5
    (TensorShape([1, 4, 4, 3]), True)

    Args:
        images: Float images in [0, 1], shape `(batch, height, width,
            channels)`.
        severity: Int from 1 to 5. Defaults to `1`.
        seed: None, an int or a pair of ints; the same seed gives the same
            noise. Defaults to `None`.
    """
    stddev = GAUSSIAN_NOISE_STDDEVS[severity - 1]
    return images + tf.random.stateless_normal(
        tf.shape(images), seed, stddev=stddev
    )


@batched_corruption
def shot_noise(images, severity, seed):
    """Photon-counting (Poisson) noise, stronger in bright pixels.

    Formula: `Poisson(x * k) / k`, `k` photons per unit of intensity, from
    500 down to 50.

    Args:
        images: Float images in [0, 1], shape `(batch, height, width,
            channels)`.
        severity: Int from 1 to 5. Defaults to `1`.
        seed: None, an int or a pair of ints. Defaults to `None`.
    """
    photons = SHOT_NOISE_PHOTONS[severity - 1]
    counts = tf.random.stateless_poisson(
        tf.shape(images), seed, lam=images * photons, dtype=tf.float32
    )
    return counts / photons


@batched_corruption
def impulse_noise(images, severity, seed):
    """Salt-and-pepper noise: a fraction of values set to 0 or 1.

    Each pixel value independently becomes 0 or 1 (with equal odds) with
    probability `amount`, from 0.01 to 0.07, as scikit-image's
    `random_noise(mode="s&p")` that CIFAR-10-C uses. TensorFlow has no op
    for it, hence the two uniform draws.

    Args:
        images: Float images in [0, 1], shape `(batch, height, width,
            channels)`.
        severity: Int from 1 to 5. Defaults to `1`.
        seed: None, an int or a pair of ints. Defaults to `None`.
    """
    amount = IMPULSE_NOISE_AMOUNTS[severity - 1]
    hit_seed, salt_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=2)
    )
    hit = tf.random.stateless_uniform(tf.shape(images), hit_seed) < amount
    salt = tf.random.stateless_uniform(tf.shape(images), salt_seed) < 0.5
    return tf.where(hit, tf.cast(salt, images.dtype), images)
