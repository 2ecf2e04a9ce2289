"""Retrofitting a capped ReLU into a `keras.applications` backbone.

Two placements from the D-ReLU paper: a dense head, global pooling ->
`Dense(units)` -> `DReLU` -> `Dense(num_classes)` (Figure 10), and an input
convolution, `Conv2D` -> `DReLU` right after the input, before the backbone
(Figure 13). Plain-ReLU and SPLASH heads are the baselines. The finished
model takes images in `[0, 1]` of the data set's shape and outputs logits.
"""

import keras
import numpy as np

from keras_drelu import DReLU
from keras_drelu import SPLASH
from retrofit.backbones import BackbonePreprocessing
from retrofit.backbones import build_backbone
from retrofit.backbones import get_backbone
from retrofit.backbones import input_size

HEADS = ("dense", "conv", "relu", "splash")


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Argument `{name}` should be a positive integer. "
            f"Received: {name}={value!r}"
        )


def _identity_conv(conv, in_channels):
    # Start as a pass-through, so the pretrained backbone first sees the
    # images it was trained on; the cap then learns where to clip.
    kernel = np.zeros(conv.kernel.shape, "float32")
    center = kernel.shape[0] // 2
    for out in range(kernel.shape[-1]):
        kernel[center, center, 0 if in_channels == 1 else out, out] = 1.0
    conv.kernel.assign(kernel)


def build_retrofit_model(
    backbone,
    image_shape,
    num_classes,
    *,
    head="dense",
    units=256,
    lam=0.0,
    initial_max_value=100.0,
    weights="imagenet",
    image_size=None,
):
    """A classifier made of `backbone` and a capped-ReLU retrofit.

    Inputs are images in `[0, 1]` of `image_shape`; grey images are repeated
    to three channels, images smaller than the backbone accepts are resized
    (bilinear) inside the model, and the backbone's own preprocessing is
    applied, so attacks and serving see one input convention.

    Example:

    >>> model = build_retrofit_model(
    ...     "MobileNetV2", (32, 32, 1), 10, head="dense", units=16,
    ...     lam=1e-3, weights=None)
    >>> tuple(model.get_layer("head_cap").max_value.shape), model.output.shape
    ((16,), (None, 10))

    Args:
        backbone: A name of `retrofit.backbones.BACKBONES`.
        image_shape: `(height, width, channels)` of the data, 1 or 3
            channels.
        num_classes: Number of classes.
        head: `"dense"` (D-ReLU dense head), `"conv"` (D-ReLU convolution
            after the input), `"relu"` (plain-ReLU dense head) or
            `"splash"` (SPLASH dense head). Defaults to `"dense"`.
        units: Width of the dense head. Defaults to `256`.
        lam: `lam` of the caps' `MaxValueRegularizer`. Defaults to `0.0`.
        initial_max_value: Initial cap. Defaults to `100.0`.
        weights: `"imagenet"`, `None` or a path to a weights file of the
            backbone without its top. Defaults to `"imagenet"`.
        image_size: Side the backbone is fed. Defaults to `None`: the
            data's side, raised to the backbone's minimum.

    Returns:
        A functional `keras.Model` with logits as output.
    """
    entry = get_backbone(backbone)
    if head not in HEADS:
        raise ValueError(
            f"Argument `head` should be one of {HEADS}. Received: head={head!r}"
        )
    height, width, channels = image_shape
    if channels not in (1, 3):
        raise ValueError(
            "Backbones take grey (1 channel) or RGB (3 channel) images. "
            f"Received: image_shape={tuple(image_shape)}"
        )
    _check_positive_int("num_classes", num_classes)
    _check_positive_int("units", units)
    size = image_size or input_size(entry, max(height, width), weights)
    _check_positive_int("image_size", size)

    inputs = keras.Input(image_shape, name="images")
    x = inputs
    caps = {"max_value_regularizer": lam, "initial_max_value": initial_max_value}
    input_conv = None
    if head == "conv":
        input_conv = keras.layers.Conv2D(3, 3, padding="same", name="input_conv")
        x = DReLU(name="input_cap", **caps)(input_conv(x))
    elif channels == 1:
        x = keras.layers.Concatenate(name="grey_to_rgb")([x, x, x])
    if (height, width) != (size, size):
        x = keras.layers.Resizing(size, size, name="resize")(x)
    x = BackbonePreprocessing(entry.name, name="preprocess")(x)
    x = build_backbone(entry, size, weights)(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if head != "conv":
        x = keras.layers.Dense(units, name="head_dense")(x)
        if head == "dense":
            x = DReLU(name="head_cap", **caps)(x)
        elif head == "relu":
            x = keras.layers.ReLU(name="head_relu")(x)
        else:
            x = SPLASH(name="head_splash")(x)
    # Logits stay float32 under mixed precision, for a stable softmax.
    outputs = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    model = keras.Model(
        inputs, outputs, name=f"{entry.name.lower()}_{head}_retrofit"
    )
    if input_conv is not None:
        _identity_conv(input_conv, channels)
    return model


def backbone_layer(model):
    """The nested backbone model of a retrofit model."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    raise ValueError(f"Model {model.name!r} holds no nested backbone model")
