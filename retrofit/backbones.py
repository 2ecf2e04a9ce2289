"""Every image classifier of `keras.applications`, with what it needs.

A `Backbone` entry is plain data: the constructor's name, the module whose
`preprocess_input` it expects, and the smallest input side it accepts.
`build_backbone` makes the feature extractor (no top) for a given input size
and weights; `BackbonePreprocessing` maps images in `[0, 1]` to that
backbone's own input convention inside the model.
"""

import dataclasses
import difflib
import importlib
import os
import warnings

import keras

from keras_drelu.arguments import check_positive


@dataclasses.dataclass(frozen=True)
class Backbone:
    """One `keras.applications` classifier.

    Args:
        name: The constructor's name in `keras.applications`.
        module: The `keras.applications` module holding its
            `preprocess_input`.
        min_size: Smallest input height/width the architecture accepts.
        imagenet_size: Input side the ImageNet weights require, for the
            architectures that fix it; `None` where any size works.
    """

    name: str
    module: str
    min_size: int = 32
    imagenet_size: int | None = None

    @property
    def constructor(self):
        return getattr(keras.applications, self.name)

    @property
    def preprocess_input(self):
        return importlib.import_module(
            f"keras.applications.{self.module}"
        ).preprocess_input


def _family(module, names, **kwargs):
    return {name: Backbone(name, module, **kwargs) for name in names}


BACKBONES = {
    **_family("convnext", [f"ConvNeXt{s}" for s in ("Tiny", "Small", "Base", "Large", "XLarge")]),
    **_family("densenet", ["DenseNet121", "DenseNet169", "DenseNet201"]),
    **_family("efficientnet", [f"EfficientNetB{i}" for i in range(8)]),
    **_family(
        "efficientnet_v2",
        [f"EfficientNetV2{s}" for s in ("B0", "B1", "B2", "B3", "S", "M", "L")],
    ),
    **_family("inception_resnet_v2", ["InceptionResNetV2"], min_size=75),
    **_family("inception_v3", ["InceptionV3"], min_size=75),
    **_family("mobilenet", ["MobileNet"]),
    **_family("mobilenet_v2", ["MobileNetV2"]),
    **_family("mobilenet_v3", ["MobileNetV3Small", "MobileNetV3Large"]),
    **_family("nasnet", ["NASNetMobile"], imagenet_size=224),
    **_family("nasnet", ["NASNetLarge"], imagenet_size=331),
    **_family("resnet", ["ResNet50", "ResNet101", "ResNet152"]),
    **_family("resnet_v2", ["ResNet50V2", "ResNet101V2", "ResNet152V2"]),
    **_family("vgg16", ["VGG16"]),
    **_family("vgg19", ["VGG19"]),
    **_family("xception", ["Xception"], min_size=71),
}


class BackboneError(ValueError):
    """A backbone name, size or weights file that cannot be used."""


def get_backbone(name):
    """Looks up a backbone by name, case-insensitively.

    Example:

    >>> get_backbone("inceptionv3").min_size
    75

    Args:
        name: A name of `BACKBONES`, e.g. `"InceptionV3"`.

    Returns:
        The `Backbone` entry.

    Raises:
        BackboneError: For an unknown name, listing the close matches.
    """
    by_lower = {key.lower(): value for key, value in BACKBONES.items()}
    if isinstance(name, str) and name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(
        str(name).lower(), list(by_lower), n=4, cutoff=0.5
    )
    suggestion = (
        "did you mean " + ", ".join(by_lower[c].name for c in close) + "?"
        if close
        else "run `retrofit backbones` for the list"
    )
    raise BackboneError(f"unknown backbone {name!r}; {suggestion}")


def input_size(backbone, image_size, weights):
    """The side the backbone is fed: the data's, raised to what it needs."""
    if weights == "imagenet" and backbone.imagenet_size:
        return backbone.imagenet_size
    return max(image_size, backbone.min_size)


def build_backbone(backbone, size, weights="imagenet"):
    """The feature extractor of `backbone` for `size` x `size` x 3 inputs.

    Args:
        backbone: A `Backbone`.
        size: Input side, at least `backbone.min_size`.
        weights: `"imagenet"` (downloaded by Keras), `None`, or a path to a
            weights file of the same architecture.

    Returns:
        A `keras.Model` without its top, output of shape `(h, w, c)`.

    Raises:
        BackboneError: When the size is too small, the ImageNet weights
            cannot be downloaded or the weights file does not fit.
    """
    if check_positive("size", size, integer=True) < backbone.min_size:
        raise BackboneError(
            f"{backbone.name} needs inputs of at least {backbone.min_size}x"
            f"{backbone.min_size}; got {size}x{size}"
        )
    path = None
    if weights not in ("imagenet", None):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise BackboneError(f"weights file {path!r} does not exist")
    try:
        model = backbone.constructor(
            include_top=False,
            weights="imagenet" if weights == "imagenet" else None,
            input_shape=(size, size, 3),
        )
    except ValueError as error:
        raise BackboneError(f"{backbone.name}: {error}") from error
    except Exception as error:  # Keras raises bare Exceptions on fetch failures.
        if weights != "imagenet":
            raise
        raise BackboneError(
            f"could not download the ImageNet weights of {backbone.name} "
            f"({type(error).__name__}: {error}); use --weights none to start "
            "from random weights, or --weights PATH for a local file"
        ) from error
    if weights is None:
        # From scratch, the applications' slow batch-norm averages (momentum
        # 0.99-0.999) lag far behind the weights for the first thousands of
        # steps, and inference-mode accuracy sits at chance meanwhile.
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = min(layer.momentum, 0.9)
    if path is not None:
        try:
            # Keras only warns about parts of the file it cannot match,
            # leaving those weights random: treat that as a misfit too.
            with warnings.catch_warnings():
                warnings.simplefilter("error", UserWarning)
                model.load_weights(path, skip_mismatch=False)
        except Exception as error:
            raise BackboneError(
                f"weights file {path!r} does not fit {backbone.name} without "
                f"its top at {size}x{size}: {str(error).splitlines()[0]}"
            ) from error
    return model


@keras.saving.register_keras_serializable(package="retrofit")
class BackbonePreprocessing(keras.layers.Layer):
    """Maps images in `[0, 1]` to the input a backbone expects.

    Scales to `[0, 255]`, then applies the backbone's own
    `keras.applications.<module>.preprocess_input` (BGR mean subtraction for
    ResNet/VGG, `[-1, 1]` for Inception/MobileNet, ImageNet standardisation
    for DenseNet, nothing for the models that preprocess themselves), so the
    finished model takes the attack range `[0, 1]`.

    Example:

    >>> import numpy as np
    >>> layer = BackbonePreprocessing("MobileNetV2")
    >>> keras.ops.convert_to_numpy(layer(np.array([[[[0.0, 0.5, 1.0]]]]))).tolist()
    [[[[-1.0, 0.0, 1.0]]]]

    Args:
        backbone: Name of the backbone in `BACKBONES`.
        **kwargs: Base layer keyword arguments.
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        self.backbone = get_backbone(backbone).name

    def call(self, inputs):
        return get_backbone(self.backbone).preprocess_input(inputs * 255.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["backbone"] = self.backbone
        return config
