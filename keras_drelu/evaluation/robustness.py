"""`evaluate_robustness`: run a suite of attacks and check the result.

The evaluation is a sequence of steps, each a function of its own module
(AutoAttack's `run_standard_evaluation` is the model): settings and inputs
(`inputs`), the suite (`suites`), the attacks (`cascade`), the checks and
flags (`checks`), the eps sweep (`sweep`) and the report (`report`); `state`
saves their progress for a run that must survive a kill.
"""

import time

from tqdm.auto import tqdm

from keras_drelu import backends
from keras_drelu.arguments import check_bool
from keras_drelu.arguments import check_positive
from keras_drelu.evaluation.cascade import predictor
from keras_drelu.evaluation.cascade import run_cascade
from keras_drelu.evaluation.checks import CHECKS
from keras_drelu.evaluation.checks import CheckContext
from keras_drelu.evaluation.checks import flag_attacks
from keras_drelu.evaluation.checks import flag_straight_through
from keras_drelu.evaluation.checks import run_checks
from keras_drelu.evaluation.inputs import check_settings
from keras_drelu.evaluation.inputs import detect_outputs
from keras_drelu.evaluation.inputs import evaluation_inputs
from keras_drelu.evaluation.report import assemble_report
from keras_drelu.evaluation.state import EvaluationState
from keras_drelu.evaluation.state import fingerprint
from keras_drelu.evaluation.suites import build_suite
from keras_drelu.evaluation.suites import default_suite
from keras_drelu.evaluation.sweep import EpsSweep
from keras_drelu.evaluation.sweep import eps_sweep
from keras_drelu.inspection import contains_capped_relu


def evaluate_robustness(
    model,
    x,
    y=None,
    eps=None,
    norm="linf",
    suite=None,
    batch_size=256,
    *,
    n_examples=None,
    clip_values=(0.0, 1.0),
    outputs="auto",
    overrides=None,
    cascade=None,
    sweep_eps=None,
    checks_enabled=True,
    seed=0,
    verbose=True,
    model_name=None,
    state_path=None,
    distribute=None,
):
    """Evaluates `model` under a suite of attacks, with checks for masking.

    Runs the attacks of `suite` on the correctly classified inputs (in a
    cascade, each attack only on the inputs the earlier ones left robust,
    as AutoAttack does), then checks the result for the signs of gradient
    masking listed in `keras_drelu.evaluation.FLAG_DOCS`. Flags are printed
    (with `verbose`) and stored in the report. A progress bar shows the
    attack running.

    The steps, each usable on its own: `check_settings` and
    `evaluation_inputs` (validation; arrays or a `tf.data.Dataset`),
    `detect_outputs`, `build_suite`, `flag_straight_through`,
    `run_cascade`, `run_checks`, `flag_attacks`, `eps_sweep` and
    `assemble_report`.

    The named suites are those of `keras_drelu.evaluation.SUITES` (each
    `Suite` lists its attacks, schedule and budgets): `"standard"` is
    AutoAttack's standard composition (APGD-CE, APGD-T, FAB-T, Square),
    `"adaptive"` adds BPDA and transfer attacks and is the default for
    models with capped activations
    (`keras_drelu.inspection.capped_activations`: `DReLU`, `SReLU`,
    `ReLU(max_value)`, relu6), `"standard"` otherwise; `"paper"` runs the
    D-ReLU paper's attacks, each on every input. Every suite runs whole
    under L-inf and L2, on inputs of any shape.

    With `state_path`, the evaluation survives a kill: it saves its
    progress there after each attack, every minute within a long one, and
    after each check (`keras_drelu.evaluation.state`); run again with the
    same path it continues where it stopped, and its report is the one an
    uninterrupted run gives (bar the timings; an attack interrupted part-way
    continues with fresh randomness on the inputs it had not reached). A
    state saved by another evaluation (model, inputs, settings, attacks or
    checks) is refused with an `EvaluationStateError`.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential(
    ...     [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    ... )
    >>> x = np.random.default_rng(0).uniform(size=(8, 4, 4, 1)).astype("float32")
    >>> y = np.argmax(model.predict(x, verbose=0), axis=1)
    >>> report = evaluate_robustness(
    ...     model, x, y, eps=0.1, verbose=False,
    ...     overrides={"APGD-CE": {"steps": 5}, "APGD-T": {"steps": 5},
    ...                "FAB-T": {"steps": 5}, "Square": {"n_queries": 20}})
    >>> report.clean_accuracy, sorted(report.accuracy)
    (1.0, ['APGD-CE', 'APGD-T', 'FAB-T', 'Square'])

    A `tf.data.Dataset` of `(image, label)` pairs works the same:

    >>> import tensorflow as tf
    >>> from keras_drelu.attacks import FGSM
    >>> dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    >>> report = evaluate_robustness(
    ...     model, dataset, eps=0.1, n_examples=6,
    ...     suite=[FGSM(model, eps=0.1)], verbose=False)
    >>> report.n_examples, list(report.accuracy)
    (6, ['FGSM'])

    Args:
        model: A Keras classifier (logits or probabilities).
        x: Numpy inputs within `clip_values`, or a `tf.data.Dataset` of
            `(image, label)` pairs, batched or not.
        y: Integer labels of numpy `x`; `None` for a dataset. Defaults to
            `None`.
        eps: Radius of the threat model (required).
        norm: `"linf"` or `"l2"`. Defaults to `"linf"`.
        suite: `"paper"`, `"standard"`, `"adaptive"` or a list of `Attack`
            instances (a cascade unless `cascade=False`). A cascade runs
            iterative white-box attacks first, then FGSM, black-box,
            transfer and BPDA attacks, keeping the given order within each
            kind. Defaults to `None`: `"adaptive"` for models with capped
            ReLUs, else `"standard"`.
        batch_size: Inputs attacked at once. Defaults to `256`.
        n_examples: Evaluate the first `n_examples` inputs only (all if
            fewer); needed for an infinite dataset. Defaults to `None`, all
            of them.
        clip_values: `(low, high)` input range. Defaults to `(0.0, 1.0)`.
        outputs: `"auto"`, `"logits"` or `"probabilities"`, as in
            `Attack`. Defaults to `"auto"`.
        overrides: Per-attack arguments overriding the suite's budgets,
            keyed by attack name and applied to wrapped attacks too, e.g.
            `{"Square": {"n_queries": 500}, "APGD-CE": {"steps": 20}}`.
            Defaults to `None`.
        cascade: Overrides the suite's schedule (`True`: attacks run on
            inputs still robust; `False`: every attack on every correct
            input). Defaults to `None`.
        sweep_eps: Optional radii for an eps sweep with PGD, stored as
            `report.sweep`. Defaults to `None`.
        checks_enabled: Whether to measure the zero-gradient share and the
            accuracy at a radius spanning the input range. Defaults to
            `True`.
        seed: Seed of the attacks' randomness. Defaults to `0`.
        verbose: Whether to show a progress bar and print the flags.
            Defaults to `True`.
        model_name: Name shown in the report. Defaults to `model.name`.
        state_path: File where the evaluation saves its progress, and from
            which it continues if the file exists. Defaults to `None`,
            nothing saved.
        distribute: Devices each batch is split over (attacks, checks and
            predictions): `True` for every local device (a
            `tf.distribute.MirroredStrategy()` on TensorFlow, the local
            devices on JAX), a `tf.distribute.Strategy` (TensorFlow) or a
            `keras.distribution.DataParallel` (JAX). The report is the one
            a single device gives: attacks draw each input's random
            numbers from its own key. Defaults to `None`, one device.

    Returns:
        A `RobustnessReport`.
    """
    settings = check_settings(
        eps, norm, clip_values=clip_values, outputs=outputs,
        batch_size=batch_size, seed=seed,
    )
    distribution = backends.distribution(distribute)
    checks_enabled = check_bool("checks_enabled", checks_enabled)
    checks = list(CHECKS) if checks_enabled else []
    verbose = check_bool("verbose", verbose)
    sweep_eps = [check_positive("sweep_eps", e) for e in sweep_eps or ()]
    x, y = evaluation_inputs(
        x, y, n_examples=n_examples, clip_values=settings.clip_values
    )
    settings, n_classes = detect_outputs(model, x, settings, y)
    capped = contains_capped_relu(model)
    suite = build_suite(
        default_suite(model) if suite is None else suite,
        model,
        settings.attack_arguments(),
        n_classes=n_classes,
        overrides=overrides,
        cascade=cascade,
    )
    state = None
    if state_path is not None:
        state = EvaluationState.open(
            state_path,
            fingerprint(
                model, x, y, settings=settings, attacks=suite.attacks,
                cascade=suite.cascade, checks=checks, sweep_eps=sweep_eps,
            ),
        )
    flags = suite.flags + flag_straight_through(suite.attacks, x, y)
    predict = predictor(model, settings.batch_size)
    steps = len(suite.attacks) + len(checks) + bool(sweep_eps)
    with backends.distribute(distribution), tqdm(
        total=steps, desc="evaluate_robustness", disable=not verbose,
        unit="step",
    ) as progress:
        run = run_cascade(
            suite.attacks, x, y, predict,
            threat_model=settings.threat_model,
            clip_values=settings.clip_values,
            cascade=suite.cascade,
            progress=progress,
            chunk_size=settings.batch_size,
            result=state and state.run,
            partial=state and state.partial,
            on_progress=state and state.update,
        )
        correct = run.clean_correct
        context = CheckContext(
            model, x[correct], y[correct], n_examples=len(x),
            n_classes=n_classes, settings=settings, predict=predict,
        )
        checked = run_checks(
            context, checks, progress,
            done=state and state.checks,
            on_check=state and state.record_check,
        )
        sweep, sweep_timings = _sweep(
            model, x, y, sweep_eps, settings, overrides, progress, state
        )
    report = assemble_report(
        model_name=model_name or getattr(model, "name", type(model).__name__),
        suite=suite,
        settings=settings,
        x=x,
        y=y,
        run=run,
        checks=checked,
        flags=flags + checked.flags + flag_attacks(run, capped),
        sweep=sweep,
        timings=sweep_timings,
    )
    if verbose:
        for flag in report.flags:
            print(f"WARNING {flag}")
    return report


def _sweep(model, x, y, sweep_eps, settings, overrides, progress, state):
    """The PGD eps sweep of `evaluate_robustness`, and its timing."""
    if not sweep_eps:
        return None, {}
    progress.set_postfix_str("eps sweep")
    if state is not None and state.sweep is not None:
        sweep = EpsSweep(**state.sweep["sweep"])
        seconds = state.sweep["seconds"]
    else:
        start = time.perf_counter()
        sweep = eps_sweep(
            model, x, y, sweep_eps,
            norm=settings.norm,
            clip_values=settings.clip_values,
            outputs=settings.outputs,
            batch_size=settings.batch_size,
            overrides=overrides,
            seed=settings.seed,
        )
        seconds = time.perf_counter() - start
        if state is not None:
            state.record_sweep(sweep, seconds)
    progress.update(1)
    return sweep, {"eps sweep": seconds}
