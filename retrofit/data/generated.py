"""Mixing generated images into training batches (paper section 8)."""

import tensorflow as tf

from keras_drelu.arguments import check_number
from retrofit.data.augmentation import augmentation
from retrofit.data.npz import check_images
from retrofit.data.npz import check_labels
from retrofit.data.npz import read_npz


def mix_generated(
    train, generated_npz, original_fraction=0.3, seed=0, *, augment=None
):
    """Fills most of every training batch with generated images.

    As in Wang et al. (2023), "Better Diffusion Models Further Improve
    Adversarial Training", followed by section 8 of the D-ReLU paper: each
    batch of `B` examples holds `round(original_fraction * B)` original
    examples, drawn in `train`'s own (shuffled) order, and the rest drawn at
    random from the generated set, so that an epoch keeps the number and
    size of `train`'s batches while about 30% of its examples are original.

    The generated set is an `.npz` file with `image` (uint8 or float in
    `[0, 1]`, the shape of `train`'s images) and integer `label` arrays, as
    the EDM-generated CIFAR sets are distributed. It is read into memory.

    Example:

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from retrofit.data import digits
    >>> splits = digits(image_size=8, batch_size=10)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "generated.npz"
    >>> np.savez(path, image=np.zeros((50, 8, 8, 1), np.uint8),
    ...          label=np.full(50, 7))
    >>> mixed = mix_generated(splits.train, path, original_fraction=0.3)
    >>> images, labels = next(iter(mixed))
    >>> int((labels == 7).numpy().sum()) >= 7
    True
    >>> int(mixed.cardinality()) == int(splits.train.cardinality())
    True

    Args:
        train: A batched training pipeline of `(image, label)` with a known
            number of batches, such as `DataSplits.train`.
        generated_npz: Path of the `.npz` file of generated examples.
        original_fraction: Fraction of each batch taken from `train`, in
            `(0, 1)`. Defaults to `0.3` (CIFAR in the paper; `0.2` for
            Tiny ImageNet).
        seed: Integer seed of the draws from the generated set. Defaults to
            `0`.
        augment: `None`, a preset (`"flip"`, `"flip-crop"`,
            `"randaugment"`) or a callable applied to every mixed batch;
            build `train` without augmentation then, so that originals are
            not augmented twice. Defaults to `None`.

    Returns:
        A `tf.data.Dataset` of mixed `(image, label)` batches: float32
        images in `[0, 1]`, int64 labels.
    """
    original_fraction = check_number(
        "original_fraction", original_fraction, low=0, high=1,
        closed="neither",
    )
    num_batches = int(train.cardinality())
    if num_batches < 1:
        raise ValueError(
            "Argument `train` should be a finite, batched dataset of known "
            f"length. Received: cardinality={num_batches}"
        )
    arrays = read_npz(generated_npz, ("image", "label"))
    images = check_images(generated_npz, "image", arrays["image"])
    labels = check_labels(generated_npz, "label", arrays["label"], len(images))
    image_shape = tuple(train.element_spec[0].shape[1:])
    if images.shape[1:] != image_shape or len(images) == 0:
        raise ValueError(
            f"Generated images in {str(generated_npz)!r} should be a "
            f"non-empty array of shape (N, *{image_shape}) like the training "
            f"images. Received: shape={images.shape}"
        )
    batch_size = int(next(iter(train.take(1)))[1].shape[0])
    if batch_size < 2:
        raise ValueError(
            "Mixing needs batches of at least 2 examples. Received: "
            f"batch_size={batch_size}"
        )
    num_original = min(
        max(1, int(round(original_fraction * batch_size))), batch_size - 1
    )
    originals = train.unbatch().repeat().batch(num_original)

    images = tf.constant(images)
    labels = tf.constant(labels)

    def gather(indices):
        batch = tf.gather(images, indices)
        if batch.dtype == tf.uint8:
            batch = tf.cast(batch, tf.float32) / 255.0
        return batch, tf.gather(labels, indices)

    # Shuffled indices rather than shuffled images: a shuffle buffer would
    # hold a second copy of the generated set.
    generated = (
        tf.data.Dataset.range(len(labels))
        .shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size - num_original)
        .map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    )
    augment = augmentation(augment, image_shape, seed)

    def concatenate(original, generated):
        batch = tf.concat([original[0], generated[0]], axis=0)
        if augment is not None:
            batch = augment(batch)
        return batch, tf.concat([original[1], generated[1]], axis=0)

    return (
        tf.data.Dataset.zip(originals, generated)
        .map(concatenate, num_parallel_calls=tf.data.AUTOTUNE)
        .take(num_batches)
        .prefetch(tf.data.AUTOTUNE)
    )
