"""Targeted Fast Adaptive Boundary attack, FAB-T (Croce & Hein, 2020)."""

import math

import numpy as np
from keras import ops

from keras_drelu import backends
from keras_drelu.arguments import check_number
from keras_drelu.arguments import check_positive
from keras_drelu.attacks import randomness
from keras_drelu.attacks.base import Attack
from keras_drelu.attacks.losses import misclassified
from keras_drelu.attacks.pgd import expand_like
from keras_drelu.attacks.targets import target_classes


def _norm(t, norm):
    return (
        ops.max(ops.abs(t), axis=1)
        if norm == "linf"
        else ops.sqrt(ops.sum(ops.square(t), axis=1))
    )


def project_to_hyperplane(t, w, b, norm, clip_values):
    """The smallest step from each `t` onto `{z : w.z = b}` within the box.

    Per row, the `d` of least `norm` with `w.(t + d) = b` and `t + d` inside
    `clip_values`. Each coordinate moves in the direction that changes `w.z`
    towards `b`, by `min(lam * v_i, room_i)`, where `room_i` is its distance
    to the box and `v_i = |w_i|` (L2) or `1` (L-inf, for `w_i != 0`); `lam`
    solves the piecewise linear equation `sum |w_i| min(lam v_i, room_i) =
    |b - w.t|` exactly, from the sorted breakpoints `room_i / v_i`. Where
    the box does not reach the hyperplane, `d` is the box's nearest corner.

    Example:

    >>> import numpy as np
    >>> t = np.array([[0.5, 0.9]], "float32")
    >>> w = np.array([[1.0, 1.0]], "float32")
    >>> b = np.array([1.8], "float32")  # w.t = 1.4: move by 0.4 in all
    >>> for norm in ("l2", "linf"):
    ...     d = project_to_hyperplane(t, w, b, norm, (0.0, 1.0))
    ...     print(norm, np.round(np.asarray(d).astype(float), 3).tolist())
    l2 [[0.3, 0.1]]
    linf [[0.3, 0.1]]
    >>> d = project_to_hyperplane(t, w, b, "l2", (0.0, 10.0))  # box too far
    >>> np.round(np.asarray(d).astype(float), 3).tolist()
    [[0.2, 0.2]]

    Args:
        t: `(batch, features)` points.
        w: `(batch, features)` normals of the hyperplanes.
        b: `(batch,)` offsets.
        norm: `"linf"` or `"l2"`.
        clip_values: `(low, high)` box.

    Returns:
        The steps `d`, shaped like `t`.
    """
    t, w, b = (ops.convert_to_tensor(v, "float32") for v in (t, w, b))
    low, high = clip_values
    gap = b - ops.sum(w * t, axis=1)
    direction = ops.sign(gap)[:, None] * ops.sign(w)
    room = ops.where(direction > 0, high - t, t - low)
    room = ops.where(direction == 0, 0.0, room)
    moving = w != 0
    rate = ops.abs(w) if norm == "l2" else ops.cast(moving, "float32")
    gain = ops.abs(w)
    need = ops.abs(gap)
    breaks = ops.where(moving, room / ops.where(moving, rate, 1.0), math.inf)
    order = ops.argsort(breaks, axis=1)
    breaks = ops.take_along_axis(breaks, order, axis=1)
    slope = ops.take_along_axis(gain * rate, order, axis=1)
    held = ops.take_along_axis(gain * room, order, axis=1)
    slope_left = ops.sum(slope, axis=1, keepdims=True) - (
        ops.cumsum(slope, axis=1) - slope
    )
    held_before = ops.cumsum(held, axis=1) - held
    # The gain when `lam` reaches each breakpoint; it never decreases.
    reached = ops.where(
        ops.isfinite(breaks),
        breaks * (slope_left - slope) + held_before + held,
        math.inf,
    )
    segment = ops.sum(
        ops.cast(reached < need[:, None], "int32"), axis=1, keepdims=True
    )
    segment = ops.minimum(segment, t.shape[1] - 1)
    lam = (need[:, None] - ops.take_along_axis(held_before, segment, axis=1)) / (
        ops.maximum(ops.take_along_axis(slope_left, segment, axis=1), 1e-30)
    )
    d = direction * ops.minimum(lam * rate, room)
    corner = need >= ops.sum(gain * room, axis=1)
    return ops.where(corner[:, None], direction * room, d)


class FABT(Attack):
    """Targeted Fast Adaptive Boundary attack (FAB-T), L-inf and L2.

    A minimum-norm attack: for each target class `t` (the 2nd to
    `n_target_classes + 1`-th largest clean logit, as APGD-T), it walks to
    the decision boundary between `y` and `t` along its linearisation.
    From `x_0 = x`, each step projects both the iterate `x_k` and the clean
    input `x` onto the hyperplane `f_t - f_y = 0` of the linearised model
    within the input box (`project_to_hyperplane`), giving `d_1`, `d_2`,
    and moves to
    ```python
    x_{k+1} = clip((1 - a) * (x_k + eta * d_1) + a * (x + eta * d_2))
    a = min(|d_1| / (|d_1| + |d_2|), alpha_max)
    ```
    An iterate the model misclassifies is kept when it is the closest to
    `x` so far, and the walk steps back towards `x` (`x + beta * (x_{k+1}
    - x)`). Each input keeps its closest misclassified point if it lies
    within `eps`, else the clean input; later targets run on the inputs not
    yet misclassified. Further restarts start at a random point at half the
    radius.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.full((2, 4), 0.5, "float32")
    >>> attack = FABT(model, eps=0.5, steps=10)
    >>> attack.name, attack.generate(x, np.array([0, 1])).shape
    ('FAB-T', (2, 4))

    Args:
        model: A Keras classifier.
        eps: Radius of the threat model (`float("inf")` keeps every point
            found).
        n_target_classes: Number of target classes. Defaults to `9`.
        steps: Iterations per target and restart. Defaults to `100`.
        restarts: Runs per target; the later ones start at random.
            Defaults to `1`.
        alpha_max: Largest weight `a` of the step from `x`. Defaults to
            `0.1`.
        eta: Overshoot of each projection. Defaults to `1.05`.
        beta: Backward step after a success. Defaults to `0.9`.
        **kwargs: `norm`, `clip_values`, `outputs`, `batch_size`, `seed` as
            in `Attack`.
    """

    name = "FAB-T"
    compile_batch = False

    def __init__(
        self,
        model,
        *,
        eps,
        n_target_classes=9,
        steps=100,
        restarts=1,
        alpha_max=0.1,
        eta=1.05,
        beta=0.9,
        **kwargs,
    ):
        super().__init__(model, eps=eps, **kwargs)
        self.n_target_classes = check_positive(
            "n_target_classes", n_target_classes, integer=True
        )
        self.steps = check_positive("steps", steps, integer=True)
        self.restarts = check_positive("restarts", restarts, integer=True)
        self.alpha_max = check_number(
            "alpha_max", alpha_max, low=0, high=1, closed="right"
        )
        self.eta = check_number("eta", eta, low=1)
        self.beta = check_number(
            "beta", beta, low=0, high=1, closed="neither"
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            n_target_classes=self.n_target_classes,
            steps=self.steps,
            restarts=self.restarts,
            alpha_max=self.alpha_max,
            eta=self.eta,
            beta=self.beta,
        )
        return config

    def _clean(self, x, y):
        """Per input, its target classes (a row) and whether it is wrong."""
        logits = self.logits(x)
        targets = target_classes(logits, self.n_target_classes)
        return ops.transpose(targets), misclassified(logits, y)

    def _attack_batch(self, x, y, keys):
        # Runs are compiled one by one, each on the inputs no earlier run
        # misclassified; see `APGD._attack_batch`.
        run = self._compiled("_run")
        x_kept = np.array(x)
        targets, fooled = self._compiled("_clean")(x, y)
        # Inputs misclassified from the start need no attack.
        for index, target in enumerate(targets.T):
            for restart in range(self.restarts):
                left = np.flatnonzero(~fooled)
                if not len(left):
                    return x_kept
                x_start = x[left]
                if restart:
                    stream = randomness.stream(
                        keys[left], index * self.restarts + restart
                    )
                    x_start = self._compiled("_random_start")(x[left], stream)
                x_adv, distance = run(x[left], y[left], target[left], x_start)
                found = distance <= self.eps
                x_kept[left[found]] = x_adv[found]
                fooled[left[found]] = True
        return x_kept

    def _random_start(self, x, keys):
        low, high = self.clip_values
        radius = 0.5 * min(self.eps, high - low)
        features = tuple(x.shape[1:])
        if self.norm == "linf":
            t = randomness.uniform(keys, features, minval=-1.0, maxval=1.0)
        else:
            t = randomness.normal(keys, features)
        flat = ops.reshape(t, (-1, int(np.prod(features))))
        size = expand_like(_norm(flat, self.norm), t)
        return ops.clip(x + radius * t / ops.maximum(size, 1e-12), low, high)

    def _run(self, x, y, target, x_start):
        low, high = self.clip_values
        batch = ops.shape(x)[0]
        features = int(np.prod(x.shape[1:]))

        def flat(t):
            return ops.reshape(t, (-1, features))

        def difference(x_k):
            logits = self.logits(x_k)
            index = ops.stack([target, y], axis=1)
            pair = ops.take_along_axis(logits, ops.cast(index, "int32"), axis=1)
            return ops.sum(pair[:, 0] - pair[:, 1]), pair[:, 0] - pair[:, 1]

        def body(i, carry):
            x_k, best, distance = carry
            _, gap, grad = backends.value_and_grad(difference, x_k)
            grad = flat(grad)
            offset = ops.sum(grad * flat(x_k), axis=1) - gap
            d_k = project_to_hyperplane(
                flat(x_k), grad, offset, self.norm, self.clip_values
            )
            d_0 = project_to_hyperplane(
                flat(x), grad, offset, self.norm, self.clip_values
            )
            size_k = ops.maximum(_norm(d_k, self.norm), 1e-8)
            size_0 = ops.maximum(_norm(d_0, self.norm), 1e-8)
            alpha = ops.minimum(size_k / (size_k + size_0), self.alpha_max)
            alpha = expand_like(alpha, x)
            x_k = ops.clip(
                (1.0 - alpha) * (x_k + self.eta * ops.reshape(d_k, ops.shape(x)))
                + alpha * (x + self.eta * ops.reshape(d_0, ops.shape(x))),
                low,
                high,
            )
            wrong = misclassified(self.logits(x_k), y)
            size = _norm(flat(x_k - x), self.norm)
            closer = ops.logical_and(wrong, size < distance)
            best = ops.where(expand_like(closer, x), x_k, best)
            distance = ops.where(closer, size, distance)
            x_k = ops.where(
                expand_like(wrong, x), x + self.beta * (x_k - x), x_k
            )
            return x_k, best, distance

        _, best, distance = ops.fori_loop(
            0,
            self.steps,
            body,
            (ops.convert_to_tensor(x_start), x, ops.full((batch,), math.inf)),
        )
        return ops.stop_gradient(best), distance
