"""The D-ReLU paper's optimizer and callbacks, plus crash safety, and the
logs that keep the task loss apart from the cap penalty.

The training loss `loss` of a model with penalised caps is the task's
cross-entropy plus the cap penalty `lam * sum(m ** 2)`, which can be a
thousand times larger (lam 1e-3 and 256 caps at 100: about 2560 against
about 2), so a callback watching `loss` or `val_loss` follows the penalty,
not the classifier. `train` therefore compiles in `task_loss_metric()`
(logged as `task_loss` and `val_task_loss`), logs the penalty as
`cap_penalty` (`CapPenaltyLogger`), and the paper's callbacks watch the
task's loss.
"""

import keras

from keras_drelu.training.caps import cap_penalty

TASK_LOSS = "task_loss"
CAP_PENALTY = "cap_penalty"


def task_loss_metric(from_logits, soft_labels=False):
    """The task's cross-entropy alone, as a metric named `task_loss`.

    Compiled in, it is logged as `task_loss` on the training batches and
    `val_task_loss` on validation data, without the layers' penalties that
    `loss` includes.

    Example:

    >>> import numpy as np
    >>> metric = task_loss_metric(from_logits=True)
    >>> metric.name
    'task_loss'
    >>> metric.update_state(np.array([0]), np.array([[0.0, 0.0]]))
    >>> round(float(metric.result()), 4)  # log(2)
    0.6931

    Args:
        from_logits: Whether the model outputs logits.
        soft_labels: Whether the labels are probability vectors (as M-TLAT
            trains on) rather than class ids. Defaults to `False`.

    Returns:
        A `keras.metrics.Metric`.
    """
    metric = (
        keras.metrics.CategoricalCrossentropy if soft_labels
        else keras.metrics.SparseCategoricalCrossentropy
    )
    return metric(name=TASK_LOSS, from_logits=from_logits)


class CapPenaltyLogger(keras.callbacks.Callback):
    """Adds the cap penalty at each epoch's end to the logs, as
    `cap_penalty`.

    The value is `keras_drelu.training.caps.cap_penalty` of the model
    trained, after the epoch's last step; `History` (and any callback after
    this one) sees it beside `loss` and `task_loss`.

    Example:

    >>> import numpy as np
    >>> from keras_drelu import DReLU
    >>> model = keras.Sequential([keras.Input((2,)), DReLU(
    ...     initial_max_value=3.0, max_value_regularizer=0.5)])
    >>> model.compile(keras.optimizers.SGD(0.0), "mse")
    >>> history = model.fit(np.zeros((4, 2)), np.zeros((4, 2)), verbose=0,
    ...                     callbacks=[CapPenaltyLogger()])
    >>> history.history["cap_penalty"]  # 0.5 * (3**2 + 3**2)
    [9.0]
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[CAP_PENALTY] = cap_penalty(self.model)


def paper_optimizer():
    """Adam with learning rate `1e-3`, as in the D-ReLU paper (section 5.2).

    Example:

    >>> round(float(paper_optimizer().learning_rate), 6)
    0.001
    """
    return keras.optimizers.Adam(learning_rate=1e-3)


def paper_callbacks(backup_dir=None, monitor="val_" + TASK_LOSS):
    """The callbacks of the D-ReLU paper (section 5.2), ready for `fit`.

    `ReduceLROnPlateau(factor=0.5, patience=5)` and
    `EarlyStopping(patience=10, restore_best_weights=True)` on `monitor`,
    `TerminateOnNaN`, and, given `backup_dir`, a `BackupAndRestore` placed
    first, so that a killed run restarted with the same `backup_dir` resumes
    after the last finished epoch. The early-stopping and learning-rate
    counters themselves are not backed up: a resumed run starts them afresh
    (the learning rate, held by the optimizer, is restored).

    They watch the task's validation loss, `val_task_loss`, not `val_loss`,
    which holds the cap penalty too and would make them follow the penalty:
    compile the model with `task_loss_metric(...)` among its metrics, as
    `train` does.

    Example:

    >>> [type(c).__name__ for c in paper_callbacks("/tmp/backup")]
    ['BackupAndRestore', 'ReduceLROnPlateau', 'EarlyStopping', 'TerminateOnNaN']
    >>> paper_callbacks()[1].monitor
    'val_task_loss'

    Args:
        backup_dir: Directory for the `BackupAndRestore` checkpoint.
            Defaults to `None`, no backup.
        monitor: The quantity watched by the plateau and early-stopping
            callbacks. Defaults to `"val_task_loss"`; use `"task_loss"`
            when training without validation data.

    Returns:
        A list of Keras callbacks.
    """
    callbacks = []
    if backup_dir is not None:
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir)))
    # A loss falls as it improves; Keras can tell the direction of other
    # metrics only from those compiled in.
    mode = "min" if monitor.endswith("loss") else "auto"
    callbacks += [
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=0.5, patience=5, mode=mode
        ),
        keras.callbacks.EarlyStopping(
            monitor=monitor, patience=10, restore_best_weights=True, mode=mode
        ),
        keras.callbacks.TerminateOnNaN(),
    ]
    return callbacks
