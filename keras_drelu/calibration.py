"""Caps set from data: each unit's cap at a quantile of its inputs."""

import keras
import numpy as np

from keras_drelu.arguments import check_number
from keras_drelu.inspection import capped_activations
from keras_drelu.layers.drelu import record_inputs
from keras_drelu.layers.srelu import SReLU


def _batches(data):
    if isinstance(data, np.ndarray) or keras.ops.is_tensor(data):
        yield data
    elif isinstance(data, (tuple, list)):
        yield data[0]
    else:  # a `tf.data.Dataset` or another iterable of batches
        for element in data:
            yield element[0] if isinstance(element, (tuple, list)) else element


def _unit_quantiles(layer, inputs, quantile):
    # One cap per unit: reduce over the batch and over every axis the cap is
    # shared along (all but the last without `shared_axes`).
    inputs = np.maximum(np.concatenate(inputs).astype("float64"), 0.0)
    cap_shape = tuple(layer.max_value.shape)
    if layer.shared_axes is None:
        return np.quantile(inputs.reshape(-1, cap_shape[-1]), quantile, axis=0)
    axes = (0,) + tuple(
        axis if axis > 0 else inputs.ndim + axis for axis in layer.shared_axes
    )
    return np.quantile(inputs, quantile, axis=axes, keepdims=True)[0]


def _floor_silent_units(caps):
    # A unit that never fired on the calibration data would get a cap of 0
    # and could hardly grow back; it starts at the layer's smallest positive
    # cap instead, so that it passes what it may later receive.
    positive = caps[caps > 0]
    if positive.size and positive.size < caps.size:
        caps = np.where(caps > 0, caps, positive.min())
    return caps


def calibrate_caps(model, data, quantile=0.99):
    """Sets every `DReLU` cap to a quantile of its unit's inputs on `data`.

    A data-driven start: a cap at a high quantile of what its unit actually
    receives clips from the first training step, where the paper's 100
    lets everything through until the penalty has pulled it down. Each
    unit's cap becomes the `quantile` of its input (after the ReLU, so never
    below 0) over the calibration data; a convolutional layer's caps, one
    per channel, take the quantile over the batch and every position (every
    shared axis with `shared_axes`). A unit that never fires on the data
    starts at its layer's smallest positive cap rather than at 0. Layers are
    calibrated one after
    another in the order the model calls them, each on the inputs it sees
    with the earlier caps already set. Nested models and layers inside
    custom layers are found as they are called. `SReLU` caps are fixed by
    design and left alone.

    Example:

    >>> import numpy as np
    >>> from keras_drelu import DReLU
    >>> model = keras.Sequential([keras.Input((3,)), DReLU(name="cap")])
    >>> x = np.arange(300, dtype="float32").reshape(100, 3) / 100
    >>> caps = calibrate_caps(model, x, quantile=0.5)
    >>> [round(float(cap), 3) for cap in caps["cap"]]
    [1.485, 1.495, 1.505]

    Args:
        model: A Keras model holding `DReLU` layers (anywhere).
        data: Calibration inputs: a numpy array or tensor (one batch), or a
            `tf.data.Dataset` of inputs or of `(inputs, labels)` batches,
            which is read to its end (use `.take(n)` to limit it).
        quantile: The quantile in `(0, 1]` each cap is set to. Defaults to
            `0.99`.

    Returns:
        A dict from layer name (`outer/inner` inside nested models) to the
        new caps, as numpy arrays.
    """
    quantile = check_number("quantile", quantile, low=0, high=1, closed="right")
    paths = {id(found.layer): found.path for found in capped_activations(model)}
    done = set()
    calibrated = {}
    while True:
        with record_inputs() as recorded:
            for batch in _batches(data):
                model(batch, training=False)
        pending = [
            (layer, inputs) for layer, inputs in recorded.items()
            if not isinstance(layer, SReLU) and id(layer) not in done
        ]
        if not pending:
            break
        layer, inputs = pending[0]
        caps = _floor_silent_units(_unit_quantiles(layer, inputs, quantile))
        layer.assign_max_value(caps)
        done.add(id(layer))
        calibrated[paths.get(id(layer), layer.name)] = (
            keras.ops.convert_to_numpy(layer.max_value)
        )
    if not calibrated:
        raise ValueError(
            "`calibrate_caps` found no DReLU layer called by the model "
            f"{getattr(model, 'name', model)!r}: there is nothing to calibrate"
        )
    return calibrated

