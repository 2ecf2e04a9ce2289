"""`calibrate_caps`: each unit's cap at a quantile of its inputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_drelu import DReLU
from keras_drelu import SReLU
from keras_drelu import calibrate_caps
from keras_drelu import max_values


def caps_of(layer):
    return keras.ops.convert_to_numpy(layer.max_value)


def floored(caps):
    """Units silent on the data start at the layer's smallest positive cap."""
    positive = caps[caps > 0]
    return np.where(caps > 0, caps, positive.min()) if positive.size else caps


def dense_inputs(dense, x):
    kernel, bias = dense.get_weights()
    return x @ kernel + bias


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(200, 6)).astype("float32")


@pytest.mark.parametrize("quantile", [0.5, 0.9, 1.0])
def test_dense_caps_hit_the_quantile_per_unit(x, quantile):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((6,)), keras.layers.Dense(5, name="hidden"),
        DReLU(name="cap"), keras.layers.Dense(2),
    ])
    caps = calibrate_caps(model, x, quantile=quantile)
    expected = floored(np.quantile(
        np.maximum(dense_inputs(model.get_layer("hidden"), x), 0), quantile,
        axis=0,
    ))
    np.testing.assert_allclose(caps["cap"], expected, rtol=1e-5, atol=1.1e-6)
    np.testing.assert_allclose(
        caps_of(model.get_layer("cap")), expected, rtol=1e-5, atol=1.1e-6
    )
    # The share of inputs above each cap is what the quantile says.
    above = (dense_inputs(model.get_layer("hidden"), x) > expected).mean(0)
    assert np.all(above <= 1 - quantile + 1e-9)


@pytest.mark.parametrize("shared_axes", [None, [1, 2]])
def test_conv_caps_take_the_quantile_per_channel(shared_axes):
    keras.utils.set_random_seed(0)
    images = np.random.default_rng(1).uniform(size=(16, 8, 8, 3))
    conv = keras.layers.Conv2D(4, 3, name="conv")
    model = keras.Sequential([
        keras.Input((8, 8, 3)), conv,
        DReLU(shared_axes=shared_axes, name="cap"),
    ])
    caps = calibrate_caps(model, images.astype("float32"), quantile=0.95)
    features = np.maximum(keras.ops.convert_to_numpy(conv(images)), 0)
    expected = floored(np.quantile(features.reshape(-1, 4), 0.95, axis=0))
    np.testing.assert_allclose(
        caps["cap"].reshape(-1), expected, rtol=1e-5, atol=1.1e-6
    )
    assert caps["cap"].shape == ((4,) if shared_axes is None else (1, 1, 4))


def test_layers_are_calibrated_in_order_each_after_the_earlier_caps(x):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((6,)), keras.layers.Dense(5, name="first_dense"),
        DReLU(name="first"), keras.layers.Dense(4, name="second_dense"),
        DReLU(name="second"),
    ])
    caps = calibrate_caps(model, x, quantile=0.8)
    assert list(caps) == ["first", "second"]
    hidden = np.maximum(dense_inputs(model.get_layer("first_dense"), x), 0)
    first = floored(np.quantile(hidden, 0.8, axis=0))
    second_inputs = dense_inputs(
        model.get_layer("second_dense"), np.minimum(hidden, first)
    )
    np.testing.assert_allclose(
        caps["second"],
        floored(np.quantile(np.maximum(second_inputs, 0), 0.8, axis=0)),
        rtol=1e-4, atol=1.1e-6,
    )


def test_nested_models_custom_layers_and_datasets(x):
    keras.utils.set_random_seed(0)

    class Block(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(3)
            self.cap = DReLU(name="hidden_cap")

        def call(self, inputs):
            return self.cap(self.dense(inputs))

    inner = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(5), DReLU(name="cap")],
        name="inner",
    )
    inputs = keras.Input((6,))
    outputs = Block(name="block")(inner(inputs))
    model = keras.Model(inputs, outputs)
    labels = np.zeros(len(x), "int64")
    data = tf.data.Dataset.from_tensor_slices((x, labels)).batch(64)
    caps = calibrate_caps(model, data, quantile=0.9)
    assert set(caps) == {"inner/cap", "block/hidden_cap"}
    assert all(np.all(c < 100.0) for c in caps.values())
    np.testing.assert_allclose(max_values(model)["inner/cap"], caps["inner/cap"])


def test_srelu_is_left_alone_and_no_drelu_is_an_error(x):
    model = keras.Sequential([
        keras.Input((6,)), keras.layers.Dense(5), SReLU(0.3, name="fixed"),
        keras.layers.Dense(4), DReLU(name="learned"),
    ])
    caps = calibrate_caps(model, x)
    assert list(caps) == ["learned"]
    np.testing.assert_allclose(caps_of(model.get_layer("fixed")), 0.3)
    with pytest.raises(ValueError, match="found no DReLU"):
        calibrate_caps(keras.Sequential([keras.Input((6,)), SReLU(1.0)]), x)


@pytest.mark.parametrize("quantile", [0, 1.5, "high", True])
def test_bad_quantile(x, quantile):
    model = keras.Sequential([keras.Input((6,)), DReLU()])
    with pytest.raises(ValueError, match="quantile"):
        calibrate_caps(model, x, quantile=quantile)


def test_a_unit_that_never_fires_starts_at_the_smallest_positive_cap():
    model = keras.Sequential([keras.Input((3,)), DReLU(name="cap")])
    x = np.stack([np.linspace(0.1, 1.0, 50), np.linspace(0.2, 2.0, 50),
                  -np.ones(50)], axis=1).astype("float32")
    caps = calibrate_caps(model, x, quantile=1.0)["cap"]
    np.testing.assert_allclose(caps, [1.0, 2.0, 1.0], rtol=1e-5)
