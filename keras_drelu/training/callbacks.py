"""The D-ReLU paper's optimizer and callbacks, plus crash safety."""

import keras


def paper_optimizer():
    """Adam with learning rate `1e-3`, as in the D-ReLU paper (section 5.2).

    Example:

    >>> round(float(paper_optimizer().learning_rate), 6)
    0.001
    """
    return keras.optimizers.Adam(learning_rate=1e-3)


def paper_callbacks(backup_dir=None, monitor="val_loss"):
    """The callbacks of the D-ReLU paper (section 5.2), ready for `fit`.

    `ReduceLROnPlateau(factor=0.5, patience=5)` and
    `EarlyStopping(patience=10, restore_best_weights=True)` on `monitor`,
    `TerminateOnNaN`, and, given `backup_dir`, a `BackupAndRestore` placed
    first, so that a killed run restarted with the same `backup_dir` resumes
    after the last finished epoch. The early-stopping and learning-rate
    counters themselves are not backed up: a resumed run starts them afresh
    (the learning rate, held by the optimizer, is restored).

    Example:

    >>> [type(c).__name__ for c in paper_callbacks("/tmp/backup")]
    ['BackupAndRestore', 'ReduceLROnPlateau', 'EarlyStopping', 'TerminateOnNaN']

    Args:
        backup_dir: Directory for the `BackupAndRestore` checkpoint.
            Defaults to `None`, no backup.
        monitor: The quantity watched by the plateau and early-stopping
            callbacks. Defaults to `"val_loss"`; use `"loss"` when training
            without validation data.

    Returns:
        A list of Keras callbacks.
    """
    callbacks = []
    if backup_dir is not None:
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir)))
    callbacks += [
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=0.5, patience=5
        ),
        keras.callbacks.EarlyStopping(
            monitor=monitor, patience=10, restore_best_weights=True
        ),
        keras.callbacks.TerminateOnNaN(),
    ]
    return callbacks
