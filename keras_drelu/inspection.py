"""Reading the caps out of a model."""

import keras

from keras_drelu.layers.drelu import DReLU


def _capped_layers(layer, prefix):
    for child in getattr(layer, "layers", []):
        path = f"{prefix}{child.name}"
        if isinstance(child, DReLU):
            yield path, child
        else:
            yield from _capped_layers(child, f"{path}/")


def max_values(model):
    """Every cap in `model`, per `DReLU`/`SReLU` layer.

    Nested models are searched too; a nested layer is keyed by its path,
    `"outer/inner"`.

    Example:

    >>> from keras_drelu import DReLU
    >>> model = keras.Sequential(
    ...     [keras.Input((3,)), keras.layers.Dense(2), DReLU(name="cap")]
    ... )
    >>> {name: caps.round(3).tolist() for name, caps in max_values(model).items()}
    {'cap': [100.0, 100.0]}

    Args:
        model: A Keras model (or layer holding layers).

    Returns:
        A dict from layer path to a numpy array of that layer's caps, in
        the order the layers appear in the model. Unbuilt layers are left
        out.
    """
    return {
        path: keras.ops.convert_to_numpy(layer.max_value)
        for path, layer in _capped_layers(model, "")
        if layer.built
    }
