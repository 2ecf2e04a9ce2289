"""scikit-learn's bundled handwritten digits, upsampled: no download."""

import numpy as np
import sklearn.datasets
import tensorflow as tf

from keras_drelu.arguments import check_number
from keras_drelu.arguments import check_positive
from retrofit.data.splits import DatasetInfo
from retrofit.data.splits import check_arguments
from retrofit.data.splits import make_splits


def digits(
    image_size=32, *, channels=1, test_split=0.2, batch_size=64,
    validation_split=0.1, seed=0, augment=None, limit=None,
):
    """The UCI handwritten digits bundled with scikit-learn, upsampled.

    `sklearn.datasets.load_digits` holds 1797 real 8x8 images with 17 grey
    levels (0 to 16), so this data set needs no network: the quick start's
    default. Images are scaled to `[0, 1]` and resized bilinearly to
    `image_size`; `test_split` of them, drawn with `seed`, form the test
    split, since the bundled set has none.

    Example:

    >>> splits = digits(image_size=16, batch_size=32)
    >>> splits.info.num_classes, splits.info.image_shape
    (10, (16, 16, 1))
    >>> images, labels = next(iter(splits.train))
    >>> images.shape, float(images.numpy().min()) >= 0.0
    (TensorShape([32, 16, 16, 1]), True)

    Args:
        image_size: Side of the square output images. Defaults to `32`.
        channels: `1` for grey images, `3` for the grey level repeated
            over RGB channels (for backbones that expect colour). Defaults
            to `1`.
        test_split: Fraction of the 1797 images held out as the test
            split. Defaults to `0.2`.
        batch_size: Examples per batch. Defaults to `64`.
        validation_split: Fraction of the remaining images held out for
            validation. Defaults to `0.1`.
        seed: Integer seed of every random choice. Defaults to `0`.
        augment: `None`, a preset (`"flip"`, `"flip-crop"`,
            `"randaugment"`) or a callable on image batches; applied to the
            training split only. Defaults to `None`.
        limit: Optional number of training and of test images to keep
            (random subsets). Defaults to `None`, all.

    Returns:
        A `DataSplits`.
    """
    check_arguments(batch_size, validation_split, seed, limit)
    image_size = check_positive("image_size", image_size, integer=True)
    if channels not in (1, 3):
        raise ValueError(
            "Argument `channels` should be 1 or 3. "
            f"Received: channels={channels!r}"
        )
    test_split = check_number(
        "test_split", test_split, low=0, high=1, closed="neither"
    )
    pixels, labels = sklearn.datasets.load_digits(return_X_y=True)
    images = pixels.reshape(-1, 8, 8, 1).astype(np.float32) / 16.0
    images = tf.image.resize(images, (image_size, image_size)).numpy()
    images = np.clip(np.repeat(images, channels, axis=-1), 0.0, 1.0)
    # Its own generator, so that the test split does not depend on how
    # `make_splits` later draws from `seed`.
    order = np.random.default_rng([seed, 1]).permutation(len(labels))
    num_test = int(round(len(labels) * test_split))
    test, train = order[:num_test], order[num_test:]
    info = DatasetInfo(
        name="digits",
        num_classes=10,
        image_shape=(image_size, image_size, channels),
        class_names=tuple(str(label) for label in range(10)),
    )
    return make_splits(
        (images[train], labels[train].astype(np.int64)),
        (images[test], labels[test].astype(np.int64)),
        info,
        batch_size=batch_size,
        validation_split=validation_split,
        seed=seed,
        augment=augment,
        limit=limit,
    )
