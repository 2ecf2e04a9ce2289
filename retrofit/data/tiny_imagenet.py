"""Tiny ImageNet from the official `tiny-imagenet-200` directory layout."""

import os
import pathlib

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from retrofit.data.splits import DataUnavailableError
from retrofit.data.splits import DatasetInfo
from retrofit.data.splits import check_arguments
from retrofit.data.splits import make_splits

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
IMAGE_SHAPE = (64, 64, 3)


def _read_lines(path):
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _find_root(path):
    """`path` itself, or the `tiny-imagenet-200` folder inside it."""
    path = pathlib.Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"No Tiny ImageNet directory at {str(path)!r}"
        )
    for root in (path, path / "tiny-imagenet-200"):
        if (root / "wnids.txt").is_file():
            return root
    raise FileNotFoundError(
        f"{str(path)!r} is not a tiny-imagenet-200 directory: it has no "
        "wnids.txt"
    )


def _download(data_dir):
    downloads = os.path.join(
        data_dir or tfds.core.constants.DATA_DIR, "downloads"
    )
    manager = tfds.download.DownloadManager(download_dir=downloads)
    try:
        return pathlib.Path(manager.download_and_extract(URL))
    except OSError as error:
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise DataUnavailableError(
            "tiny_imagenet", downloads,
            f"downloading {URL} failed ({type(error).__name__}: "
            f"{first_line[:160]})",
            alternatives=("path",),
        ) from error


def _train_files(root, wnids):
    paths, labels = [], []
    for label, wnid in enumerate(wnids):
        files = sorted((root / "train" / wnid / "images").glob("*.JPEG"))
        if not files:
            raise ValueError(
                f"Class {wnid!r} of {str(root)!r} has no training images: "
                f"expected {str(root / 'train' / wnid / 'images')}/*.JPEG"
            )
        paths += [str(file) for file in files]
        labels += [label] * len(files)
    return np.array(paths), np.array(labels, dtype=np.int64)


def _val_files(root, wnids):
    annotations = root / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise FileNotFoundError(
            f"{str(root)!r} is not a tiny-imagenet-200 directory: it has no "
            "val/val_annotations.txt"
        )
    label_of = {wnid: label for label, wnid in enumerate(wnids)}
    paths, labels = [], []
    for number, line in enumerate(_read_lines(annotations), start=1):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in label_of:
            raise ValueError(
                f"Line {number} of {str(annotations)!r} should name an image "
                f"and a class of wnids.txt. Received: {line!r}"
            )
        image = root / "val" / "images" / fields[0]
        if not image.is_file():
            raise FileNotFoundError(
                f"{str(annotations)!r} line {number} names a missing image "
                f"{str(image)!r}"
            )
        paths.append(str(image))
        labels.append(label_of[fields[1]])
    return np.array(paths), np.array(labels, dtype=np.int64)


def _class_names(root, wnids):
    words = root / "words.txt"
    if not words.is_file():
        return tuple(wnids)
    name_of = dict(
        line.split("\t", 1) for line in _read_lines(words) if "\t" in line
    )
    # words.txt lists synonyms, "goldfish, Carassius auratus": keep the first.
    return tuple(name_of.get(wnid, wnid).split(",")[0] for wnid in wnids)


def _decode(path):
    image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    return tf.ensure_shape(image, IMAGE_SHAPE)


def tiny_imagenet(
    path=None, *, batch_size=64, validation_split=0.2, seed=0, augment=None,
    data_dir=None, download=True, limit=None,
):
    """Tiny ImageNet: 64x64x3 colour images, 200 classes.

    Reads the official layout: `wnids.txt` (one class id per line, in label
    order), `train/<wnid>/images/*.JPEG`, `val/images/*.JPEG` with
    `val/val_annotations.txt`, and `words.txt` for class names. The official
    test images carry no labels, so the official validation images form
    `test`, and `validation` is carved from the training images (80/20 by
    default, as in the D-ReLU paper). JPEGs are decoded once and cached.

    Example:

    ```python
    splits = retrofit.data.tiny_imagenet("/data/tiny-imagenet-200")
    splits.info.image_shape  # (64, 64, 3)
    ```

    Args:
        path: The `tiny-imagenet-200` directory, or a directory holding
            it. Defaults to `None`: the official zip is downloaded and
            extracted by tensorflow-datasets' download manager into
            `<data_dir>/downloads` on first use.
        batch_size: Examples per batch. Defaults to `64`.
        validation_split: Fraction of the training images held out for
            validation, drawn at random with `seed`. Defaults to `0.2`.
        seed: Integer seed of every random choice. Defaults to `0`.
        augment: `None`, a preset (`"flip"`, `"flip-crop"`,
            `"randaugment"`) or a callable on image batches; applied to the
            training split only. Defaults to `None`.
        data_dir: Where the download goes when `path` is `None`. Defaults to
            `None`, tensorflow-datasets' default (`~/tensorflow_datasets`).
        download: Whether the zip may be downloaded when `path` is `None`.
            Defaults to `True`.
        limit: Optional number of training and of test images to keep
            (random subsets). Defaults to `None`, all.

    Returns:
        A `DataSplits`.
    """
    check_arguments(batch_size, validation_split, seed, limit)
    if path is None:
        if not download:
            raise DataUnavailableError(
                "tiny_imagenet", None,
                "no directory was given and downloading is off",
                alternatives=("path",),
            )
        path = _download(data_dir)
    root = _find_root(path)
    wnids = _read_lines(root / "wnids.txt")
    if not wnids:
        raise ValueError(f"{str(root / 'wnids.txt')!r} lists no classes")
    info = DatasetInfo(
        name="tiny_imagenet",
        num_classes=len(wnids),
        image_shape=IMAGE_SHAPE,
        class_names=_class_names(root, wnids),
    )
    return make_splits(
        _train_files(root, wnids),
        _val_files(root, wnids),
        info,
        batch_size=batch_size,
        validation_split=validation_split,
        seed=seed,
        augment=augment,
        limit=limit,
        decode=_decode,
    )
