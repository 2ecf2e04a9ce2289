"""Digital corruptions: brightness, contrast, pixelation, JPEG compression.

Severity parameters are those of CIFAR-10-C (Hendrycks & Dietterich, ICLR
2019); each uses the TensorFlow image op that does the job.
"""

import tensorflow as tf

from keras_drelu.corruptions.arguments import batched_corruption

BRIGHTNESS_SHIFTS = (0.05, 0.1, 0.15, 0.2, 0.3)
CONTRAST_FACTORS = (0.75, 0.5, 0.4, 0.3, 0.15)
PIXELATE_SCALES = (0.95, 0.9, 0.85, 0.75, 0.65)
JPEG_QUALITIES = (80, 65, 58, 50, 40)


@batched_corruption(channels=(1, 3))
def brightness(images, severity, seed):
    """Brightens by raising the HSV value channel by 0.05 to 0.3.

    Colour images go through `tf.image.rgb_to_hsv`, which keeps hue and
    saturation; for grey images the value is the pixel itself.

    Example:

    >>> import numpy as np
    >>> x = np.full((1, 2, 2, 1), 0.5, "float32")
    >>> round(float(brightness(x, severity=5)[0, 0, 0, 0]), 4)
    0.8

    Args:
        images: Float images in [0, 1] with 1 or 3 channels, shape
            `(batch, height, width, channels)`.
        severity: Int from 1 to 5. Defaults to `1`.
        seed: Unused, since the change is deterministic; accepted so every
            corruption has the same signature. Defaults to `None`.
    """
    shift = BRIGHTNESS_SHIFTS[severity - 1]
    if images.shape[-1] == 1:
        return images + shift
    hue, saturation, value = tf.unstack(tf.image.rgb_to_hsv(images), axis=-1)
    value = tf.clip_by_value(value + shift, 0.0, 1.0)
    return tf.image.hsv_to_rgb(tf.stack([hue, saturation, value], axis=-1))


@batched_corruption
def contrast(images, severity, seed):
    """Pulls every value towards its image's channel mean.

    Formula: `(x - mean) * c + mean` with `c` from 0.75 down to 0.15, by
    `tf.image.adjust_contrast`.

    Args:
        images: Float images in [0, 1], shape `(batch, height, width,
            channels)`.
        severity: Int from 1 to 5. Defaults to `1`.
        seed: Unused, since the change is deterministic; accepted so every
            corruption has the same signature. Defaults to `None`.
    """
    return tf.image.adjust_contrast(images, CONTRAST_FACTORS[severity - 1])


@batched_corruption
def pixelate(images, severity, seed):
    """Shrinks each image to 95% down to 65% of its side and enlarges it back.

    Box (area) averaging down and nearest-neighbour up, as PIL's `BOX`
    filter does in CIFAR-10-C, with `tf.image.resize`.

    Args:
        images: Float images in [0, 1], shape `(batch, height, width,
            channels)`.
        severity: Int from 1 to 5. Defaults to `1`.
        seed: Unused, since the change is deterministic; accepted so every
            corruption has the same signature. Defaults to `None`.
    """
    size = tf.shape(images)[1:3]
    small = tf.cast(
        tf.cast(size, tf.float32) * PIXELATE_SCALES[severity - 1], tf.int32
    )
    shrunk = tf.image.resize(images, small, method="area")
    return tf.image.resize(shrunk, size, method="nearest")


@batched_corruption(channels=(1, 3))
def jpeg_compression(images, severity, seed):
    """Encodes every image as JPEG at quality 80 down to 40 and decodes it.

    `tf.image.adjust_jpeg_quality` takes one image at a time, hence the
    `tf.map_fn`; values are quantised to 8 bits on the way, as in a file.

    Args:
        images: Float images in [0, 1] with 1 or 3 channels, shape
            `(batch, height, width, channels)`.
        severity: Int from 1 to 5. Defaults to `1`.
        seed: Unused, since the codec is deterministic; accepted so every
            corruption has the same signature. Defaults to `None`.
    """
    quality = JPEG_QUALITIES[severity - 1]
    return tf.map_fn(
        lambda image: tf.image.adjust_jpeg_quality(image, quality),
        images,
        fn_output_signature=tf.TensorSpec(images.shape[1:], tf.float32),
    )
