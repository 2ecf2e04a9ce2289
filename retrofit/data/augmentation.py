"""Training-time augmentation with Keras' own preprocessing layers.

Keras core ships `RandomFlip`, `RandomShear`, ... since 3.x; keras-cv is
not used (its last release pulls `keras-core` and its `RandAugment` fails
inside `Model.fit` under Keras 3.15). Two pieces are written here, from
Keras' layers, because Keras draws once for a whole batch where the recipes
draw for each image: the crop of the CIFAR recipe (`keras.layers.RandomCrop`
shifts every image of a batch the same way) and the choice of RandAugment's
operations (`keras.layers.RandAugment` picks the same operations for every
image of a batch from Keras 3.11, and in Keras 3.8 to 3.10 picks them once,
in Python, when it is traced: every batch of a `tf.data` pipeline then got
the same two).
"""

import functools

import keras
import tensorflow as tf

from keras_drelu.arguments import check_number
from keras_drelu.arguments import check_positive


class PadAndCrop:
    """Pads each image with `pad` zeros and crops it back at its own offset.

    The crop of the CIFAR recipe: each image of a batch is shifted by its
    own random whole number of pixels, from `-pad` to `pad` along each axis
    (uniform over the `(2 * pad + 1) ** 2` offsets), the uncovered border
    filled with zeros. The offsets come from a `tf.random.Generator`
    seeded with `seed`: the same seed gives the same offsets, batch after
    batch, when the batches pass in order. Written in TensorFlow, for
    `tf.data` pipelines, whatever the Keras backend.

    Example:

    >>> import numpy as np
    >>> images = np.zeros((3, 4, 4, 1), "float32")
    >>> images[:, 1, 2] = 1.0
    >>> shifted = PadAndCrop(1, seed=0)(images).numpy()
    >>> shifted.shape, float(shifted.sum(axis=(1, 2, 3)).min())
    ((3, 4, 4, 1), 1.0)

    Args:
        pad: Largest shift in pixels, a positive int.
        seed: Int seed of the offsets.
    """

    def __init__(self, pad, seed):
        self.pad = check_positive("pad", pad, integer=True)
        self.generator = tf.random.Generator.from_seed(seed)

    def __call__(self, images):
        images = tf.convert_to_tensor(images)
        height, width = images.shape[1], images.shape[2]
        pad = self.pad
        offsets = self.generator.uniform(
            (tf.shape(images)[0], 2), 0, 2 * pad + 1, dtype=tf.int32
        )
        padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        rows = offsets[:, :1] + tf.range(height)
        columns = offsets[:, 1:] + tf.range(width)
        cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
        return tf.gather(cropped, columns, axis=2, batch_dims=1)


def _magnitude(factor):
    return (0.0, factor)


# Name -> the Keras layer of one RandAugment operation, given the strength
# `factor`, the value range and a seed: the operations and magnitudes of
# `keras.layers.RandAugment` (Keras 3.8 to 3.15).
OPERATIONS = {
    "shear": lambda f, vr, seed: keras.layers.RandomShear(
        x_factor=_magnitude(f), y_factor=_magnitude(f), seed=seed),
    "translation": lambda f, vr, seed: keras.layers.RandomTranslation(
        height_factor=_magnitude(f), width_factor=_magnitude(f), seed=seed),
    "rotation": lambda f, vr, seed: keras.layers.RandomRotation(
        factor=_magnitude(f), seed=seed),
    "brightness": lambda f, vr, seed: keras.layers.RandomBrightness(
        factor=_magnitude(f), value_range=vr, seed=seed),
    "color_degeneration": lambda f, vr, seed: (
        keras.layers.RandomColorDegeneration(
            factor=_magnitude(f), value_range=vr, seed=seed)),
    "contrast": lambda f, vr, seed: keras.layers.RandomContrast(
        factor=_magnitude(f), value_range=vr, seed=seed),
    "sharpness": lambda f, vr, seed: keras.layers.RandomSharpness(
        factor=_magnitude(f), value_range=vr, seed=seed),
    "posterization": lambda f, vr, seed: keras.layers.RandomPosterization(
        factor=max(1, int(8 * f)), value_range=vr, seed=seed),
    "solarization": lambda f, vr, seed: keras.layers.Solarization(
        addition_factor=_magnitude(f), threshold_factor=_magnitude(f),
        value_range=vr, seed=seed),
    "auto_contrast": lambda f, vr, seed: keras.layers.AutoContrast(
        value_range=vr),
    "equalization": lambda f, vr, seed: keras.layers.Equalization(
        value_range=vr),
}


class RandAugment:
    """RandAugment (Cubuk et al., 2020) with its operations drawn per image.

    Each image of a batch goes through `num_ops` rounds; in each, one
    operation of `operations` is drawn uniformly for that image and applied
    at a magnitude also drawn for that image. The operations and their
    magnitudes are those of `keras.layers.RandAugment` (`OPERATIONS`), which
    draws its operations once per batch instead. Each operation computes
    the whole batch and keeps its images, as Keras' layer does. The choices
    come from a `tf.random.Generator` seeded with `seed` and each operation
    has a seed of its own: the same seed gives the same images, batch after
    batch, when the batches pass in order. Written in TensorFlow, for
    `tf.data` pipelines, whatever the Keras backend.

    Example:

    >>> import numpy as np
    >>> images = np.random.default_rng(0).random((4, 8, 8, 3), "float32")
    >>> augment = RandAugment(seed=0)
    >>> augmented = augment(images).numpy()
    >>> augmented.shape, bool(np.array_equal(augmented, images))
    ((4, 8, 8, 3), False)

    Args:
        value_range: `(low, high)` of the image values. Defaults to
            `(0.0, 1.0)`.
        num_ops: Operations applied to each image, a positive int.
            Defaults to `2`.
        factor: Strength of the operations, in `(0, 1]`, as in
            `keras.layers.RandAugment`. Defaults to `0.5`.
        seed: Int seed. Defaults to `0`.
        operations: Callables on image batches to draw from, or `None` for
            the layers of `OPERATIONS`. Defaults to `None`.
    """

    def __init__(self, value_range=(0.0, 1.0), num_ops=2, factor=0.5,
                 seed=0, operations=None):
        self.num_ops = check_positive("num_ops", num_ops, integer=True)
        factor = check_number("factor", factor, low=0, high=1, closed="right")
        if operations is None:
            operations = [
                make(factor, tuple(value_range), seed + 1 + index)
                for index, make in enumerate(OPERATIONS.values())
            ]
        self.operations = [_training(op) for op in operations]
        if not self.operations:
            raise ValueError(
                "Argument `operations` should not be empty. Received: "
                f"operations={operations!r}"
            )
        self.generator = tf.random.Generator.from_seed(seed)

    def __call__(self, images):
        images = tf.convert_to_tensor(images)
        for _ in range(self.num_ops):
            chosen = self.generator.uniform(
                tf.shape(images)[:1], 0, len(self.operations), dtype=tf.int32
            )
            # One choice per image, broadcast over its pixels.
            chosen = tf.reshape(chosen, [-1] + [1] * (images.shape.rank - 1))
            result = images
            for index, operation in enumerate(self.operations):
                result = tf.where(
                    chosen == index,
                    tf.cast(operation(images), images.dtype),
                    result,
                )
            images = result
        return images


def _flip(height, width, seed):
    return [keras.layers.RandomFlip("horizontal", seed=seed)]


def _flip_crop(height, width, seed):
    # The CIFAR recipe: pad by 4 pixels, crop back at random, flip; each
    # image its own offset and flip, the two drawn from seeds of their own.
    return [
        PadAndCrop(4, seed=seed),
        keras.layers.RandomFlip("horizontal", seed=seed + 1),
    ]


def _randaugment(height, width, seed):
    return [RandAugment(value_range=(0.0, 1.0), seed=seed)]


# Preset name -> the layers it stacks, given the image size and a seed.
PRESETS = {"flip": _flip, "flip-crop": _flip_crop, "randaugment": _randaugment}


def _training(step):
    """`step`, told it is training if it is a Keras layer: random layers are
    no-ops otherwise."""
    if isinstance(step, keras.layers.Layer):
        return functools.partial(step, training=True)
    return step


def _preset(name, image_shape, seed):
    """The preset's steps chained, Keras' random layers told they train.

    Not a `keras.Sequential`: inside `tf.data` Keras runs its preprocessing
    layers in TensorFlow whatever the backend, but a model around them
    converts its inputs to the backend's arrays (on JAX it cannot).
    """
    height, width, _ = image_shape
    steps = [_training(step) for step in PRESETS[name](height, width, seed)]

    def apply(images):
        for step in steps:
            images = step(images)
        return images

    return apply


def augmentation(augment, image_shape, seed):
    """Resolves the `augment` argument of the data sources.

    Args:
        augment: `None`; a preset name, one of `"flip"` (horizontal flips),
            `"flip-crop"` (4-pixel padding, random crop, flip: the CIFAR
            recipe) or `"randaugment"` (`RandAugment`: Keras' operations,
            drawn for each image); or any
            callable on a batch of float images in `[0, 1]`, such as a Keras
            preprocessing layer or a `keras.Sequential` of them.
        image_shape: `(height, width, channels)` of the images.
        seed: Integer seed of the preset layers.

    Returns:
        `None`, or a function from an image batch to an augmented batch,
        clipped to `[0, 1]` so that the attack range still holds.
    """
    if augment is None:
        return None
    if isinstance(augment, str):
        if augment not in PRESETS:
            raise ValueError(
                f"Argument `augment` should be one of {tuple(PRESETS)}, a callable "
                f"or None. Received: augment={augment!r}"
            )
        augment = _preset(augment, image_shape, seed)
    elif not callable(augment):
        raise ValueError(
            f"Argument `augment` should be one of {tuple(PRESETS)}, a callable or "
            f"None. Received: augment={augment!r}"
        )

    augment = _training(augment)

    def apply(images):
        return tf.clip_by_value(tf.cast(augment(images), tf.float32), 0.0, 1.0)

    return apply
