"""The SPLASH layer: learnable piecewise-linear units with symmetric hinges."""

import keras
import numpy as np
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_drelu.arguments import check_bool
from keras_drelu.arguments import check_positive
from keras_drelu.layers.unit_axes import normalize_shared_axes
from keras_drelu.layers.unit_axes import unit_parameter_shape

# The paper places the hinges on [0, 2.5] after batch normalisation, where
# inputs have unit scale, so hinges beyond 2.5 would see almost no data.
HINGE_MAX = 2.5


def _check_num_hinges(num_hinges):
    num_hinges = check_positive("num_hinges", num_hinges, integer=True)
    if num_hinges % 2 == 0:
        raise ValueError(
            "Argument `num_hinges` should be a positive odd integer (the "
            "hinges sit at 0 and symmetrically around it). Received: "
            f"num_hinges={num_hinges}"
        )
    return int(num_hinges)


def _relu_initializer(shape, dtype=None):
    # a+_1 = 1 on the hinge at 0 and every other coefficient 0 is ReLU.
    values = np.zeros(shape)
    values[..., 0] = 1.0
    return ops.convert_to_tensor(values, dtype=dtype)


@keras.saving.register_keras_serializable(package="keras_drelu")
class SPLASH(keras.layers.Layer):
    """SPLASH unit: a learnable piecewise-linear activation, symmetric hinges.

    Formula:
    ```python
    h(x) = sum_s a_pos[s] * max(0, x - b[s])
         + sum_s a_neg[s] * max(0, -x - b[s])
    ```
    with `s` running over the `(S + 1) / 2` hinge locations
    `b = linspace(0, 2.5, (S + 1) / 2)`, which are mirrored around zero to
    give `S` hinges in all. The hinges are fixed; the coefficients `a_pos`
    and `a_neg` are learned and start as ReLU (`a_pos[0] = 1`, all others
    0). `h` is continuous and, without the optional bias, grounded:
    `h(0) = 0`. From Tavakoli, Agostinelli & Baldi, "SPLASH: Learnable
    Activation Functions for Improving Accuracy and Adversarial
    Robustness", Neural Networks 140 (2021), arXiv:2006.08947.

    By default one set of coefficients is shared by every unit, as in the
    paper. `per_unit=True` learns one set per unit of the last axis, and
    `shared_axes` then shares it along the given axes, as in
    `keras.layers.PReLU`.

    Example:

    >>> import numpy as np
    >>> layer = SPLASH()
    >>> keras.ops.convert_to_numpy(layer(np.array([[-1.0, 0.5, 3.0]]))).tolist()
    [[0.0, 0.5, 3.0]]
    >>> [round(b, 4) for b in layer.hinges]
    [0.0, 0.8333, 1.6667, 2.5]
    >>> tuple(layer.positive_coefficients.shape)
    (4,)
    >>> conv = SPLASH(per_unit=True, shared_axes=[1, 2])
    >>> _ = conv(np.zeros((1, 8, 8, 16), "float32"))
    >>> tuple(conv.negative_coefficients.shape)
    (1, 1, 16, 4)

    Args:
        num_hinges: Positive odd integer `S`, the number of hinges. Defaults
            to `7`.
        per_unit: Whether every unit of the last axis learns its own
            coefficients. Defaults to `False`, one set for the whole layer.
        shared_axes: With `per_unit=True`, the axes along which coefficients
            are shared, as in `keras.layers.PReLU`: the coefficients take the
            input's shape with these axes set to 1. Defaults to `None`, one
            set per unit of the last axis, shared over every other axis.
        use_bias: Whether to add a learnable output bias (one per set of
            coefficients), which gives up `h(0) = 0`. Defaults to `False`.
        coefficient_regularizer: Regularizer on both coefficient weights.
            Defaults to `None`.
        coefficient_constraint: Constraint on both coefficient weights.
            Defaults to `None`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.
    """

    def __init__(
        self,
        num_hinges=7,
        per_unit=False,
        shared_axes=None,
        use_bias=False,
        coefficient_regularizer=None,
        coefficient_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.num_hinges = _check_num_hinges(num_hinges)
        self.per_unit = check_bool("per_unit", per_unit)
        self.shared_axes = normalize_shared_axes(shared_axes)
        if self.shared_axes is not None and not self.per_unit:
            raise ValueError(
                "Argument `shared_axes` only applies with `per_unit=True`; "
                "by default the coefficients are already shared by every "
                f"unit. Received: shared_axes={shared_axes!r}, "
                f"per_unit={per_unit!r}"
            )
        self.use_bias = check_bool("use_bias", use_bias)
        self.coefficient_regularizer = regularizers.get(coefficient_regularizer)
        self.coefficient_constraint = constraints.get(coefficient_constraint)
        self.hinges = tuple(
            float(b)
            for b in np.linspace(0.0, HINGE_MAX, (self.num_hinges + 1) // 2)
        )

    def build(self, input_shape):
        ndim = len(input_shape)
        if ndim < 2:
            raise ValueError(
                f"Layer {self.name} expects inputs of rank >= 2 (a batch of "
                f"units). Received: input_shape={input_shape}"
            )
        unit_shape, kept_axes = [], []
        if self.per_unit:
            unit_shape, kept_axes = unit_parameter_shape(
                self.name, input_shape, self.shared_axes
            )
        # The hinge index is the last axis of every coefficient weight, so
        # they broadcast against `inputs[..., None]`.
        coefficient_shape = unit_shape + [len(self.hinges)]
        self.positive_coefficients = self.add_weight(
            shape=coefficient_shape,
            name="positive_coefficients",
            initializer=_relu_initializer,
            regularizer=self.coefficient_regularizer,
            constraint=self.coefficient_constraint,
        )
        self.negative_coefficients = self.add_weight(
            shape=coefficient_shape,
            name="negative_coefficients",
            initializer=initializers.Zeros(),
            regularizer=self.coefficient_regularizer,
            constraint=self.coefficient_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=unit_shape or [1],
                name="bias",
                initializer=initializers.Zeros(),
            )
        self.input_spec = keras.InputSpec(
            ndim=ndim, axes={axis: input_shape[axis] for axis in kept_axes}
        )

    def call(self, inputs):
        hinges = ops.convert_to_tensor(self.hinges, dtype=inputs.dtype)
        x = ops.expand_dims(inputs, -1)
        positive = ops.cast(self.positive_coefficients, inputs.dtype)
        negative = ops.cast(self.negative_coefficients, inputs.dtype)
        outputs = ops.sum(
            positive * ops.relu(x - hinges) + negative * ops.relu(-x - hinges),
            axis=-1,
        )
        if self.bias is not None:
            outputs = outputs + ops.cast(self.bias, inputs.dtype)
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_hinges": self.num_hinges,
                "per_unit": self.per_unit,
                "shared_axes": self.shared_axes,
                "use_bias": self.use_bias,
                "coefficient_regularizer": regularizers.serialize(
                    self.coefficient_regularizer
                ),
                "coefficient_constraint": constraints.serialize(
                    self.coefficient_constraint
                ),
            }
        )
        return config
