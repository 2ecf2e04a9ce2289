"""The Carlini & Wagner L2 attack (Carlini & Wagner, 2017)."""

import math
import types

from keras import ops

from keras_drelu import backends
from keras_drelu.arguments import check_choice
from keras_drelu.arguments import check_non_negative
from keras_drelu.arguments import check_positive
from keras_drelu.attacks.base import Attack
from keras_drelu.attacks.losses import margin
from keras_drelu.attacks.pgd import expand_like
from keras_drelu.attacks.pgd import project


class CarliniWagnerL2(Attack):
    """Minimal-L2 adversarial examples by optimisation (CW-L2).

    Formula:
    ```python
    x_adv = low + (high - low) * (tanh(w) + 1) / 2
    minimise ||x_adv - x||_2^2 + c * max(z_y - max_{i != y} z_i + kappa, 0)
    ```
    over `w` with Adam, for each constant `c` of a binary search (`c` is
    multiplied by 10 until an adversarial example is found, then bisected).
    An iterate succeeds when `z_y + kappa < max_{i != y} z_i` (strictly: a
    tie is not misclassified); each input keeps its smallest successful
    perturbation. CW-L2 has no
    radius of its own: for the threat model, that perturbation is projected
    onto the L2 ball of radius `eps` (`eps=float("inf")` keeps it whole), so
    `generate` stays within `eps` like every attack.

    `PAPER_SETTINGS` holds the settings of Sooksatra et al. (2023): 10000
    iterations, learning rate 0.01, initial constant 0.001 and 9 binary
    search steps; the defaults are a cheaper budget.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.full((2, 4), 0.5, "float32")
    >>> attack = CarliniWagnerL2(model, eps=1.0, max_iterations=10,
    ...                          binary_search_steps=2)
    >>> x_adv = attack.generate(x, np.array([0, 1]))
    >>> bool(np.linalg.norm(x_adv - x, axis=1).max() <= 1.0 + 1e-5)
    True
    >>> CarliniWagnerL2.PAPER_SETTINGS["max_iterations"]
    10000

    Args:
        model: A Keras classifier.
        eps: Radius of the L2 ball the result is projected onto.
        confidence: Margin `kappa` demanded of a success. Defaults to `0.0`.
        learning_rate: Adam's learning rate. Defaults to `0.01`.
        binary_search_steps: Number of constants tried. Defaults to `5`.
        max_iterations: Adam steps per constant. Defaults to `100`.
        initial_const: First constant `c`. Defaults to `0.01`.
        **kwargs: `clip_values`, `outputs`, `batch_size`, `seed` as in
            `Attack`; `norm` must be `"l2"`.
    """

    name = "CW-L2"
    PAPER_SETTINGS = types.MappingProxyType(
        {
            "max_iterations": 10000,
            "learning_rate": 0.01,
            "initial_const": 0.001,
            "binary_search_steps": 9,
        }
    )

    def __init__(
        self,
        model,
        *,
        eps,
        confidence=0.0,
        learning_rate=0.01,
        binary_search_steps=5,
        max_iterations=100,
        initial_const=0.01,
        **kwargs,
    ):
        # CW-L2 minimises an L2 distance; no other norm has a meaning here.
        check_choice("norm", kwargs.setdefault("norm", "l2"), ("l2",))
        super().__init__(model, eps=eps, **kwargs)
        self.confidence = check_non_negative("confidence", confidence)
        self.learning_rate = check_positive("learning_rate", learning_rate)
        self.binary_search_steps = check_positive(
            "binary_search_steps", binary_search_steps, integer=True
        )
        self.max_iterations = check_positive(
            "max_iterations", max_iterations, integer=True
        )
        self.initial_const = check_positive("initial_const", initial_const)

    def get_config(self):
        config = super().get_config()
        config.pop("norm")
        config.update(
            confidence=self.confidence,
            learning_rate=self.learning_rate,
            binary_search_steps=self.binary_search_steps,
            max_iterations=self.max_iterations,
            initial_const=self.initial_const,
        )
        return config

    def _to_input(self, w):
        low, high = self.clip_values
        return low + (high - low) * (ops.tanh(w) + 1.0) / 2.0

    def _optimise(self, x, y, w0, const, best_l2, best):
        """Adam on `w` for one constant; updates the smallest successes."""
        beta1, beta2, adam_eps = 0.9, 0.999, 1e-8
        axes = tuple(range(1, len(x.shape)))

        def objective(w):
            x_adv = self._to_input(w)
            gap = -margin(self.logits(x_adv), y)
            l2sq = ops.sum(ops.square(x_adv - x), axis=axes)
            loss = ops.sum(
                l2sq + const * ops.maximum(gap + self.confidence, 0.0)
            )
            return loss, (x_adv, gap, l2sq)

        def step(t, state):
            w, m, v, best_l2, best, found = state
            _, (x_adv, gap, l2sq), grad = backends.value_and_grad(objective, w)
            # Strict, as the evaluation's argmax: a tie is not a success.
            success = gap + self.confidence < 0.0
            l2 = ops.sqrt(l2sq)
            better = ops.logical_and(success, l2 < best_l2)
            best_l2 = ops.where(better, l2, best_l2)
            best = ops.where(expand_like(better, x), x_adv, best)
            found = ops.logical_or(found, success)
            # Adam written out: its state must restart with every constant
            # and live inside the compiled loop.
            t = ops.cast(t + 1, "float32")
            m = beta1 * m + (1.0 - beta1) * grad
            v = beta2 * v + (1.0 - beta2) * ops.square(grad)
            m_hat = m / (1.0 - beta1**t)
            v_hat = v / (1.0 - beta2**t)
            w = w - self.learning_rate * m_hat / (ops.sqrt(v_hat) + adam_eps)
            return w, m, v, best_l2, best, found

        zeros = ops.zeros_like(x)
        _, _, _, best_l2, best, found = ops.fori_loop(
            0,
            self.max_iterations,
            step,
            (w0, zeros, zeros, best_l2, best, ops.zeros(ops.shape(y), "bool")),
        )
        return best_l2, best, found

    def _attack_batch(self, x, y, keys):
        low, high = self.clip_values
        w0 = ops.arctanh(
            ops.clip(2.0 * (x - low) / (high - low) - 1.0, -0.999999, 0.999999)
        )
        batch = ops.shape(y)

        def search(s, state):
            lower, upper, const, best_l2, best = state
            best_l2, best, found = self._optimise(
                x, y, w0, const, best_l2, best
            )
            upper = ops.where(found, ops.minimum(upper, const), upper)
            lower = ops.where(found, lower, ops.maximum(lower, const))
            const = ops.where(
                ops.isfinite(upper), (lower + upper) / 2.0, const * 10.0
            )
            return lower, upper, const, best_l2, best

        *_, best = ops.fori_loop(
            0,
            self.binary_search_steps,
            search,
            (
                ops.zeros(batch),
                ops.full(batch, math.inf),
                ops.full(batch, self.initial_const),
                ops.full(batch, math.inf),
                x,
            ),
        )
        delta = project(best - x, self.eps, "l2")
        return ops.clip(x + delta, low, high)
