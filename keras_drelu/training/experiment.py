"""One call to train a classifier with a named recipe, and repeated runs."""

import contextlib
import dataclasses
import functools
import math
import os
import sys

import keras
import numpy as np

from keras_drelu.arguments import check_bool
from keras_drelu.arguments import check_choice
from keras_drelu.arguments import check_non_negative
from keras_drelu.arguments import check_positive
from keras_drelu.arguments import check_seed
from keras_drelu.outputs import final_softmax
from keras_drelu.training.callbacks import TASK_LOSS
from keras_drelu.training.callbacks import CapPenaltyLogger
from keras_drelu.training.callbacks import paper_callbacks
from keras_drelu.training.callbacks import paper_optimizer
from keras_drelu.training.callbacks import task_loss_metric
from keras_drelu.training.caps import has_penalised_caps
from keras_drelu.training.recipes import AUTO
from keras_drelu.training.recipes import RECIPES
from keras_drelu.training.recipes import get_recipe
from keras_drelu.training.strategy import get_strategy


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    """What `train` returns: the trained classifier and the record of its run.

    Attributes:
        model: The trained classifier, never a recipe's wrapper, ready to
            save or export.
        history: Each metric's value per epoch run, as in
            `keras.callbacks.History.history`; with `natural_epochs`, the
            natural phase first.
        epochs: The indices of the epochs run, numbered over both phases; a
            resumed run leaves out those done before it was stopped.
        recipe: The recipe's name (the one picked, for `"auto"`).
        settings: The recipe's settings, its defaults filled in, such as
            `{"eps": 0.1, "norm": "linf", "attack_steps": 10}`.
    """

    model: keras.Model = dataclasses.field(repr=False)
    history: dict = dataclasses.field(repr=False)
    epochs: list
    recipe: str
    settings: dict


def _build_classifier(model, strategy):
    if isinstance(model, keras.Model):
        classifier = model
    elif callable(model):
        classifier = model()
        if not isinstance(classifier, keras.Model):
            raise ValueError(
                "The model function should return a `keras.Model`. Received: "
                f"{type(classifier).__name__}"
            )
    else:
        raise ValueError(
            "Argument `model` should be a `keras.Model` or a function building "
            f"one. Received: model of type {type(model).__name__}"
        )
    if strategy is None:
        return classifier
    outside = [
        v.path for v in classifier.variables
        if not strategy.extended.variable_created_in_scope(v.value)
    ]
    if outside:
        raise ValueError(
            "The model was built outside the strategy's scope (e.g. variable "
            f"{outside[0]!r}): pass a function that builds it instead, so that "
            "`train` can call it inside `strategy.scope()`"
        )
    return classifier


def _new_optimizer(optimizer):
    if optimizer is None:
        return paper_optimizer()
    if isinstance(optimizer, keras.optimizers.Optimizer):
        # A fresh copy: each training phase starts with new moments.
        return optimizer.__class__.from_config(optimizer.get_config())
    return keras.optimizers.get(optimizer)


def _concatenate(first, second):
    history = keras.callbacks.History()
    history.history = {
        key: first.history.get(key, []) + second.history.get(key, [])
        for key in {**first.history, **second.history}
    }
    offset = max(first.epoch, default=-1) + 1
    history.epoch = first.epoch + [offset + epoch for epoch in second.epoch]
    history.params = second.params
    return history


def _task_loss_metric(model, from_logits):
    # A trainer on soft labels (M-TLAT) says which cross-entropy it logs.
    own = getattr(model, "task_loss_metric", None)
    return own() if own is not None else task_loss_metric(from_logits)


def _scope(strategy):
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def _shuffles_itself(data):
    # A `tf.data.Dataset` shuffles itself (Keras warns when asked again);
    # only a process that imported TensorFlow can hold one.
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(data, tf.data.Dataset)


def _arrays(data):
    """`(x, y, sample_weight)` of data given as arrays, else `None`."""
    if isinstance(data, tuple) and len(data) in (2, 3):
        return (*data, None)[:3]
    return None


def _build_before_tracing(trainer, train_data):
    """Makes the optimizer's slots and the compiled metrics before `fit`.

    Keras' TensorFlow trainer (without a strategy) leaves both to the
    first trace of the training step, and `tf.function` then traces the
    step a second time because that trace made variables. Made here, the
    step is traced once per phase: on a MobileNetV2 backbone, several
    seconds a phase.
    """
    if trainer.built:
        trainer.optimizer.build(trainer.trainable_variables)
        build_metrics(trainer, train_data)


def build_metrics(model, data):
    """Makes a compiled model's metrics now, not in its first traced step.

    Keras makes a metric named by a string (`"accuracy"`) inside the first
    trace of `fit`'s or `evaluate`'s step, and on TensorFlow `tf.function`
    then traces that step again. This builds them the way the step would,
    through the model's own `compute_metrics` (which turns a recipe's
    labels into what it scores), on one all-zero example shaped like
    `data`, then resets them; `fit` and `evaluate` then trace once. Data
    whose shapes are unknown (a generator) is left to Keras.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> model.compile(loss="sparse_categorical_crossentropy",
    ...               metrics=["accuracy"])
    >>> x, y = np.zeros((8, 4), "float32"), np.zeros(8, "int32")
    >>> build_metrics(model, (x, y))
    True
    >>> [metric.name for metric in model.metrics[1].metrics]
    ['accuracy']

    Args:
        model: A compiled, built Keras model.
        data: `(inputs, labels)` arrays or a `tf.data.Dataset` of
            `(inputs, labels[, sample_weights])` batches.

    Returns:
        Whether the metrics were built (`False`: shapes unknown).
    """
    example = _zero_example(data)
    if example is None:
        return False
    x, y = example
    model.compute_metrics(x, y, model(x, training=False))
    model.reset_metrics()
    return True


def _zero_example(data):
    """One all-zero `(x, y)` shaped like an example of `data`, or `None`
    where a shape is unknown or the inputs are not one array (a dict of
    inputs, a generator)."""
    arrays = _arrays(data)
    if arrays:
        parts = arrays[:2]
    else:
        # A `tf.data.Dataset` says the shapes of its batches.
        parts = getattr(data, "element_spec", None)
        if not isinstance(parts, tuple) or len(parts) < 2:
            return None
    example = []
    for part in parts[:2]:
        shape = getattr(part, "shape", None)
        dtype = getattr(part, "dtype", None)
        if shape is None or dtype is None or None in tuple(shape)[1:]:
            return None
        dtype = getattr(dtype, "as_numpy_dtype", dtype)
        example.append(np.zeros((1, *tuple(shape)[1:]), dtype))
    return tuple(example)


def _fit_phase(
    trainer, loss, train_data, validation_data, *, epochs, backup_dir,
    optimizer, metrics, callbacks, default_callbacks, strategy, verbose,
    from_logits, batch_size,
):
    with _scope(strategy):
        trainer.compile(
            optimizer=_new_optimizer(optimizer),
            loss=loss,
            metrics=[_task_loss_metric(trainer, from_logits), *metrics],
        )
        _build_before_tracing(trainer, train_data)
    monitor = TASK_LOSS if validation_data is None else "val_" + TASK_LOSS
    if default_callbacks:
        phase_callbacks = paper_callbacks(backup_dir, monitor)
    elif backup_dir is not None:
        phase_callbacks = [keras.callbacks.BackupAndRestore(str(backup_dir))]
    else:
        phase_callbacks = []
    if has_penalised_caps(trainer):
        # Before the callbacks given: they see the penalty in the logs.
        phase_callbacks.append(CapPenaltyLogger())
    arrays = _arrays(train_data)
    x, y, sample_weight = arrays or (train_data, None, None)
    return trainer.fit(
        x,
        y,
        sample_weight=sample_weight,
        batch_size=batch_size if arrays else None,
        validation_data=validation_data,
        epochs=epochs,
        callbacks=phase_callbacks + list(callbacks or []),
        verbose=verbose,
        shuffle=not _shuffles_itself(train_data),
    )


def _ramp_steps(epochs, train_data, batch_size):
    """`epochs` of `train_data`, in steps."""
    arrays = _arrays(train_data)
    try:
        if arrays:
            per_epoch = math.ceil(len(arrays[0]) / batch_size)
        else:
            per_epoch = len(train_data)
    except TypeError as error:
        raise ValueError(
            "Argument `eps_ramp` counts epochs in steps of `train_data`, "
            "whose length is unknown; pass `eps_ramp_steps` instead. "
            f"Received: eps_ramp={epochs}"
        ) from error
    return int(math.ceil(epochs * per_epoch))


def train(
    model,
    train_data,
    validation_data=None,
    *,
    recipe="standard",
    epochs,
    eps=None,
    step_size=None,
    attack_steps=None,
    norm=None,
    beta=None,
    mixup_alpha=None,
    inner_gradient=None,
    eps_ramp=None,
    natural_epochs=0,
    from_logits=None,
    optimizer=None,
    metrics=("accuracy",),
    backup_dir=None,
    callbacks=None,
    default_callbacks=True,
    strategy=None,
    seed=None,
    batch_size=None,
    verbose="auto",
    **recipe_settings,
):
    """Trains a Keras classifier with a named recipe and the paper's setup.

    The recipes are the entries of `RECIPES` (`register_recipe` adds
    more); each takes some of the recipe settings below and refuses the
    others:

    - `"standard"`: natural training on the compiled cross-entropy.
    - `"drelu"`: the same, since the D-ReLU cap penalty comes from the
      `DReLU` layers' `max_value_regularizer`; it first checks that the
      model has at least one such regularized cap.
    - `"pgd-at"`: `AdversarialTraining` (Madry et al.), `attack_steps`
      (default 10) PGD steps of `step_size` (default `2.5 * eps / steps`).
    - `"fgsm-at"`: `FastAdversarialTraining` (Wong et al. 2020), one step of
      `1.25 * eps` from a random start.
    - `"trades"`: `TRADES` with `beta` (default 6; the paper uses 1 and 6).
    - `"mtlat"`: `MTLAT` (Laugros et al. 2020), Mixup with `mixup_alpha`
      (default 0.2) then `attack_steps` (default 1) targeted steps toward a
      random class, whose weight in the soft label is `eps`.
    - `"auto"`: `"drelu"` for a model with penalised caps, else
      `"standard"`.

    The paper's schedule for adversarial training, "retrain for 10 epochs
    after natural training", is `natural_epochs=N, epochs=10`: natural
    training with early stopping, then `epochs` of the recipe with a fresh
    optimizer. With `backup_dir`, a killed run resumes in the phase and
    epoch it stopped at.

    The adversarial recipes attack through capped ReLUs with the
    straight-through gradient (`inner_gradient="bpda"`, the default for a
    model holding caps) and update the weights with the exact one. With
    `eps_ramp`, their radius grows from 0 to `eps` over that many epochs
    (Ngnawe et al. 2025: robust fine-tuning of a non-robust pretrained
    model transfers badly without such a schedule).

    Besides `loss`, the history holds `task_loss` (and `val_task_loss`),
    the recipe's cross-entropy without penalties (for TRADES the clean
    one, without the KL term), and, for a model with penalised caps,
    `cap_penalty`, the penalty at each epoch's end: `loss` is about their
    sum, and the penalty can outweigh the task a thousandfold.

    By default the optimizer is Adam with learning rate `1e-3` and the
    callbacks are `paper_callbacks(backup_dir)` (plateau halving, early
    stopping with best weights, NaN guard, backup), watching the task's
    `val_task_loss`, or `task_loss` without validation data, so that they
    follow the classifier, not the cap penalty; `callbacks` are appended
    to them.

    With a distribution strategy, variables must be created inside its
    scope: pass `model` as a function that builds the classifier, which
    `train` calls inside `strategy.scope()` (after seeding). A model built
    outside the scope is refused with a clear error.

    Example:

    >>> import numpy as np
    >>> import tensorflow as tf
    >>> from keras_drelu import DReLU
    >>> def build():
    ...     return keras.Sequential([
    ...         keras.Input((4,)),
    ...         keras.layers.Dense(8),
    ...         DReLU(max_value_regularizer=1e-3),
    ...         keras.layers.Dense(3, activation="softmax"),
    ...     ])
    >>> x = np.random.default_rng(0).uniform(size=(32, 4)).astype("float32")
    >>> data = tf.data.Dataset.from_tensor_slices((x, np.arange(32) % 3))
    >>> result = train(build, data.batch(8), data.batch(8), recipe="trades",
    ...                epochs=2, eps=0.1, attack_steps=2, beta=1.0, seed=0,
    ...                verbose=0)
    >>> result.epochs, result.recipe, type(result.model).__name__
    ([0, 1], 'trades', 'Sequential')
    >>> result.settings
    {'eps': 0.1, 'norm': 'linf', 'inner_gradient': 'bpda', 'eps_ramp_steps': 0, 'attack_steps': 2, 'beta': 1.0}
    >>> sorted(result.history)[:4]
    ['accuracy', 'cap_penalty', 'learning_rate', 'loss']

    Args:
        model: The classifier, a `keras.Model` mapping images in `[0, 1]`
            to class probabilities or logits, or a function without
            arguments that builds it (needed with a distribution strategy).
        train_data: Training data with its labels: a batched
            `tf.data.Dataset` of `(image, label)` with integer labels (such
            as `DataSplits.train`), a `keras.utils.PyDataset`, or a tuple
            of arrays `(images, labels)` (or `(images, labels,
            sample_weight)`), batched by `batch_size` and shuffled each
            epoch. Arrays and a `PyDataset` need no TensorFlow.
        validation_data: Optional validation data, as `fit` takes it
            (arrays as a tuple `(images, labels)`). Defaults to `None`.
        recipe: A name of `RECIPES`, or `"auto"`. Defaults to
            `"standard"`.
        epochs: Maximum number of epochs of the recipe.
        eps: Attack radius; required by the adversarial recipes. Defaults
            to `None`.
        step_size: Attack step length. Defaults to `None`, the recipe's
            default.
        attack_steps: PGD steps of `"pgd-at"` and `"trades"`, targeted
            steps of `"mtlat"`. Defaults to `None`, the recipe's: `10`
            (`1` for `"mtlat"`).
        norm: `"linf"` or `"l2"` for adversarial recipes. Defaults to
            `None`, `"linf"`.
        beta: TRADES trade-off. Defaults to `None`, `6.0` for `"trades"`.
        mixup_alpha: Beta parameter of the Mixup weights of `"mtlat"`.
            Defaults to `None`, `0.2` for `"mtlat"`.
        inner_gradient: The gradient the adversarial recipes' attack
            follows through capped ReLUs: `"bpda"` (straight-through) or
            `"exact"`. Defaults to `None`: `"bpda"` for a model holding
            capped ReLUs, else `"exact"`.
        eps_ramp: Epochs (a float) over which an adversarial recipe's
            radius grows linearly from 0 to `eps`, counted in steps of
            `train_data` (which must then know its length). Defaults to
            `None`, the recipe's `eps_ramp_steps` (0: no ramp).
        natural_epochs: Epochs of natural training before an adversarial
            recipe. Defaults to `0`.
        from_logits: Whether the classifier outputs logits. Defaults to
            `None`: logits unless it ends in a softmax.
        optimizer: An optimizer, its name or config; each phase gets a fresh
            copy. Defaults to `None`, Adam with learning rate `1e-3`.
        metrics: Metrics to compile with. Defaults to `("accuracy",)`.
        backup_dir: Directory of the `BackupAndRestore` checkpoints, so
            that a killed run resumes. Defaults to `None`.
        callbacks: Further callbacks, run after the default ones. Defaults
            to `None`.
        default_callbacks: Whether to use `paper_callbacks`; `False` keeps
            only `callbacks` (and the backup, given `backup_dir`). Defaults
            to `True`.
        strategy: A `tf.distribute.Strategy` or a name of `get_strategy`,
            on the TensorFlow backend. Defaults to `None`, no distribution
            (on JAX, Keras' trainer follows `keras.distribution`).
        seed: Integer passed to `keras.utils.set_random_seed` before the
            model is built, and to the recipes that draw their own random
            numbers. Defaults to `None`, not seeded.
        batch_size: Batch size of `train_data` given as arrays. Defaults to
            `None`, Keras' `32`; other data come batched.
        verbose: As in `fit`. Defaults to `"auto"`.
        **recipe_settings: Settings of a registered recipe that the
            arguments above do not name.

    Returns:
        A `TrainingResult`: the trained classifier (`result.model`), its
        history, the epochs run, the recipe and its settings.
    """
    check_choice("recipe", recipe, (AUTO, *RECIPES))
    epochs = check_positive("epochs", epochs, integer=True)
    natural_epochs = check_non_negative(
        "natural_epochs", natural_epochs, integer=True
    )
    seed = check_seed("seed", seed)
    check_bool("default_callbacks", default_callbacks)
    if batch_size is not None:
        batch_size = check_positive("batch_size", batch_size, integer=True)
        if _arrays(train_data) is None:
            raise ValueError(
                "Argument `batch_size` batches `train_data` given as arrays "
                "`(images, labels)`; other data come batched. Received: "
                f"batch_size={batch_size} with train_data of type "
                f"{type(train_data).__name__}"
            )
    given = dict(
        eps=eps, step_size=step_size, attack_steps=attack_steps, norm=norm,
        beta=beta, mixup_alpha=mixup_alpha, inner_gradient=inner_gradient,
        **recipe_settings,
    )
    if eps_ramp is not None:
        given["eps_ramp_steps"] = _ramp_steps(
            check_non_negative("eps_ramp", eps_ramp), train_data,
            batch_size or 32,
        )
    if recipe != AUTO:
        # Refused before a model is built or a natural phase trained.
        RECIPES[recipe].settings(natural_epochs=natural_epochs, **given)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    if strategy is not None:
        strategy = get_strategy(strategy)
    with _scope(strategy):
        classifier = _build_classifier(model, strategy)
    entry = get_recipe(recipe, classifier)
    settings = entry.settings(
        natural_epochs=natural_epochs, model=classifier, **given
    )
    entry.check_model(classifier)
    if from_logits is None:
        from_logits = final_softmax(classifier) is None
    check_bool("from_logits", from_logits)
    with _scope(strategy):
        # Built before any training, so that bad settings fail early.
        trainer = entry.build_trainer(
            classifier, settings, from_logits=from_logits, seed=seed
        )
    fit = functools.partial(
        _fit_phase, train_data=train_data, validation_data=validation_data,
        optimizer=optimizer, metrics=metrics, callbacks=callbacks,
        default_callbacks=default_callbacks, strategy=strategy,
        verbose=verbose, from_logits=from_logits, batch_size=batch_size,
    )
    natural_loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=from_logits
    )
    natural_history = None
    marker = None
    if natural_epochs:
        # Marks a finished natural phase, for a resumed run to skip it.
        marker = backup_dir and os.path.join(
            backup_dir, "natural-phase.weights.h5"
        )
        if marker and os.path.exists(marker):
            classifier.load_weights(marker)
        else:
            natural_history = fit(
                classifier, natural_loss, epochs=natural_epochs,
                backup_dir=backup_dir and os.path.join(backup_dir, "natural"),
            )
            if marker:
                classifier.save_weights(marker)
    history = fit(
        trainer,
        natural_loss if trainer is classifier else None,
        epochs=epochs,
        backup_dir=backup_dir and (
            os.path.join(backup_dir, entry.name) if natural_epochs
            else backup_dir
        ),
    )
    if marker and os.path.exists(marker):
        os.remove(marker)
    if natural_history is not None:
        history = _concatenate(natural_history, history)
    return TrainingResult(
        model=classifier,
        history={key: list(values) for key, values in history.history.items()},
        epochs=list(history.epoch),
        recipe=entry.name,
        settings=settings,
    )


def train_repeated(
    model_fn, train_data, validation_data=None, *, seeds=(0, 1, 2),
    backup_dir=None, **kwargs,
):
    """Trains one fresh classifier per seed, as the paper averages three.

    Each run calls `keras.utils.set_random_seed(seed)` and then `model_fn`,
    so initial weights and attack random starts differ between runs and
    repeat exactly across sessions. The data pipeline keeps its own seed.

    Example:

    >>> import numpy as np
    >>> import tensorflow as tf
    >>> def build():
    ...     return keras.Sequential([
    ...         keras.Input((4,)), keras.layers.Dense(3, activation="softmax")
    ...     ])
    >>> x = np.random.default_rng(0).uniform(size=(16, 4)).astype("float32")
    >>> data = tf.data.Dataset.from_tensor_slices((x, np.arange(16) % 3))
    >>> results = train_repeated(build, data.batch(8), seeds=(0, 1),
    ...                          epochs=1, verbose=0)
    >>> len(results), results[0].model is results[1].model
    (2, False)

    Args:
        model_fn: Function without arguments building a fresh classifier.
        train_data: Training data, as for `train`.
        validation_data: Validation data, as for `train`. Defaults to
            `None`.
        seeds: Distinct integer seeds, one run each. Defaults to
            `(0, 1, 2)`.
        backup_dir: Optional directory; run `s` backs up to
            `<backup_dir>/seed-<s>`. Defaults to `None`.
        **kwargs: Other arguments of `train`, such as `recipe` and
            `epochs`.

    Returns:
        The list of `TrainingResult`s, in the order of `seeds`; each
        `result.model` is that run's trained classifier.
    """
    if isinstance(model_fn, keras.Model) or not callable(model_fn):
        raise ValueError(
            "Argument `model_fn` should be a function building a fresh "
            f"classifier. Received: {type(model_fn).__name__}"
        )
    seeds = list(seeds)
    for seed in seeds:
        check_seed("seeds", seed)
    if not seeds or None in seeds or len(set(seeds)) != len(seeds):
        raise ValueError(
            "Argument `seeds` should be a non-empty list of distinct "
            f"integers. Received: seeds={seeds!r}"
        )
    if "seed" in kwargs:
        raise ValueError(
            "Pass `seeds` to train_repeated, not `seed`. "
            f"Received: seed={kwargs['seed']!r}"
        )
    return [
        train(
            model_fn, train_data, validation_data, seed=seed,
            backup_dir=backup_dir and os.path.join(backup_dir, f"seed-{seed}"),
            **kwargs,
        )
        for seed in seeds
    ]
