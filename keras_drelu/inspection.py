"""Finding the capped activations of a model, and reading their caps.

A capped activation has zero gradient with respect to its input above its
cap, so it can mask gradients wherever it sits. `capped_activations` finds
every one Keras tracks: layers of Sequential and functional models, the
sublayers of custom layers and subclassed models (attributes, lists, dicts),
and the operations of functional graphs (`keras.ops.relu6`). `CAP_KINDS`
says, per kind, how to read its caps and how to rewrite it; everything else
(`max_values`, `contains_capped_relu`, the rewrites of
`keras_drelu.transforms`, the evaluation's default suite) reads those two.
"""

import dataclasses

import keras
import numpy as np
from keras.src.models import Functional
from keras.src.ops.nn import Relu6

from keras_drelu.arguments import check_choice
from keras_drelu.layers.drelu import DReLU
from keras_drelu.layers.srelu import SReLU

RELU6_CAP = 6.0


@dataclasses.dataclass(frozen=True)
class CapKind:
    """One kind of capped activation: how to find, read and rewrite it.

    Args:
        name: Key in `CAP_KINDS`.
        description: What it is, for messages.
        matches: `matches(op)`: whether a layer or operation is of this kind.
        caps: `caps(op)`: its caps as a numpy array, `None` while unbuilt.
        in_place: Whether `keras_drelu.straight_through()` passes its input
            gradient straight on wherever it sits, with no rewrite.
        rewritable: `rewritable(op)`: whether `capped` and `uncapped` can
            replace this instance.
        capped: `capped(op, gradient_mode)`: a `DReLU`/`SReLU` computing the
            same function, with that gradient mode.
        uncapped: `uncapped(op)`: the same activation without its cap.
    """

    name: str
    description: str
    matches: object
    caps: object
    in_place: bool
    rewritable: object
    capped: object
    uncapped: object


def _is_relu6(activation):
    return activation is keras.activations.relu6


def _plain_relu(op):
    return keras.layers.ReLU(name=op.name, dtype=op.dtype_policy)


def _drelu_caps(layer):
    if not layer.built:
        return None
    return keras.ops.convert_to_numpy(layer.max_value)


def _drelu_in_mode(layer, gradient_mode):
    config = layer.get_config()
    config["gradient_mode"] = gradient_mode
    copy = layer.__class__.from_config(config)
    if layer.built:
        copy.build_from_config(layer.get_build_config())
        copy.max_value_variable.assign(layer.max_value_variable)
    return copy


def _srelu6(op, gradient_mode):
    return SReLU(
        RELU6_CAP, gradient_mode=gradient_mode, name=op.name,
        dtype=getattr(op, "dtype_policy", None),
    )


def _with_activation(layer, activation):
    """`layer` with a linear activation and its weights, then `activation`."""
    config = layer.get_config()
    config.update(activation="linear", name=f"{layer.name}_linear")
    linear = layer.__class__.from_config(config)
    linear.build_from_config(layer.get_build_config())
    linear.set_weights(layer.get_weights())
    return keras.Sequential([linear, activation], name=layer.name)


def _has_fused_relu6(op):
    return (
        isinstance(op, keras.layers.Layer)
        and not isinstance(op, keras.layers.Activation)
        and _is_relu6(getattr(op, "activation", None))
    )


CAP_KINDS = {
    kind.name: kind
    for kind in (
        CapKind(
            name="drelu",
            description="a DReLU or SReLU layer",
            matches=lambda op: isinstance(op, DReLU),
            caps=_drelu_caps,
            in_place=True,
            rewritable=lambda op: True,
            capped=_drelu_in_mode,
            uncapped=_plain_relu,
        ),
        CapKind(
            name="relu-max-value",
            description="a keras.layers.ReLU with a max_value",
            matches=lambda op: isinstance(op, keras.layers.ReLU)
            and op.max_value is not None,
            caps=lambda op: np.asarray(op.max_value, "float32"),
            in_place=False,
            # An SReLU caps a plain ReLU; a leaky or shifted one has no
            # capped twin in this library.
            rewritable=lambda op: op.negative_slope == 0 and op.threshold == 0,
            capped=lambda op, mode: SReLU(
                op.max_value, gradient_mode=mode, name=op.name,
                dtype=op.dtype_policy,
            ),
            uncapped=_plain_relu,
        ),
        CapKind(
            name="relu6-layer",
            description='a keras.layers.Activation("relu6")',
            matches=lambda op: isinstance(op, keras.layers.Activation)
            and _is_relu6(op.activation),
            caps=lambda op: np.asarray(RELU6_CAP, "float32"),
            in_place=False,
            rewritable=lambda op: True,
            capped=_srelu6,
            uncapped=_plain_relu,
        ),
        CapKind(
            name="relu6-activation",
            description='a layer built with activation="relu6"',
            matches=_has_fused_relu6,
            caps=lambda op: np.asarray(RELU6_CAP, "float32"),
            in_place=False,
            rewritable=lambda op: op.built and "activation" in op.get_config(),
            capped=lambda op, mode: _with_activation(op, _srelu6(op, mode)),
            uncapped=lambda op: _with_activation(
                op, keras.layers.ReLU(name=f"{op.name}_relu")
            ),
        ),
        CapKind(
            name="relu6-op",
            description="a keras.ops.relu6 in a functional graph",
            matches=lambda op: isinstance(op, Relu6),
            caps=lambda op: np.asarray(RELU6_CAP, "float32"),
            in_place=False,
            rewritable=lambda op: True,
            capped=_srelu6,
            uncapped=lambda op: keras.layers.ReLU(name=op.name),
        ),
    )
}


@dataclasses.dataclass(frozen=True)
class CappedActivation:
    """A capped activation found in a model by `capped_activations`.

    Args:
        path: Where it sits: layer names from the model down, joined by
            `"/"` (`"block/cap"` inside a layer `block`).
        kind: Its key in `CAP_KINDS`.
        layer: The layer (or functional operation) itself.
        rewritable: Whether a copy of the model can replace it
            (`keras_drelu.uncapped_twin`, `keras_drelu.with_gradient_mode`):
            its kind can be rewritten and every model above it is
            Sequential or functional, which `keras.models.clone_model`
            rebuilds; a custom layer or subclassed model cannot be.
    """

    path: str
    kind: str
    layer: object
    rewritable: bool

    @property
    def straight_through(self):
        """Whether a BPDA attack can pass its input gradient straight on."""
        return CAP_KINDS[self.kind].in_place or self.rewritable

    @property
    def caps(self):
        """Its caps as a numpy array (one per unit, or a single one)."""
        return CAP_KINDS[self.kind].caps(self.layer)

    def __str__(self):
        return f"{self.path} ({CAP_KINDS[self.kind].description})"


def _is_graph(layer):
    return isinstance(layer, (keras.Sequential, Functional))


def _children(layer):
    """`(child, in_graph)` for each operation Keras tracks in `layer`."""
    if isinstance(layer, Functional):
        graph = layer.operations
    elif isinstance(layer, keras.Sequential):
        graph = layer.layers
    else:
        graph = []
    tracked = []
    if isinstance(layer, keras.layers.Layer):
        tracked = layer._flatten_layers(include_self=False, recursive=False)
    seen = set()
    for child, in_graph in [(op, True) for op in graph] + [
        (op, False) for op in tracked
    ]:
        if id(child) not in seen and not isinstance(
            child, keras.layers.InputLayer
        ):
            seen.add(id(child))
            yield child, in_graph


def _walk(layer, prefix, reachable, seen):
    for child, in_graph in _children(layer):
        if id(child) in seen:
            continue
        seen.add(id(child))
        path = f"{prefix}{child.name}"
        kind = next(
            (k for k in CAP_KINDS.values() if k.matches(child)), None
        )
        if kind is not None:
            yield CappedActivation(
                path=path,
                kind=kind.name,
                layer=child,
                rewritable=reachable and in_graph and kind.rewritable(child),
            )
        else:
            yield from _walk(child, f"{path}/", reachable and in_graph, seen)


def capped_activations(model):
    """Every capped activation in `model`, wherever Keras tracks it.

    Finds `DReLU`/`SReLU` layers, `keras.layers.ReLU(max_value=...)`,
    `Activation("relu6")`, layers built with `activation="relu6"` and
    `keras.ops.relu6` in functional graphs (the kinds of `CAP_KINDS`),
    inside nested models, custom layers and subclassed models too. A cap
    computed by operations in a custom layer's `call` (say
    `ops.minimum(x, 6)`) is not tracked by Keras and cannot be found.

    Example:

    >>> from keras_drelu import SReLU
    >>> inner = keras.Sequential([keras.Input((3,)), SReLU(0.5, name="cap")],
    ...                          name="inner")
    >>> model = keras.Sequential(
    ...     [keras.Input((3,)), inner, keras.layers.ReLU(6.0, name="relu6")])
    >>> [(c.path, c.kind, c.rewritable) for c in capped_activations(model)]
    [('inner/cap', 'drelu', True), ('relu6', 'relu-max-value', True)]

    Args:
        model: A Keras model or layer.

    Returns:
        A list of `CappedActivation`, in the order of the model's layers
        (depth first); a layer used twice is listed once.
    """
    return list(_walk(model, "", _is_graph(model), set()))


def contains_capped_relu(model):
    """Whether `model` holds any capped activation (`capped_activations`).

    Example:

    >>> dense = keras.layers.Dense(2, activation="relu6")
    >>> contains_capped_relu(keras.Sequential([keras.Input((3,)), dense]))
    True
    """
    return bool(capped_activations(model))


def max_values(model, kinds=("drelu",)):
    """The caps of `model`'s capped activations (`capped_activations`).

    By default those of its `DReLU`/`SReLU` layers, the defence's own caps,
    wherever they sit (nested models, custom layers, subclassed models);
    `kinds=None` adds every other capped activation, such as the fixed
    caps of 6 of a MobileNet backbone. A nested activation is keyed by its
    path, `"outer/inner"`. A `DReLU`/`SReLU` has one cap per unit; a
    `ReLU(max_value=m)` or a relu6 has a single cap, given as an array of
    shape `()`.

    Example:

    >>> from keras_drelu import DReLU
    >>> model = keras.Sequential(
    ...     [keras.Input((3,)), keras.layers.Dense(2), DReLU(name="cap"),
    ...      keras.layers.ReLU(6.0, name="relu6")]
    ... )
    >>> {name: caps.round(3).tolist() for name, caps in max_values(model).items()}
    {'cap': [100.0, 100.0]}
    >>> list(max_values(model, kinds=None))
    ['cap', 'relu6']

    Args:
        model: A Keras model (or layer holding layers).
        kinds: Keys of `CAP_KINDS` to report, or `None` for every kind.
            Defaults to `("drelu",)`: `DReLU`/`SReLU` layers.

    Returns:
        A dict from path to a numpy array of caps, in the order the
        activations appear in the model. Unbuilt layers are left out.
    """
    if kinds is not None:
        kinds = [check_choice("kinds", kind, CAP_KINDS) for kind in kinds]
    caps = {
        found.path: found.caps
        for found in capped_activations(model)
        if kinds is None or found.kind in kinds
    }
    return {path: value for path, value in caps.items() if value is not None}
