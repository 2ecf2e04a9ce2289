"""The cap penalty of D-ReLU training (D-ReLU paper, eq. 1)."""

import keras
from keras import ops

from keras_drelu.arguments import check_non_negative


@keras.saving.register_keras_serializable(package="keras_drelu")
class MaxValueRegularizer(keras.regularizers.Regularizer):
    """Penalty `lam * sum(m ** 2)` on the caps `m` of a `DReLU` layer.

    Formula:
    ```python
    loss = lam * sum(m ** 2)
    ```
    This is the second term of the D-ReLU loss
    `l(F(x), y) + lam * sum_i m_i ** 2` (Sooksatra & Rivas, 2024, eq. 1): it
    pushes the learnable caps down so that adversarial perturbations are
    clipped, while the task loss pulls them up where the model needs range.

    Example:

    >>> import numpy as np
    >>> reg = MaxValueRegularizer(0.5)
    >>> float(reg(np.array([1.0, 2.0], dtype="float32")))
    2.5

    Args:
        lam: Non-negative float, the weight of the penalty. Defaults to
            `1e-3`.
    """

    def __init__(self, lam=1e-3):
        self.lam = check_non_negative("lam", lam)

    def __call__(self, x):
        return self.lam * ops.sum(ops.square(x))

    def get_config(self):
        return {"lam": self.lam}

    def __repr__(self):
        return f"MaxValueRegularizer(lam={self.lam})"
