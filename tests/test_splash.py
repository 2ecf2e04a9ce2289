"""Tests for the SPLASH layer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_drelu.layers.splash import SPLASH


def numpy_splash(x, hinges, positive, negative, bias=0.0):
    """Reference: the paper's formula, term by term."""
    x = np.asarray(x, "float64")
    out = np.zeros_like(x)
    for s, b in enumerate(hinges):
        out += positive[..., s] * np.maximum(0.0, x - b)
        out += negative[..., s] * np.maximum(0.0, -x - b)
    return out + bias


def set_random_coefficients(layer, seed):
    rng = np.random.default_rng(seed)
    positive = rng.normal(size=layer.positive_coefficients.shape)
    negative = rng.normal(size=layer.negative_coefficients.shape)
    layer.positive_coefficients.assign(positive)
    layer.negative_coefficients.assign(negative)
    return positive, negative


def test_hinges_follow_the_paper():
    assert SPLASH().hinges == pytest.approx(np.linspace(0, 2.5, 4).tolist())
    assert SPLASH(num_hinges=1).hinges == (0.0,)
    assert SPLASH(num_hinges=11).hinges == pytest.approx(
        [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    )


def test_initialised_to_relu_exactly():
    x = np.linspace(-5, 5, 101, dtype="float32").reshape(1, -1)
    layer = SPLASH()
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_array_equal(out, np.maximum(x, 0.0))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer.positive_coefficients), [1, 0, 0, 0]
    )
    assert keras.ops.convert_to_numpy(layer(np.zeros((1, 1)))).item() == 0.0


@pytest.mark.parametrize(
    "kwargs, input_shape, coefficient_shape",
    [
        ({}, (5, 6), (4,)),
        ({}, (2, 4, 4, 3), (4,)),
        ({"per_unit": True}, (5, 6), (6, 4)),
        ({"per_unit": True}, (2, 4, 4, 3), (1, 1, 3, 4)),
        ({"per_unit": True, "shared_axes": [1, 2]}, (2, 4, 4, 3), (1, 1, 3, 4)),
        ({"per_unit": True, "shared_axes": [3]}, (2, 4, 5, 3), (4, 5, 1, 4)),
        ({"per_unit": True, "shared_axes": []}, (2, 4, 5, 3), (4, 5, 3, 4)),
        ({"num_hinges": 3, "per_unit": True}, (5, 6), (6, 2)),
    ],
)
def test_forward_matches_numpy(kwargs, input_shape, coefficient_shape):
    rng = np.random.default_rng(0)
    x = rng.normal(scale=2.0, size=input_shape).astype("float32")
    layer = SPLASH(**kwargs)
    layer.build(input_shape)
    assert tuple(layer.positive_coefficients.shape) == coefficient_shape
    assert tuple(layer.negative_coefficients.shape) == coefficient_shape
    positive, negative = set_random_coefficients(layer, 1)
    expected = numpy_splash(x, layer.hinges, positive, negative)
    out = keras.ops.convert_to_numpy(layer(x))
    assert out.shape == x.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_per_unit_coefficients_act_independently():
    layer = SPLASH(per_unit=True)
    layer.build((None, 2))
    # Unit 0 stays ReLU; unit 1 becomes |x| through its mirrored hinge.
    layer.negative_coefficients.assign([[0, 0, 0, 0], [1, 0, 0, 0]])
    out = keras.ops.convert_to_numpy(layer(np.array([[-2.0, -2.0]])))
    np.testing.assert_array_equal(out, [[0.0, 2.0]])


def test_bias_is_added_and_off_by_default():
    assert SPLASH().use_bias is False
    layer = SPLASH(use_bias=True, per_unit=True)
    layer.build((None, 3))
    assert len(layer.trainable_weights) == 3
    layer.bias.assign([0.5, -1.0, 2.0])
    out = keras.ops.convert_to_numpy(layer(np.zeros((2, 3), "float32")))
    np.testing.assert_array_equal(out, [[0.5, -1.0, 2.0]] * 2)
    shared = SPLASH(use_bias=True)
    shared.build((None, 3))
    assert tuple(shared.bias.shape) == (1,)


def test_gradients_match_hand_computed_values():
    # d h / d a_pos[s] = sum over units of w * max(0, x - b[s]), and
    # d h / d a_neg[s] = sum over units of w * max(0, -x - b[s]).
    layer = SPLASH()
    layer.build((None, 4))
    x = tf.constant([[-3.0, -1.0, 1.0, 2.0]])
    w = tf.constant([[1.0, 2.0, 3.0, 4.0]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(w * layer(x))
    grad_pos, grad_neg = tape.gradient(
        loss, [layer.positive_coefficients, layer.negative_coefficients]
    )
    b1, b2 = 2.5 / 3, 5.0 / 3
    expected_pos = [
        3 * 1 + 4 * 2,
        3 * (1 - b1) + 4 * (2 - b1),
        4 * (2 - b2),
        0.0,
    ]
    expected_neg = [1 * 3 + 2 * 1, 1 * (3 - b1) + 2 * (1 - b1), 3 - b2, 0.5]
    np.testing.assert_allclose(grad_pos.numpy(), expected_pos, rtol=1e-5)
    np.testing.assert_allclose(grad_neg.numpy(), expected_neg, rtol=1e-5)


def test_gradient_with_respect_to_inputs_is_the_slope():
    layer = SPLASH()
    layer.build((None, 3))
    layer.positive_coefficients.assign([1.0, 2.0, 0.0, 0.0])
    layer.negative_coefficients.assign([-0.5, 0.0, 0.0, 0.0])
    x = tf.constant([[-1.0, 0.5, 1.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(layer(x))
    # Slopes: 0.5 below 0, 1 on (0, b1), 1 + 2 above b1.
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [[0.5, 1.0, 3.0]])


def test_trains_in_a_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = np.abs(x).sum(axis=1, keepdims=True)
    model = keras.Sequential(
        [keras.Input((4,)), SPLASH(), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=20, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before
    # Fitting |x| needs the mirrored hinges to move off ReLU.
    splash = model.layers[0]
    assert np.abs(splash.negative_coefficients.numpy()).max() > 0.05


def test_serialization_round_trip_through_keras_file(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(3, 3),
            SPLASH(
                num_hinges=5,
                per_unit=True,
                shared_axes=[1, 2],
                use_bias=True,
                coefficient_regularizer=keras.regularizers.L2(1e-3),
                coefficient_constraint="non_neg",
            ),
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ]
    )
    layer = model.layers[1]
    set_random_coefficients(layer, 3)
    layer.bias.assign([[[0.1, 0.2, 0.3]]])
    x = np.random.default_rng(0).uniform(size=(2, 6, 6, 2)).astype("float32")
    path = tmp_path / "splash.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    restored = loaded.layers[1]
    assert isinstance(restored, SPLASH)
    assert restored.get_config() == layer.get_config()
    assert len(loaded.losses) == 2
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )


def test_from_config_round_trip():
    layer = SPLASH(num_hinges=3, per_unit=True, shared_axes=2)
    clone = SPLASH.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.shared_axes == [2]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"num_hinges": 4}, ValueError, "num_hinges=4"),
        ({"num_hinges": -3}, ValueError, "num_hinges=-3"),
        ({"num_hinges": 0}, ValueError, "num_hinges=0"),
        ({"num_hinges": 7.0}, TypeError, "num_hinges=7.0"),
        ({"num_hinges": True}, TypeError, "num_hinges=True"),
        ({"shared_axes": [1]}, ValueError, "only applies with `per_unit"),
        ({"per_unit": True, "shared_axes": [0]}, ValueError, "batch axis"),
        ({"per_unit": True, "shared_axes": "1"}, TypeError, "shared_axes='1'"),
        ({"per_unit": "yes"}, TypeError, "per_unit='yes'"),
        ({"use_bias": 1}, TypeError, "use_bias=1"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message.replace("[", r"\[")):
        SPLASH(**kwargs)


def test_out_of_range_shared_axis_is_rejected_at_build():
    layer = SPLASH(per_unit=True, shared_axes=[3])
    with pytest.raises(ValueError, match="out of range.*shared_axes=\\[3\\]"):
        layer.build((None, 4, 5))


def test_unknown_unit_axis_is_rejected_at_build():
    with pytest.raises(ValueError, match="known size for axis 1"):
        SPLASH(per_unit=True, shared_axes=[2]).build((None, None, 3))


def test_rank_one_input_is_rejected():
    with pytest.raises(ValueError, match="rank >= 2"):
        SPLASH().build((4,))


def test_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = SPLASH(per_unit=True)
        layer.build((None, 3))
        positive, negative = set_random_coefficients(layer, 5)
        x = np.array([[-2.0, 0.5, 3.0], [1.0, -0.25, 2.0]], "float32")
        out = layer(x)
        assert layer.compute_dtype == "float16"
        assert layer.positive_coefficients.dtype == "float32"
        assert keras.backend.standardize_dtype(out.dtype) == "float16"
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(out).astype("float64"),
            numpy_splash(x, layer.hinges, positive, negative),
            rtol=1e-2,
            atol=1e-2,
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
