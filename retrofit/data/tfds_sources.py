"""MNIST, CIFAR-10 and CIFAR-100 through tensorflow-datasets."""

import numpy as np
import tensorflow_datasets as tfds

from retrofit.data.splits import DataUnavailableError
from retrofit.data.splits import DatasetInfo
from retrofit.data.splits import check_arguments
from retrofit.data.splits import make_splits


def _load_arrays(name, split, data_dir, download):
    where = data_dir or tfds.core.constants.DATA_DIR
    try:
        ds, info = tfds.load(
            name,
            split=split,
            as_supervised=True,
            data_dir=data_dir,
            download=download,
            with_info=True,
        )
    except AssertionError as error:
        # tensorflow-datasets asserts when download=False finds no copy.
        raise DataUnavailableError(
            name, where, "no prepared copy there and downloading is off",
            alternatives=("data_dir",),
        ) from error
    except OSError as error:
        # `requests`' connection errors and other network failures.
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise DataUnavailableError(
            name, where,
            f"the download failed ({type(error).__name__}: {first_line[:160]})",
            alternatives=("data_dir",),
        ) from error
    # Read in blocks: `batch_size=-1` asks tf.data for one tensor of the
    # whole split, which crashes on generator-backed splits.
    blocks = list(tfds.as_numpy(ds.batch(4096)))
    images = np.concatenate([block[0] for block in blocks])
    labels = np.concatenate([block[1] for block in blocks])
    return (images, labels), info


def _tfds_source(
    name, *, batch_size, validation_split, seed, augment, data_dir, download,
    limit,
):
    check_arguments(batch_size, validation_split, seed, limit)
    train, builder_info = _load_arrays(name, "train", data_dir, download)
    test, _ = _load_arrays(name, "test", data_dir, download)
    label = builder_info.features["label"]
    info = DatasetInfo(
        name=name,
        num_classes=label.num_classes,
        image_shape=tuple(builder_info.features["image"].shape),
        class_names=tuple(label.names),
    )
    return make_splits(
        train,
        test,
        info,
        batch_size=batch_size,
        validation_split=validation_split,
        seed=seed,
        augment=augment,
        limit=limit,
    )


_ARGS_DOC = """
    Args:
        batch_size: Examples per batch. Defaults to `64`.
        validation_split: Fraction of the training split held out for
            validation, drawn at random with `seed`. Defaults to `0.1`.
        seed: Integer seed of every random choice (validation split,
            `limit` subsets, shuffling, augmentation). Defaults to `0`.
        augment: `None`, a preset (`"flip"`, `"flip-crop"`,
            `"randaugment"`) or a callable on image batches, such as Keras
            preprocessing layers; applied to the training split only.
            Defaults to `None`.
        data_dir: Where tensorflow-datasets keeps its data. Defaults to
            `None`, its default (`~/tensorflow_datasets`).
        download: Whether tensorflow-datasets may download and prepare the
            data set when it is absent. Defaults to `True`.
        limit: Optional number of training and of test examples to keep
            (random subsets), for quick runs. Defaults to `None`, all.

    Returns:
        A `DataSplits` of batched `(image, label)` pipelines, images float32
        in `[0, 1]`, labels int64.
"""


def _with_args_doc(function):
    function.__doc__ += _ARGS_DOC
    return function


@_with_args_doc
def mnist(
    *, batch_size=64, validation_split=0.1, seed=0, augment=None,
    data_dir=None, download=True, limit=None,
):
    """MNIST handwritten digits: 28x28x1, 10 classes.

    Example:

    ```python
    splits = retrofit.data.mnist(batch_size=128)
    images, labels = next(iter(splits.train))  # (128, 28, 28, 1), (128,)
    ```
    """
    return _tfds_source(
        "mnist", batch_size=batch_size, validation_split=validation_split,
        seed=seed, augment=augment, data_dir=data_dir, download=download,
        limit=limit,
    )


@_with_args_doc
def cifar10(
    *, batch_size=64, validation_split=0.1, seed=0, augment=None,
    data_dir=None, download=True, limit=None,
):
    """CIFAR-10: 32x32x3 colour images, 10 classes.

    Example:

    ```python
    splits = retrofit.data.cifar10(augment="flip-crop")
    splits.info.class_names[:2]  # ('airplane', 'automobile')
    ```
    """
    return _tfds_source(
        "cifar10", batch_size=batch_size, validation_split=validation_split,
        seed=seed, augment=augment, data_dir=data_dir, download=download,
        limit=limit,
    )


@_with_args_doc
def cifar100(
    *, batch_size=64, validation_split=0.1, seed=0, augment=None,
    data_dir=None, download=True, limit=None,
):
    """CIFAR-100: 32x32x3 colour images, 100 fine-grained classes.

    Example:

    ```python
    splits = retrofit.data.cifar100(limit=1000)
    splits.info.num_classes  # 100
    ```
    """
    return _tfds_source(
        "cifar100", batch_size=batch_size, validation_split=validation_split,
        seed=seed, augment=augment, data_dir=data_dir, download=download,
        limit=limit,
    )
