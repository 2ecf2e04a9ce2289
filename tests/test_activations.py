"""The activation table and `make_activation`."""

import keras
import numpy as np
import pytest

import keras_drelu
from keras_drelu import ACTIVATIONS
from keras_drelu import SPLASH
from keras_drelu import DReLU
from keras_drelu import MaxValueRegularizer
from keras_drelu import SReLU
from keras_drelu import make_activation


def test_table():
    assert list(ACTIVATIONS) == ["drelu", "srelu", "relu", "splash"]
    for name, spec in ACTIVATIONS.items():
        assert spec.name == name and spec.description
        assert set(spec.defaults) <= set(spec.settings)
        assert set(spec.required) <= set(spec.settings)
    assert keras_drelu.make_activation is make_activation


def test_each_activation_computes_its_formula():
    x = np.array([[-1.0, 0.3, 0.8, 2.0]], "float32")

    def output(layer):
        return keras.ops.convert_to_numpy(layer(x))

    drelu = make_activation("drelu", initial_max_value=0.5)
    np.testing.assert_allclose(output(drelu), np.clip(x, 0, 0.5))
    srelu = make_activation("srelu", max_value=1.0)
    np.testing.assert_allclose(output(srelu), np.clip(x, 0, 1.0))
    np.testing.assert_allclose(output(make_activation("relu")), np.maximum(x, 0))
    # SPLASH starts as a ReLU.
    np.testing.assert_allclose(
        output(make_activation("splash")), np.maximum(x, 0), atol=1e-6
    )


def test_settings_reach_the_layer():
    drelu = make_activation("drelu", name="cap", lam=0.5, initial_max_value=3.0)
    assert type(drelu) is DReLU and drelu.name == "cap"
    assert isinstance(drelu.max_value_regularizer, MaxValueRegularizer)
    assert (drelu.max_value_regularizer.lam, drelu.initial_max_value) == (0.5, 3.0)
    default = make_activation("drelu")
    assert (default.max_value_regularizer.lam, default.initial_max_value) == (
        ACTIVATIONS["drelu"].defaults["lam"],
        ACTIVATIONS["drelu"].defaults["initial_max_value"],
    )
    srelu = make_activation("srelu", max_value=2.0)
    assert type(srelu) is SReLU and srelu.cap == 2.0
    assert type(make_activation("splash")) is SPLASH
    assert type(make_activation("relu")) is keras.layers.ReLU


def test_none_counts_as_not_given():
    relu = make_activation("relu", lam=None, initial_max_value=None, max_value=None)
    assert type(relu) is keras.layers.ReLU
    drelu = make_activation("drelu", lam=None, max_value=None)
    assert drelu.max_value_regularizer.lam == ACTIVATIONS["drelu"].defaults["lam"]


def test_layers_made_by_name_round_trip():
    model = keras.Sequential([
        keras.Input((3,)), keras.layers.Dense(4),
        make_activation("drelu", name="a", lam=0.1),
        make_activation("srelu", name="b", max_value=0.5),
    ])
    restored = keras.Sequential.from_config(model.get_config())
    assert restored.get_layer("a").max_value_regularizer.lam == 0.1
    assert restored.get_layer("b").cap == 0.5


@pytest.mark.parametrize(
    "activation, settings, message",
    [
        ("gelu", {}, "activation='gelu'"),
        ("relu", {"lam": 0.1}, "`lam` does not apply to activation='relu', which "
                               "takes no settings"),
        ("srelu", {"lam": 0.1}, r"which takes \('max_value',\)"),
        ("drelu", {"max_value": 1.0}, "`max_value` does not apply"),
        ("srelu", {}, "activation='srelu' needs the argument `max_value`"),
        ("srelu", {"max_value": -1.0}, "max_value=-1.0"),
        ("drelu", {"lam": -1.0}, "lam=-1.0"),
    ],
)
def test_bad_arguments(activation, settings, message):
    with pytest.raises(ValueError, match=message):
        make_activation(activation, **settings)
