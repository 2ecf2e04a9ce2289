"""The papers' small networks; every activation comes from `activation_layer`.

- `dense_network`: the S-ReLU paper's 784-392-196-10 MLP and its
  layer-position variants, and the D-ReLU paper's dense network.
- `shallow_cnn`: the D-ReLU paper's shallow CNN (MNIST: two valid
  convolutions; CIFAR-10: three same-padded ones, `cifar10_cnn`), with the
  activation at the head or after the input.
"""

import keras

from keras_drelu.layers import ACTIVATIONS
from keras_drelu.layers import make_activation
from retrofit.placements import PLACEMENTS
from retrofit.placements import build_retrofit_model

# Every setting an activation of `ACTIVATIONS` takes.
SETTINGS = tuple(sorted({s for spec in ACTIVATIONS.values()
                         for s in spec.settings}))


def _taken(activation, settings):
    """The `settings` that `activation` takes: one set of command-line
    settings serves every activation."""
    return {key: value for key, value in settings.items()
            if key in ACTIVATIONS[activation].settings}


def activation_layer(activation, name=None, **settings):
    """`keras_drelu.make_activation`, ignoring settings it does not take.

    Example:

    >>> layer = activation_layer("srelu", max_value=0.1, lam=1.0)
    >>> type(layer).__name__, layer.cap
    ('SReLU', 0.1)

    Args:
        activation: A name of `keras_drelu.ACTIVATIONS`.
        name: The layer's name. Defaults to `None`, Keras' choice.
        **settings: Settings of the activations (`lam`,
            `initial_max_value`, `max_value`).

    Returns:
        A `keras.layers.Layer`.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"Argument `activation` should be one of {sorted(ACTIVATIONS)}. "
            f"Received: activation={activation!r}"
        )
    return make_activation(activation, name=name,
                           **_taken(activation, settings))


def retrofit_model(backbone, activation, placement, *, image_shape, units,
                   num_classes=10, **settings):
    """`backbone` (random weights) retrofitted with `activation` at `placement`.

    Example:

    >>> model = retrofit_model("MobileNetV2", "drelu", "input",
    ...                        image_shape=(32, 32, 3), units=8, lam=0.1,
    ...                        initial_max_value=1.0)
    >>> "input_drelu" in [layer.name for layer in model.layers]
    True

    Args:
        backbone: A name of `retrofit.backbones.BACKBONES`.
        activation: A name of `keras_drelu.ACTIVATIONS`.
        placement: A name of `retrofit.placements.PLACEMENTS`.
        image_shape: `(height, width, channels)` of the images.
        units: Width of the dense layer before the logits.
        num_classes: Number of classes. Defaults to `10`.
        **settings: Settings of the activations; those `activation` does
            not take are ignored.

    Returns:
        A `keras.Model` with logits as output.
    """
    return build_retrofit_model(
        backbone, image_shape, num_classes, placement=placement,
        activation=activation, units=units, weights=None,
        **_taken(activation, settings),
    )


def dense_network(units, activations, *, input_shape=(28, 28, 1),
                  num_classes=10, name=None):
    """Flatten, then `Dense(u)` -> activation per hidden layer, then logits.

    Example:

    >>> model = dense_network(
    ...     (392, 196), ["relu", ("srelu", dict(max_value=0.1))])
    >>> [layer.__class__.__name__ for layer in model.layers]
    ['Flatten', 'Dense', 'ReLU', 'Dense', 'SReLU', 'Dense']

    Args:
        units: Width of each hidden layer.
        activations: One per hidden layer: an activation name, or a pair
            of a name and its settings (see `activation_layer`).
        input_shape: Shape of one input. Defaults to `(28, 28, 1)`.
        num_classes: Number of logits. Defaults to `10`.
        name: The model's name. Defaults to `None`.

    Returns:
        A `keras.Sequential` ending in logits.
    """
    layers = [keras.Input(input_shape), keras.layers.Flatten()]
    for width, activation in zip(units, activations, strict=True):
        activation, settings = (
            (activation, {}) if isinstance(activation, str) else activation
        )
        layers += [keras.layers.Dense(width),
                   activation_layer(activation, **settings)]
    layers.append(keras.layers.Dense(num_classes, name="logits"))
    return keras.Sequential(layers, name=name)


def shallow_cnn(activation, placement="head", *, filters, padding,
                input_shape, units, num_classes=10, name=None, **settings):
    """Convolutions with pooling, `Dense(units)` and logits; one activation placed.

    `placement="head"` puts `activation` after `Dense(units)` (the D-ReLU
    paper's Figure 10); `"input"` puts a `Conv2D` -> `activation` right
    after the input (Figure 13) and a ReLU at the head. The placed layer is
    named `<placement>_<activation>`.

    Example:

    >>> model = shallow_cnn("drelu", "input", filters=(8,), padding="same",
    ...                     input_shape=(8, 8, 3), units=4, lam=0.1,
    ...                     initial_max_value=1.0)
    >>> [layer.name for layer in model.layers][:2]
    ['input_conv', 'input_drelu']

    Args:
        activation: A key of `ACTIVATIONS`.
        placement: A key of `PLACEMENTS`. Defaults to `"head"`.
        filters: Filters of each 3x3 ReLU convolution, each followed by
            2x2 max pooling.
        padding: `"valid"` or `"same"`.
        input_shape: `(height, width, channels)`.
        units: Width of the dense layer before the logits.
        num_classes: Number of logits. Defaults to `10`.
        name: The model's name. Defaults to `None`.
        **settings: Settings of the activation (see `activation_layer`).

    Returns:
        A `keras.Sequential` ending in logits.
    """
    if placement not in PLACEMENTS:
        raise ValueError(
            f"Argument `placement` should be one of {sorted(PLACEMENTS)}. "
            f"Received: placement={placement!r}"
        )
    placed = {placement: activation_layer(
        activation, name=f"{placement}_{activation}", **settings)}
    layers = [keras.Input(input_shape)]
    if "input" in placed:
        layers += [keras.layers.Conv2D(input_shape[-1], 3, padding="same",
                                       name="input_conv"), placed["input"]]
    for count in filters:
        layers += [keras.layers.Conv2D(count, 3, padding=padding,
                                       activation="relu"),
                   keras.layers.MaxPooling2D()]
    layers += [keras.layers.Flatten(), keras.layers.Dense(units),
               placed.get("head") or keras.layers.ReLU(name="head_relu"),
               keras.layers.Dense(num_classes, name="logits")]
    return keras.Sequential(layers, name=name)


def cifar10_cnn(activation, placement="head", *, units, **settings):
    """The shallow CNN of the CIFAR-10 experiments (see `shallow_cnn`).

    Example:

    >>> cifar10_cnn("relu", units=8).compute_output_shape((None, 32, 32, 3))
    (None, 10)
    """
    return shallow_cnn(activation, placement, filters=(32, 64, 128),
                       padding="same", input_shape=(32, 32, 3), units=units,
                       name=f"cnn_{activation}_{placement}", **settings)


def activation_settings(args):
    """The activation settings among the parsed arguments (see `ACTIVATIONS`).

    Example:

    >>> import argparse
    >>> activation_settings(argparse.Namespace(lam=0.1, eps=0.1))
    {'lam': 0.1}
    """
    return {key: getattr(args, key) for key in SETTINGS if hasattr(args, key)}
