import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src import testing

from keras_drelu import DReLU
from keras_drelu import SReLU


def test_forward_matches_numpy():
    x = np.random.default_rng(1).normal(size=(5, 4, 4, 2)).astype("float32")
    np.testing.assert_array_equal(
        SReLU(0.3)(x).numpy(), np.clip(x, 0.0, 0.3)
    )


def test_cap_is_fixed_during_training():
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), SReLU(0.5), keras.layers.Dense(2)]
    )
    model.compile(keras.optimizers.SGD(0.5), "mse")
    model.fit(np.ones((8, 3)), np.ones((8, 2)) * 10, epochs=3, verbose=0)
    layer = model.layers[1]
    np.testing.assert_array_equal(layer.max_value.numpy(), 0.5)
    assert layer.trainable_weights == []
    assert model.losses == []


def test_is_a_drelu_and_keeps_gradient_mode():
    layer = SReLU(1.0, gradient_mode="bpda", shared_axes=[1])
    assert isinstance(layer, DReLU)
    assert layer.cap == 1.0
    x = tf.constant([[2.0, 0.5]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    np.testing.assert_array_equal(y.numpy(), [[1.0, 0.5]])
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [[1.0, 1.0]])


def test_config_round_trip():
    layer = SReLU(0.1, shared_axes=[1, 2], gradient_mode="bpda", name="cap")
    config = layer.get_config()
    assert config["max_value"] == 0.1
    assert "initial_max_value" not in config
    restored = SReLU.from_config(config)
    assert restored.get_config() == config


@pytest.mark.parametrize(
    "max_value, error, message",
    [(-0.5, ValueError, "max_value=-0.5"), (None, TypeError, "max_value=None")],
)
def test_bad_max_value(max_value, error, message):
    with pytest.raises(error, match=message):
        SReLU(max_value)


def test_max_value_is_required():
    with pytest.raises(TypeError, match="max_value"):
        SReLU()


class TestKerasLayerHarness(testing.TestCase):
    def test_srelu(self):
        self.run_layer_test(
            SReLU,
            init_kwargs={"max_value": 0.5, "gradient_mode": "bpda"},
            input_shape=(2, 3, 4),
            expected_output_shape=(2, 3, 4),
            expected_num_trainable_weights=0,
            expected_num_non_trainable_weights=1,
            expected_num_losses=0,
            supports_masking=True,
        )


def test_cap_follows_assigned_caps():
    layer = SReLU(0.5)
    assert layer.cap == 0.5
    layer.build((None, 3))
    layer.assign_max_value(0.25)
    assert layer.cap == 0.25
    layer.assign_max_value([0.1, 0.2, 0.3])
    np.testing.assert_allclose(layer.cap, [0.1, 0.2, 0.3])
