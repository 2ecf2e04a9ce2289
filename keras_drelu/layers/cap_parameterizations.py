"""How a `DReLU` stores and learns its caps: as `m`, or as a log of `m`.

An optimizer updates the stored variable, not the cap. Adam moves a weight
by about its learning rate per step whatever the gradient's size, so a cap
stored as itself (`"linear"`, the D-ReLU paper's layer) starting at the
paper's 100 moves about 1e-3 per step at learning rate 1e-3 and needs on
the order of 10^5 steps to come down: in a budget of a few thousand steps
it stays a plain ReLU.

`"log"` stores `s = log(m) / rate`, so that a normalising optimizer
(Adam, RMSprop, Adagrad), which moves `s` by about its learning rate `lr`
per step, changes a cap by about `rate * lr` of its value whatever its
size. Storing the logarithm alone is not enough: the paper's penalty
`lam * m**2` has a gradient in `s` proportional to `m**2`, which falls by
orders of magnitude as the cap does, and Adam, which divides by a slowly
decaying average of past squared gradients, then takes ever smaller steps
(measured: 100 -> 6 in two MNIST epochs, still falling after eight). So the
gradient reaching `s` is the caps' gradient divided by `rate * m` (the chain
rule would multiply by `rate * m`): the penalty then pushes with a constant
force and a cap moves at a constant relative speed until the task's
gradient balances the penalty; and plain SGD, which steps by the gradient
itself, moves a cap exactly as it would move `m` stored as itself. The
stationary points are those of the paper's loss; only the speed of reaching
them changes. `experiments/cap_learning.py` measures both forms.

Each entry maps the stored variable to caps (`to_caps`, with the gradient
it passes on) and caps to the stored value (`from_caps`), in `keras.ops`.
A constraint or penalty given for the caps acts on the caps through
`CapSpaceConstraint` and `CapSpaceRegularizer`.
"""

import dataclasses
import math

from keras import constraints
from keras import ops
from keras import regularizers

# The range of caps stored as a logarithm. A cap of exactly 0 has no
# logarithm and is stored as the lower end, which clips activations of
# order one to nothing; the bounds also keep one large optimizer step (an
# SGD step on a large penalty, say) from overflowing `exp`.
LOG_CAP_RANGE = (1e-6, 1e6)


@dataclasses.dataclass(frozen=True)
class Linear:
    """The stored variable is the cap `m` (the D-ReLU paper's layer)."""

    name = "linear"

    def to_caps(self, stored):
        return stored

    def from_caps(self, caps):
        return ops.convert_to_tensor(caps, "float32")

    def bound(self, stored):
        return stored


@dataclasses.dataclass(frozen=True)
class Log:
    """The stored variable is `s = log(m) / rate`, so `m = exp(rate * s)`.

    The gradient passed to `s` is the caps' gradient divided by
    `rate * m`, not multiplied by it (see the module's docstring).

    Args:
        rate: How fast caps move: an optimizer step of size `lr` in `s`
            scales a cap by about `exp(rate * lr)`.
    """

    rate: float
    name = "log"

    def to_caps(self, stored):
        caps = ops.stop_gradient(ops.exp(stored * self.rate))
        # Forward: `caps` exactly (`stored - stored` is 0). Backward:
        # d caps / d stored = 1 / (rate * caps) instead of rate * caps.
        return caps + (stored - ops.stop_gradient(stored)) / (
            self.rate * caps
        )

    def from_caps(self, caps):
        caps = ops.convert_to_tensor(caps, "float32")
        return ops.log(ops.clip(caps, *LOG_CAP_RANGE)) / self.rate

    def bound(self, stored):
        """`stored` clipped to the logarithms of `LOG_CAP_RANGE`."""
        low, high = (math.log(cap) / self.rate for cap in LOG_CAP_RANGE)
        return ops.clip(stored, low, high)


PARAMETERIZATIONS = {"linear": Linear(), "log": Log(rate=10.0)}


class CapSpaceConstraint(constraints.Constraint):
    """Applies a constraint on caps to a variable stored in another space,
    then keeps the variable within the parameterization's bounds.

    Not serialized: the layer's config keeps the constraint as given.

    Args:
        constraint: A constraint on the caps, or `None`.
        parameterization: An entry of `PARAMETERIZATIONS`.
    """

    def __init__(self, constraint, parameterization):
        self.constraint = constraint
        self.parameterization = parameterization

    def __call__(self, stored):
        if self.constraint is not None:
            caps = self.constraint(self.parameterization.to_caps(stored))
            stored = self.parameterization.from_caps(caps)
        return self.parameterization.bound(stored)


class CapSpaceRegularizer(regularizers.Regularizer):
    """Applies a penalty on caps to a variable stored in another space.

    Keras computes a weight's penalty as `regularizer(variable)`; the cap
    penalty of the D-ReLU paper (`lam * sum(m ** 2)`) must see the caps.
    """

    def __init__(self, regularizer, parameterization):
        self.regularizer = regularizer
        self.parameterization = parameterization

    def __call__(self, stored):
        return self.regularizer(self.parameterization.to_caps(stored))
