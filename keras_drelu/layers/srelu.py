"""The Static-Max-Value ReLU layer (S-ReLU)."""

import keras

from keras_drelu.arguments import check_non_negative
from keras_drelu.layers.drelu import DReLU


@keras.saving.register_keras_serializable(package="keras_drelu")
class SReLU(DReLU):
    """Static-Max-Value ReLU: a ReLU capped at a fixed value.

    Formula:
    ```python
    f(x) = max(0, min(x, max_value))
    ```
    The capped ReLU of Sooksatra, Hamerly & Rivas, "Is ReLU Adversarially
    Robust?" (ICML 2023 workshop): the same layer as `DReLU` with a fixed, non-trainable cap
    per unit and no penalty. It accepts `shared_axes` and `gradient_mode`
    with the meaning they have in `DReLU`.

    Example:

    >>> import numpy as np
    >>> layer = SReLU(max_value=0.5)
    >>> keras.ops.convert_to_numpy(layer(np.array([[-1.0, 0.25, 3.0]]))).tolist()
    [[0.0, 0.25, 0.5]]
    >>> len(layer.trainable_weights), len(layer.non_trainable_weights)
    (0, 1)

    Args:
        max_value: Non-negative float, the cap of every unit.
        shared_axes: Axes along which the cap is shared, as in `DReLU`.
            Defaults to `None`.
        gradient_mode: `"exact"` or `"bpda"`, as in `DReLU`. Defaults to
            `"exact"`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.
    """

    def __init__(
        self, max_value, shared_axes=None, gradient_mode="exact", **kwargs
    ):
        super().__init__(
            initial_max_value=check_non_negative("max_value", max_value),
            max_value_regularizer=None,
            max_value_constraint=None,
            trainable_max_value=False,
            shared_axes=shared_axes,
            gradient_mode=gradient_mode,
            # A fixed cap is never learned: store it exactly as given.
            max_value_parameterization="linear",
            **kwargs,
        )

    @property
    def cap(self):
        """The cap, as a float while every unit shares it (as built).

        Caps changed unit by unit with `assign_max_value` come back as a
        numpy array. Before the layer is built, the cap it was given.
        """
        if not self.built:
            return self.initial_max_value
        caps = keras.ops.convert_to_numpy(self.max_value)
        if (caps == caps.flat[0]).all():
            return float(caps.flat[0])
        return caps

    def get_config(self):
        # Skip DReLU's config: an SReLU has no initializer, penalty or
        # constraint to restore, only its fixed cap.
        config = keras.layers.Layer.get_config(self)
        config.update(
            {
                "max_value": self.initial_max_value,
                "shared_axes": self.shared_axes,
                "gradient_mode": self.gradient_mode,
            }
        )
        return config
