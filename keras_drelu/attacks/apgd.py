"""Auto-PGD (Croce & Hein, 2020): APGD-CE, APGD-DLR and targeted APGD-T."""

import itertools
import types

import numpy as np
from keras import ops

from keras_drelu import backends
from keras_drelu.arguments import check_choice
from keras_drelu.arguments import check_number
from keras_drelu.arguments import check_positive
from keras_drelu.attacks import randomness
from keras_drelu.attacks.base import Attack
from keras_drelu.attacks.losses import cross_entropy
from keras_drelu.attacks.losses import dlr
from keras_drelu.attacks.losses import misclassified
from keras_drelu.attacks.losses import targeted_dlr
from keras_drelu.attacks.pgd import ascent_direction
from keras_drelu.attacks.pgd import constrain
from keras_drelu.attacks.pgd import expand_like
from keras_drelu.attacks.pgd import project
from keras_drelu.attacks.targets import target_classes

LOSSES = ("ce", "dlr")
# What each input keeps: its first misclassified iterate, else its
# highest-loss one; or its highest-loss iterate whatever the prediction.
KEEP = ("adversarial", "highest-loss")


def checkpoints(steps):
    """The iterations at which APGD may halve its step size.

    The paper's schedule `p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j -
    p_{j-1} - 0.03, 0.06)`, `w_j = ceil(p_j * steps)`, in the integer form of
    AutoAttack's implementation (the numbers every published APGD result
    uses): the first window is `int(0.22 * steps)` iterations, each next one
    `int(0.03 * steps)` shorter, down to `int(0.06 * steps)` (each at least
    1). Both forms agree for 100 steps.

    Example:

    >>> checkpoints(100)
    [0, 22, 41, 57, 70, 80, 87, 93, 99]
    """
    first = max(int(0.22 * steps), 1)
    shrink = max(int(0.03 * steps), 1)
    shortest = max(int(0.06 * steps), 1)
    marks, window = [0], first
    while marks[-1] + window <= steps:
        marks.append(marks[-1] + window)
        window = max(window - shrink, shortest)
    return marks


class APGD(Attack):
    """Auto-PGD: step-size-free PGD with momentum (Croce & Hein, 2020).

    From a random start `x_0` and step `eta = 2 * eps`, each iteration takes
    ```python
    z       = P(x_k + eta * sign(grad f(x_k)))
    x_{k+1} = P(x_k + alpha * (z - x_k) + (1 - alpha) * (x_k - x_{k-1}))
    ```
    with momentum `alpha = 0.75` (`alpha = 1` for the first step). At each
    checkpoint `w_j` (see `checkpoints`) the step size of an input is halved
    and its iterate reset to its best point when fewer than `rho = 0.75` of
    the steps since the last checkpoint raised its loss, or when neither its
    step size nor its best loss changed since then.

    With `keep="adversarial"` each input keeps its first misclassified
    iterate, else its highest-loss one. With `keep="highest-loss"` it keeps
    its highest-loss iterate, misclassified or not, and restarts keep the
    highest loss too: what a `Transfer` attack hands to the real model,
    since a point the surrogate has only just misclassified lies on the
    surrogate's decision boundary.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.full((2, 4), 0.5, "float32")
    >>> attack = APGD(model, eps=0.1, steps=10, loss="dlr", seed=0)
    >>> attack.name
    'APGD-DLR'
    >>> bool(np.abs(attack.generate(x, np.array([0, 1])) - x).max() <= 0.1 + 1e-6)
    True

    Args:
        model: A Keras classifier.
        eps: Radius of the threat model.
        loss: `"ce"` (cross-entropy) or `"dlr"` (needs logits and at least
            3 classes). Defaults to `"ce"`.
        steps: Iterations per restart. Defaults to `100`.
        restarts: Random restarts, each run on the inputs not yet fooled.
            Defaults to `1`.
        rho: Fraction of loss-raising steps below which the step size is
            halved. Defaults to `0.75`.
        momentum: `alpha` above. Defaults to `0.75`.
        keep: `"adversarial"` or `"highest-loss"`, as above. Defaults to
            `"adversarial"`.
        **kwargs: `norm`, `clip_values`, `outputs`, `batch_size`, `seed` as
            in `Attack`.
    """

    transfer_settings = types.MappingProxyType({"keep": "highest-loss"})
    compile_batch = False

    def __init__(
        self,
        model,
        *,
        eps,
        loss="ce",
        steps=100,
        restarts=1,
        rho=0.75,
        momentum=0.75,
        keep="adversarial",
        **kwargs,
    ):
        self.loss = check_choice("loss", loss, LOSSES)
        super().__init__(model, eps=eps, **kwargs)
        self.steps = check_positive("steps", steps, integer=True)
        self.restarts = check_positive("restarts", restarts, integer=True)
        self.rho = check_number("rho", rho, low=0, high=1, closed="right")
        self.momentum = check_number(
            "momentum", momentum, low=0, high=1, closed="right"
        )
        self.keep = check_choice("keep", keep, KEEP)

    @property
    def name(self):
        return f"APGD-{self.loss.upper()}"

    @property
    def min_classes(self):
        """DLR divides by the gap between the 1st and 3rd logits."""
        return 3 if self.loss == "dlr" else 2

    def get_config(self):
        config = super().get_config()
        config.update(
            loss=self.loss,
            steps=self.steps,
            restarts=self.restarts,
            rho=self.rho,
            momentum=self.momentum,
            keep=self.keep,
        )
        return config

    def _loss_fn(self, logits, y, target):
        if self.loss == "ce":
            return cross_entropy(logits, y)
        return dlr(logits, y)

    def _score(self, logits, y):
        """The loss by which `keep="highest-loss"` compares runs."""
        return self._loss_fn(logits, y, y)

    def _targets(self, x, y):
        return y[None]

    def _attack_batch(self, x, y, keys):
        # Runs (one per target and restart) are compiled one by one and
        # chained on the host: nesting their loop inside another compiled
        # loop doubles the time per step of TensorFlow on CPU, and
        # unrolling them multiplies the tracing time.
        run = self._compiled("_run")
        x_kept = x
        fooled = np.zeros(len(y), bool)
        best = np.full(len(y), -np.inf, "float32")
        for index, target in enumerate(self._targets(x, y)):
            for restart in range(self.restarts):
                stream = index * self.restarts + restart
                x_adv, score, wrong = run(
                    x, y, target, randomness.stream(keys, stream)
                )
                if self.keep == "highest-loss":
                    keep = score > best
                    best = np.where(keep, score, best)
                else:
                    # Unfooled inputs carry the latest run's best-loss point.
                    keep = ~fooled
                    fooled = fooled | wrong
                x_kept = np.where(_rows(keep, x), x_adv, x_kept)
        return x_kept

    def _random_start(self, x, keys):
        features = tuple(x.shape[1:])
        if self.norm == "linf":
            t = randomness.uniform(keys, features, minval=-1.0, maxval=1.0)
            axes = tuple(range(1, len(x.shape)))
            scale = ops.max(ops.abs(t), axis=axes, keepdims=True)
            return self.eps * t / ops.maximum(scale, 1e-12)
        t = randomness.normal(keys, features)
        return project(t * 1e6, self.eps, "l2")

    def _loss_and_grad(self, x_adv, y, target):
        def loss(x_adv):
            logits = self.logits(x_adv)
            losses = self._loss_fn(logits, y, target)
            return ops.sum(losses), (losses, logits)

        _, (loss, logits), grad = backends.value_and_grad(loss, x_adv)
        return loss, grad, logits

    def _run(self, x, y, target, keys):
        """One run of APGD: `(x_adv, score, wrong)` per input.

        `score` is `_score` at `x_adv` (for `keep="highest-loss"`), `wrong`
        whether the model misclassifies it.
        """
        settings = dict(
            eps=self.eps, norm=self.norm, clip_values=self.clip_values,
            momentum=self.momentum,
        )
        marks = checkpoints(self.steps)
        is_checkpoint = np.zeros(self.steps, bool)
        window = np.zeros(self.steps, "float32")
        for a, b in itertools.pairwise(marks):
            is_checkpoint[b - 1] = True
            window[b - 1] = b - a
        is_checkpoint = ops.convert_to_tensor(is_checkpoint)
        window = ops.convert_to_tensor(window)

        x_adv = constrain(
            x + self._random_start(x, keys), x, self.eps, self.norm,
            self.clip_values,
        )
        loss, grad, logits = self._loss_and_grad(x_adv, y, target)
        wrong = misclassified(logits, y)
        batch = ops.shape(y)
        state = dict(
            x_adv=x_adv,
            x_prev=x_adv,
            grad=grad,
            loss=loss,
            step=ops.full(batch, 2.0 * self.eps),
            x_best=x_adv,
            grad_best=grad,
            loss_best=loss,
            x_best_adv=ops.where(expand_like(wrong, x), x_adv, x),
            fooled=wrong,
            increases=ops.zeros(batch),
            loss_best_last_check=loss,
            reduced_last_check=ops.ones(batch, "bool"),
        )
        state["x_new"] = _propose(0, state, x, **settings)
        # The iterate's gradient and the previous iterate are read only by
        # `_propose`, in the step that sets them: they are not carried from
        # one step to the next (two image-sized tensors fewer for the fused
        # step to write, about a fifth of its memory traffic).
        for key in CARRIED_NOT:
            del state[key]
        # The bookkeeping between two gradients, in one kernel: on a small
        # model it costs as much as the gradient when run op by op.
        advance = backends.fuse(_advance, rho=self.rho, **settings)

        def body(i, s):
            loss, grad, logits = self._loss_and_grad(s["x_new"], y, target)
            return advance(
                i, s, loss, grad, logits, x, y, is_checkpoint, window
            )

        state = ops.fori_loop(0, self.steps, body, state)
        if self.keep == "highest-loss":
            x_adv = state["x_best"]
        else:
            fooled_x = expand_like(state["fooled"], x)
            x_adv = ops.where(fooled_x, state["x_best_adv"], state["x_best"])
        logits = self.logits(x_adv)
        return (
            ops.stop_gradient(x_adv),
            self._score(logits, y),
            misclassified(logits, y),
        )


# State that `_propose` reads and `_record` sets afresh each step.
CARRIED_NOT = ("grad", "x_prev")


def _propose(i, s, x, *, eps, norm, clip_values, momentum):
    """APGD's next iterate from state `s`: a step from `x_adv`, then
    momentum."""
    alpha = ops.where(i > 0, momentum, 1.0)
    step = expand_like(s["step"], x)
    z = constrain(
        s["x_adv"] + step * ascent_direction(s["grad"], norm), x, eps, norm,
        clip_values,
    )
    return constrain(
        s["x_adv"]
        + alpha * (z - s["x_adv"])
        + (1.0 - alpha) * (s["x_adv"] - s["x_prev"]),
        x, eps, norm, clip_values,
    )


def _record(i, s, loss, grad, logits, x, y, is_checkpoint, window, *, rho):
    """APGD's state after `x_new`: best points, step sizes, resets."""
    x_new = s["x_new"]
    wrong = misclassified(logits, y)
    first_wrong = ops.logical_and(wrong, ops.logical_not(s["fooled"]))
    x_best_adv = ops.where(expand_like(first_wrong, x), x_new, s["x_best_adv"])
    improved = loss > s["loss_best"]
    x_best = ops.where(expand_like(improved, x), x_new, s["x_best"])
    grad_best = ops.where(expand_like(improved, x), grad, s["grad_best"])
    loss_best = ops.where(improved, loss, s["loss_best"])
    increases = s["increases"] + ops.cast(loss > s["loss"], "float32")

    at_check = ops.take(is_checkpoint, i)
    oscillating = increases <= rho * ops.take(window, i)
    stalled = ops.logical_and(
        ops.logical_not(s["reduced_last_check"]),
        s["loss_best_last_check"] >= loss_best,
    )
    reduce = ops.logical_and(at_check, ops.logical_or(oscillating, stalled))
    reduce_x = expand_like(reduce, x)
    return dict(
        x_adv=ops.where(reduce_x, x_best, x_new),
        x_prev=s["x_adv"],
        grad=ops.where(reduce_x, grad_best, grad),
        loss=loss,
        step=ops.where(reduce, s["step"] / 2.0, s["step"]),
        x_best=x_best,
        grad_best=grad_best,
        loss_best=loss_best,
        x_best_adv=x_best_adv,
        fooled=ops.logical_or(s["fooled"], wrong),
        increases=ops.where(at_check, 0.0, increases),
        loss_best_last_check=ops.where(
            at_check, loss_best, s["loss_best_last_check"]
        ),
        reduced_last_check=ops.where(
            at_check, reduce, s["reduced_last_check"]
        ),
    )


def _advance(
    i, s, loss, grad, logits, x, y, is_checkpoint, window, *, rho, **settings
):
    """Records the loss and gradient at `x_new`; proposes the next.

    `x` and `y` are the clean batch and its labels; `is_checkpoint` and
    `window` say, per iteration, whether it ends a window of `checkpoints`
    and how long that window was.
    """
    s = _record(i, s, loss, grad, logits, x, y, is_checkpoint, window, rho=rho)
    x_new = _propose(i + 1, s, x, **settings)
    carried = {key: value for key, value in s.items() if key not in CARRIED_NOT}
    return {**carried, "x_new": x_new}


class APGDT(APGD):
    """Targeted APGD on the targeted DLR loss (APGD-T, Croce & Hein, 2020).

    Runs APGD once per target class: the classes with the 2nd to
    `n_target_classes + 1`-th highest clean logit (`target_classes`), each
    on the inputs not yet misclassified; success is any misclassification.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5)])
    >>> x = np.full((2, 4), 0.5, "float32")
    >>> attack = APGDT(model, eps=0.1, steps=5, n_target_classes=2, seed=0)
    >>> attack.generate(x, np.array([0, 1])).shape
    (2, 4)

    Args:
        model: A Keras classifier with at least 4 classes.
        eps: Radius of the threat model.
        n_target_classes: Number of target classes. Defaults to `9`.
        steps: Iterations per target class. Defaults to `100`.
        **kwargs: `restarts`, `rho`, `momentum` as in `APGD`; `norm`,
            `clip_values`, `outputs`, `batch_size`, `seed` as in `Attack`.
    """

    def __init__(self, model, *, eps, n_target_classes=9, steps=100, **kwargs):
        kwargs.pop("loss", None)
        self.n_target_classes = check_positive(
            "n_target_classes", n_target_classes, integer=True
        )
        super().__init__(model, eps=eps, loss="dlr", steps=steps, **kwargs)

    @property
    def name(self):
        return "APGD-T"

    @property
    def min_classes(self):
        """The targeted DLR loss uses the 4th-largest logit."""
        return 4

    def get_config(self):
        config = super().get_config()
        config.pop("loss")
        config["n_target_classes"] = self.n_target_classes
        return config

    def _loss_fn(self, logits, y, target):
        return targeted_dlr(logits, y, target)

    def _score(self, logits, y):
        """Untargeted DLR: comparable across the target classes."""
        return dlr(logits, y)

    def _targets(self, x, y):
        if self._n_classes < 4:
            raise ValueError(
                "APGD-T needs a model with at least 4 classes. Received: "
                f"{self._n_classes} classes"
            )
        return self._compiled("_target_classes")(x).T

    def _target_classes(self, x):
        """`target_classes` of `x`, one row per input."""
        targets = target_classes(self.logits(x), self.n_target_classes)
        return ops.transpose(targets)


def _rows(mask, x):
    """A numpy `mask` `(batch,)` shaped to broadcast against `x`."""
    return mask.reshape((-1,) + (1,) * (x.ndim - 1))
