"""MNIST and the CIFAR-10 subset of `../shared/data`, as experiments read them."""

import pathlib

import numpy as np

from retrofit.data import npz
from retrofit.data.npz import load_npz_arrays

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
# name -> file in `SHARED`, in the keras.datasets layout.
DATASETS = {"mnist": "mnist.npz", "cifar10": "cifar10-subset.npz"}


def default_path(dataset):
    """The file of `dataset` (a key of `DATASETS`) in `../shared/data`."""
    return SHARED / DATASETS[dataset]


def load(args, *, validation_split=0.0, augment=None):
    """Training pipelines and the first `args.eval_images` test images.

    The test images are the file's first ones in file order, whatever
    subset the training takes: on the CIFAR-10 subset those are the
    lossless images, the only ones to attack.

    Example:

    >>> import argparse, tempfile
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "tiny.npz"
    >>> np.savez(file, x_train=np.zeros((8, 4, 4), "uint8"),
    ...          y_train=np.arange(8) % 2,
    ...          x_test=np.full((5, 4, 4), 255, "uint8"),
    ...          y_test=np.arange(5) % 2)
    >>> args = argparse.Namespace(data=file, eval_images=3, batch_size=4,
    ...                           train_size=None)
    >>> splits, x, y = load(args)
    >>> x.shape, float(x.max()), y.tolist()
    ((3, 4, 4, 1), 1.0, [0, 1, 0])

    Args:
        args: Parsed arguments: `data` (an `.npz` file in the
            keras.datasets layout), `eval_images`, `batch_size`,
            `train_size` (`None`: all) and, if the script has one, `seed`
            (of the training subset, split and shuffling; else 0).
        validation_split: Share of the training images held out. Defaults
            to `0.0`.
        augment: Augmentation preset of `retrofit.data.npz`. Defaults to
            `None`.

    Returns:
        `(splits, x_test, y_test)`: a `DataSplits`, float32 images in
        `[0, 1]` and int64 labels.
    """
    splits = npz(args.data, batch_size=args.batch_size,
                 validation_split=validation_split,
                 seed=getattr(args, "seed", 0), augment=augment,
                 limit=args.train_size)
    _, (images, labels), _ = load_npz_arrays(args.data)
    images = images[:args.eval_images]
    if images.dtype == np.uint8:
        images = images.astype("float32") / 255.0
    return splits, images, labels[:args.eval_images]
