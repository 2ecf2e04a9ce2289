"""The Square attack, L-inf (Andriushchenko et al., 2020)."""

import tensorflow as tf

from keras_drelu.arguments import check_choice
from keras_drelu.arguments import check_number
from keras_drelu.arguments import check_positive
from keras_drelu.attacks.base import Attack
from keras_drelu.attacks.losses import margin
from keras_drelu.attacks.pgd import _expand_like

# Square's step-size schedule: `p` is halved after each of these fractions
# of a 10000-query budget (the paper's `p_selection`), rescaled here to the
# budget given so that small budgets still shrink their squares.
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


class Square(Attack):
    """Gradient-free random search over square-shaped L-inf perturbations.

    Starts from vertical stripes of `+-eps`, then each query proposes moving
    one random square window of side `s` to a random corner `+-eps` per
    channel and keeps the proposal when it lowers the margin
    `z_y - max_{i != y} z_i`. The window covers a fraction `p` of the image,
    `p_init` at first and halved on the paper's schedule. Only forward
    passes are used, so a model whose input gradient is zero or masked is
    attacked as well as any other. Inputs are images `(batch, height,
    width, channels)` or `(batch, height, width)`.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential(
    ...     [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
    ... )
    >>> x = np.full((2, 4, 4, 1), 0.5, "float32")
    >>> x_adv = Square(model, eps=0.1, n_queries=20, seed=0).generate(x, np.array([0, 1]))
    >>> bool(np.abs(x_adv - x).max() <= 0.1 + 1e-6)
    True

    Args:
        model: A Keras image classifier.
        eps: Radius of the L-inf ball.
        n_queries: Query budget per input. Defaults to `5000`.
        p_init: Initial fraction of pixels changed per query. Defaults to
            `0.8`.
        **kwargs: `clip_values`, `outputs`, `batch_size`, `seed` as in
            `Attack`; `norm` must be `"linf"` (Square-L2 is not written
            yet).
    """

    name = "Square"
    gradient_free = True
    kind = "black-box"

    def __init__(self, model, *, eps, n_queries=5000, p_init=0.8, **kwargs):
        # Square-L2 is not written yet.
        check_choice("norm", kwargs.get("norm", "linf"), ("linf",))
        super().__init__(model, eps=eps, **kwargs)
        self.n_queries = check_positive("n_queries", n_queries, integer=True)
        self.p_init = check_number(
            "p_init", p_init, low=0, high=1, closed="right"
        )
        self._rng = (
            tf.random.Generator.from_non_deterministic_state()
            if self.seed is None
            else tf.random.Generator.from_seed(self.seed)
        )

    def get_config(self):
        config = super().get_config()
        config.pop("norm")
        config.update(n_queries=self.n_queries, p_init=self.p_init)
        return config

    def _p(self, i):
        scaled = tf.cast(i, tf.float32) / self.n_queries * 10000.0
        halvings = tf.reduce_sum(
            tf.cast(scaled > tf.constant(_HALVINGS, tf.float32), tf.float32)
        )
        return self.p_init / 2.0**halvings

    def _margin(self, x, y):
        return -margin(self.logits(x), y)

    def _attack_batch(self, x, y):
        rank = x.shape.rank
        if rank not in (3, 4):
            raise ValueError(
                "Square attacks images shaped (batch, height, width[, "
                f"channels]). Received: input of shape {x.shape}"
            )
        images = x if rank == 4 else x[..., None]
        low, high = self.clip_values
        eps = self.eps
        shape = tf.shape(images)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]

        def sign(shape):
            return tf.where(self._rng.uniform(shape) < 0.5, -1.0, 1.0)

        def to_input(z):
            return z if rank == 4 else z[..., 0]

        stripes = eps * sign(tf.stack([n, 1, w, c]))
        x_best = tf.clip_by_value(images + stripes, low, high)
        margin_best = self._margin(to_input(x_best), y)
        rows = tf.range(h)[None, :, None, None]
        cols = tf.range(w)[None, None, :, None]

        def body(i, x_best, margin_best):
            side = tf.cast(
                tf.round(tf.sqrt(self._p(i) * tf.cast(h * w, tf.float32))),
                tf.int32,
            )
            side = tf.clip_by_value(
                side, 1, tf.maximum(tf.minimum(h, w) - 1, 1)
            )
            top = self._rng.uniform([], 0, h - side + 1, dtype=tf.int32)
            left = self._rng.uniform([], 0, w - side + 1, dtype=tf.int32)
            window = (
                (rows >= top)
                & (rows < top + side)
                & (cols >= left)
                & (cols < left + side)
            )
            corner = images + 2.0 * eps * sign(tf.stack([n, 1, 1, c]))
            x_new = tf.where(window, corner, x_best)
            x_new = tf.clip_by_value(
                tf.clip_by_value(x_new, images - eps, images + eps), low, high
            )
            margin_new = self._margin(to_input(x_new), y)
            # Inputs already fooled stop moving (they spend no more queries).
            improved = (margin_new < margin_best) & (margin_best > 0.0)
            return (
                i + 1,
                tf.ensure_shape(
                    tf.where(_expand_like(improved, images), x_new, x_best),
                    images.shape,
                ),
                tf.ensure_shape(
                    tf.where(improved, margin_new, margin_best),
                    margin_best.shape,
                ),
            )

        _, x_best, _ = tf.while_loop(
            lambda i, _, m: (i < self.n_queries - 1) & tf.reduce_any(m > 0.0),
            body,
            (tf.constant(0), x_best, margin_best),
        )
        return to_input(x_best)
