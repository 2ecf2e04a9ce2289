import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_drelu
from keras_drelu import DReLU
from keras_drelu import SReLU
from keras_drelu import max_values
from keras_drelu import uncapped_twin
from keras_drelu import with_gradient_mode
from keras_drelu.transforms import straight_through_model


def capped_cnn():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(3, 3, name="conv")(inputs)
    x = DReLU(initial_max_value=0.2, name="conv_cap")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5, name="hidden")(x)
    x = SReLU(0.1, name="hidden_cap")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


def input_gradient(model, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(model(x)[:, 0])
    return tape.gradient(loss, x).numpy()


@pytest.fixture
def model_and_inputs():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 1)).astype("float32")
    return capped_cnn(), x


def test_with_gradient_mode_keeps_outputs_and_changes_gradient(model_and_inputs):
    model, x = model_and_inputs
    bpda = with_gradient_mode(model, "bpda")
    modes = [l.gradient_mode for l in bpda.layers if isinstance(l, DReLU)]
    assert modes == ["bpda", "bpda"]
    assert [type(l) for l in bpda.layers] == [type(l) for l in model.layers]
    np.testing.assert_array_equal(bpda(x).numpy(), model(x).numpy())
    # The tiny caps saturate, so the exact gradient is mostly masked.
    assert np.abs(input_gradient(bpda, x)).sum() > np.abs(
        input_gradient(model, x)
    ).sum()
    np.testing.assert_array_equal(
        with_gradient_mode(bpda, "exact")(x).numpy(), model(x).numpy()
    )


def test_with_gradient_mode_shares_other_weights(model_and_inputs):
    model, _ = model_and_inputs
    bpda = with_gradient_mode(model, "bpda")
    assert bpda.get_layer("conv") is model.get_layer("conv")
    assert bpda.get_layer("conv_cap") is not model.get_layer("conv_cap")
    for name in ("conv_cap", "hidden_cap"):
        np.testing.assert_array_equal(
            bpda.get_layer(name).max_value.numpy(),
            model.get_layer(name).max_value.numpy(),
        )
    assert isinstance(bpda.get_layer("hidden_cap"), SReLU)


def test_uncapped_twin_is_the_plain_relu_network(model_and_inputs):
    model, x = model_and_inputs
    twin = uncapped_twin(model)
    assert not any(isinstance(l, DReLU) for l in twin.layers)
    assert isinstance(twin.get_layer("conv_cap"), keras.layers.ReLU)
    assert twin.get_layer("hidden") is model.get_layer("hidden")
    hidden = model.get_layer("hidden")(
        model.layers[3](tf.nn.relu(model.get_layer("conv")(x)))
    )
    plain = model.get_layer("logits")(tf.nn.relu(hidden)).numpy()
    np.testing.assert_allclose(twin(x).numpy(), plain, rtol=1e-6)


def test_nested_models_are_rewritten():
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4), DReLU(name="cap")], name="inner"
    )
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inner(inputs)))
    bpda = with_gradient_mode(model, "bpda")
    assert bpda.get_layer("inner").get_layer("cap").gradient_mode == "bpda"
    assert model.get_layer("inner").get_layer("cap").gradient_mode == "exact"
    assert list(max_values(bpda)) == ["inner/cap"]
    twin = uncapped_twin(model)
    assert isinstance(twin.get_layer("inner").get_layer("cap"), keras.layers.ReLU)


def test_max_values_lists_every_cap(model_and_inputs):
    model, _ = model_and_inputs
    model.get_layer("conv_cap").assign_max_value([0.1, 0.2, 0.3])
    caps = max_values(model)
    assert list(caps) == ["conv_cap", "hidden_cap"]
    np.testing.assert_allclose(caps["conv_cap"], [0.1, 0.2, 0.3])
    np.testing.assert_allclose(caps["hidden_cap"], np.full(5, 0.1))


def test_bad_mode_and_subclassed_model(model_and_inputs):
    model, _ = model_and_inputs
    with pytest.raises(ValueError, match="mode='sideways'"):
        with_gradient_mode(model, "sideways")

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="type Subclassed"):
        with_gradient_mode(Subclassed(), "bpda")
    with pytest.raises(ValueError, match="type DReLU"):
        uncapped_twin(DReLU())


def one_hidden_layer(activation):
    """Dense -> `activation` -> Dense, functional, with fixed weights."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, name="hidden")(inputs)
    outputs = keras.layers.Dense(3, name="logits")(activation(hidden))
    return keras.Model(inputs, outputs)


# Each kind of cap Keras offers, with the cap it applies.
CAPS = {
    "ReLU(max_value)": (lambda h: keras.layers.ReLU(max_value=0.5)(h), 0.5),
    "Activation(relu6)": (lambda h: keras.layers.Activation("relu6")(h), 6.0),
    "ops.relu6": (keras.ops.relu6, 6.0),
    "SReLU": (lambda h: SReLU(0.5)(h), 0.5),
}


@pytest.mark.parametrize("kind", sorted(CAPS))
def test_every_cap_kind_is_rewritten_for_bpda_and_the_twin(kind):
    apply, cap = CAPS[kind]
    model = one_hidden_layer(apply)
    x = np.random.default_rng(0).uniform(-4, 4, (16, 6)).astype("float32")
    x *= 3.0 if cap == 6.0 else 1.0
    hidden = model.get_layer("hidden")(x).numpy()
    w, b = model.get_layer("logits").get_weights()
    assert (hidden > cap).any(), "the inputs should saturate some caps"
    twin = uncapped_twin(model)
    np.testing.assert_allclose(
        twin(x).numpy(), np.maximum(hidden, 0) @ w + b, rtol=1e-5, atol=1e-5
    )
    assert max_values(twin) == {}
    bpda = with_gradient_mode(model, "bpda")
    np.testing.assert_allclose(bpda(x).numpy(), model(x).numpy(), rtol=1e-6)
    # After one hidden layer, the straight-through gradient is the plain
    # ReLU network's, where the exact one is zero through saturated units.
    straight = input_gradient(bpda, x)
    np.testing.assert_allclose(straight, input_gradient(twin, x), atol=1e-6)
    assert not np.allclose(straight, input_gradient(model, x))
    in_scope = straight_through_model(model)
    with keras_drelu.straight_through():
        np.testing.assert_allclose(
            input_gradient(in_scope, x), straight, atol=1e-6
        )


def test_a_layer_built_with_relu6_is_copied_with_its_weights():
    inputs = keras.Input((6,))
    fused = keras.layers.Dense(8, activation="relu6", name="fused")
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(fused(inputs)))
    x = np.random.default_rng(0).uniform(-9, 9, (8, 6)).astype("float32")
    kernel, bias = fused.get_weights()
    pre = x @ kernel + bias
    w, b = model.get_layer("logits").get_weights()
    twin = uncapped_twin(model)
    np.testing.assert_allclose(
        twin(x).numpy(), np.maximum(pre, 0) @ w + b, rtol=1e-5, atol=1e-4
    )
    assert twin.get_layer("logits") is model.get_layer("logits")
    bpda = with_gradient_mode(model, "bpda")
    np.testing.assert_allclose(bpda(x).numpy(), model(x).numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        input_gradient(bpda, x), input_gradient(twin, x), atol=1e-5
    )


class Block(keras.layers.Layer):
    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(8, name="dense")
        self.activation = activation

    def call(self, x):
        return self.activation(self.dense(x))


def test_caps_inside_custom_layers_are_refused_by_copies_not_by_the_scope():
    inputs = keras.Input((6,))
    model = keras.Model(
        inputs, keras.layers.Dense(3)(Block(SReLU(0.01, name="cap"), name="block")(inputs))
    )
    for rewrite in (uncapped_twin, lambda m: with_gradient_mode(m, "bpda")):
        with pytest.raises(ValueError, match="block/cap"):
            rewrite(model)
    # DReLU/SReLU are seen through where they sit: no copy needed.
    assert straight_through_model(model) is model
    relu6 = keras.Model(
        inputs, Block(keras.layers.ReLU(6.0, name="relu6"), name="block6")(inputs)
    )
    with pytest.raises(ValueError, match="block6/relu6"):
        straight_through_model(relu6)
