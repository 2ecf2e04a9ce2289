"""The registry of corruptions by name, and the checks of name lists."""

from keras_drelu.corruptions import blur
from keras_drelu.corruptions import digital
from keras_drelu.corruptions import geometric
from keras_drelu.corruptions import noise
from keras_drelu.corruptions import weather
from keras_drelu.corruptions.arguments import check_severity

CORRUPTIONS = {
    "gaussian_noise": noise.gaussian_noise,
    "shot_noise": noise.shot_noise,
    "impulse_noise": noise.impulse_noise,
    "defocus_blur": blur.defocus_blur,
    "motion_blur": blur.motion_blur,
    "gaussian_blur": blur.gaussian_blur,
    "brightness": digital.brightness,
    "contrast": digital.contrast,
    "fog": weather.fog,
    "pixelate": digital.pixelate,
    "jpeg_compression": digital.jpeg_compression,
    "rotation": geometric.rotation,
    "translation": geometric.translation,
}

# The families of Hendrycks & Dietterich, plus the geometric one.
CATEGORIES = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "motion_blur", "gaussian_blur"),
    "weather": ("brightness", "fog"),
    "digital": ("contrast", "pixelate", "jpeg_compression"),
    "geometric": ("rotation", "translation"),
}


def get(name):
    """Returns the corruption function registered under `name`.

    Example:

    >>> get("fog").__name__
    'fog'

    Args:
        name: One of `CORRUPTIONS`, such as `"gaussian_noise"`.
    """
    if not isinstance(name, str) or name not in CORRUPTIONS:
        raise ValueError(
            f"Unknown corruption. Expected one of {sorted(CORRUPTIONS)}. "
            f"Received: name={name!r}"
        )
    return CORRUPTIONS[name]


def corrupt(images, name, severity=1, seed=None):
    """Applies the corruption `name` at `severity` to a batch of images.

    Example:

    >>> import numpy as np
    >>> x = np.full((2, 8, 8, 3), 0.5, "float32")
    >>> y = corrupt(x, "contrast", severity=5)
    >>> tuple(y.shape), float(np.abs(y - x).max())
    ((2, 8, 8, 3), 0.0)

    Args:
        images: Float images in [0, 1], shape `(batch, height, width,
            channels)`.
        name: One of `CORRUPTIONS`.
        severity: Int from 1 to 5. Defaults to `1`.
        seed: None, an int or a pair of ints; the same seed gives the same
            corrupted images. Defaults to `None`.

    Returns:
        A tensor of the shape and dtype of `images`, with values in [0, 1].
    """
    return get(name)(images, severity=severity, seed=seed)


def check_names(corruptions):
    """Returns `corruptions` as a tuple of registered names.

    `None` stands for every corruption, a string for a single one.
    """
    if corruptions is None:
        return tuple(CORRUPTIONS)
    names = (corruptions,) if isinstance(corruptions, str) else corruptions
    try:
        names = tuple(names)
    except TypeError:
        raise TypeError(
            "Argument `corruptions` should be None, a name or a list of "
            f"names. Received: corruptions={corruptions!r}"
        ) from None
    if not names:
        raise ValueError(
            "Argument `corruptions` should name at least one corruption. "
            f"Received: corruptions={corruptions!r}"
        )
    for name in names:
        get(name)
    if len(set(names)) != len(names):
        raise ValueError(
            "Argument `corruptions` names a corruption twice. Received: "
            f"corruptions={corruptions!r}"
        )
    return names


def check_severities(severities):
    """Returns `severities` as a sorted tuple of distinct ints from 1 to 5."""
    values = (severities,) if isinstance(severities, int) else severities
    try:
        values = tuple(values)
    except TypeError:
        raise TypeError(
            "Argument `severities` should be an int or a list of ints from "
            f"1 to 5. Received: severities={severities!r}"
        ) from None
    if not values:
        raise ValueError(
            "Argument `severities` should hold at least one severity. "
            f"Received: severities={severities!r}"
        )
    return tuple(sorted({check_severity(value) for value in values}))
