"""What a classifier outputs: logits or probabilities, and the logits below.

One home for output detection, used by the attacks, the evaluation, the
analysis tools and the training recipes: `final_softmax` finds a softmax at
the end of a model (nested models included), `outputs_probabilities` decides
from the structure or, failing that, from a batch of outputs, and
`logits_model` rewires a model to stop before its softmax.
"""

import keras
import numpy as np


def check_graph_model(model, what):
    """The input(s) of a Sequential or functional `model`, or a clear error.

    Args:
        model: The model to check.
        what: The tool asking, for the error message.

    Returns:
        The model's input tensor (a list for several inputs).
    """
    if not isinstance(model, keras.Model) or not (
        isinstance(model, keras.Sequential)
        or isinstance(model, keras.src.models.Functional)
    ):
        raise ValueError(
            f"{what} needs a Sequential or functional `keras.Model`, whose "
            "layers form a graph. Received: model of type "
            f"{type(model).__name__}"
        )
    try:
        inputs = model.inputs
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"{what} needs a built model with a known input; start a "
            "Sequential model with `keras.Input(shape)`. Received: model "
            f"{model.name!r} with no defined input"
        ) from error
    return inputs[0] if len(inputs) == 1 else inputs


def _is_softmax(activation):
    return activation is keras.activations.softmax or (
        isinstance(activation, str) and activation == "softmax"
    )


def final_softmax(model):
    """The layer applying a softmax at the end of `model`, or `None`.

    Follows the last layer into nested models. A `keras.layers.Softmax`, an
    `Activation("softmax")` and any layer built with `activation="softmax"`
    count.

    Example:

    >>> model = keras.Sequential(
    ...     [keras.Input((3,)), keras.layers.Dense(2, activation="softmax")]
    ... )
    >>> final_softmax(model).name == model.layers[-1].name
    True
    >>> final_softmax(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))

    Args:
        model: A Keras model or layer.

    Returns:
        The softmax layer, or `None` when the model ends otherwise.
    """
    layer = model
    while getattr(layer, "layers", None):
        layer = layer.layers[-1]
    if isinstance(layer, keras.layers.Softmax) or _is_softmax(
        getattr(layer, "activation", None)
    ):
        return layer
    return None


def looks_like_probabilities(outputs, atol=1e-3):
    """Whether every row of a batch of `outputs` is a probability vector.

    Example:

    >>> looks_like_probabilities(np.array([[0.2, 0.8], [1.0, 0.0]]))
    True
    >>> looks_like_probabilities(np.array([[2.0, -1.0]]))
    False

    Args:
        outputs: A `(batch, classes)` array.
        atol: Tolerance on each row's sum. Defaults to `1e-3`.

    Returns:
        `True` if the outputs have two axes, at least two classes, no
        negative entry and rows summing to one.
    """
    outputs = keras.ops.convert_to_numpy(outputs).astype("float64")
    return bool(
        outputs.ndim == 2
        and outputs.shape[-1] > 1
        and np.all(outputs >= 0.0)
        and np.allclose(outputs.sum(axis=-1), 1.0, atol=atol)
    )


def outputs_probabilities(model, sample=None):
    """Whether `model` outputs class probabilities rather than logits.

    A model ending in a softmax (`final_softmax`) outputs probabilities;
    otherwise, given a `sample` of its outputs, rows that are non-negative
    and sum to one count as probabilities (a softmax hidden inside a custom
    layer); without a sample, logits.

    Example:

    >>> model = keras.Sequential(
    ...     [keras.Input((3,)), keras.layers.Dense(2, activation="softmax")]
    ... )
    >>> outputs_probabilities(model)
    True

    Args:
        model: A Keras classifier.
        sample: Optional batch of the model's outputs. Defaults to `None`.

    Returns:
        A bool.
    """
    if final_softmax(model) is not None:
        return True
    return sample is not None and looks_like_probabilities(
        keras.ops.convert_to_numpy(sample)
    )


def logits_model(model):
    """Returns a model computing the pre-softmax outputs of `model`.

    A model whose last layer is a `keras.layers.Softmax`, an
    `Activation("softmax")` or any layer built with `activation="softmax"`
    is rewired to stop before that softmax. The new model shares every layer
    with `model` except, in the last case, the last one, which is copied
    with a linear activation and the current weights: call `logits_model`
    again after training `model` further. A model already ending in logits
    is returned as is.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential(
    ...     [keras.Input((3,)), keras.layers.Dense(2, activation="softmax")]
    ... )
    >>> logits = logits_model(model)
    >>> x = np.ones((1, 3), "float32")
    >>> bool(np.allclose(keras.ops.softmax(logits(x)), model(x), atol=1e-6))
    True

    Args:
        model: A built Sequential or functional classifier with one output.

    Returns:
        A `keras.Model` whose output is the logits of `model`.
    """
    inputs = check_graph_model(model, "`logits_model`")
    if len(model.outputs) != 1:
        raise ValueError(
            "This tool needs a classifier with a single output. Received: "
            f"model {model.name!r} with {len(model.outputs)} outputs"
        )
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax) or (
        isinstance(last, keras.layers.Activation)
        and _is_softmax(last.activation)
    ):
        return keras.Model(inputs, last.input, name=f"{model.name}_logits")
    if _is_softmax(getattr(last, "activation", None)):
        config = last.get_config()
        config["activation"] = "linear"
        config["name"] = f"{last.name}_logits"
        linear = last.__class__.from_config(config)
        outputs = linear(last.input)
        linear.set_weights(last.get_weights())
        return keras.Model(inputs, outputs, name=f"{model.name}_logits")
    return model


def check_logits(outputs, model_name):
    """Raises if a batch of `outputs` looks like class probabilities."""
    if looks_like_probabilities(outputs, atol=1e-4):
        raise ValueError(
            f"Model {model_name!r} seems to output probabilities (every row "
            "is non-negative and sums to 1), but this tool needs the "
            "pre-softmax logits. Pass a model that ends before its softmax "
            "(`logits_model` does this for a softmax last layer)."
        )
