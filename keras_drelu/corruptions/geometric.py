"""Geometric corruptions: small rotations and translations.

CIFAR-10-C has none; the robustness benchmark of Laugros, Caplier &
Ospici ("Are Adversarial Robustness and Common Perturbation Robustness
Independent Attributes?", 2019) adds them. The magnitudes are ours: fixed
per severity, with a random sign or direction per image, small enough
that the label stays obvious.
"""

import math

import tensorflow as tf

from keras_drelu.corruptions.arguments import batched_corruption

ROTATION_DEGREES = (3.0, 6.0, 9.0, 12.0, 15.0)
# Fractions of the image side.
TRANSLATION_FRACTIONS = (0.03, 0.06, 0.09, 0.12, 0.15)


def transform_images(images, transforms):
    """Resamples each image through its own projective transform.

    `transforms` has one row `[a0, a1, a2, b0, b1, b2, 0, 0]` per image,
    mapping an output pixel `(x, y)` to the input point
    `(a0 x + a1 y + a2, b0 x + b1 y + b2)`: the TensorFlow op behind
    `keras.layers.RandomRotation` and `RandomTranslation`, with bilinear
    interpolation and reflected borders so no black corners appear.
    """
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.cast(transforms, tf.float32),
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )


def translation_transforms(dx, dy):
    """Rows of `transform_images` that shift each image by `(dx, dy)`."""
    one, zero = tf.ones_like(dx), tf.zeros_like(dx)
    return tf.stack([one, zero, -dx, zero, one, -dy, zero, zero], axis=1)


def _image_size(images):
    shape = tf.cast(tf.shape(images), tf.float32)
    return shape[1], shape[2]


@batched_corruption
def rotation(images, severity, seed):
    """Rotates each image about its centre by a small fixed angle.

    The angle is 3 to 15 degrees by severity, clockwise or anticlockwise at
    random per image; borders are reflected.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).uniform(size=(2, 8, 8, 1))
    >>> rotation(x, severity=3, seed=0).shape
    TensorShape([2, 8, 8, 1])

    Args:
        images: Float images in [0, 1], shape `(batch, height, width,
            channels)`.
        severity: Int from 1 to 5. Defaults to `1`.
        seed: None, an int or a pair of ints. Defaults to `None`.
    """
    batch = tf.shape(images)[:1]
    sign = tf.where(tf.random.stateless_uniform(batch, seed) < 0.5, -1.0, 1.0)
    angle = sign * ROTATION_DEGREES[severity - 1] * math.pi / 180.0
    height, width = _image_size(images)
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Rotation about the centre ((w - 1) / 2, (h - 1) / 2).
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2
    zero = tf.zeros_like(angle)
    transforms = tf.stack(
        [cos, -sin, x_offset, sin, cos, y_offset, zero, zero], axis=1
    )
    return transform_images(images, transforms)


@batched_corruption
def translation(images, severity, seed):
    """Shifts each image by a small fixed distance in a random direction.

    The distance is 3% to 15% of the image side by severity; the direction
    is uniform per image and borders are reflected.

    Args:
        images: Float images in [0, 1], shape `(batch, height, width,
            channels)`.
        severity: Int from 1 to 5. Defaults to `1`.
        seed: None, an int or a pair of ints. Defaults to `None`.
    """
    batch = tf.shape(images)[:1]
    direction = tf.random.stateless_uniform(batch, seed, maxval=2.0 * math.pi)
    height, width = _image_size(images)
    fraction = TRANSLATION_FRACTIONS[severity - 1]
    dx = fraction * width * tf.cos(direction)
    dy = fraction * height * tf.sin(direction)
    return transform_images(images, translation_transforms(dx, dy))
