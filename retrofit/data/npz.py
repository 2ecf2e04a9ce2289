"""Image classification data kept in numpy `.npz` files."""

import pathlib
import zipfile

import numpy as np

from retrofit.data.splits import DatasetInfo
from retrofit.data.splits import check_arguments
from retrofit.data.splits import make_splits


def read_npz(path, keys):
    """Opens `path` and returns its arrays `keys`, checking they are there.

    Args:
        path: Path of an `.npz` file.
        keys: Names of the arrays it must hold.

    Returns:
        A dict of every array in the file (pickled objects refused).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No .npz file at {str(path)!r}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                arrays = dict(loaded.items())
        else:
            arrays = None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        reason = (str(error) or type(error).__name__).splitlines()[0]
        raise ValueError(
            f"{str(path)!r} is not a readable .npz file: {reason}"
        ) from None
    if arrays is None:
        raise ValueError(
            f"{str(path)!r} holds a single array, not an .npz archive of "
            f"named arrays {list(keys)}"
        )
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise ValueError(
            f"{str(path)!r} lacks the arrays {missing}: it holds "
            f"{sorted(arrays)}, and needs {list(keys)}"
        )
    return arrays


def check_images(path, key, images):
    """Checks one image array; returns it as NHWC uint8 or float32."""
    where = f"{key!r} in {str(path)!r}"
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"Images {where} should have shape (N, H, W), (N, H, W, 1) or "
            f"(N, H, W, 3). Received: shape={images.shape}"
        )
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"Images {where} should be uint8 in [0, 255] or float in [0, 1]. "
            f"Received: dtype={images.dtype}"
        )
    images = images.astype(np.float32)
    finite = np.isfinite(images)
    if not finite.all():
        raise ValueError(
            f"Float images {where} should be finite numbers in [0, 1]. "
            f"Received: {int((~finite).sum())} non-finite values"
        )
    if images.size and not (images.min() >= 0 and images.max() <= 1):
        raise ValueError(
            f"Float images {where} should lie in [0, 1]. Received values in "
            f"[{images.min()}, {images.max()}]"
        )
    return images


def check_labels(path, key, labels, num_images):
    """Checks one label array; returns it as a flat int64 array."""
    where = f"{key!r} in {str(path)!r}"
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"Labels {where} should be integers of shape (N,) or (N, 1). "
            f"Received: shape={labels.shape}, dtype={labels.dtype}"
        )
    if len(labels) != num_images:
        raise ValueError(
            f"Labels {where} should have one entry per image: "
            f"{num_images} images but {len(labels)} labels"
        )
    if len(labels) and labels.min() < 0:
        raise ValueError(
            f"Labels {where} should be non-negative. Received: "
            f"min={labels.min()}"
        )
    return labels.astype(np.int64)


def load_npz_arrays(path):
    """Reads and checks `x_train, y_train, x_test, y_test` from `path`.

    Returns:
        `(train, test, class_names)`: `(images, labels)` pairs and a tuple
        of class names (from a `class_names` array when the file has one,
        else the label values as strings).
    """
    arrays = read_npz(path, ("x_train", "y_train", "x_test", "y_test"))
    splits = []
    for name in ("train", "test"):
        images = check_images(path, f"x_{name}", arrays[f"x_{name}"])
        labels = check_labels(
            path, f"y_{name}", arrays[f"y_{name}"], len(images)
        )
        splits.append((images, labels))
    (train, test) = splits
    if train[0].shape[1:] != test[0].shape[1:]:
        raise ValueError(
            f"Train and test images in {str(path)!r} differ in shape: "
            f"{train[0].shape[1:]} and {test[0].shape[1:]}"
        )
    num_classes = int(max(train[1].max(initial=0), test[1].max(initial=0))) + 1
    if "class_names" in arrays:
        class_names = tuple(str(name) for name in arrays["class_names"])
        if len(class_names) < num_classes:
            raise ValueError(
                f"{str(path)!r} names {len(class_names)} classes but has "
                f"label {num_classes - 1}"
            )
    else:
        class_names = tuple(str(label) for label in range(num_classes))
    return train, test, class_names


def npz(
    path, *, batch_size=64, validation_split=0.1, seed=0, augment=None,
    limit=None,
):
    """An image classification data set stored in an `.npz` file.

    The file holds `x_train`, `y_train`, `x_test` and `y_test` (the layout
    of `keras.datasets`): images `(N, H, W)` or `(N, H, W, C)` with `C` 1 or
    3, uint8 in `[0, 255]` or float in `[0, 1]`; integer labels `(N,)` or
    `(N, 1)`; optionally `class_names`. The whole file is read into memory.

    Example:

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.npz"
    >>> rng = np.random.default_rng(0)
    >>> np.savez(
    ...     path,
    ...     x_train=rng.integers(0, 256, (20, 8, 8), dtype=np.uint8),
    ...     y_train=np.arange(20) % 4,
    ...     x_test=rng.integers(0, 256, (6, 8, 8), dtype=np.uint8),
    ...     y_test=np.arange(6) % 4,
    ... )
    >>> splits = npz(path, batch_size=4, validation_split=0.25)
    >>> splits.info
    DatasetInfo(name='tiny', num_classes=4, image_shape=(8, 8, 1), \
class_names=('0', '1', '2', '3'))
    >>> images, labels = next(iter(splits.train))
    >>> images.shape, images.dtype.name, labels.dtype.name
    (TensorShape([4, 8, 8, 1]), 'float32', 'int64')

    Args:
        path: Path of the `.npz` file.
        batch_size: Examples per batch. Defaults to `64`.
        validation_split: Fraction of the training data held out for
            validation, drawn at random with `seed`. Defaults to `0.1`.
        seed: Integer seed of every random choice. Defaults to `0`.
        augment: `None`, a preset (`"flip"`, `"flip-crop"`,
            `"randaugment"`) or a callable on image batches; applied to the
            training split only. Defaults to `None`.
        limit: Optional number of training and of test examples to keep
            (random subsets). Defaults to `None`, all.

    Returns:
        A `DataSplits`; `info.name` is the file's stem.
    """
    check_arguments(batch_size, validation_split, seed, limit)
    train, test, class_names = load_npz_arrays(path)
    info = DatasetInfo(
        name=pathlib.Path(path).stem,
        num_classes=len(class_names),
        image_shape=tuple(train[0].shape[1:]),
        class_names=class_names,
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
