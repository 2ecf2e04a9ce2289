"""Training-time augmentation with Keras' own preprocessing layers.

Keras core ships `RandomFlip`, `RandomCrop`, `RandAugment`, ... since 3.x;
keras-cv is not used (its last release pulls `keras-core` and its
`RandAugment` fails inside `Model.fit` under Keras 3.15).
"""

import functools

import keras
import tensorflow as tf

def _flip(height, width, seed):
    return [keras.layers.RandomFlip("horizontal", seed=seed)]


def _flip_crop(height, width, seed):
    # The CIFAR recipe: pad by 4 pixels, crop back at random, flip.
    return [
        keras.layers.ZeroPadding2D(4),
        keras.layers.RandomCrop(height, width, seed=seed),
        keras.layers.RandomFlip("horizontal", seed=seed),
    ]


def _randaugment(height, width, seed):
    return [keras.layers.RandAugment(value_range=(0.0, 1.0), seed=seed)]


# Preset name -> the layers it stacks, given the image size and a seed.
PRESETS = {"flip": _flip, "flip-crop": _flip_crop, "randaugment": _randaugment}


def _preset(name, image_shape, seed):
    height, width, _ = image_shape
    layers = PRESETS[name](height, width, seed)
    return keras.Sequential(layers, name=f"augment_{name.replace('-', '_')}")


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

    if isinstance(augment, keras.layers.Layer):
        # Random layers are no-ops unless told they are training.
        augment = functools.partial(augment, training=True)

    def apply(images):
        return tf.clip_by_value(tf.cast(augment(images), tf.float32), 0.0, 1.0)

    return apply
