"""Tests of keras_drelu.inspection: every capped activation Keras tracks."""

import keras
import numpy as np
import pytest

from keras_drelu import DReLU
from keras_drelu import SReLU
from keras_drelu import max_values
from keras_drelu.evaluation import contains_capped_relu
from keras_drelu.inspection import CAP_KINDS
from keras_drelu.inspection import capped_activations


class Block(keras.layers.Layer):
    """A custom layer holding its activations in an attribute and a list."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(4, name="dense")
        self.stages = [activation]

    def call(self, x):
        return self.stages[0](self.dense(x))


class Net(keras.Model):
    """A subclassed model with a cap inside a custom layer."""

    def __init__(self, activation):
        super().__init__(name="net")
        self.block = Block(activation, name="block")
        self.head = keras.layers.Dense(3)

    def call(self, x):
        return self.head(self.block(x))


def every_kind():
    """A functional model with one capped activation of each kind."""
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4), DReLU(0.3, name="cap")],
        name="inner",
    )
    inputs = keras.Input((4,))
    x = inner(inputs)
    x = Block(SReLU(0.2, name="fixed"), name="block")(x)
    x = keras.layers.Dense(4, activation="relu6", name="fused")(x)
    x = keras.ops.relu6(x)
    x = keras.layers.Activation("relu6", name="act")(x)
    x = keras.layers.ReLU(max_value=2.0, name="relu2")(x)
    x = keras.layers.ReLU(max_value=1.0, negative_slope=0.1, name="leaky")(x)
    x = keras.layers.ReLU(name="plain")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


def test_every_kind_is_found_with_its_path_and_rewritability():
    found = capped_activations(every_kind())
    assert [(c.path, c.kind, c.rewritable, c.straight_through) for c in found] == [
        ("inner/cap", "drelu", True, True),
        # Inside a custom layer: seen through in place, never rewritten.
        ("block/fixed", "drelu", False, True),
        ("fused", "relu6-activation", True, True),
        ("relu6", "relu6-op", True, True),
        ("act", "relu6-layer", True, True),
        ("relu2", "relu-max-value", True, True),
        # A leaky capped ReLU has no SReLU twin.
        ("leaky", "relu-max-value", False, False),
    ]
    assert set(c.kind for c in found) == set(CAP_KINDS)


def test_caps_inside_subclassed_models_are_found():
    net = Net(keras.layers.ReLU(max_value=6.0, name="relu6"))
    net(np.zeros((1, 4), "float32"))
    found = capped_activations(net)
    assert [(c.path, c.kind, c.rewritable) for c in found] == [
        ("block/relu6", "relu-max-value", False)
    ]
    # A ReLU(max_value) can only be seen through by rewriting it.
    assert not found[0].straight_through
    assert contains_capped_relu(net)
    assert not contains_capped_relu(Net(keras.layers.ReLU()))


@pytest.mark.parametrize(
    "make",
    [
        lambda: keras.layers.ReLU(max_value=6.0),
        lambda: keras.layers.Activation("relu6"),
        lambda: SReLU(0.5),
    ],
)
def test_contains_capped_relu_sees_every_kind(make):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3), make()])
    assert contains_capped_relu(model)
    inputs = keras.Input((3,))
    custom = keras.Model(inputs, Block(make())(inputs))
    assert contains_capped_relu(custom)


def test_max_values_agree_with_the_discovery():
    model = every_kind()
    caps = max_values(model, kinds=None)
    assert list(caps) == [c.path for c in capped_activations(model)]
    np.testing.assert_allclose(caps["inner/cap"], np.full(4, 0.3), rtol=1e-6)
    np.testing.assert_allclose(caps["block/fixed"], np.full(4, 0.2))
    assert {k: float(v) for k, v in caps.items() if v.shape == ()} == {
        "fused": 6.0, "relu6": 6.0, "act": 6.0, "relu2": 2.0, "leaky": 1.0
    }
    # By default, the DReLU/SReLU caps only: the defence's own.
    assert list(max_values(model)) == ["inner/cap", "block/fixed"]
    assert list(max_values(model, kinds=["relu6-op"])) == ["relu6"]
    with pytest.raises(ValueError, match="kinds='relu'"):
        max_values(model, kinds=["relu"])


def test_a_shared_layer_is_listed_once_and_unbuilt_caps_are_left_out():
    cap = SReLU(0.5, name="shared")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, cap(cap(inputs)))
    assert [c.path for c in capped_activations(model)] == ["shared"]
    unbuilt = keras.Sequential([DReLU(name="later")])
    assert [c.path for c in capped_activations(unbuilt)] == ["later"]
    assert max_values(unbuilt, kinds=None) == {}
