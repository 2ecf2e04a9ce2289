"""Per-example attack losses on logits: cross-entropy, margin, DLR.

Every function takes logits `z` of shape `(batch, classes)` and integer
labels `y`, and returns one loss per example; attacks maximise them.
"""

import numpy as np
from keras import ops


def cross_entropy(logits, y):
    """Softmax cross-entropy `-log softmax(z)_y`, per example.

    Example:

    >>> import numpy as np
    >>> z = np.array([[2.0, 0.0, 0.0]], "float32")
    >>> round(float(cross_entropy(z, np.array([0]))[0]), 4)
    0.2395
    """
    return ops.sparse_categorical_crossentropy(
        ops.cast(y, "int32"), logits, from_logits=True
    )


def _true_logit(logits, y):
    index = ops.cast(y, "int32")[:, None]
    return ops.take_along_axis(logits, index, axis=1)[:, 0]


def _best_other_logit(logits, y):
    logits = ops.convert_to_tensor(logits)
    lowest = float(np.finfo(ops.dtype(logits)).min)
    mask = ops.one_hot(ops.cast(y, "int32"), logits.shape[1]) > 0
    return ops.max(ops.where(mask, lowest, logits), axis=1)


def margin(logits, y):
    """`max_{i != y} z_i - z_y`: positive exactly when `y` is not predicted.

    Example:

    >>> import numpy as np
    >>> z = np.array([[2.0, 3.0, 0.0]], "float32")
    >>> float(margin(z, np.array([0]))[0])
    1.0
    """
    logits = ops.convert_to_tensor(logits)
    return _best_other_logit(logits, y) - _true_logit(logits, y)


def dlr(logits, y):
    """Difference of Logits Ratio loss (Croce & Hein, 2020).

    Formula:
    ```python
    dlr(z, y) = -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)
    ```
    where `z_pi1 >= z_pi2 >= ...` are the sorted logits. It is invariant to
    shifting and scaling the logits. Needs at least 3 classes.

    Example:

    >>> import numpy as np
    >>> z = np.array([[4.0, 2.0, 0.0]], "float32")
    >>> float(dlr(z, np.array([0]))[0])
    -0.5
    """
    logits = ops.convert_to_tensor(logits)
    top = ops.top_k(logits, k=3)[0]
    return margin(logits, y) / (top[:, 0] - top[:, 2] + 1e-12)


def targeted_dlr(logits, y, target):
    """Targeted DLR loss of APGD-T (Croce & Hein, 2020).

    Formula:
    ```python
    dlr_t(z, y, t) = -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)
    ```
    Needs at least 4 classes.

    Example:

    >>> import numpy as np
    >>> z = np.array([[4.0, 2.0, 1.0, -1.0]], "float32")
    >>> float(targeted_dlr(z, np.array([0]), np.array([1]))[0])
    -0.5
    """
    logits = ops.convert_to_tensor(logits)
    top = ops.top_k(logits, k=4)[0]
    difference = _true_logit(logits, target) - _true_logit(logits, y)
    return difference / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


def misclassified(logits, y):
    """Per example, whether the largest logit is not that of `y`."""
    predicted = ops.cast(ops.argmax(logits, axis=1), "int32")
    return ops.not_equal(predicted, ops.cast(y, "int32"))
