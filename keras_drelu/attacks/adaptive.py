"""Adaptive attacks on capped ReLUs: BPDA and transfer from an uncapped twin.

A `DReLU`/`SReLU` has zero input gradient above its cap, so a gradient
attack on it can stall without the model being robust (gradient masking;
Athalye et al., 2018). These wrappers run any gradient attack where the cap
cannot hide the gradient.
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from keras_drelu import backends
from keras_drelu.arguments import ArgumentTypeError
from keras_drelu.attacks.base import Attack
from keras_drelu.attacks.losses import cross_entropy
from keras_drelu.inspection import capped_activations
from keras_drelu.layers.drelu import record_inputs
from keras_drelu.layers.straight_through import straight_through
from keras_drelu.transforms import straight_through_model
from keras_drelu.transforms import uncapped_twin


class _Wrapped(Attack):
    """An attack run on a surrogate of `attack.model`."""

    prefix = None

    def __init__(self, attack, *, surrogate=None):
        if not isinstance(attack, Attack):
            raise ArgumentTypeError(
                f"{type(self).__name__} wraps an `Attack` instance. Received: "
                f"attack={attack!r}"
            )
        if surrogate is not None and not isinstance(surrogate, keras.Model):
            raise ArgumentTypeError(
                f"Argument `surrogate` of {type(self).__name__} should be the "
                f"`surrogate` of another {type(self).__name__} on the same "
                f"model, or None. Received: surrogate={surrogate!r}"
            )
        self.attack = attack
        # A surrogate made once serves every wrapper of this kind on the
        # model (an evaluation has two BPDA attacks, a sweep one per
        # radius): a copy is not made again, and its compiled pass is shared
        # (`keras_drelu.backends.model_pass`).
        self.surrogate = (
            self._surrogate(attack.model) if surrogate is None else surrogate
        )
        self._inner = self._on_surrogate(attack)
        super().__init__(attack.model, **_base_config(attack))

    def _on_surrogate(self, attack):
        """`attack` as it runs on `self.surrogate`."""
        return attack.clone(self.surrogate)

    @property
    def name(self):
        return f"{self.prefix}({self.attack.name})"

    @property
    def threat_model(self):
        return self.attack.threat_model

    @property
    def min_classes(self):
        return self.attack.min_classes

    def clone(self, model):
        return type(self)(self.attack.clone(model))

    def get_config(self):
        return {"attack": self.attack}

    def generate(self, x, y):
        return self._inner.generate(x, y)


def _base_config(attack):
    return {
        key: getattr(attack, key)
        for key in (
            "eps",
            "norm",
            "clip_values",
            "outputs",
            "batch_size",
            "seed",
        )
    }


class BPDA(_Wrapped):
    """Runs `attack` with straight-through gradients through every cap.

    The attack runs inside `keras_drelu.straight_through()` on
    `keras_drelu.transforms.straight_through_model(model)`: the model itself
    when its caps are `DReLU`/`SReLU` layers (wherever they sit, custom
    layers and subclassed models included), else a copy whose other capped
    activations (`ReLU(max_value)`, relu6) are rewritten as `SReLU`s. Each
    cap keeps its output and passes the input gradient a plain ReLU would
    (Backward Pass Differentiable Approximation, Athalye et al., 2018).
    Since the outputs are the model's, so are its successes.
    `gradient_check` tells whether the gradient really differs from the
    exact one, which the evaluation checks before trusting the attack.

    Example:

    >>> import keras, numpy as np
    >>> from keras_drelu import SReLU
    >>> from keras_drelu.attacks import PGD
    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(8), SReLU(0.01),
    ...      keras.layers.Dense(3)]
    ... )
    >>> attack = BPDA(PGD(model, eps=0.1, steps=5))
    >>> attack.name, attack.surrogate is model
    ('BPDA(PGD)', True)
    >>> attack.generate(np.full((2, 4), 0.5, "float32"), np.array([0, 1])).shape
    (2, 4)

    Args:
        attack: A gradient `Attack`.
        surrogate: The `surrogate` of another `BPDA` on the same model, to
            share it (a copy is made once, its pass traced once). Defaults
            to `None`: made from `attack.model` as above.

    Raises:
        ValueError: If some capped activation of the model can be neither
            seen through in place nor rewritten (a `ReLU(max_value)` inside
            a custom layer, say).
    """

    prefix = "BPDA"
    kind = "adaptive"

    def _surrogate(self, model):
        return straight_through_model(model)

    def _on_surrogate(self, attack):
        inner = attack.clone(self.surrogate)
        # The scope is read when a layer is called, so when the inner
        # attack's functions are traced (or, on PyTorch, run): each enters
        # it inside its own trace.
        inner._trace_scope = straight_through
        return inner

    def gradient_check(self, x, y):
        """Whether BPDA's input gradient differs from the exact one, per input.

        Compares the gradient of each input's cross-entropy (of the model's
        outputs taken as scores, so that every output counts) through the
        straight-through surrogate with the exact gradient of the model,
        and records where some cap clips: where none does, the two
        gradients are rightly the same.

        Args:
            x: Inputs (a few dozen are enough).
            y: Their integer labels.

        Returns:
            A `GradientCheck`.
        """
        x = np.asarray(x, "float32")
        y = np.asarray(y, "int64")
        # The caps' inputs, from an eager pass: a gradient's trace (JAX)
        # holds no values to record.
        with record_inputs() as recorded:
            self.surrogate(x, training=False)
        with straight_through():
            through = _input_gradient(self.surrogate, x, y)
        exact = _input_gradient(self.model, x, y)
        scale = np.maximum(
            np.abs(through).max(axis=1), np.abs(exact).max(axis=1)
        )
        differs = np.abs(through - exact).max(axis=1) > 1e-6 * scale
        return GradientCheck(
            clipping=_clipping(self.surrogate, recorded, len(y)),
            differs=differs,
        )


@dataclasses.dataclass(frozen=True)
class GradientCheck:
    """What `BPDA.gradient_check` found, per input.

    Args:
        clipping: Whether some cap clips the input, or `None` if some cap
            could not be observed (one called inside a function a custom
            layer compiled itself).
        differs: Whether the straight-through gradient differs from the
            exact one.
    """

    clipping: np.ndarray
    differs: np.ndarray


def _input_gradient(model, x, y):
    def loss(x):
        return ops.sum(cross_entropy(model(x, training=False), y)), None

    _, _, gradient = backends.value_and_grad(loss, x)
    return ops.convert_to_numpy(gradient).reshape(len(y), -1)


def _clipping(model, recorded, n):
    """Per input, whether a `DReLU`/`SReLU` of `model` clipped it."""
    clipping = np.zeros(n, bool)
    for found in capped_activations(model):
        batches = [b for b in recorded.get(found.layer, []) if len(b) == n]
        caps = found.caps
        if not batches or caps is None:
            return None
        caps = np.maximum(caps, 0.0)
        for batch in batches:
            clipped = np.maximum(batch, 0.0) > caps
            clipping |= clipped.reshape(n, -1).any(axis=1)
    return clipping


class Transfer(_Wrapped):
    """Crafts `attack` on the model's uncapped twin, for use on the model.

    The surrogate is `keras_drelu.uncapped_twin(model)`: the same weights
    with every cap removed, so its gradients are never masked. The attack
    runs its full budget on the surrogate with its `transfer_settings`
    (APGD hands over each input's highest-loss point rather than the first
    one the surrogate misclassifies, which lies on the surrogate's decision
    boundary); those points are then judged on the real, capped model.

    Example:

    >>> import keras, numpy as np
    >>> from keras_drelu import SReLU
    >>> from keras_drelu.attacks import PGD
    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(8), SReLU(0.01),
    ...      keras.layers.Dense(3)]
    ... )
    >>> Transfer(PGD(model, eps=0.1, steps=5)).name
    'Transfer(PGD)'

    Args:
        attack: A gradient `Attack` on a Sequential or functional model.
        surrogate: The `surrogate` of another `Transfer` on the same model,
            to share it. Defaults to `None`: `uncapped_twin(attack.model)`.
    """

    prefix = "Transfer"
    kind = "transfer"

    def _surrogate(self, model):
        return uncapped_twin(model)

    def _on_surrogate(self, attack):
        return attack.clone(self.surrogate, **attack.transfer_settings)
