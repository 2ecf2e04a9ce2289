"""Target classes of the targeted attacks (APGD-T, FAB-T)."""

from keras import ops


def target_classes(logits, n_target_classes):
    """The classes of the 2nd to `n_target_classes + 1`-th largest logit.

    AutoAttack's choice for APGD-T and FAB-T: the `k`-th target of an input
    is the class of its `k + 1`-th largest clean logit, the runner-up first.
    At most `classes - 1` targets are returned.

    Example:

    >>> import numpy as np
    >>> z = np.array([[0.0, 3.0, 1.0, 2.0]], "float32")
    >>> np.asarray(target_classes(z, 2)).tolist()
    [[3], [2]]

    Args:
        logits: `(batch, classes)` logits at the clean inputs.
        n_target_classes: Number of targets wanted.

    Returns:
        An int32 tensor `(targets, batch)`: one row of classes per target.
    """
    logits = ops.convert_to_tensor(logits)
    n = min(n_target_classes, logits.shape[-1] - 1)
    order = ops.top_k(logits, k=n + 1)[1]
    return ops.transpose(ops.cast(order[:, 1:], "int32"))
