"""The Dynamic-Max-Value ReLU layer (D-ReLU)."""

import numbers

import keras
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_drelu.arguments import check_bool
from keras_drelu.arguments import check_choice
from keras_drelu.arguments import check_non_negative
from keras_drelu.layers.unit_axes import normalize_shared_axes
from keras_drelu.layers.unit_axes import unit_parameter_shape
from keras_drelu.regularizers import MaxValueRegularizer

GRADIENT_MODES = ("exact", "bpda")


def _get_regularizer(regularizer):
    # A bare number is shorthand for the paper's penalty `lam * sum(m ** 2)`.
    if isinstance(regularizer, numbers.Real) and not isinstance(
        regularizer, bool
    ):
        return MaxValueRegularizer(regularizer)
    try:
        return regularizers.get(regularizer)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "Argument `max_value_regularizer` should be a number (the "
            "`lam` of `MaxValueRegularizer`), a regularizer, its config or "
            f"its name. Received: max_value_regularizer={regularizer!r}"
        ) from error


@keras.saving.register_keras_serializable(package="keras_drelu")
class DReLU(keras.layers.Layer):
    """Dynamic-Max-Value ReLU: a ReLU with a learnable cap per unit.

    Formula:
    ```python
    f(x) = max(0, min(x, m))
    ```
    where `m` is a learnable weight with one entry per unit of the last axis
    (one per channel for convolutional feature maps), initialised high and
    pushed down during training by `MaxValueRegularizer` (Sooksatra & Rivas,
    "Dynamic-Max-Value ReLU Functions for Adversarially Robust Machine
    Learning Models", 2024). The gradient reaches `m` where `x > m`.

    A cap has zero gradient with respect to its input above `m`, which makes
    gradient attacks stall (gradient masking). `gradient_mode="bpda"` keeps
    the forward pass and passes the gradient straight through the cap, as a
    plain ReLU would, so adaptive attacks can see through it; use
    `keras_drelu.with_gradient_mode` to switch a whole model.

    Example:

    >>> import numpy as np
    >>> layer = DReLU(initial_max_value=2.0)
    >>> keras.ops.convert_to_numpy(layer(np.array([[-1.0, 1.0, 3.0]]))).tolist()
    [[0.0, 1.0, 2.0]]
    >>> model = keras.Sequential([
    ...     keras.Input((784,)),
    ...     keras.layers.Dense(256),
    ...     DReLU(max_value_regularizer=1e-3),
    ...     keras.layers.Dense(10),
    ... ])
    >>> tuple(model.layers[1].max_value.shape)
    (256,)

    Args:
        initial_max_value: Non-negative float, the value every cap starts
            at. Defaults to `100.0`.
        max_value_regularizer: Penalty on the caps: a regularizer, its config
            or name, or a float `lam` as shorthand for
            `MaxValueRegularizer(lam)`. Defaults to `None`.
        max_value_constraint: Constraint on the caps. Defaults to
            `"non_neg"`, which keeps every cap non-negative; pass `None` to
            lift it.
        trainable_max_value: Whether the caps are learned. Defaults to
            `True`.
        shared_axes: Axes along which caps are shared, as in
            `keras.layers.PReLU`: the cap has the input's shape with these
            axes set to 1. Defaults to `None`, one cap per unit of the last
            axis, shared over every other axis.
        gradient_mode: `"exact"` for the true gradient of the capped ReLU, or
            `"bpda"` for the plain ReLU gradient in the backward pass (the
            forward pass is unchanged). Defaults to `"exact"`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.
    """

    def __init__(
        self,
        initial_max_value=100.0,
        max_value_regularizer=None,
        max_value_constraint="non_neg",
        trainable_max_value=True,
        shared_axes=None,
        gradient_mode="exact",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.initial_max_value = check_non_negative(
            "initial_max_value", initial_max_value
        )
        self.max_value_regularizer = _get_regularizer(max_value_regularizer)
        self.max_value_constraint = constraints.get(max_value_constraint)
        self.trainable_max_value = check_bool(
            "trainable_max_value", trainable_max_value
        )
        self.shared_axes = normalize_shared_axes(shared_axes)
        self.gradient_mode = check_choice(
            "gradient_mode", gradient_mode, GRADIENT_MODES
        )

    def build(self, input_shape):
        param_shape, kept_axes = unit_parameter_shape(
            self.name, input_shape, self.shared_axes
        )
        if self.shared_axes is None:
            param_shape = param_shape[-1:]  # a flat vector of caps
        self.max_value = self.add_weight(
            shape=param_shape,
            name="max_value",
            initializer=initializers.Constant(self.initial_max_value),
            regularizer=self.max_value_regularizer,
            constraint=self.max_value_constraint,
            trainable=self.trainable_max_value,
        )
        self.input_spec = keras.InputSpec(
            ndim=len(input_shape),
            axes={axis: input_shape[axis] for axis in kept_axes},
        )

    def call(self, inputs):
        # `min(relu(x), max(m, 0))` equals `max(0, min(x, m))` for every `m`,
        # but the ReLU can fuse with a preceding convolution and the clip of
        # `m` costs one op per unit, not per activation.
        cap = ops.maximum(ops.cast(self.max_value, inputs.dtype), 0)
        relu = ops.relu(inputs)
        capped = ops.minimum(relu, cap)
        if self.gradient_mode == "exact":
            return capped
        # Straight-through (BPDA): the forward value is `capped` exactly
        # (`relu - relu` is 0), the backward pass sees only `relu`.
        return ops.stop_gradient(capped) + (relu - ops.stop_gradient(relu))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "initial_max_value": self.initial_max_value,
                "max_value_regularizer": regularizers.serialize(
                    self.max_value_regularizer
                ),
                "max_value_constraint": constraints.serialize(
                    self.max_value_constraint
                ),
                "trainable_max_value": self.trainable_max_value,
                "shared_axes": self.shared_axes,
                "gradient_mode": self.gradient_mode,
            }
        )
        return config
