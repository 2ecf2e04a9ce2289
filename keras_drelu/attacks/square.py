"""The Square attack (Andriushchenko et al., 2020), L-inf and L2."""

import math

import numpy as np
from keras import ops

from keras_drelu import backends
from keras_drelu.arguments import check_bool
from keras_drelu.arguments import check_number
from keras_drelu.arguments import check_positive
from keras_drelu.attacks import randomness
from keras_drelu.attacks.base import Attack
from keras_drelu.attacks.losses import margin
from keras_drelu.attacks.pgd import expand_like

# Random draws of an iteration `i`: `_DRAWS * (i + 1) + k`, one `k` per use
# (the start draws with `i = -1`).
_DRAWS = 8

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
        return ops.reshape(x, (-1, *self.shape))

    def to_input(self, z):
        return ops.reshape(z, (-1, *self.input_shape))

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


def _ring_values(count):
    """`v[k] = sum_{j >= k} 1 / (j + 1)^2` over `count` rings, at ring `k`."""
    weights = 1.0 / np.square(np.arange(count) + 1.0)
    return np.cumsum(weights[::-1])[::-1]


def _rings(height, width):
    """Concentric rectangles of weight `1 / (k + 1)^2`, unit L2 norm.

    AutoAttack's `eta_rectangles`: a cell `k` rings from the centre holds
    `sum_{j >= k} 1 / (j + 1)^2`, so the values peak at the centre.
    """
    rows = np.abs(np.arange(height) - height // 2)
    cols = np.abs(np.arange(width) - width // 2)
    ring = np.maximum(rows[:, None], cols[None, :])
    values = _ring_values(max(height // 2 + 1, width // 2 + 1))[ring]
    return values / max(np.linalg.norm(values), 1e-12)


def _eta(height, width, flat):
    """Square-L2's window pattern: `+` rings on one half, `-` on the other.

    The halves split the rows of a square window (whose pattern the attack
    transposes at random) and the features of a flat one. A float32 numpy
    array `(height, width)`.
    """
    if flat:
        half = width // 2
        pattern = np.concatenate(
            [_rings(height, half), -_rings(height, width - half)], axis=1
        )
    else:
        half = height // 2
        pattern = np.concatenate(
            [_rings(half, width), -_rings(height - half, width)], axis=0
        )
    return (pattern / max(np.linalg.norm(pattern), 1e-12)).astype("float32")


def _placed_eta(grid, top, left, height, width, transpose):
    """`_eta(height, width)` placed at `(top, left)` of the grid, `(H, W)`.

    The window's size and place are tensors (they change from one
    iteration to the next inside the compiled loop), so the pattern is
    computed cell by cell over the whole grid, a shape known when tracing;
    a transposed pattern (square windows only) swaps the cell's row and
    column within the window.
    """
    rows = ops.arange(grid.height, dtype="int32")[:, None] - top
    cols = ops.arange(grid.width, dtype="int32")[None, :] - left
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    if grid.flat:
        split = width // 2
        first = cols < split
        along = ops.where(first, cols, cols - split)
        across = rows
        part_along = ops.where(first, split, width - split)
        part_across = height
    else:
        row = ops.where(transpose, cols, rows)
        col = ops.where(transpose, rows, cols)
        split = height // 2
        first = row < split
        along = col
        across = ops.where(first, row, row - split)
        part_along = width
        part_across = ops.where(first, split, height - split)
    ring = ops.maximum(
        ops.abs(across - part_across // 2), ops.abs(along - part_along // 2)
    )
    count = ops.maximum(part_across // 2 + 1, part_along // 2 + 1)
    # `sum_{ring <= j < count} 1 / (j + 1)^2` from a table of prefix sums.
    table = np.concatenate(
        [[0.0], np.cumsum(1.0 / np.square(np.arange(max(grid.shape)) + 1.0))]
    )
    prefix = ops.convert_to_tensor(table.astype("float32"))
    values = ops.take(prefix, count) - ops.take(prefix, ops.minimum(ring, count))
    values = ops.where(inside, values, 0.0)

    def unit(mask):
        norm = ops.sqrt(ops.sum(ops.where(mask, ops.square(values), 0.0)))
        return ops.where(mask, values, 0.0) / ops.maximum(norm, 1e-12)

    pattern = unit(inside & first) - unit(inside & ~first)
    return pattern / ops.maximum(ops.sqrt(ops.sum(ops.square(pattern))), 1e-12)


def _per_example_l2(t, axes=(1, 2, 3)):
    return ops.sqrt(ops.sum(ops.square(t), axis=axes, keepdims=True))


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
            [queries for _, queries in batches]
        ).astype("int64")
        return np.concatenate([x_adv for x_adv, _ in batches])

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

    def _attack_batch(self, x, y, keys):
        grid = _Grid(x.shape[1:])
        images = grid.to_grid(x)
        low, high = self.clip_values
        start = (
            self._stripes(images, grid, keys)
            if self.norm == "linf"
            else self._tiles(images, grid, keys)
        )
        x_best = ops.clip(images + start, low, high)
        margin_best = self._margin(grid.to_input(x_best), y)
        queries = ops.ones(ops.shape(y), "int32")
        shapes = ops.convert_to_tensor(self.window_shapes(x.shape[1:]))
        settings = dict(
            input_shape=tuple(x.shape[1:]), norm=self.norm, eps=self.eps,
            clip_values=self.clip_values, n_queries=self.n_queries,
        )
        # The dozens of small operations between two forward passes, in one
        # kernel: on a small model they cost as much as the pass when run
        # one by one.
        advance = backends.fuse(_advance, **settings)

        def body(i, x_best, margin_best, queries, x_new, more):
            logits = self.logits(grid.to_input(x_new))
            return (
                i + 1,
                *advance(
                    i, x_best, margin_best, queries, x_new, logits, y, images,
                    shapes, keys,
                ),
            )

        i = ops.convert_to_tensor(0, "int32")
        more = ops.any(margin_best >= 0.0)
        _, x_best, _, queries, _, _ = ops.while_loop(
            lambda *state: state[-1],
            body,
            (
                i, x_best, margin_best, queries,
                _propose(i, images, x_best, shapes, keys, **settings), more,
            ),
        )
        return grid.to_input(x_best), queries

    def _stripes(self, images, grid, keys):
        """L-inf start: `+-eps`, one sign per column (feature) and channel."""
        return self.eps * randomness.signs(keys, (1, grid.width, grid.channels))

    def _tiles(self, images, grid, keys):
        """L2 start: `_eta` patterns on a grid of tiles, at radius `eps`.

        As AutoAttack: tiles of side `s`, a fifth of the height (of the
        features for a flat input), `h // s` by `w // s` of them from a
        centring offset, cut at the border; each tile's pattern is
        transposed at random and takes one random sign per channel.
        """
        n = ops.shape(images)[0]
        length = grid.width if grid.flat else grid.height
        side = max(length // 5, 1)
        offset = max((length - 5 * side) // 2, 0)
        height = 1 if grid.flat else side
        rows = 1 if grid.flat else grid.height // side
        cols = grid.width // side
        pattern = ops.convert_to_tensor(_eta(height, side, grid.flat))
        if not grid.flat:
            coins = randomness.shared_uniform(keys, (rows, cols, 1, 1), 1)
            pattern = ops.where(coins < 0.5, ops.transpose(pattern), pattern)
        tiles = pattern[None, ..., None] * randomness.signs(
            keys, (rows, cols, 1, 1, grid.channels)
        )
        tiles = ops.reshape(
            ops.transpose(tiles, (0, 1, 3, 2, 4, 5)),
            (n, rows * height, cols * side, grid.channels),
        )
        top = 0 if grid.flat else offset
        below = max(grid.height - top - rows * height, 0)
        right = max(grid.width - offset - cols * side, 0)
        tiles = tiles[:, : grid.height - top, : grid.width - offset]
        delta = ops.pad(tiles, ((0, 0), (top, below), (offset, right), (0, 0)))
        return self.eps * delta / (_per_example_l2(delta) + 1e-12)


def _propose(
    i, images, x_best, shapes, keys, *, input_shape, norm, eps, clip_values,
    n_queries,
):
    """Square's proposal at iteration `i`, in the window shape of `shapes`.

    The last iteration proposes for one more, never evaluated.
    """
    shape = ops.take(shapes, ops.minimum(i, n_queries - 1), axis=0)
    step = _linf_step if norm == "linf" else _l2_step
    return step(
        images, x_best, _Grid(input_shape), shape, keys, _DRAWS * (i + 1),
        eps=eps, clip_values=clip_values,
    )


def _advance(
    i, x_best, margin_best, queries, x_new, logits, y, images, shapes, keys, *,
    n_queries, **settings,
):
    """Keeps `x_new` where it lowers the margin; proposes the next.

    Also whether to go on: queries left and an input not yet misclassified.
    """
    margin_new = -margin(logits, y)
    active = margin_best >= 0.0
    improved = ops.logical_and(active, margin_new < margin_best)
    x_best = ops.where(expand_like(improved, images), x_new, x_best)
    margin_best = ops.where(improved, margin_new, margin_best)
    more = ops.logical_and(i + 1 < n_queries, ops.any(margin_best >= 0.0))
    return (
        x_best,
        margin_best,
        queries + ops.cast(active, "int32"),
        _propose(
            i + 1, images, x_best, shapes, keys, n_queries=n_queries,
            **settings,
        ),
        more,
    )


def _window(grid, keys, height, width, draw):
    """A mask `(1, H, W, 1)` of one window at a random place, its corner.

    The place is shared by the batch, as in AutoAttack.
    """
    u = randomness.shared_uniform(keys, (2,), draw)
    spans = ops.cast(
        ops.stack([grid.height - height + 1, grid.width - width + 1]),
        "float32",
    )
    corner = ops.minimum(
        ops.cast(ops.floor(u * spans), "int32"),
        ops.cast(spans, "int32") - 1,
    )
    top, left = corner[0], corner[1]
    rows = ops.arange(grid.height, dtype="int32")[None, :, None, None]
    cols = ops.arange(grid.width, dtype="int32")[None, None, :, None]
    inside = (
        (rows >= top)
        & (rows < top + height)
        & (cols >= left)
        & (cols < left + width)
    )
    return ops.cast(inside, "float32"), top, left


def _linf_step(images, x_best, grid, shape, keys, draw, *, eps, clip_values):
    """An L-inf proposal: a window moved to `x +- eps`."""
    low, high = clip_values
    window, _, _ = _window(grid, keys, shape[0], shape[1], draw)
    signs = randomness.signs(keys, (1, 1, grid.channels), draw + 1)
    corner = images + eps * signs
    x_new = x_best + window * (corner - x_best)
    return ops.clip(x_new, low, high)


def _l2_step(images, x_best, grid, shape, keys, draw, *, eps, clip_values):
    """An L2 proposal: the perturbation of a second window moved into the
    first."""
    low, high = clip_values
    height, width = shape[0], shape[1]
    delta = x_best - images
    first, top, left = _window(grid, keys, height, width, draw)
    second, _, _ = _window(grid, keys, height, width, draw + 1)
    both = ops.maximum(first, second)
    spatial = (1, 2)
    norm_first = _per_example_l2(delta * first, spatial)
    norm_both = _per_example_l2(delta * both, spatial)
    norm_all = _per_example_l2(delta)
    transpose = randomness.shared_uniform(keys, (), draw + 2) < 0.5
    pattern = _placed_eta(grid, top, left, height, width, transpose)
    signs = randomness.signs(keys, (1, 1, grid.channels), draw + 3)
    pattern = pattern[None, :, :, None] * signs
    fresh = pattern + delta * first / (norm_first + 1e-12)
    budget = ops.sqrt(
        ops.maximum(eps**2 - ops.square(norm_all), 0.0)
        / grid.channels
        + ops.square(norm_both)
    )
    fresh = fresh / (_per_example_l2(fresh, spatial) + 1e-12) * budget
    delta = delta * (1.0 - both) + fresh
    delta = eps * delta / (_per_example_l2(delta) + 1e-12)
    return ops.clip(images + delta, low, high)
