"""The records every data source returns, and the pipeline they share."""

import dataclasses
import functools

import numpy as np
import tensorflow as tf

from keras_drelu.arguments import check_number
from keras_drelu.arguments import check_positive
from retrofit.data.augmentation import augmentation


class DataUnavailableError(ValueError):
    """A data set that is neither on disk nor downloadable right now.

    Args:
        name: The data set.
        looked_in: Where it was looked for (a directory), or `None`.
        reason: Why it could not be had, one line.
        alternatives: Keyword arguments of the source that would let it
            load instead (such as `data_dir`, `path`).
    """

    def __init__(self, name, looked_in, reason, alternatives=()):
        self.name = name
        self.looked_in = looked_in
        self.reason = reason
        self.alternatives = tuple(alternatives)
        where = f" in {looked_in}" if looked_in else ""
        super().__init__(
            f"data set {name!r} is not available{where}: {reason}"
        )


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a data set.

    Args:
        name: Name of the data set, such as `"cifar10"`.
        num_classes: Number of classes; labels lie in `[0, num_classes)`.
        image_shape: `(height, width, channels)` of every image.
        class_names: One name per class, in label order.
    """

    name: str
    num_classes: int
    image_shape: tuple
    class_names: tuple


@dataclasses.dataclass(frozen=True)
class DataSplits:
    """Train, validation and test pipelines of one data set.

    Each pipeline yields batches of `(image, label)`: float32 images in
    `[0, 1]` of shape `(batch, *info.image_shape)` and int64 labels.

    Args:
        train: Shuffled (again every epoch), augmented if asked.
        validation: Carved from the training data, or `None` when
            `validation_split=0`.
        test: The data set's test split.
        info: A `DatasetInfo`.
    """

    train: tf.data.Dataset
    validation: "tf.data.Dataset | None"
    test: tf.data.Dataset
    info: DatasetInfo


def check_arguments(batch_size, validation_split, seed, limit):
    """Validates the keyword arguments every source shares."""
    check_positive("batch_size", batch_size, integer=True)
    check_number(
        "validation_split", validation_split, low=0, high=1, closed="left"
    )
    check_number("seed", seed, integer=True)
    check_positive("limit", limit, integer=True, allow_none=True)


def _subset(inputs, labels, indices):
    return inputs[indices], labels[indices]


def _to_unit_range(images):
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 255.0
    return tf.cast(images, tf.float32)


def _pipeline(inputs, labels, *, batch_size, decode, shuffle_seed, augment):
    ds = tf.data.Dataset.from_tensor_slices((inputs, labels))
    if decode is not None:
        ds = ds.map(
            lambda x, y: (decode(x), y), num_parallel_calls=tf.data.AUTOTUNE
        )
    # Cached before the conversion to float32: uint8 takes a quarter of
    # the memory, and the conversion is cheap once batched.
    ds = ds.cache()
    if shuffle_seed is not None:
        ds = ds.shuffle(
            len(labels), seed=shuffle_seed, reshuffle_each_iteration=True
        )
    ds = ds.batch(batch_size).map(
        lambda x, y: (_to_unit_range(x), tf.cast(y, tf.int64)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if augment is not None:
        # In order, on one thread: random layers draw from a generator they
        # carry, so batches augmented in parallel drew in whatever order the
        # threads ran, and the same seed gave other data on each run. The
        # augmentation of the next batches still overlaps the training step
        # (`prefetch`).
        ds = ds.map(lambda x, y: (augment(x), y))
    return ds.prefetch(tf.data.AUTOTUNE)


def make_splits(
    train,
    test,
    info,
    *,
    batch_size,
    validation_split,
    seed,
    augment,
    limit,
    decode=None,
):
    """Builds `DataSplits` from in-memory train and test arrays.

    Every random choice (the `limit` subsets, the validation split, the
    shuffling and the augmentation) draws from `seed`.

    Args:
        train: `(inputs, labels)` numpy arrays of the training data.
        test: `(inputs, labels)` numpy arrays of the test data.
        info: The `DatasetInfo`.
        batch_size: Examples per batch.
        validation_split: Fraction of the training data held out.
        seed: Integer seed.
        augment: `None`, a preset name or a callable on image batches.
        limit: `None`, or the number of training and of test examples kept
            (a random subset of each).
        decode: Optional function from one input to its image tensor, for
            sources whose inputs are file paths.

    Returns:
        A `DataSplits`.
    """
    check_arguments(batch_size, validation_split, seed, limit)
    rng = np.random.default_rng(seed)
    if limit is not None:
        train = _subset(*train, rng.permutation(len(train[1]))[:limit])
        test = _subset(*test, rng.permutation(len(test[1]))[:limit])
    validation = None
    if validation_split > 0:
        num_train = len(train[1])
        num_validation = int(round(num_train * validation_split))
        if not 0 < num_validation < num_train:
            raise ValueError(
                f"Cannot hold out validation_split={validation_split} of "
                f"{num_train} training examples of {info.name!r}: "
                "each split needs at least one example"
            )
        order = rng.permutation(num_train)
        validation = _subset(*train, order[:num_validation])
        train = _subset(*train, order[num_validation:])
    augment = augmentation(augment, info.image_shape, seed)
    pipeline = functools.partial(
        _pipeline, batch_size=batch_size, decode=decode
    )
    return DataSplits(
        train=pipeline(*train, shuffle_seed=seed, augment=augment),
        validation=None
        if validation is None
        else pipeline(*validation, shuffle_seed=None, augment=None),
        test=pipeline(*test, shuffle_seed=None, augment=None),
        info=info,
    )
