"""Model-level rewrites of capped activations, for adaptive attacks.

A capped activation hides the gradient above its cap. An honest evaluation
attacks the same model through a straight-through gradient
(`straight_through_model` inside `keras_drelu.straight_through()`, or a copy
made by `with_gradient_mode`) and through a twin whose caps are removed
(`uncapped_twin`). The capped activations and how each kind is rewritten
come from `keras_drelu.inspection.CAP_KINDS`.
"""

import keras

from keras_drelu.arguments import check_choice
from keras_drelu.inspection import CAP_KINDS
from keras_drelu.inspection import capped_activations
from keras_drelu.layers.drelu import GRADIENT_MODES
from keras_drelu.outputs import check_graph_model


def _listing(found):
    return ", ".join(str(activation) for activation in found)


def _rewrite(model, found, replace, what):
    """A copy of `model` with each activation of `found` `replace`d.

    Every other layer is reused, so its weights are shared.
    """
    check_graph_model(model, what)
    blocked = [activation for activation in found if not activation.rewritable]
    if blocked:
        raise ValueError(
            f"{what} cannot rewrite the capped activations "
            f"{_listing(blocked)}: "
            "only those of Sequential and functional models (nested ones "
            "included) can be replaced, not those inside custom layers or "
            "subclassed models, and a leaky or shifted ReLU(max_value) has "
            f"no capped twin. Received: model {model.name!r}"
        )
    targets = {id(activation.layer): activation for activation in found}

    def clone_function(op):
        activation = targets.get(id(op))
        return op if activation is None else replace(activation)

    return keras.models.clone_model(
        model, clone_function=clone_function, recursive=True
    )


def with_gradient_mode(model, mode):
    """Returns a copy of `model` whose capped activations use `mode`.

    Every capped activation (`keras_drelu.inspection.capped_activations`)
    becomes a `DReLU`/`SReLU` in `mode`: a `DReLU`/`SReLU` keeps its class
    and caps, a `ReLU(max_value=m)` becomes `SReLU(m)` and a relu6 (layer,
    activation of a layer, or `keras.ops.relu6`) `SReLU(6)`. The copy
    computes the same outputs as `model`. Other layers are shared with
    `model` (their weights are the same variables); the caps, and a layer
    whose activation was relu6, are copied. Nested models are rewritten
    too. To see through caps wherever they sit without a copy, call the
    model inside `keras_drelu.straight_through()`.

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

    Raises:
        ValueError: For a subclassed model, or a capped activation that
            cannot be rewritten (inside a custom layer, say).
    """
    check_choice("mode", mode, GRADIENT_MODES)
    return _rewrite(
        model,
        capped_activations(model),
        lambda found: CAP_KINDS[found.kind].capped(found.layer, mode),
        "`with_gradient_mode`",
    )


def straight_through_model(model):
    """The model a BPDA attack runs on, inside `keras_drelu.straight_through()`.

    `DReLU`/`SReLU` layers see through their caps in that scope wherever
    they sit (custom layers and subclassed models included), so a model
    whose caps are all of that kind is returned as it is. Other capped
    activations are rewritten as `SReLU`s in a copy of the model (as
    `with_gradient_mode` does), whose other layers, `DReLU`/`SReLU` layers
    included, are shared with `model`.

    Example:

    >>> model = keras.Sequential(
    ...     [keras.Input((3,)), keras.layers.ReLU(6.0, name="relu6")])
    >>> type(straight_through_model(model).get_layer("relu6")).__name__
    'SReLU'

    Args:
        model: A Keras model.

    Returns:
        `model`, or a copy of it.

    Raises:
        ValueError: If some capped activation can be neither seen through
            in place nor rewritten.
    """
    found = capped_activations(model)
    blocked = [a for a in found if not a.straight_through]
    if blocked:
        raise ValueError(
            "A straight-through gradient cannot pass the capped activations "
            f"{_listing(blocked)}: they are neither DReLU/SReLU layers nor in "
            "a Sequential or functional model that can be rewritten. "
            f"Received: model {getattr(model, 'name', model)!r}"
        )
    rewrite = [a for a in found if not CAP_KINDS[a.kind].in_place]
    if not rewrite:
        return model
    return _rewrite(
        model,
        rewrite,
        lambda found: CAP_KINDS[found.kind].capped(found.layer, "exact"),
        "`straight_through_model`",
    )


def uncapped_twin(model):
    """Returns a copy of `model` with every capped activation uncapped.

    This is the surrogate of a transfer attack: adversarial examples crafted
    on the twin, whose gradients are never masked by a cap, are evaluated on
    the real model. `DReLU`/`SReLU`, `ReLU(max_value=...)` and relu6
    (`keras_drelu.inspection.CAP_KINDS`) become plain ReLUs; all other
    layers are shared with `model`, except a layer built with
    `activation="relu6"`, which is copied with its weights.

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

    Raises:
        ValueError: For a subclassed model, or a capped activation that
            cannot be rewritten (inside a custom layer, say).
    """
    return _rewrite(
        model,
        capped_activations(model),
        lambda found: CAP_KINDS[found.kind].uncapped(found.layer),
        "`uncapped_twin`",
    )
