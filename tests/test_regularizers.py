import keras
import numpy as np
import pytest

from keras_drelu import MaxValueRegularizer


def test_value_is_lam_times_sum_of_squares():
    caps = np.array([[1.0, -2.0], [3.0, 0.5]], "float32")
    reg = MaxValueRegularizer(0.3)
    np.testing.assert_allclose(float(reg(caps)), 0.3 * np.sum(caps**2), rtol=1e-6)


def test_zero_lam_gives_zero():
    assert float(MaxValueRegularizer(0)(np.ones(3, "float32"))) == 0.0


def test_serialization_round_trip():
    reg = MaxValueRegularizer(1e-4)
    config = keras.regularizers.serialize(reg)
    assert config["registered_name"] == "keras_drelu>MaxValueRegularizer"
    restored = keras.regularizers.deserialize(config)
    assert isinstance(restored, MaxValueRegularizer)
    assert restored.lam == 1e-4
    assert repr(restored) == "MaxValueRegularizer(lam=0.0001)"


@pytest.mark.parametrize(
    "lam, error, message",
    [
        (-1.0, ValueError, "lam=-1.0"),
        (float("nan"), ValueError, "lam=nan"),
        ("0.1", TypeError, "lam='0.1'"),
        (None, TypeError, "lam=None"),
    ],
)
def test_bad_lam(lam, error, message):
    with pytest.raises(error, match=message):
        MaxValueRegularizer(lam)
