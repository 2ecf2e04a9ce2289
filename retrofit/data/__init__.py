"""Image classification data as `tf.data` pipelines ready for training.

Every source returns a `DataSplits` of batched `(image, label)` pipelines,
images float32 in `[0, 1]` (the attack range), labels int64, plus a
`DatasetInfo`. `load(name, **kwargs)` picks a source by name.
"""

from retrofit.data.digits import digits
from retrofit.data.generated import mix_generated
from retrofit.data.npz import npz
from retrofit.data.splits import DataSplits
from retrofit.data.splits import DataUnavailableError
from retrofit.data.splits import DatasetInfo
from retrofit.data.tfds_sources import cifar10
from retrofit.data.tfds_sources import cifar100
from retrofit.data.tfds_sources import mnist
from retrofit.data.tiny_imagenet import tiny_imagenet

SOURCES = {
    "mnist": mnist,
    "cifar10": cifar10,
    "cifar100": cifar100,
    "tiny_imagenet": tiny_imagenet,
    "digits": digits,
    "npz": npz,
}


def load(name, **kwargs):
    """Loads the data source `name` of `SOURCES` with its keyword arguments.

    Example:

    >>> splits = load("digits", image_size=8, limit=100)
    >>> splits.info.name, splits.info.image_shape
    ('digits', (8, 8, 1))

    Args:
        name: One of `"mnist"`, `"cifar10"`, `"cifar100"`,
            `"tiny_imagenet"`, `"digits"` and `"npz"` (which needs
            `path=`).
        **kwargs: Keyword arguments of that source.

    Returns:
        A `DataSplits`.
    """
    if name not in SOURCES:
        raise ValueError(
            f"Unknown data source {name!r}. Known sources: "
            f"{', '.join(sorted(SOURCES))}"
        )
    if name == "npz" and "path" not in kwargs:
        raise ValueError(
            "Data source 'npz' needs a file: pass path=<file.npz>"
        )
    return SOURCES[name](**kwargs)


__all__ = [
    "DataSplits",
    "DataUnavailableError",
    "DatasetInfo",
    "SOURCES",
    "cifar10",
    "cifar100",
    "digits",
    "load",
    "mix_generated",
    "mnist",
    "npz",
    "tiny_imagenet",
]
