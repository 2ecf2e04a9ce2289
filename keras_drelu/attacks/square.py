"""The Square attack (Andriushchenko et al., 2020), L-inf and L2."""

import math

import numpy as np
import tensorflow as tf

from keras_drelu.arguments import check_bool
from keras_drelu.arguments import check_number
from keras_drelu.arguments import check_positive
from keras_drelu.attacks.base import Attack
from keras_drelu.attacks.losses import margin
from keras_drelu.attacks.pgd import _expand_like

# `p` is halved each time the iteration index passes one of these (the
# `p_selection` of the paper and of AutoAttack).
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_schedule(i, n_queries, p_init, rescale=True):
    """The fraction of the input Square changes at iteration `i` (from 0).

    AutoAttack's `p_selection`: `p_init`, halved once for each threshold of
    10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 that the index exceeds.
    With `rescale` the index is first mapped to a 10000-query budget and
    truncated, `int(i / n_queries * 10000)`, so that small budgets shrink
    their windows too; AutoAttack's standard evaluation does not rescale.

    Example:

    >>> p_schedule(10, 5000, 0.8, rescale=False), p_schedule(11, 5000, 0.8, rescale=False)
    (0.8, 0.4)
    >>> p_schedule(1, 952, 0.8)  # int(10.50...) = 10: not yet halved
    0.8

    Args:
        i: Iteration index, from 0.
        n_queries: Query budget of the attack.
        p_init: Initial fraction.
        rescale: Whether to map `i` to a 10000-query budget. Defaults to
            `True`.

    Returns:
        A float.
    """
    if rescale:
        i = int(i / n_queries * 10000)
    return p_init / 2 ** sum(i > threshold for threshold in _HALVINGS)


class _Grid:
    """An input seen as an image `(height, width, channels)` for Square.

    Images `(h, w, c)` and `(h, w)` keep their layout; any other input is
    laid out as one row `(1, features, 1)`, whose windows are runs of
    features, so that vectors (tabular data, flattened images) are attacked
    too.
    """

    def __init__(self, input_shape):
        if None in input_shape:
            raise ValueError(
                "Square needs inputs of a known shape. Received: inputs of "
                f"shape (batch, {', '.join(map(str, input_shape))})"
            )
        self.input_shape = tuple(input_shape)
        if len(input_shape) == 3:
            self.shape = self.input_shape
        elif len(input_shape) == 2:
            self.shape = (*self.input_shape, 1)
        else:
            self.shape = (1, int(np.prod(input_shape)), 1)
        self.height, self.width, self.channels = self.shape
        self.flat = self.height == 1

    def to_grid(self, x):
        return tf.reshape(x, [-1, *self.shape])

    def to_input(self, z):
        return tf.reshape(z, [-1, *self.input_shape])

    def side(self, p, smallest):
        """Side of a window covering a fraction `p` of the grid."""
        area = p * self.height * self.width
        side = area if self.flat else math.sqrt(area)
        return max(int(round(side)), smallest)

    def window_shape(self, side):
        if self.flat:
            return 1, min(side, self.width)
        side = min(side, self.height, self.width)
        return side, side


def _rings(height, width):
    """Concentric rectangles of weight `1 / (k + 1)^2`, unit L2 norm.

    AutoAttack's `eta_rectangles`: a cell `k` rings from the centre holds
    `sum_{j >= k} 1 / (j + 1)^2`, so the values peak at the centre.
    """
    rows = tf.abs(tf.range(height) - height // 2)
    cols = tf.abs(tf.range(width) - width // 2)
    ring = tf.maximum(rows[:, None], cols[None, :])
    count = tf.maximum(height // 2 + 1, width // 2 + 1)
    weights = 1.0 / tf.square(tf.cast(tf.range(count) + 1, tf.float32))
    values = tf.gather(tf.cumsum(weights, reverse=True), ring)
    return values / tf.maximum(tf.norm(values), 1e-12)


def _eta(height, width, flat):
    """Square-L2's window pattern: `+` rings on one half, `-` on the other.

    The halves split the rows of a square window (whose pattern the attack
    transposes at random) and the features of a flat one.
    """
    if flat:
        half = width // 2
        pattern = tf.concat(
            [_rings(height, half), -_rings(height, width - half)], axis=1
        )
    else:
        half = height // 2
        pattern = tf.concat(
            [_rings(half, width), -_rings(height - half, width)], axis=0
        )
    return pattern / tf.maximum(tf.norm(pattern), 1e-12)


def _per_example_l2(t, axes=(1, 2, 3)):
    return tf.sqrt(tf.reduce_sum(tf.square(t), axis=axes, keepdims=True))


class Square(Attack):
    """Gradient-free random search over square windows (Square attack).

    Each query proposes a change in one random window covering a fraction
    `p` of the input (`p_init` at first, halved on `p_schedule`) and keeps
    it when it lowers the margin `z_y - max_{i != y} z_i`; an input stops
    once misclassified (its margin below 0). Only forward passes are used,
    so a model whose input gradient is zero or masked is attacked as well
    as any other.

    - L-inf: starts from vertical stripes of `+-eps` (one sign per column
      and channel); a proposal moves its window to `x +- eps`, one random
      sign per channel.
    - L2 (AutoAttack's version): starts from a grid of windows holding
      `_eta` patterns (concentric rings, `+` on one half and `-` on the
      other) scaled to radius `eps`; a proposal takes the perturbation out
      of a second random window and puts it, with the budget left, into
      the first, as a fresh pattern plus the window's old content, then
      rescales the whole perturbation to norm `eps`.

    Inputs `(batch, h, w, c)` and `(batch, h, w)` are images; inputs of any
    other shape are laid out as one row of features, whose windows are runs
    of `p * features` features. Each input spends one query at the start
    and one per iteration until it is misclassified: `queries` holds the
    count of the last `generate` call (at most `1 + n_queries`).

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential(
    ...     [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
    ... )
    >>> x = np.full((2, 4, 4, 1), 0.5, "float32")
    >>> attack = Square(model, eps=0.1, n_queries=20, seed=0)
    >>> x_adv = attack.generate(x, np.array([0, 1]))
    >>> bool(np.abs(x_adv - x).max() <= 0.1 + 1e-6), attack.queries.shape
    (True, (2,))

    Args:
        model: A Keras classifier.
        eps: Radius of the threat model.
        n_queries: Iterations (queries after the first) per input. Defaults
            to `5000`.
        p_init: Initial fraction of the input changed per query. Defaults
            to `0.8`.
        rescale_schedule: Whether `p_schedule` maps the budget to 10000
            queries. Defaults to `True`.
        **kwargs: `norm` (`"linf"` or `"l2"`), `clip_values`, `outputs`,
            `batch_size`, `seed` as in `Attack`.
    """

    name = "Square"
    gradient_free = True
    kind = "black-box"

    def __init__(
        self, model, *, eps, n_queries=5000, p_init=0.8, rescale_schedule=True,
        **kwargs,
    ):
        super().__init__(model, eps=eps, **kwargs)
        self.n_queries = check_positive("n_queries", n_queries, integer=True)
        self.p_init = check_number(
            "p_init", p_init, low=0, high=1, closed="right"
        )
        self.rescale_schedule = check_bool(
            "rescale_schedule", rescale_schedule
        )
        self.queries = np.zeros([0], "int64")
        self._rng = (
            tf.random.Generator.from_non_deterministic_state()
            if self.seed is None
            else tf.random.Generator.from_seed(self.seed)
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            n_queries=self.n_queries,
            p_init=self.p_init,
            rescale_schedule=self.rescale_schedule,
        )
        return config

    def generate(self, x, y):
        self.queries = np.zeros([0], "int64")
        return super().generate(x, y)

    def _collect(self, batches):
        self.queries = np.concatenate(
            [queries.numpy() for _, queries in batches]
        ).astype("int64")
        return np.concatenate([x_adv.numpy() for x_adv, _ in batches])

    def window_shapes(self, input_shape):
        """The window `(height, width)` of each iteration, for an input shape.

        Example:

        >>> import keras
        >>> model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()])
        >>> attack = Square(model, eps=0.1, n_queries=100)
        >>> attack.window_shapes((8, 8, 1))[[0, 1, 99]].tolist()
        [[7, 7], [4, 4], [1, 1]]
        >>> attack.window_shapes((64,))[0].tolist()  # runs of features
        [1, 51]
        """
        grid = _Grid(input_shape)
        smallest = 1 if self.norm == "linf" else 3
        shapes = []
        for i in range(self.n_queries):
            p = p_schedule(
                i, self.n_queries, self.p_init, self.rescale_schedule
            )
            side = grid.side(p, smallest)
            if self.norm == "l2" and side % 2 == 0:
                side += 1
            shapes.append(grid.window_shape(side))
        return np.array(shapes, "int32")

    def _margin(self, x, y):
        return -margin(self.logits(x), y)

    def _sign(self, shape):
        return tf.where(self._rng.uniform(shape) < 0.5, -1.0, 1.0)

    def _window(self, grid, height, width):
        """A mask `(1, H, W, 1)` of one window at a random position."""
        top = self._rng.uniform([], 0, grid.height - height + 1, tf.int32)
        left = self._rng.uniform([], 0, grid.width - width + 1, tf.int32)
        rows = tf.range(grid.height)[None, :, None, None]
        cols = tf.range(grid.width)[None, None, :, None]
        inside = (
            (rows >= top)
            & (rows < top + height)
            & (cols >= left)
            & (cols < left + width)
        )
        return tf.cast(inside, tf.float32), top, left

    def _attack_batch(self, x, y):
        grid = _Grid(x.shape[1:])
        images = grid.to_grid(x)
        low, high = self.clip_values
        n = tf.shape(images)[0]
        start = (
            self._stripes(images, grid)
            if self.norm == "linf"
            else self._tiles(images, grid)
        )
        x_best = tf.clip_by_value(images + start, low, high)
        margin_best = self._margin(grid.to_input(x_best), y)
        queries = tf.ones([n], tf.int32)
        shapes = tf.constant(self.window_shapes(x.shape[1:]))
        propose = self._linf_step if self.norm == "linf" else self._l2_step

        def body(i, x_best, margin_best, queries):
            active = margin_best >= 0.0
            x_new = propose(images, x_best, grid, shapes[i])
            margin_new = self._margin(grid.to_input(x_new), y)
            improved = active & (margin_new < margin_best)
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
                queries + tf.cast(active, tf.int32),
            )

        _, x_best, _, queries = tf.while_loop(
            lambda i, _, m, q: (i < self.n_queries) & tf.reduce_any(m >= 0.0),
            body,
            (tf.constant(0), x_best, margin_best, queries),
        )
        return grid.to_input(x_best), queries

    def _stripes(self, images, grid):
        """L-inf start: `+-eps`, one sign per column (feature) and channel."""
        n = tf.shape(images)[0]
        return self.eps * self._sign([n, 1, grid.width, grid.channels])

    def _linf_step(self, images, x_best, grid, shape):
        low, high = self.clip_values
        window, _, _ = self._window(grid, shape[0], shape[1])
        n = tf.shape(images)[0]
        corner = images + self.eps * self._sign([n, 1, 1, grid.channels])
        x_new = x_best + window * (corner - x_best)
        return tf.clip_by_value(x_new, low, high)

    def _tiles(self, images, grid):
        """L2 start: `_eta` patterns on a grid of tiles, at radius `eps`.

        As AutoAttack: tiles of side `s`, a fifth of the height (of the
        features for a flat input), `h // s` by `w // s` of them from a
        centring offset, cut at the border; each tile's pattern is
        transposed at random and takes one random sign per channel.
        """
        n = tf.shape(images)[0]
        length = grid.width if grid.flat else grid.height
        side = max(length // 5, 1)
        offset = max((length - 5 * side) // 2, 0)
        height = 1 if grid.flat else side
        rows = 1 if grid.flat else grid.height // side
        cols = grid.width // side
        pattern = _eta(height, side, grid.flat)
        if not grid.flat:
            coins = self._rng.uniform([rows, cols, 1, 1])
            pattern = tf.where(coins < 0.5, tf.transpose(pattern), pattern)
        tiles = pattern[None, ..., None] * self._sign(
            [n, rows, cols, 1, 1, grid.channels]
        )
        tiles = tf.reshape(
            tf.transpose(tiles, [0, 1, 3, 2, 4, 5]),
            [n, rows * height, cols * side, grid.channels],
        )
        top = 0 if grid.flat else offset
        below = max(grid.height - top - rows * height, 0)
        right = max(grid.width - offset - cols * side, 0)
        tiles = tiles[:, : grid.height - top, : grid.width - offset]
        delta = tf.pad(tiles, [[0, 0], [top, below], [offset, right], [0, 0]])
        return self.eps * delta / (_per_example_l2(delta) + 1e-12)

    def _l2_step(self, images, x_best, grid, shape):
        low, high = self.clip_values
        height, width = shape[0], shape[1]
        n = tf.shape(images)[0]
        delta = x_best - images
        first, top, left = self._window(grid, height, width)
        second, _, _ = self._window(grid, height, width)
        both = tf.maximum(first, second)
        spatial = (1, 2)
        norm_first = _per_example_l2(delta * first, spatial)
        norm_both = _per_example_l2(delta * both, spatial)
        norm_all = _per_example_l2(delta)
        pattern = _eta(height, width, grid.flat)
        if not grid.flat:
            pattern = tf.cond(
                self._rng.uniform([]) < 0.5,
                lambda: tf.transpose(pattern),
                lambda: pattern,
            )
        pattern = tf.pad(
            pattern,
            [
                [top, grid.height - top - height],
                [left, grid.width - left - width],
            ],
        )[None, :, :, None] * self._sign([n, 1, 1, grid.channels])
        fresh = pattern + delta * first / (norm_first + 1e-12)
        budget = tf.sqrt(
            tf.maximum(self.eps**2 - tf.square(norm_all), 0.0)
            / grid.channels
            + tf.square(norm_both)
        )
        fresh = fresh / (_per_example_l2(fresh, spatial) + 1e-12) * budget
        delta = delta * (1.0 - both) + fresh
        delta = self.eps * delta / (_per_example_l2(delta) + 1e-12)
        return tf.clip_by_value(images + delta, low, high)
