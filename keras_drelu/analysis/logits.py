"""Pre-softmax outputs of a classifier, which the gradient tools need."""

import keras
import numpy as np


def _check_graph_model(model, what):
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
    inputs = _check_graph_model(model, "`logits_model`")
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
    outputs = np.asarray(outputs)
    looks_like_probabilities = (
        outputs.ndim == 2
        and outputs.shape[-1] > 1
        and np.all(outputs >= 0)
        and np.allclose(outputs.sum(axis=-1), 1.0, atol=1e-4)
    )
    if looks_like_probabilities:
        raise ValueError(
            f"Model {model_name!r} seems to output probabilities (every row "
            "is non-negative and sums to 1), but this tool needs the "
            "pre-softmax logits. Pass a model that ends before its softmax "
            "(`logits_model` does this for a softmax last layer)."
        )


def check_inputs_and_labels(x, y):
    """`x` as a float32 batch and `y` as one integer label per input."""
    x = np.asarray(x, dtype="float32")
    y = np.asarray(y)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(
            "Argument `x` should be a non-empty batch of inputs. Received: "
            f"x.shape={x.shape}"
        )
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            "Argument `y` should hold one integer class label per input. "
            f"Received: y.shape={y.shape}, y.dtype={y.dtype}, "
            f"x.shape={x.shape}"
        )
    return x, y
