"""Tests of the Square attack's mechanics, L-inf and L2, on any input shape."""

import keras
import numpy as np
import pytest

from keras_drelu.attacks import Square
from keras_drelu.attacks.square import _eta
from keras_drelu.attacks.square import _Grid
from keras_drelu.attacks.square import _placed_eta
from keras_drelu.attacks.square import p_schedule


def reference_p_selection(it, n_queries, p_init, rescale):
    """AutoAttack's `SquareAttack.p_selection`, written out as it reads."""
    if rescale:
        it = int(it / n_queries * 10000)
    if 10 < it <= 50:
        return p_init / 2
    if 50 < it <= 200:
        return p_init / 4
    if 200 < it <= 500:
        return p_init / 8
    if 500 < it <= 1000:
        return p_init / 16
    if 1000 < it <= 2000:
        return p_init / 32
    if 2000 < it <= 4000:
        return p_init / 64
    if 4000 < it <= 6000:
        return p_init / 128
    if 6000 < it <= 8000:
        return p_init / 256
    if 8000 < it:
        return p_init / 512
    return p_init


def reference_rectangles(height, width):
    """AutoAttack's `eta_rectangles` (L2), written out as it reads."""
    delta = np.zeros([height, width])
    x_c, y_c = height // 2 + 1, width // 2 + 1
    corner = [x_c - 1, y_c - 1]
    for counter in range(max(x_c, y_c)):
        delta[
            max(corner[0], 0) : min(corner[0] + 2 * counter + 1, height),
            max(0, corner[1]) : min(corner[1] + 2 * counter + 1, width),
        ] += 1.0 / (counter + 1) ** 2
        corner[0] -= 1
        corner[1] -= 1
    return delta / np.sqrt((delta**2).sum())


def reference_eta(side):
    """AutoAttack's `eta` (L2) before its random transposition."""
    delta = np.zeros([side, side])
    delta[: side // 2] = reference_rectangles(side // 2, side)
    delta[side // 2 :] = -reference_rectangles(side - side // 2, side)
    return delta / np.sqrt((delta**2).sum())


@pytest.fixture(scope="module")
def data(digits):
    x, y = digits
    return x[1400:1500], y[1400:1500]


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def constant_model(input_shape, classes=3):
    """Logits `(3, 0, 0, ...)` whatever the input: no query ever helps."""
    model = keras.Sequential(
        [keras.Input(input_shape), keras.layers.Flatten(),
         keras.layers.Dense(classes)]
    )
    kernel, bias = model.get_weights()
    model.set_weights([np.zeros_like(kernel), np.eye(classes)[0] * 3.0])
    return model


@pytest.mark.parametrize("n_queries", [1, 37, 952, 5000, 10000])
@pytest.mark.parametrize("rescale", [True, False])
def test_p_schedule_is_autoattacks_with_a_truncated_index(n_queries, rescale):
    ours = [p_schedule(i, n_queries, 0.8, rescale) for i in range(n_queries)]
    theirs = [
        reference_p_selection(i, n_queries, 0.8, rescale)
        for i in range(n_queries)
    ]
    assert ours == theirs
    # 1 / 952 * 10000 = 10.504...: a float index would already halve `p`.
    assert p_schedule(1, 952, 0.8) == 0.8


def test_window_sides_follow_the_schedule():
    model = constant_model((28, 28, 3))
    linf = Square(model, eps=0.1, n_queries=5000, rescale_schedule=False)
    sides = linf.window_shapes((28, 28, 3))
    expected = [
        min(max(int(round(np.sqrt(p * 28 * 28))), 1), 28)
        for p in (
            reference_p_selection(i, 5000, 0.8, False) for i in range(5000)
        )
    ]
    np.testing.assert_array_equal(sides[:, 0], expected)
    np.testing.assert_array_equal(sides[:, 0], sides[:, 1])
    l2 = Square(model, eps=1.0, norm="l2", n_queries=5000)
    l2_sides = l2.window_shapes((28, 28, 3))[:, 0]
    assert np.all(l2_sides % 2 == 1) and l2_sides.min() >= 3
    # A flat input's windows are runs of a fraction `p` of its features.
    flat = linf.window_shapes((784,))
    assert flat[0].tolist() == [1, round(0.8 * 784)]


@pytest.mark.parametrize("shape", [(6, 5, 2), (6, 5), (30,), (3, 2, 5, 1)])
def test_linf_start_is_vertical_stripes_and_spends_one_plus_n_queries(shape):
    model = constant_model(shape)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.8, size=(4, *shape)).astype("float32")
    attack = Square(model, eps=0.1, n_queries=7, seed=0)
    x_adv = attack.generate(x, np.zeros(4, "int64"))
    # The margin never changes, so no proposal is accepted (strictly
    # lower margins only) and every input keeps its start.
    delta = x_adv - x
    np.testing.assert_allclose(np.abs(delta), 0.1, atol=1e-6)
    if len(shape) in (2, 3):
        # One sign per column and channel, the same down every row.
        np.testing.assert_array_equal(
            np.sign(delta), np.sign(delta[:, :1]).repeat(shape[0], axis=1)
        )
    # The start plus one query per iteration: 1 + n, as AutoAttack.
    np.testing.assert_array_equal(attack.queries, [8, 8, 8, 8])


def test_l2_start_is_a_grid_of_patterns_at_radius_eps():
    model = constant_model((10, 10, 1))
    x = np.full((3, 10, 10, 1), 0.5, "float32")
    attack = Square(model, eps=1.0, norm="l2", n_queries=3, seed=0)
    delta = (attack.generate(x, np.zeros(3, "int64")) - x).reshape(3, -1)
    np.testing.assert_allclose(np.linalg.norm(delta, axis=1), 1.0, rtol=1e-5)
    # Each 2x2 tile holds + on one half and - on the other.
    tiles = delta.reshape(3, 5, 2, 5, 2).transpose(0, 1, 3, 2, 4)
    np.testing.assert_allclose(tiles.sum(axis=(3, 4)), 0.0, atol=1e-6)
    np.testing.assert_array_equal(attack.queries, [4, 4, 4])


@pytest.mark.parametrize("side", [1, 2, 3, 4, 5, 8, 11])
def test_l2_window_pattern_is_autoattacks(side):
    np.testing.assert_allclose(
        _eta(side, side, False), reference_eta(side), atol=1e-6
    )
    # A flat input's window is the same rings along one row of features.
    row = _eta(1, side, True)[0]
    assert row.shape == (side,) and np.linalg.norm(row) == pytest.approx(1.0)
    assert row[: side // 2].min(initial=0.0) >= 0.0 >= row[side // 2 :].max()


@pytest.mark.parametrize(
    "input_shape, side, top, left",
    [((9, 7, 2), 3, 0, 0), ((9, 7, 2), 5, 4, 2), ((9, 7), 1, 8, 6),
     ((9, 7), 4, 1, 3), ((30,), 7, 0, 12), ((30,), 30, 0, 0)],
)
@pytest.mark.parametrize("transpose", [False, True])
def test_placed_window_pattern_is_the_pattern_at_its_place(
    input_shape, side, top, left, transpose
):
    # The compiled loop builds the pattern cell by cell over the whole
    # grid, for a window whose size and place are tensors.
    grid = _Grid(input_shape)
    height, width = grid.window_shape(side)
    pattern = _eta(height, width, grid.flat)
    if transpose and not grid.flat:
        pattern = pattern.T
    expected = np.zeros((grid.height, grid.width), "float32")
    expected[top : top + height, left : left + width] = pattern
    placed = _placed_eta(
        grid, np.int32(top), np.int32(left), np.int32(height),
        np.int32(width), np.bool_(transpose),
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(placed), expected, atol=1e-6
    )


def test_l2_perturbation_always_has_norm_eps(digits_relu, data):
    # Every proposal rescales the whole perturbation to radius eps; away
    # from the input range's edges nothing is clipped, so the norm is eps.
    x, y = data
    x = np.clip(x[:30], 0.0, 1.0) * 0.1 + 0.45
    attack = Square(digits_relu, eps=0.3, norm="l2", n_queries=100, seed=0)
    delta = (attack.generate(x, y[:30]) - x).reshape(30, -1)
    np.testing.assert_allclose(np.linalg.norm(delta, axis=1), 0.3, rtol=1e-4)
    assert (attack.queries > 1).any()


def test_acceptance_keeps_only_lower_margins_and_fooled_inputs_stop(
    digits_relu, data
):
    x, y = data
    x, y = x[:40], y[:40]

    def margins(n_queries):
        attack = Square(
            digits_relu, eps=0.05, n_queries=n_queries, seed=3,
            rescale_schedule=False,
        )
        logits = digits_relu.predict(attack.generate(x, y), verbose=0)
        true = logits[np.arange(len(y)), y]
        others = np.where(np.eye(10, dtype=bool)[y], -np.inf, logits).max(1)
        return true - others, attack.queries

    # Same seed and schedule, longer budget: each run continues the shorter
    # one, so an input's margin can only go down.
    runs = [margins(n) for n in (1, 5, 20, 60)]
    for (short, _), (long, _) in zip(runs, runs[1:]):
        assert np.all(long <= short + 1e-5)
    margin, queries = runs[-1]
    fooled = margin < 0
    assert 0 < fooled.sum() < len(y)
    assert np.all(queries[~fooled] == 61)
    assert np.all(queries[fooled] <= 61) and queries[fooled].min() < 61


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 1.0)])
def test_square_stays_in_the_ball_and_range_and_lowers_accuracy(
    digits_relu, data, norm, eps
):
    x, y = data
    low, high = 0.1, 0.9
    clipped = np.clip(x, low, high)
    attack = Square(
        digits_relu, eps=eps, norm=norm, n_queries=300, clip_values=(low, high),
        seed=0,
    )
    x_adv = attack.generate(clipped, y)
    delta = (x_adv - clipped).reshape(len(x), -1)
    size = (
        np.abs(delta).max(axis=1)
        if norm == "linf"
        else np.linalg.norm(delta, axis=1)
    )
    assert size.max() <= eps * (1 + 1e-5) + 1e-6
    assert x_adv.min() >= low - 1e-6 and x_adv.max() <= high + 1e-6
    clean = accuracy(digits_relu, x, y)
    assert accuracy(digits_relu, x_adv, y) < clean - 0.2


class _StopGradient(keras.layers.Layer):
    """Identity whose gradient is zero everywhere: a fully masked model."""

    def call(self, inputs):
        return keras.ops.stop_gradient(inputs)


@pytest.mark.parametrize("flat", [False, True])
def test_square_l2_breaks_a_zero_gradient_model_on_any_input_shape(
    digits_relu, data, flat
):
    x, y = data
    layers = [keras.Input((8, 8, 1)), _StopGradient(), digits_relu]
    if flat:
        # A vector model: 64 features, no image layout.
        layers = [keras.Input((64,)), keras.layers.Reshape((8, 8, 1))] + layers[1:]
        x = x.reshape(len(x), 64)
    masked = keras.Sequential(layers)
    clean = accuracy(masked, x, y)
    attack = Square(masked, eps=1.0, norm="l2", n_queries=300, seed=0)
    assert accuracy(masked, attack.generate(x, y), y) < clean - 0.2


def test_the_report_row_shows_the_median_queries_of_broken_inputs(
    digits_relu, data
):
    from keras_drelu.attacks import FGSM
    from keras_drelu.evaluation import evaluate_robustness

    x, y = data
    square = Square(digits_relu, eps=0.1, n_queries=50, seed=0)
    report = evaluate_robustness(
        digits_relu, x, y, eps=0.1, verbose=False, checks_enabled=False,
        suite=[square, FGSM(digits_relu, eps=0.1)], cascade=False,
    )
    row, fgsm = report.results
    correct = report.clean_accuracy * len(x)
    assert row.attacked == len(square.queries) == round(correct)
    # Each input the row counts as broken stopped querying once fooled.
    assert row.broken and 1 <= row.queries <= 51
    assert row.queries == np.median(np.sort(square.queries)[: row.broken])
    assert fgsm.queries is None
    assert f"{row.broken} / {row.attacked} (median {row.queries:g} queries)" in (
        report.to_markdown()
    )
    assert report.to_csv().splitlines()[0].endswith(",queries")
