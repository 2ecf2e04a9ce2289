"""Which axes of a layer's input hold units with parameters of their own.

Shared by the layers that learn one parameter (or one set) per unit:
`DReLU` (a cap per unit) and `SPLASH` with `per_unit=True`.
"""

import numbers


def normalize_shared_axes(shared_axes):
    """Validates `shared_axes` (None, an int or a list of ints)."""
    if shared_axes is None:
        return None
    axes = shared_axes if isinstance(shared_axes, (list, tuple)) else [
        shared_axes
    ]
    for axis in axes:
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(
                "Argument `shared_axes` should be an int or a list of ints. "
                f"Received: shared_axes={shared_axes!r}"
            )
        if axis == 0:
            raise ValueError(
                "Argument `shared_axes` cannot contain the batch axis 0. "
                f"Received: shared_axes={shared_axes!r}"
            )
    return [int(axis) for axis in axes]


def unit_parameter_shape(layer_name, input_shape, shared_axes):
    """The shape of a per-unit parameter, and the input axes it keeps.

    With `shared_axes=None` there is one parameter per unit of the last
    axis, shared over every other axis; otherwise, as in
    `keras.layers.PReLU`, the parameter has the input's shape (batch axis
    left out) with the shared axes set to 1.

    Args:
        layer_name: Name used in error messages.
        input_shape: The layer's input shape, batch axis included.
        shared_axes: The output of `normalize_shared_axes`.

    Returns:
        `(shape, kept_axes)`: a list of rank `len(input_shape) - 1` that
        broadcasts against the inputs, and the input axes not shared.
    """
    ndim = len(input_shape)
    if ndim < 2:
        raise ValueError(
            f"Layer {layer_name} expects inputs of rank >= 2 (a batch of "
            f"units). Received: input_shape={input_shape}"
        )
    if shared_axes is None:
        shared = set(range(1, ndim - 1))
    else:
        shared = set()
        for axis in shared_axes:
            positive = axis + ndim if axis < 0 else axis
            if not 1 <= positive < ndim:
                raise ValueError(
                    f"Layer {layer_name}: `shared_axes` entry {axis} is out "
                    f"of range for inputs of rank {ndim}. Received: "
                    f"shared_axes={shared_axes}, input_shape={input_shape}"
                )
            shared.add(positive)
    kept_axes = [axis for axis in range(1, ndim) if axis not in shared]
    for axis in kept_axes:
        if input_shape[axis] is None:
            raise ValueError(
                f"Layer {layer_name} needs a known size for axis {axis}, "
                "which holds one set of parameters per unit; share it with "
                f"`shared_axes` or fix its size. Received: "
                f"input_shape={input_shape}"
            )
    shape = [1 if i in shared else input_shape[i] for i in range(1, ndim)]
    return shape, kept_axes
