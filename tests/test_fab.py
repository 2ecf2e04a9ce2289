"""Tests of FAB-T against closed forms: linear classifiers and projections."""

import keras
import numpy as np
import pytest
from scipy.linalg import hadamard
from scipy.optimize import linprog

from keras_drelu.attacks import FABT
from keras_drelu.attacks.fab import project_to_hyperplane

FEATURES, CLASSES = 64, 10
DUAL = {"linf": 1, "l2": 2}


def linear_classifier(kernel, bias):
    model = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(CLASSES)]
    )
    model.set_weights([kernel.astype("float32"), bias.astype("float32")])
    return model


def minimal_distances(x, kernel, bias, norm):
    """Closed form: `min_t |(w_y - w_t).x + b_y - b_t| / ||w_y - w_t||_dual`.

    A linear model misclassifies `x` exactly when some class `t` beats `y`,
    so the nearest misclassified point is the nearest point of one of the
    half-spaces `f_t >= f_y`, at that distance (the box does not bind for
    the inputs used here).
    """
    logits = x @ kernel + bias
    y = logits.argmax(axis=1)
    gaps = logits[np.arange(len(x)), y][:, None] - logits
    normals = kernel.T[y][:, None, :] - kernel.T[None]
    lengths = np.linalg.norm(normals, ord=DUAL[norm], axis=2)
    distances = np.where(
        np.arange(CLASSES)[None] == y[:, None],
        np.inf,
        gaps / np.maximum(lengths, 1e-12),
    )
    return y, distances.min(axis=1)


def size(delta, norm):
    delta = delta.reshape(len(delta), -1)
    if norm == "linf":
        return np.abs(delta).max(axis=1)
    return np.linalg.norm(delta, axis=1)


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    return rng.uniform(0.35, 0.65, size=(60, FEATURES)).astype("float32")


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_t_finds_the_minimal_distance_of_a_linear_classifier(
    inputs, norm
):
    # Rows of a Hadamard matrix: every pair of classes differs by a normal
    # of the same L1 and L2 length, so the runner-up class (FAB-T's first
    # target) is also the nearest boundary and FAB-T's first run must
    # reach the minimum.
    kernel = 0.5 * hadamard(FEATURES)[1 : CLASSES + 1].T
    bias = np.random.default_rng(1).normal(scale=0.1, size=CLASSES)
    model = linear_classifier(kernel, bias)
    y, minimum = minimal_distances(inputs, kernel, bias, norm)
    attack = FABT(model, eps=float("inf"), norm=norm, steps=100)
    x_adv = attack.generate(inputs, y)
    found = size(x_adv - inputs, norm)
    assert np.all((x_adv @ kernel + bias).argmax(axis=1) != y)
    # Never below the minimum; within 2% of it.
    assert np.all(found >= minimum * (1 - 1e-4))
    assert np.all(found <= minimum * 1.02), np.max(found / minimum)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_t_succeeds_exactly_when_the_minimal_distance_is_below_eps(
    inputs, norm
):
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(FEATURES, CLASSES))
    bias = rng.normal(scale=0.1, size=CLASSES)
    model = linear_classifier(kernel, bias)
    y, minimum = minimal_distances(inputs, kernel, bias, norm)
    eps = float(np.median(minimum))
    attack = FABT(model, eps=eps, norm=norm, steps=100)
    x_adv = attack.generate(inputs, y)
    assert size(x_adv - inputs, norm).max() <= eps * (1 + 1e-5)
    success = (x_adv @ kernel + bias).argmax(axis=1) != y
    # FAB's points lie a hair beyond the boundary: leave out the inputs
    # within 2% of eps.
    clear = np.abs(minimum / eps - 1) > 0.02
    assert clear.sum() >= 50
    np.testing.assert_array_equal(success[clear], minimum[clear] < eps)


def reference_projection(t, w, b, norm, low, high):
    """The same projection by bisection on the multiplier, in float64."""
    gap = b - w @ t
    direction = np.sign(gap) * np.sign(w)
    room = np.where(direction > 0, high - t, t - low) * (direction != 0)
    rate = np.abs(w) if norm == "l2" else (w != 0).astype(float)

    def step(lam):
        return direction * np.minimum(lam * rate, room)

    def gain(lam):
        return np.abs(w) @ np.minimum(lam * rate, room)

    if np.abs(w) @ room <= abs(gap):
        return direction * room
    low_lam, high_lam = 0.0, 1.0
    while gain(high_lam) < abs(gap):
        high_lam *= 2
    for _ in range(200):
        middle = (low_lam + high_lam) / 2
        if gain(middle) < abs(gap):
            low_lam = middle
        else:
            high_lam = middle
    return step(high_lam)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_projection_onto_a_hyperplane_within_the_box(norm):
    rng = np.random.default_rng(3)
    t = rng.uniform(0.0, 1.0, size=(200, 12))
    w = rng.normal(size=(200, 12)) * (rng.uniform(size=(200, 12)) > 0.2)
    # Offsets near and far: most hyperplanes cut the box, some miss it.
    b = (w * t).sum(axis=1) + rng.normal(scale=1.5, size=200)
    ours = project_to_hyperplane(
        t.astype("float32"), w.astype("float32"), b.astype("float32"),
        norm, (0.0, 1.0),
    ).numpy()
    theirs = np.stack(
        [reference_projection(*row, norm, 0.0, 1.0) for row in zip(t, w, b)]
    )
    np.testing.assert_allclose(ours, theirs, atol=2e-4)
    inside = ((t + ours) >= -1e-6).all(axis=1) & ((t + ours) <= 1 + 1e-6).all(
        axis=1
    )
    assert inside.all()
    reached = np.abs(((t + ours) * w).sum(axis=1) - b) < 1e-3
    assert 0.3 < reached.mean() < 1.0
    if norm == "linf":
        # Minimal L-inf norm: a linear programme over (d, r), min r.
        for row in np.flatnonzero(reached)[:20]:
            n = t.shape[1]
            result = linprog(
                np.r_[np.zeros(n), 1.0],
                A_ub=np.block(
                    [[np.eye(n), -np.ones((n, 1))],
                     [-np.eye(n), -np.ones((n, 1))]]
                ),
                b_ub=np.zeros(2 * n),
                A_eq=np.r_[w[row], 0.0][None],
                b_eq=[b[row] - w[row] @ t[row]],
                bounds=[(-t[row, i], 1 - t[row, i]) for i in range(n)]
                + [(0, None)],
            )
            assert np.abs(ours[row]).max() == pytest.approx(
                result.x[-1], rel=1e-3, abs=1e-5
            )


def test_fab_t_on_a_zero_gradient_model_stays_put():
    class StopGradient(keras.layers.Layer):
        def call(self, inputs):
            return keras.ops.stop_gradient(inputs)

    kernel = np.random.default_rng(4).normal(size=(FEATURES, CLASSES))
    masked = keras.Sequential(
        [keras.Input((FEATURES,)), StopGradient(),
         linear_classifier(kernel, np.zeros(CLASSES))]
    )
    x = np.full((4, FEATURES), 0.5, "float32")
    y = masked.predict(x, verbose=0).argmax(axis=1)
    x_adv = FABT(masked, eps=0.3, steps=5, n_target_classes=2).generate(x, y)
    assert np.isfinite(x_adv).all()
    np.testing.assert_array_equal(x_adv, x)


def test_fab_t_arguments_are_checked():
    model = linear_classifier(np.zeros((FEATURES, CLASSES)), np.zeros(CLASSES))
    for bad, message in (
        ({"beta": 1.0}, "beta=1.0"),
        ({"eta": 0.5}, "eta=0.5"),
        ({"alpha_max": 0}, "alpha_max=0"),
        ({"steps": 0}, "steps=0"),
        ({"n_target_classes": 0}, "n_target_classes=0"),
    ):
        with pytest.raises(ValueError, match=message):
            FABT(model, eps=0.1, **bad)
    attack = FABT(model, eps=0.1, norm="l2", steps=7, restarts=2)
    assert attack.clone(model).get_config() == attack.get_config()
