"""What training reads off a model's caps: whether it has any, and their
penalty.

The recipes ask these questions of whole models: whether the inner attack
must see through capped ReLUs (`contains_caps`), whether the `"drelu"`
recipe applies (`has_penalised_caps`), and how large the penalty is that
`train` logs apart from the task loss (`cap_penalty`).
"""

import keras

from keras_drelu.inspection import capped_activations


def capped_layers(model):
    """Every `DReLU` (and so `SReLU`) layer in `model`, wherever it sits.

    The layers `keras_drelu.straight_through()` acts on, found by
    `keras_drelu.inspection.capped_activations` (nested models, custom
    layers and subclassed models included).

    Example:

    >>> from keras_drelu import SReLU
    >>> inner = keras.Sequential([keras.Input((3,)), SReLU(0.5, name="cap")])
    >>> [layer.name for layer in capped_layers(keras.Sequential([inner]))]
    ['cap']

    Args:
        model: A Keras model, or any layer holding layers (a recipe's
            trainer included).

    Returns:
        The capped layers, in the order of the model's layers.
    """
    return [
        found.layer for found in capped_activations(model)
        if found.kind == "drelu"
    ]


def contains_caps(model):
    """Whether `model` holds a capped ReLU (`DReLU` or `SReLU`) anywhere.

    Example:

    >>> from keras_drelu import DReLU
    >>> contains_caps(keras.Sequential([keras.Input((3,)), DReLU()]))
    True
    >>> contains_caps(keras.Sequential([keras.Input((3,)), keras.layers.ReLU()]))
    False
    """
    return bool(capped_layers(model))


def _penalised(layer):
    penalty = layer.max_value_regularizer
    return penalty is not None and getattr(penalty, "lam", 1) != 0


def has_penalised_caps(model):
    """Whether `model` holds a `DReLU` whose cap penalty is not zero.

    Example:

    >>> from keras_drelu import DReLU
    >>> has_penalised_caps(keras.Sequential([DReLU(max_value_regularizer=1e-3)]))
    True
    >>> has_penalised_caps(keras.Sequential([DReLU()]))
    False
    """
    return any(_penalised(layer) for layer in capped_layers(model))


def cap_penalty(model):
    """The cap penalty of `model` now: the sum of its `DReLU` penalties.

    Each layer's `max_value_regularizer` applied to its caps, such as
    `lam * sum(m ** 2)` for `MaxValueRegularizer`: the part of the training
    loss that is not the task's.

    Example:

    >>> from keras_drelu import DReLU
    >>> model = keras.Sequential([
    ...     keras.Input((4,)), DReLU(initial_max_value=2.0,
    ...                              max_value_regularizer=0.5)])
    >>> round(cap_penalty(model), 4)  # 0.5 * 4 caps * 2**2
    8.0

    Args:
        model: A Keras model (or a recipe's trainer).

    Returns:
        A float; `0.0` for a model without penalised caps. Unbuilt layers
        count for nothing.
    """
    total = 0.0
    for layer in capped_layers(model):
        if layer.built and _penalised(layer):
            penalty = layer.max_value_regularizer(layer.max_value)
            total += float(keras.ops.convert_to_numpy(penalty))
    return total
