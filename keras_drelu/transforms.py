"""Model-level rewrites of capped ReLUs, for adaptive attacks.

A capped ReLU hides the gradient above its cap. An honest evaluation attacks
the same model through a straight-through gradient (`with_gradient_mode`) and
through a twin whose caps are removed (`uncapped_twin`).
"""

import keras

from keras_drelu.arguments import check_choice
from keras_drelu.layers.drelu import GRADIENT_MODES
from keras_drelu.layers.drelu import DReLU


def _clone_replacing_caps(model, replace):
    if not isinstance(model, keras.Model) or not (
        isinstance(model, keras.Sequential)
        or isinstance(model, keras.src.models.Functional)
    ):
        raise ValueError(
            "Expected a Sequential or functional `keras.Model`; subclassed "
            "models cannot be rewritten layer by layer. Received: "
            f"model of type {type(model).__name__}"
        )
    replaced = []

    def clone_function(layer):
        if isinstance(layer, DReLU):
            new_layer = replace(layer)
            replaced.append((layer, new_layer))
            return new_layer
        # Every other layer is reused, so its weights are shared.
        return layer

    clone = keras.models.clone_model(
        model, clone_function=clone_function, recursive=True
    )
    return clone, replaced


def with_gradient_mode(model, mode):
    """Returns a copy of `model` whose `DReLU`/`SReLU` layers use `mode`.

    The copy computes the same outputs as `model`. Layers other than capped
    ReLUs are shared with `model` (their weights are the same variables);
    the caps are copied. Nested models are rewritten too.

    Example:

    >>> import numpy as np
    >>> from keras_drelu import DReLU
    >>> model = keras.Sequential(
    ...     [keras.Input((3,)), keras.layers.Dense(4), DReLU(0.5)]
    ... )
    >>> bpda = with_gradient_mode(model, "bpda")
    >>> [layer.gradient_mode for layer in bpda.layers if isinstance(layer, DReLU)]
    ['bpda']
    >>> x = np.ones((2, 3), "float32")
    >>> bool(np.array_equal(model(x), bpda(x)))
    True

    Args:
        model: A Sequential or functional Keras model.
        mode: `"exact"` or `"bpda"` (see `DReLU`).

    Returns:
        A new `keras.Model`.
    """
    check_choice("mode", mode, GRADIENT_MODES)

    def replace(layer):
        config = layer.get_config()
        config["gradient_mode"] = mode
        return layer.__class__.from_config(config)

    clone, replaced = _clone_replacing_caps(model, replace)
    for old, new in replaced:
        new.max_value_variable.assign(old.max_value_variable)
    return clone


def uncapped_twin(model):
    """Returns a copy of `model` with every `DReLU`/`SReLU` made a plain ReLU.

    This is the surrogate of a transfer attack: adversarial examples crafted
    on the twin, whose gradients are never masked by a cap, are evaluated on
    the real model. All other layers are shared with `model`.

    Example:

    >>> from keras_drelu import DReLU
    >>> model = keras.Sequential(
    ...     [keras.Input((3,)), keras.layers.Dense(4), DReLU(0.5)]
    ... )
    >>> [type(layer).__name__ for layer in uncapped_twin(model).layers]
    ['Dense', 'ReLU']

    Args:
        model: A Sequential or functional Keras model.

    Returns:
        A new `keras.Model`.
    """

    def replace(layer):
        return keras.layers.ReLU(name=layer.name, dtype=layer.dtype_policy)

    clone, _ = _clone_replacing_caps(model, replace)
    return clone
