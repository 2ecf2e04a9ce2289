"""Adaptive attacks on capped ReLUs: BPDA and transfer from an uncapped twin.

A `DReLU`/`SReLU` has zero input gradient above its cap, so a gradient
attack on it can stall without the model being robust (gradient masking;
Athalye et al., 2018). These wrappers run any gradient attack where the cap
cannot hide the gradient.
"""

from keras_drelu.arguments import ArgumentTypeError
from keras_drelu.attacks.base import Attack
from keras_drelu.transforms import uncapped_twin
from keras_drelu.transforms import with_gradient_mode


class _Wrapped(Attack):
    """An attack run on a surrogate of `attack.model`."""

    prefix = None

    def __init__(self, attack):
        if not isinstance(attack, Attack):
            raise ArgumentTypeError(
                f"{type(self).__name__} wraps an `Attack` instance. Received: "
                f"attack={attack!r}"
            )
        self.attack = attack
        self.surrogate = self._surrogate(attack.model)
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

    The attack sees `keras_drelu.with_gradient_mode(model, "bpda")`: the same
    outputs as `model`, with each cap's gradient replaced by a plain ReLU's
    (Backward Pass Differentiable Approximation, Athalye et al., 2018).
    Since the outputs are the same, its successes are the model's.

    Example:

    >>> import keras, numpy as np
    >>> from keras_drelu import SReLU
    >>> from keras_drelu.attacks import PGD
    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(8), SReLU(0.01),
    ...      keras.layers.Dense(3)]
    ... )
    >>> attack = BPDA(PGD(model, eps=0.1, steps=5))
    >>> attack.name
    'BPDA(PGD)'
    >>> attack.generate(np.full((2, 4), 0.5, "float32"), np.array([0, 1])).shape
    (2, 4)

    Args:
        attack: A gradient `Attack` on a Sequential or functional model.
    """

    prefix = "BPDA"
    kind = "adaptive"

    def _surrogate(self, model):
        return with_gradient_mode(model, "bpda")


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
    """

    prefix = "Transfer"
    kind = "transfer"

    def _surrogate(self, model):
        return uncapped_twin(model)

    def _on_surrogate(self, attack):
        return attack.clone(self.surrogate, **attack.transfer_settings)
