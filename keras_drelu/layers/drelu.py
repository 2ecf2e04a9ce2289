"""The Dynamic-Max-Value ReLU layer (D-ReLU)."""

import contextlib
import contextvars
import numbers

import keras
from keras import constraints
from keras import ops
from keras import regularizers

from keras_drelu.arguments import check_bool
from keras_drelu.arguments import check_choice
from keras_drelu.arguments import check_non_negative
from keras_drelu.layers.cap_parameterizations import PARAMETERIZATIONS
from keras_drelu.layers.cap_parameterizations import CapSpaceConstraint
from keras_drelu.layers.cap_parameterizations import CapSpaceRegularizer
from keras_drelu.layers.straight_through import straight_through_active
from keras_drelu.layers.unit_axes import normalize_shared_axes
from keras_drelu.layers.unit_axes import unit_parameter_shape
from keras_drelu.regularizers import MaxValueRegularizer

GRADIENT_MODES = ("exact", "bpda")

_RECORDER = contextvars.ContextVar("keras_drelu_record_inputs", default=None)


@contextlib.contextmanager
def record_inputs():
    """Collects, per `DReLU` layer, the inputs of its eager calls.

    Used by `keras_drelu.calibrate_caps`, which needs what each cap sees
    wherever the layer sits (nested models, custom layers).

    Yields:
        A dict from layer to the list of its input batches (numpy), in the
        order the layers were first called.
    """
    recorded = {}
    token = _RECORDER.set(recorded)
    try:
        yield recorded
    finally:
        _RECORDER.reset(token)


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
    the forward pass and passes the input gradient straight through the
    cap, as a plain ReLU would, so adaptive attacks can see through it; the
    caps keep their exact gradient, so a model in either mode trains. The
    scope `keras_drelu.straight_through()` does the same for every cap called
    inside it, on the same model; `keras_drelu.with_gradient_mode` makes a
    copy of a whole model in one mode.

    The caps are stored as `log(m) / 10` by default
    (`max_value_parameterization="log"`), so that an optimizer such as
    Adam, which moves a weight by about its learning rate per step, changes
    a cap by about 1% per step at any scale: from the paper's 100 a cap
    reaches its penalised value within a few hundred steps, where stored as
    itself (`"linear"`) it would need on the order of 10^5
    (`experiments/cap_learning.py`). `max_value` is always the cap itself,
    and saved files hold the caps, so files load in either form.

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
            `"bpda"` for the plain ReLU's gradient with respect to the input
            in the backward pass (the forward pass and the caps' own
            gradient are unchanged). Defaults to `"exact"`.
        max_value_parameterization: How the caps are stored and learned:
            `"log"` (`m = exp(10 s)`, caps move by a share of their value
            per step) or `"linear"` (`m` itself, as in the paper). A
            constraint or penalty always acts on the caps `m`. Defaults to
            `"log"`.
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
        max_value_parameterization="log",
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
        self.max_value_parameterization = check_choice(
            "max_value_parameterization",
            max_value_parameterization,
            PARAMETERIZATIONS,
        )
        self._parameterization = PARAMETERIZATIONS[max_value_parameterization]

    def build(self, input_shape):
        param_shape, kept_axes = unit_parameter_shape(
            self.name, input_shape, self.shared_axes
        )
        if self.shared_axes is None:
            param_shape = param_shape[-1:]  # a flat vector of caps
        parameterization = self._parameterization
        regularizer = constraint = None
        if self.max_value_regularizer is not None:
            regularizer = CapSpaceRegularizer(
                self.max_value_regularizer, parameterization
            )
        user_constraint = self.max_value_constraint
        if parameterization.name == "log" and isinstance(
            user_constraint, constraints.NonNeg
        ):
            user_constraint = None  # positive by construction
        if user_constraint is not None or parameterization.name == "log":
            constraint = CapSpaceConstraint(user_constraint, parameterization)
        def initializer(shape, dtype=None):
            caps = ops.full(shape, self.initial_max_value, dtype="float32")
            return ops.cast(parameterization.from_caps(caps), dtype)

        self._stored_max_value = self.add_weight(
            shape=param_shape,
            name="max_value" if parameterization.name == "linear"
            else f"{parameterization.name}_max_value",
            initializer=initializer,
            regularizer=regularizer,
            constraint=constraint,
            trainable=self.trainable_max_value,
        )
        self.input_spec = keras.InputSpec(
            ndim=len(input_shape),
            axes={axis: input_shape[axis] for axis in kept_axes},
        )

    @property
    def max_value(self):
        """The caps `m`: the stored variable itself, or computed from it.

        With `max_value_parameterization="linear"` this is the trainable
        variable; with `"log"` a tensor computed from `max_value_variable`.
        Set caps with `assign_max_value`.
        """
        return self._parameterization.to_caps(self._stored_max_value)

    @property
    def max_value_variable(self):
        """The variable the optimizer updates (`m`, or `log(m) / rate`)."""
        return self._stored_max_value

    def assign_max_value(self, max_value):
        """Sets the caps to `max_value` (a number or an array of caps).

        Example:

        >>> layer = DReLU()
        >>> layer.build((None, 2))
        >>> layer.assign_max_value([0.5, 3.0])
        >>> [round(float(m), 4) for m in keras.ops.convert_to_numpy(layer.max_value)]
        [0.5, 3.0]

        Args:
            max_value: Non-negative caps, broadcastable to the caps' shape.
        """
        caps = ops.broadcast_to(
            ops.convert_to_tensor(max_value, "float32"),
            self._stored_max_value.shape,
        )
        self._stored_max_value.assign(self._parameterization.from_caps(caps))

    def save_own_variables(self, store):
        # Entry "0" holds the caps themselves whatever the parameterization,
        # as files written before it existed do, so that every file loads
        # into either form; "1" holds a stored form other than the caps, so
        # that a model reloads bit for bit.
        store["0"] = keras.ops.convert_to_numpy(self.max_value)
        if self.max_value_parameterization != "linear":
            store["1"] = keras.ops.convert_to_numpy(self._stored_max_value)

    def load_own_variables(self, store):
        if "1" in store:
            self._stored_max_value.assign(store["1"])
        else:
            self.assign_max_value(store["0"])

    def _record(self, recorded, inputs):
        try:
            values = ops.convert_to_numpy(inputs)
        except (ValueError, TypeError, NotImplementedError):
            return  # a symbolic call (Keras inferring a shape): no data
        recorded.setdefault(self, []).append(values)

    def call(self, inputs):
        # `min(relu(x), max(m, 0))` equals `max(0, min(x, m))` for every `m`,
        # but the ReLU can fuse with a preceding convolution and the clip of
        # `m` costs one op per unit, not per activation.
        recorded = _RECORDER.get()
        if recorded is not None:
            self._record(recorded, inputs)
        cap = ops.maximum(ops.cast(self.max_value, inputs.dtype), 0)
        relu = ops.relu(inputs)
        if self.gradient_mode == "exact" and not straight_through_active():
            return ops.minimum(relu, cap)
        # Straight-through (BPDA): the forward value is `min(relu, cap)`
        # exactly (`relu - relu` is 0). The input's gradient is the ReLU's;
        # the cap's is the exact one, 1 where it clips.
        clipped = ops.minimum(ops.stop_gradient(relu), cap)
        return clipped + (relu - ops.stop_gradient(relu))

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
                "max_value_parameterization": self.max_value_parameterization,
            }
        )
        return config
