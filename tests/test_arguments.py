"""The shared argument checks and output detection."""

import keras
import numpy as np
import pytest

from keras_drelu import arguments
from keras_drelu import outputs


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda: arguments.check_positive("eps", 3), 3.0),
        (lambda: arguments.check_positive("n", 3, integer=True), 3),
        (lambda: arguments.check_non_negative("lam", 0), 0.0),
        (lambda: arguments.check_number("a", 0.5, low=0, high=1), 0.5),
        (lambda: arguments.check_number("a", 0, low=0, high=1), 0.0),
        (lambda: arguments.check_positive("n", None, allow_none=True), None),
        (lambda: arguments.check_bool("b", False), False),
        (lambda: arguments.check_seed("seed", np.int64(4)), 4),
        (lambda: arguments.check_choice("norm", "l2", ("linf", "l2")), "l2"),
    ],
)
def test_good_values_come_back_in_their_canonical_type(call, expected):
    result = call()
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: arguments.check_positive("eps", 0), ValueError,
         "Argument `eps` should be a positive number. Received: eps=0"),
        (lambda: arguments.check_positive("eps", float("inf")), ValueError,
         "eps=inf"),
        (lambda: arguments.check_positive("eps", float("nan")), ValueError,
         "eps=nan"),
        (lambda: arguments.check_positive("steps", True, integer=True),
         TypeError, "should be a positive integer. Received: steps=True"),
        (lambda: arguments.check_positive("steps", 2.0, integer=True),
         TypeError, "steps=2.0"),
        (lambda: arguments.check_non_negative("lam", -1e-9), ValueError,
         "should be a non-negative number. Received: lam=-1e-09"),
        (lambda: arguments.check_non_negative("lam", "1"), TypeError,
         "lam='1'"),
        (lambda: arguments.check_number("a", 1, low=0, high=1,
                                        closed="left"),
         ValueError, r"a number in \[0, 1\)"),
        (lambda: arguments.check_number("a", 0, low=0, high=1,
                                        closed="right"),
         ValueError, r"a number in \(0, 1\]"),
        (lambda: arguments.check_number("a", -1, low=0), ValueError,
         "a number >= 0"),
        (lambda: arguments.check_number("a", 2, high=1, closed="neither"),
         ValueError, "a number < 1"),
        # `None` is named to a value of the wrong type, not to one out of
        # range (the range is all that is wrong with it).
        (lambda: arguments.check_number("eps", 2, low=0, high=1,
                                        closed="neither", allow_none=True),
         ValueError, r"should be a number in \(0, 1\)\. Received: eps=2"),
        (lambda: arguments.check_number("eps", "2", low=0, high=1,
                                        allow_none=True),
         TypeError, r"in \[0, 1\] or None\. Received: eps='2'"),
        (lambda: arguments.check_positive("n", -2, allow_none=True),
         ValueError, r"a positive number\. Received: n=-2"),
        (lambda: arguments.check_non_negative("lam", [], allow_none=True),
         TypeError, r"a non-negative number or None\. Received: lam=\[\]"),
        (lambda: arguments.check_bool("b", 1), TypeError, "b=1"),
        (lambda: arguments.check_seed("seed", 1.5), TypeError, "seed=1.5"),
        (lambda: arguments.check_choice("norm", "l3", ("linf", "l2")),
         ValueError, "one of \\('linf', 'l2'\\). Received: norm='l3'"),
        (lambda: arguments.check_choice("norm", ["linf"], ("linf",)),
         ValueError, r"norm=\['linf'\]"),
    ],
)
def test_bad_values_name_the_argument_and_the_value(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_wrong_type_is_both_a_type_and_a_value_error():
    with pytest.raises(ValueError):
        arguments.check_positive("n", "3", integer=True)
    with pytest.raises(TypeError):
        arguments.check_positive("n", "3", integer=True)


def test_inputs_and_labels():
    x, y = arguments.check_inputs_and_labels(np.zeros((2, 3)), [0, 1])
    assert x.dtype == np.float32 and y.tolist() == [0, 1]
    with pytest.raises(ValueError, match="non-empty batch"):
        arguments.check_inputs_and_labels(np.zeros((0, 3)), [])
    with pytest.raises(ValueError, match="one integer class label"):
        arguments.check_inputs_and_labels(np.zeros((2, 3)), [0.5, 1.0])


def dense(activation=None):
    return keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4, activation=activation)]
    )


@pytest.mark.parametrize(
    "build, softmax",
    [
        (lambda: dense("softmax"), True),
        (lambda: dense(None), False),
        (lambda: dense("relu"), False),
        (lambda: keras.Sequential([dense(), keras.layers.Softmax()]), True),
        (lambda: keras.Sequential(
            [dense(), keras.layers.Activation("softmax")]), True),
        # The softmax of a nested model's last layer counts too.
        (lambda: keras.Sequential([keras.Input((3,)), dense("softmax")]),
         True),
    ],
)
def test_final_softmax_and_outputs_probabilities(build, softmax):
    model = build()
    assert (outputs.final_softmax(model) is not None) is softmax
    assert outputs.outputs_probabilities(model) is softmax


def test_a_hidden_softmax_is_found_from_a_sample():
    class Hidden(keras.layers.Layer):
        def call(self, x):
            return keras.ops.softmax(x)

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                              Hidden()])
    sample = model(np.random.default_rng(0).normal(size=(5, 3)))
    assert not outputs.outputs_probabilities(model)
    assert outputs.outputs_probabilities(model, sample)


@pytest.mark.parametrize(
    "batch, expected",
    [
        ([[0.25, 0.75], [0.5, 0.5]], True),
        ([[0.25, 0.70]], False),
        ([[-0.5, 1.5]], False),
        ([[1.0]], False),  # one class: nothing to tell apart
        ([0.5, 0.5], False),  # not a batch
    ],
)
def test_looks_like_probabilities(batch, expected):
    assert outputs.looks_like_probabilities(np.array(batch)) is expected
