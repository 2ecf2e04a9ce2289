"""Training-time augmentation with Keras' own preprocessing layers.

Keras core ships `RandomFlip`, `RandAugment`, ... since 3.x; keras-cv is
not used (its last release pulls `keras-core` and its `RandAugment` fails
inside `Model.fit` under Keras 3.15). The crop of the CIFAR recipe is
written here: `keras.layers.RandomCrop` draws one offset per batch, so
every image of a batch would move the same way.
"""

import functools

import keras
import tensorflow as tf

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
    return [keras.layers.RandAugment(value_range=(0.0, 1.0), seed=seed)]


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
            recipe) or `"randaugment"` (`keras.layers.RandAugment`); or any
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
