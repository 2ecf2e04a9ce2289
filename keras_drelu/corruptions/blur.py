"""Blur corruptions: defocus, motion-like and Gaussian blur.

Severity parameters are those of CIFAR-10-C (Hendrycks & Dietterich, ICLR
2019). TensorFlow has no blur op, so each blur is a depthwise convolution
with a kernel built here (or, for motion, a weighted sum of shifted
copies), on reflected borders as in OpenCV and scikit-image.
"""

import math

import numpy as np
import tensorflow as tf

from keras_drelu.corruptions.arguments import batched_corruption
from keras_drelu.corruptions.geometric import transform_images
from keras_drelu.corruptions.geometric import translation_transforms

# (disk radius, sigma of the anti-aliasing Gaussian).
DEFOCUS_BLUR_DISKS = (
    (0.3, 0.4),
    (0.4, 0.5),
    (0.5, 0.6),
    (1.0, 0.2),
    (1.5, 0.1),
)
# (length in pixels, sigma of the Gaussian weights along the streak).
MOTION_BLUR_STREAKS = ((10, 1.0), (10, 1.5), (10, 2.0), (10, 2.5), (12, 3.0))
GAUSSIAN_BLUR_SIGMAS = (0.4, 0.6, 0.7, 0.8, 1.0)
MOTION_BLUR_MAX_DEGREES = 45.0


def _gaussian_1d(sigma, radius):
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return weights / weights.sum()


def _convolve(images, kernel):
    """Filters every channel with the same odd-sized 2-D `kernel`."""
    channels = images.shape[-1]
    pad_y, pad_x = kernel.shape[0] // 2, kernel.shape[1] // 2
    padded = tf.pad(
        images, [[0, 0], [pad_y, pad_y], [pad_x, pad_x], [0, 0]], "SYMMETRIC"
    )
    filters = np.tile(kernel[:, :, None, None], (1, 1, channels, 1))
    return tf.nn.depthwise_conv2d(
        padded,
        tf.constant(filters, tf.float32),
        strides=[1, 1, 1, 1],
        padding="VALID",
    )


def disk_kernel(radius, alias_sigma):
    """A flat disk of `radius`, softened by a 3x3 Gaussian of `alias_sigma`.

    The defocus kernel of CIFAR-10-C, trimmed to the support it needs.
    """
    half = math.ceil(radius) + 1
    offsets = np.arange(-half, half + 1)
    x, y = np.meshgrid(offsets, offsets)
    disk = (x**2 + y**2 <= radius**2).astype("float64")
    disk /= disk.sum()
    smooth = _gaussian_1d(alias_sigma, 1)
    # Separable 3x3 smoothing of the disk; it fits since `half` >= r + 1.
    padded = np.pad(disk, 1)
    rows = sum(
        w * padded[:, i : i + disk.shape[1]] for i, w in enumerate(smooth)
    )
    kernel = sum(
        w * rows[i : i + disk.shape[0], :] for i, w in enumerate(smooth)
    )
    return kernel / kernel.sum()


@batched_corruption
def gaussian_blur(images, severity, seed):
    """Blurs with a Gaussian kernel of sigma 0.4 to 1 pixel.

    The kernel is truncated at 4 sigma, as in scikit-image.

    Example:

    >>> import numpy as np
    >>> x = np.zeros((1, 9, 9, 1), "float32")
    >>> x[0, 4, 4, 0] = 1.0
    >>> y = gaussian_blur(x, severity=5).numpy()
    >>> round(float(y.sum()), 4), float(y.max()) < 0.2
    (1.0, True)

    Args:
        images: Float images in [0, 1], shape `(batch, height, width,
            channels)`.
        severity: Int from 1 to 5. Defaults to `1`.
        seed: Unused, since the blur is deterministic; accepted so every
            corruption has the same signature. Defaults to `None`.
    """
    sigma = GAUSSIAN_BLUR_SIGMAS[severity - 1]
    weights = _gaussian_1d(sigma, math.ceil(4.0 * sigma))
    return _convolve(images, np.outer(weights, weights))


@batched_corruption
def defocus_blur(images, severity, seed):
    """Blurs with an anti-aliased disk, as an out-of-focus lens does.

    Args:
        images: Float images in [0, 1], shape `(batch, height, width,
            channels)`.
        severity: Int from 1 to 5. Defaults to `1`.
        seed: Unused, since the blur is deterministic; accepted so every
            corruption has the same signature. Defaults to `None`.
    """
    return _convolve(images, disk_kernel(*DEFOCUS_BLUR_DISKS[severity - 1]))


@batched_corruption
def motion_blur(images, severity, seed):
    """Smears each image along a random direction, like camera shake.

    A weighted mean of copies shifted by `0, 1, ..., length` pixels along
    one direction per image (uniform in +-45 degrees of horizontal), with
    weights `exp(-k^2 / (2 sigma^2))`: the one-sided Gaussian streak of
    ImageMagick's motion blur that CIFAR-10-C uses, written with the
    TensorFlow resampling op because no TensorFlow or Keras op blurs along
    a per-image direction.

    Args:
        images: Float images in [0, 1], shape `(batch, height, width,
            channels)`.
        severity: Int from 1 to 5. Defaults to `1`.
        seed: None, an int or a pair of ints. Defaults to `None`.
    """
    length, sigma = MOTION_BLUR_STREAKS[severity - 1]
    angle = tf.random.stateless_uniform(
        tf.shape(images)[:1],
        seed,
        minval=-MOTION_BLUR_MAX_DEGREES,
        maxval=MOTION_BLUR_MAX_DEGREES,
    ) * (math.pi / 180.0)
    steps = np.arange(length + 1)
    weights = np.exp(-(steps**2) / (2.0 * sigma**2))
    weights /= weights.sum()
    blurred = tf.zeros_like(images)
    for step, weight in zip(steps, weights):
        shifted = transform_images(
            images,
            translation_transforms(step * tf.cos(angle), step * tf.sin(angle)),
        )
        blurred += float(weight) * shifted
    return blurred
