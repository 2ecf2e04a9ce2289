"""Retrofitting an activation, such as a capped ReLU, into a backbone.

Two placements from the D-ReLU paper, the entries of `PLACEMENTS`: `head`,
global pooling -> `Dense(units)` -> activation -> `Dense(num_classes)`
(Figure 10), and `input`, `Conv2D` -> activation right after the input,
before the backbone (Figure 13). The activation is any entry of
`keras_drelu.ACTIVATIONS`. The finished model takes images in `[0, 1]` of
the data set's shape and outputs logits.
"""

import dataclasses

import keras
import numpy as np

from keras_drelu.arguments import check_choice
from keras_drelu.arguments import check_positive
from keras_drelu.layers.activations import make_activation
from retrofit.backbones import BackbonePreprocessing
from retrofit.backbones import build_backbone
from retrofit.backbones import get_backbone
from retrofit.backbones import input_size


def _pass_through(conv, in_channels):
    # Start as a pass-through, so the pretrained backbone first sees the
    # images it was trained on; the cap then learns where to clip.
    kernel = np.zeros(conv.kernel.shape, "float32")
    center = kernel.shape[0] // 2
    for out in range(kernel.shape[-1]):
        kernel[center, center, 0 if in_channels == 1 else out, out] = 1.0
    conv.kernel.assign(kernel)


def _input_conv(x, activation, *, channels, units):
    conv = keras.layers.Conv2D(channels, 3, padding="same", name="input_conv")
    y = conv(x)
    _pass_through(conv, x.shape[-1])
    return activation(y)


def _dense_head(x, activation, *, channels, units):
    return activation(keras.layers.Dense(units, name="head_dense")(x))


def _unchanged(x, activation, *, channels, units):
    return x


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where the activation goes in a retrofit model.

    Each part is called as `part(x, activation_layer, channels=...,
    units=...)` and returns the new tensor: `before_backbone` on the input
    images (it must output the `channels` the backbone takes),
    `after_backbone` on the pooled features.

    Args:
        name: The name `build_retrofit_model(placement=...)` takes.
        description: One line saying what it builds, for help texts.
        before_backbone: The layers between the input and the backbone.
        after_backbone: The layers between the pooled features and the
            logits.
    """

    name: str
    description: str
    before_backbone: object = _unchanged
    after_backbone: object = _unchanged


PLACEMENTS = {
    placement.name: placement
    for placement in (
        Placement(
            "head",
            "pooled features -> Dense(units) -> activation -> logits "
            "(paper Figure 10)",
            after_backbone=_dense_head,
        ),
        Placement(
            "input",
            "Conv2D -> activation after the input, before the backbone, "
            "starting as a pass-through (paper Figure 13)",
            before_backbone=_input_conv,
        ),
    )
}


def _check_image_shape(image_shape):
    shape = tuple(image_shape)
    if len(shape) != 3 or shape[-1] not in (1, 3):
        raise ValueError(
            "Argument `image_shape` should be (height, width, channels) with "
            f"1 (grey) or 3 (RGB) channels. Received: image_shape={shape}"
        )
    for side in shape[:2]:
        check_positive("image_shape", side, integer=True)
    return shape


class _RegistryBackbone:
    """A backbone of `retrofit.backbones.BACKBONES`, by name."""

    def __init__(self, name, weights, image_size, data_side):
        self.entry = get_backbone(name)
        self.weights = weights
        size = image_size or input_size(self.entry, data_side, weights)
        self.size = (size, size)
        self.channels = 3
        self.name = self.entry.name.lower()

    def __call__(self, x):
        x = BackbonePreprocessing(self.entry.name, name="preprocess")(x)
        return build_backbone(self.entry, self.size[0], self.weights)(x)


class _ModelBackbone:
    """A `keras.Model` used as it is: its weights and input convention."""

    def __init__(self, model, weights, image_size, image_shape):
        if weights not in ("auto", None):
            raise ValueError(
                "A `keras.Model` backbone carries its own weights: leave "
                "`weights` at 'auto' (or pass None). Received: "
                f"weights={weights!r}"
            )
        try:
            shape = tuple(model.input_shape)
        except (AttributeError, ValueError) as error:
            raise ValueError(
                "Argument `backbone` should be a built model with a known "
                f"input. Received: model {model.name!r} with no defined input"
            ) from error
        if len(shape) != 4:
            raise ValueError(
                "Argument `backbone` should take images (batch, height, "
                "width, channels). Received: a model with input_shape="
                f"{model.input_shape}"
            )
        if len(model.output_shape) not in (2, 4):
            raise ValueError(
                "Argument `backbone` should output a feature map (batch, h, "
                "w, c) or pooled features (batch, c). Received: a model with "
                f"output_shape={model.output_shape}"
            )
        fixed = shape[1:3] if None not in shape[1:3] else None
        if image_size and fixed and fixed != (image_size, image_size):
            raise ValueError(
                f"The backbone fixes its input size to {fixed}. Received: "
                f"image_size={image_size}"
            )
        if fixed:
            self.size = fixed
        elif image_size:
            self.size = (image_size, image_size)
        else:
            self.size = tuple(image_shape[:2])
        self.channels = shape[3] or image_shape[-1]
        if self.channels not in (1, 3) or self.channels < image_shape[-1]:
            raise ValueError(
                f"The backbone takes {self.channels}-channel images, which "
                f"images of shape {tuple(image_shape)} cannot be fed as"
            )
        self.model = model
        self.name = model.name

    def __call__(self, x):
        return self.model(x)


def build_retrofit_model(
    backbone,
    image_shape,
    num_classes,
    *,
    placement="head",
    activation="drelu",
    units=256,
    lam=None,
    initial_max_value=None,
    max_value=None,
    weights="auto",
    image_size=None,
):
    """A classifier made of `backbone` and a retrofitted activation.

    Inputs are images in `[0, 1]` of `image_shape`. Grey images are
    repeated to the three channels a backbone takes, images are resized
    (bilinear) inside the model to the backbone's input size, and a
    registry backbone's own preprocessing is applied, so attacks and
    serving see one input convention.

    `backbone` is a name of `retrofit.backbones.BACKBONES` or any
    `keras.Model` taking images and returning a feature map
    `(batch, h, w, c)` (pooled here) or pooled features `(batch, c)`, as
    keras-hub's `ImageClassifier(backbone=...)` takes one. Such a model is
    used as it is: with its own weights (so `weights` must stay `"auto"`),
    no preprocessing (put any into the model), and the input size it fixes,
    if it fixes one.

    Example:

    >>> model = build_retrofit_model(
    ...     "MobileNetV2", (32, 32, 1), 10, placement="head",
    ...     activation="drelu", units=16, lam=1e-3, weights=None)
    >>> model.name
    'mobilenetv2_head_drelu_retrofit'
    >>> tuple(model.get_layer("head_drelu").max_value.shape), model.output.shape
    ((16,), (None, 10))

    Args:
        backbone: A name of `retrofit.backbones.BACKBONES`, or a
            `keras.Model` without its classification top.
        image_shape: `(height, width, channels)` of the data, 1 or 3
            channels.
        num_classes: Number of classes.
        placement: A name of `PLACEMENTS`: `"head"` or `"input"`.
            Defaults to `"head"`.
        activation: A name of `keras_drelu.ACTIVATIONS`: `"drelu"`,
            `"srelu"`, `"relu"` or `"splash"`. Defaults to `"drelu"`.
        units: Width of the dense layer of the `"head"` placement; the
            `"input"` placement has none and ignores it. Defaults to `256`.
        lam: `lam` of the caps' `MaxValueRegularizer`, for `"drelu"`.
            Defaults to `None`, the activation's default (`1e-3`).
        initial_max_value: Initial cap, for `"drelu"`. Defaults to `None`,
            the activation's default (`100.0`).
        max_value: The fixed cap of `"srelu"`. Defaults to `None`.
        weights: For a registry backbone: `"imagenet"`, `None` or a path to
            a weights file of the backbone without its top, and `"auto"`
            for `"imagenet"`. A `keras.Model` backbone takes only
            `"auto"` (or `None`). Defaults to `"auto"`.
        image_size: Side the backbone is fed. Defaults to `None`: for a
            registry backbone, the data's side raised to the backbone's
            minimum; for a model, the size it fixes, else the data's.

    Returns:
        A functional `keras.Model` with logits as output, named
        `"<backbone>_<placement>_<activation>_retrofit"`.
    """
    where = PLACEMENTS[check_choice("placement", placement, PLACEMENTS)]
    height, width, channels = _check_image_shape(image_shape)
    num_classes = check_positive("num_classes", num_classes, integer=True)
    units = check_positive("units", units, integer=True)
    image_size = check_positive(
        "image_size", image_size, integer=True, allow_none=True
    )
    cap = make_activation(
        activation,
        name=f"{placement}_{activation}",
        lam=lam,
        initial_max_value=initial_max_value,
        max_value=max_value,
    )
    if isinstance(backbone, keras.Model):
        feature_extractor = _ModelBackbone(
            backbone, weights, image_size, image_shape
        )
    else:
        feature_extractor = _RegistryBackbone(
            backbone,
            "imagenet" if weights == "auto" else weights,
            image_size,
            max(height, width),
        )
    parts = {"channels": feature_extractor.channels, "units": units}

    inputs = keras.Input(image_shape, name="images")
    x = where.before_backbone(inputs, cap, **parts)
    if x.shape[-1] != feature_extractor.channels:
        x = keras.layers.Concatenate(name="grey_to_rgb")([x, x, x])
    if (x.shape[1], x.shape[2]) != feature_extractor.size:
        x = keras.layers.Resizing(*feature_extractor.size, name="resize")(x)
    x = feature_extractor(x)
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = where.after_backbone(x, cap, **parts)
    # Logits stay float32 under mixed precision, for a stable softmax.
    outputs = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(
        inputs,
        outputs,
        name=f"{feature_extractor.name}_{placement}_{activation}_retrofit",
    )


def backbone_layer(model):
    """The nested backbone model of a retrofit model."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    raise ValueError(f"Model {model.name!r} holds no nested backbone model")
