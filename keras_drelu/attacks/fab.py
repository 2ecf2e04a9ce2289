"""Targeted Fast Adaptive Boundary attack, FAB-T (Croce & Hein, 2020)."""

import math

import tensorflow as tf

from keras_drelu.arguments import check_number
from keras_drelu.arguments import check_positive
from keras_drelu.attacks.base import Attack
from keras_drelu.attacks.base import compile_per_instance
from keras_drelu.attacks.pgd import _expand_like
from keras_drelu.attacks.pgd import _misclassified
from keras_drelu.attacks.targets import target_classes


def _norm(t, norm):
    return (
        tf.reduce_max(tf.abs(t), axis=1)
        if norm == "linf"
        else tf.sqrt(tf.reduce_sum(tf.square(t), axis=1))
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
    ...     print(norm, np.round(d.numpy().astype(float), 3).tolist())
    l2 [[0.3, 0.1]]
    linf [[0.3, 0.1]]
    >>> d = project_to_hyperplane(t, w, b, "l2", (0.0, 10.0))  # box too far
    >>> np.round(d.numpy().astype(float), 3).tolist()
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
    t, w, b = (tf.convert_to_tensor(v, tf.float32) for v in (t, w, b))
    low, high = clip_values
    gap = b - tf.reduce_sum(w * t, axis=1)
    direction = tf.sign(gap)[:, None] * tf.sign(w)
    room = tf.where(direction > 0, high - t, t - low)
    room = tf.where(direction == 0, 0.0, room)
    moving = w != 0
    rate = tf.abs(w) if norm == "l2" else tf.cast(moving, tf.float32)
    gain = tf.abs(w)
    need = tf.abs(gap)
    breaks = tf.where(
        moving, room / tf.where(moving, rate, 1.0), math.inf
    )
    order = tf.argsort(breaks, axis=1)
    breaks = tf.gather(breaks, order, batch_dims=1)
    slope = tf.gather(gain * rate, order, batch_dims=1)
    held = tf.gather(gain * room, order, batch_dims=1)
    slope_left = tf.reduce_sum(slope, axis=1, keepdims=True) - tf.cumsum(
        slope, axis=1, exclusive=True
    )
    held_before = tf.cumsum(held, axis=1, exclusive=True)
    # The gain when `lam` reaches each breakpoint; it never decreases.
    reached = tf.where(
        tf.math.is_finite(breaks),
        breaks * (slope_left - slope) + held_before + held,
        math.inf,
    )
    segment = tf.reduce_sum(
        tf.cast(reached < need[:, None], tf.int32), axis=1, keepdims=True
    )
    segment = tf.minimum(segment, tf.shape(t)[1] - 1)
    lam = (need[:, None] - tf.gather(held_before, segment, batch_dims=1)) / (
        tf.maximum(tf.gather(slope_left, segment, batch_dims=1), 1e-30)
    )
    d = direction * tf.minimum(lam * rate, room)
    corner = need >= tf.reduce_sum(gain * room, axis=1)
    return tf.where(corner[:, None], direction * room, d)


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
        self._rng = (
            tf.random.Generator.from_non_deterministic_state()
            if self.seed is None
            else tf.random.Generator.from_seed(self.seed)
        )
        self._compiled_run = compile_per_instance(self._run)
        # Runs are compiled one by one; see `APGD._attack_batch`.
        self._compiled = self._attack_batch

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

    def _attack_batch(self, x, y):
        x_kept = x
        logits = self.logits(x)
        # Inputs misclassified from the start need no attack.
        fooled = _misclassified(logits, y)
        targets = target_classes(logits, self.n_target_classes)
        for target in tf.unstack(targets):
            for restart in range(self.restarts):
                left = tf.where(tf.logical_not(fooled))[:, 0]
                if not len(left):
                    return x_kept
                x_left = tf.gather(x, left)
                x_start = (
                    x_left if restart == 0 else self._random_start(x_left)
                )
                x_adv, distance = self._compiled_run(
                    x_left, tf.gather(y, left), tf.gather(target, left),
                    x_start,
                )
                found = tf.where(distance <= self.eps)[:, 0]
                at = tf.gather(left, found)[:, None]
                x_kept = tf.tensor_scatter_nd_update(
                    x_kept, at, tf.gather(x_adv, found)
                )
                fooled = tf.tensor_scatter_nd_update(
                    fooled, at, tf.ones_like(found, tf.bool)
                )
        return x_kept

    def _random_start(self, x):
        low, high = self.clip_values
        radius = 0.5 * min(self.eps, high - low)
        if self.norm == "linf":
            t = self._rng.uniform(tf.shape(x), -1.0, 1.0)
        else:
            t = self._rng.normal(tf.shape(x))
        flat = tf.reshape(t, [tf.shape(x)[0], -1])
        size = _expand_like(_norm(flat, self.norm), x)
        return tf.clip_by_value(
            x + radius * t / tf.maximum(size, 1e-12), low, high
        )

    def _run(self, x, y, target, x_start):
        low, high = self.clip_values
        batch = tf.shape(x)[0]

        def flat(t):
            return tf.reshape(t, [batch, -1])

        def body(i, x_k, best, distance):
            with tf.GradientTape() as tape:
                tape.watch(x_k)
                logits = self.logits(x_k)
                difference = tf.gather(
                    logits, target, batch_dims=1
                ) - tf.gather(logits, y, batch_dims=1)
            grad = flat(
                tape.gradient(
                    difference, x_k,
                    unconnected_gradients=tf.UnconnectedGradients.ZERO,
                )
            )
            offset = tf.reduce_sum(grad * flat(x_k), axis=1) - difference
            d_k = project_to_hyperplane(
                flat(x_k), grad, offset, self.norm, self.clip_values
            )
            d_0 = project_to_hyperplane(
                flat(x), grad, offset, self.norm, self.clip_values
            )
            size_k = tf.maximum(_norm(d_k, self.norm), 1e-8)
            size_0 = tf.maximum(_norm(d_0, self.norm), 1e-8)
            alpha = tf.minimum(size_k / (size_k + size_0), self.alpha_max)
            alpha = _expand_like(alpha, x)
            x_k = tf.clip_by_value(
                (1.0 - alpha) * (x_k + self.eta * tf.reshape(d_k, tf.shape(x)))
                + alpha * (x + self.eta * tf.reshape(d_0, tf.shape(x))),
                low,
                high,
            )
            wrong = _misclassified(self.logits(x_k), y)
            size = _norm(flat(x_k - x), self.norm)
            closer = wrong & (size < distance)
            best = tf.where(_expand_like(closer, x), x_k, best)
            distance = tf.where(closer, size, distance)
            x_k = tf.where(
                _expand_like(wrong, x), x + self.beta * (x_k - x), x_k
            )
            return (
                i + 1,
                tf.ensure_shape(x_k, x.shape),
                tf.ensure_shape(best, x.shape),
                tf.ensure_shape(distance, y.shape),
            )

        _, _, best, distance = tf.while_loop(
            lambda i, *_: i < self.steps,
            body,
            (tf.constant(0), x_start, x, tf.fill([batch], math.inf)),
        )
        return tf.stop_gradient(best), distance
