"""The experiments' only calls into library APIs that are being reworked.

Three adapters, so that each API change lands here and nowhere else:
`activation_layer` (the table of activations, which moves into
`keras_drelu.layers`), `retrofit_model` (`retrofit.build_retrofit_model`,
whose `head=` becomes `placement=` and `activation=`) and `train_model`
(`keras_drelu.training.train`, whose result becomes an object holding the
model and its history).
"""

import argparse
import inspect

import keras

from keras_drelu import SPLASH
from keras_drelu import DReLU
from keras_drelu import SReLU
from keras_drelu.training import train
from retrofit.heads import build_retrofit_model


def _relu(name):
    return keras.layers.ReLU(name=name)


def _drelu(name, *, lam, initial_max_value):
    return DReLU(initial_max_value=initial_max_value,
                 max_value_regularizer=lam or None, name=name)


def _srelu(name, *, max_value):
    return SReLU(max_value, name=name)


def _splash(name):
    return SPLASH(name=name)


# name -> builder of the layer; its keyword arguments are the settings.
ACTIVATIONS = {"relu": _relu, "drelu": _drelu, "srelu": _srelu,
               "splash": _splash}
# Every setting an activation of `ACTIVATIONS` takes.
SETTINGS = tuple(sorted({
    key for build in ACTIVATIONS.values()
    for key in list(inspect.signature(build).parameters)[1:]
}))
# Where a network's activation sits (D-ReLU paper, Figures 10 and 13).
PLACEMENTS = {
    "head": "Dense -> activation before the logits",
    "input": "Conv2D -> activation right after the input",
}
# (activation, placement) -> `head` of today's `build_retrofit_model`.
RETROFIT_HEADS = {("relu", "head"): "relu", ("drelu", "head"): "dense",
                  ("drelu", "input"): "conv", ("splash", "head"): "splash"}


def activation_layer(activation, name=None, **settings):
    """The layer of `activation` with the settings it takes.

    Settings an activation does not take are ignored, so that one set of
    command-line settings serves every activation.

    Example:

    >>> layer = activation_layer("srelu", max_value=0.1, lam=1.0)
    >>> type(layer).__name__, layer.cap
    ('SReLU', 0.1)

    Args:
        activation: A key of `ACTIVATIONS`: `"relu"`, `"drelu"` (settings
            `lam`, `initial_max_value`), `"srelu"` (`max_value`) or
            `"splash"`.
        name: The layer's name. Defaults to `None`, Keras' choice.
        **settings: Settings of the activations.

    Returns:
        A `keras.layers.Layer`.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"Argument `activation` should be one of {sorted(ACTIVATIONS)}. "
            f"Received: activation={activation!r}"
        )
    build = ACTIVATIONS[activation]
    wanted = list(inspect.signature(build).parameters)[1:]
    missing = [key for key in wanted if key not in settings]
    if missing:
        raise ValueError(
            f"Activation {activation!r} needs the settings {missing}. "
            f"Received: {sorted(settings)}"
        )
    return build(name, **{key: settings[key] for key in wanted})


def model_spec(text):
    """`ACTIVATION:PLACEMENT`, as a command-line argument, to a pair.

    Example:

    >>> model_spec("drelu:input")
    ('drelu', 'input')
    """
    activation, _, placement = text.partition(":")
    if activation not in ACTIVATIONS or placement not in PLACEMENTS:
        raise argparse.ArgumentTypeError(
            f"should be ACTIVATION:PLACEMENT with ACTIVATION in "
            f"{sorted(ACTIVATIONS)} and PLACEMENT in {sorted(PLACEMENTS)}. "
            f"Received: {text!r}"
        )
    return activation, placement


def retrofit_model(backbone, activation, placement, *, image_shape, units,
                   num_classes=10, **settings):
    """`backbone` (random weights) retrofitted with `activation` at `placement`.

    Example:

    >>> model = retrofit_model("MobileNetV2", "drelu", "input",
    ...                        image_shape=(32, 32, 3), units=8, lam=0.1,
    ...                        initial_max_value=1.0)
    >>> [name for name in ("input_cap", "head_cap")
    ...  if name in [layer.name for layer in model.layers]]
    ['input_cap']

    Args:
        backbone: A name of `retrofit.backbones.BACKBONES`.
        activation: A key of `ACTIVATIONS`.
        placement: A key of `PLACEMENTS`.
        image_shape: `(height, width, channels)` of the images.
        units: Width of the dense layer before the logits.
        num_classes: Number of classes. Defaults to `10`.
        **settings: `lam` and `initial_max_value` of D-ReLU.

    Returns:
        A `keras.Model` with logits as output.
    """
    if (activation, placement) not in RETROFIT_HEADS:
        raise ValueError(
            f"retrofit builds {sorted(RETROFIT_HEADS)} as (activation, "
            f"placement). Received: {(activation, placement)}"
        )
    return build_retrofit_model(
        backbone, image_shape, num_classes,
        head=RETROFIT_HEADS[(activation, placement)], units=units,
        lam=settings.get("lam", 0.0),
        initial_max_value=settings.get("initial_max_value", 100.0),
        weights=None,
    )


def train_model(model, splits, *, epochs, seed, **recipe):
    """Trains `model` on `splits.train`; returns the model and its history.

    Early stopping and plateau halving watch `splits.validation` where the
    splits have one, else the training loss.

    Args:
        model: A `keras.Model`, or a function building one (called after
            seeding, so that the initial weights follow `seed`).
        splits: A `DataSplits`.
        epochs: Epochs of the recipe.
        seed: Seed of the initial weights and the recipe's attacks.
        **recipe: `recipe` and its arguments, as `keras_drelu.training.train`
            takes them.

    Returns:
        `(model, history)`: the trained `keras.Model` and its
        `keras.callbacks.History`.
    """
    history = train(
        model, splits.train, splits.validation,
        epochs=epochs, seed=seed, verbose=0, **recipe,
    )
    return history.model, history
