"""Per-example attack losses on logits: cross-entropy, margin, DLR.

Every function takes logits `z` of shape `(batch, classes)` and integer
labels `y`, and returns one loss per example; attacks maximise them.
"""

import tensorflow as tf


def cross_entropy(logits, y):
    """Softmax cross-entropy `-log softmax(z)_y`, per example.

    Example:

    >>> import numpy as np
    >>> z = np.array([[2.0, 0.0, 0.0]], "float32")
    >>> round(float(cross_entropy(z, np.array([0]))[0]), 4)
    0.2395
    """
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(y, tf.int32), logits=logits
    )


def _true_logit(logits, y):
    return tf.gather(logits, tf.cast(y, tf.int32), batch_dims=1)


def _best_other_logit(logits, y):
    logits = tf.convert_to_tensor(logits)
    mask = tf.one_hot(tf.cast(y, tf.int32), tf.shape(logits)[1]) > 0
    return tf.reduce_max(tf.where(mask, logits.dtype.min, logits), axis=1)


def margin(logits, y):
    """`max_{i != y} z_i - z_y`: positive exactly when `y` is not predicted.

    Example:

    >>> import numpy as np
    >>> z = np.array([[2.0, 3.0, 0.0]], "float32")
    >>> float(margin(z, np.array([0]))[0])
    1.0
    """
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
    logits = tf.convert_to_tensor(logits)
    top = tf.math.top_k(logits, k=3).values
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
    logits = tf.convert_to_tensor(logits)
    top = tf.math.top_k(logits, k=4).values
    difference = _true_logit(logits, target) - _true_logit(logits, y)
    return difference / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)
