"""`evaluate_robustness`: run a suite of attacks and check the result."""

import time

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from keras_drelu.attacks import BPDA
from keras_drelu.attacks import FGSM
from keras_drelu.attacks import Attack
from keras_drelu.attacks import Transfer
from keras_drelu.attacks.base import NORMS
from keras_drelu.attacks.base import check_positive
from keras_drelu.attacks.base import looks_like_probabilities
from keras_drelu.evaluation import checks
from keras_drelu.evaluation.report import AttackResult
from keras_drelu.evaluation.report import Flag
from keras_drelu.evaluation.report import RobustnessReport
from keras_drelu.evaluation.suites import SUITES
from keras_drelu.evaluation.suites import build_attack
from keras_drelu.evaluation.sweep import eps_sweep
from keras_drelu.layers import DReLU

# Cascade order: the strongest, most informed attacks first, so that an
# input broken only by a later, weaker kind of attack is a warning sign.
_KIND_ORDER = ("white-box", "single-step", "black-box", "transfer", "adaptive")


def contains_capped_relu(model):
    """Whether `model` holds a `DReLU` or `SReLU` layer, nested included.

    Example:

    >>> import keras
    >>> from keras_drelu import SReLU
    >>> inner = keras.Sequential([keras.Input((3,)), SReLU(0.5)])
    >>> contains_capped_relu(keras.Sequential([keras.Input((3,)), inner]))
    True
    """
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        if isinstance(layer, DReLU):
            return True
        stack.extend(getattr(layer, "layers", []))
    return False


def attack_kind(attack):
    """`"adaptive"`, `"transfer"`, `"black-box"`, `"single-step"` or `"white-box"`."""
    if isinstance(attack, BPDA):
        return "adaptive"
    if isinstance(attack, Transfer):
        return "transfer"
    if attack.gradient_free:
        return "black-box"
    if isinstance(attack, FGSM):
        return "single-step"
    return "white-box"


def _predictor(model, batch_size, input_shape):
    @tf.function(input_signature=[tf.TensorSpec([None, *input_shape])])
    def labels(xb):
        return tf.argmax(
            model(xb, training=False), axis=1, output_type=tf.int32
        )

    def predict(x):
        if not len(x):
            return np.zeros([0], "int32")
        return np.concatenate(
            [
                labels(tf.constant(x[i : i + batch_size])).numpy()
                for i in range(0, len(x), batch_size)
            ]
        )

    return predict


def _check_inputs(x, y, clip_values):
    x = np.asarray(x, dtype="float32")
    y = np.asarray(y)
    if (
        y.ndim != 1
        or len(y) != len(x)
        or not np.issubdtype(y.dtype, np.integer)
    ):
        raise ValueError(
            "Argument `y` should be integer labels, one per input. Received: "
            f"y of shape {y.shape} and dtype {y.dtype} for x of shape {x.shape}"
        )
    if not len(x):
        raise ValueError(
            f"Argument `x` should not be empty. Received: x.shape={x.shape}"
        )
    low, high = clip_values
    if x.min() < low - 1e-6 or x.max() > high + 1e-6:
        raise ValueError(
            f"Inputs should lie within clip_values={tuple(clip_values)}. "
            f"Received: x in [{x.min()}, {x.max()}]"
        )
    return x, y.astype("int64")


def _check_threat(name, x, x_adv, norm, eps, clip_values):
    if not len(x):
        return
    delta = (x_adv - x).reshape(len(x), -1)
    size = (
        np.abs(delta).max(axis=1)
        if norm == "linf"
        else np.linalg.norm(delta, axis=1)
    )
    low, high = clip_values
    if (
        size.max() > eps * (1 + 1e-4) + 1e-5
        or x_adv.min() < low - 1e-5
        or x_adv.max() > high + 1e-5
    ):
        raise RuntimeError(
            f"Attack {name} left its threat model ({norm}, eps={eps}) or the "
            f"input range {clip_values}: perturbation {size.max()}, range "
            f"[{x_adv.min()}, {x_adv.max()}]. This is a bug in the attack."
        )


def _build_suite(suite, model, common, overrides, notes, flags, n_classes):
    if isinstance(suite, str):
        if suite not in SUITES:
            raise ValueError(
                f"Argument `suite` should be one of {sorted(SUITES)} or a list "
                f"of `Attack` instances. Received: suite={suite!r}"
            )
        spec = SUITES[suite]
        attacks = []
        for name in spec.attacks:
            try:
                attack = build_attack(
                    name, model, common, spec.budgets, overrides
                )
            except ValueError as error:
                if "Square" in name and common["norm"] != "linf":
                    notes.append(f"{name} skipped: only its L-inf form exists.")
                elif name.startswith(("BPDA", "Transfer")):
                    flags.append(
                        Flag("adaptive-unavailable", f"{name}: {error}")
                    )
                else:
                    raise
                continue
            if attack.min_classes > n_classes:
                notes.append(
                    f"{name} skipped: it needs at least {attack.min_classes} "
                    f"classes and the model has {n_classes}."
                )
                continue
            attacks.append(attack)
        return attacks, spec.cascade
    attacks = list(suite)
    if not attacks or not all(isinstance(a, Attack) for a in attacks):
        raise ValueError(
            "Argument `suite` should be a suite name or a non-empty list of "
            f"`Attack` instances. Received: suite={suite!r}"
        )
    return attacks, True


def evaluate_robustness(
    model,
    x,
    y,
    eps,
    norm="linf",
    suite=None,
    batch_size=256,
    *,
    clip_values=(0.0, 1.0),
    outputs="auto",
    overrides=None,
    cascade=None,
    sweep_eps=None,
    checks_enabled=True,
    seed=0,
    verbose=True,
    model_name=None,
):
    """Evaluates `model` under a suite of attacks, with checks for masking.

    Runs the attacks of `suite` on the correctly classified inputs (in a
    cascade, each attack only on the inputs the earlier ones left robust,
    as AutoAttack does), then checks the result for the signs of gradient
    masking listed in `keras_drelu.evaluation.FLAG_DOCS`. Flags are printed
    (with `verbose`) and stored in the report. A progress bar shows the
    attack running.

    Suites (`keras_drelu.evaluation.SUITES`): `"paper"` (FGSM, PGD,
    APGD-CE, APGD-DLR, CW-L2 bounded at L2 radius 18, Square; every attack
    on every input), `"standard"` (APGD-CE, APGD-T, Square with 5000
    queries; cascade) and `"adaptive"` (standard plus BPDA(APGD-CE),
    BPDA(APGD-T) and Transfer(APGD-CE); cascade), the default for models
    with `DReLU`/`SReLU` layers (`"standard"` otherwise).

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
    ...                "Square": {"n_queries": 20}})
    >>> report.clean_accuracy, sorted(report.accuracy)
    (1.0, ['APGD-CE', 'APGD-T', 'Square'])

    Args:
        model: A Keras classifier (logits or probabilities).
        x: Numpy inputs within `clip_values`.
        y: Integer labels.
        eps: Radius of the threat model.
        norm: `"linf"` or `"l2"`. Defaults to `"linf"`.
        suite: `"paper"`, `"standard"`, `"adaptive"` or a list of `Attack`
            instances (a cascade unless `cascade=False`). A cascade runs
            iterative white-box attacks first, then FGSM, black-box,
            transfer and BPDA attacks, keeping the given order within each
            kind. Defaults to `None`: `"adaptive"` for models with capped
            ReLUs, else `"standard"`.
        batch_size: Inputs attacked at once. Defaults to `256`.
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

    Returns:
        A `RobustnessReport`.
    """
    eps = check_positive("eps", eps)
    if norm not in NORMS:
        raise ValueError(
            f"Argument `norm` should be one of {NORMS}. Received: norm={norm!r}"
        )
    batch_size = check_positive("batch_size", batch_size, integer=True)
    x, y = _check_inputs(x, y, clip_values)
    capped = contains_capped_relu(model)
    suite = (
        suite if suite is not None else ("adaptive" if capped else "standard")
    )
    suite_name = suite if isinstance(suite, str) else "custom"
    predict = _predictor(model, batch_size, x.shape[1:])
    sample = np.asarray(model(x[:batch_size], training=False))
    if outputs == "auto":
        outputs = (
            "probabilities" if looks_like_probabilities(sample) else "logits"
        )
    common = dict(
        eps=eps,
        norm=norm,
        clip_values=tuple(clip_values),
        outputs=outputs,
        batch_size=batch_size,
        seed=seed,
    )
    notes, flags = [], []
    attacks, suite_cascade = _build_suite(
        suite, model, common, overrides, notes, flags, sample.shape[-1]
    )
    cascade = suite_cascade if cascade is None else bool(cascade)
    if cascade:
        attacks = sorted(
            attacks, key=lambda a: _KIND_ORDER.index(attack_kind(a))
        )

    timings = {}
    start = time.perf_counter()
    clean_pred = predict(x)
    timings["clean"] = time.perf_counter() - start
    clean_correct = clean_pred == y
    x_adv = x.copy()
    adv_pred = clean_pred.copy()
    robust_by_threat = {}
    entries, results = [], []
    progress = tqdm(
        total=len(attacks) + 2 * checks_enabled + bool(sweep_eps),
        desc="evaluate_robustness",
        disable=not verbose,
        unit="step",
    )
    with progress:
        for attack in attacks:
            threat = attack.threat_model
            robust = robust_by_threat.setdefault(threat, clean_correct.copy())
            progress.set_postfix_str(
                f"{attack.name} on {int(robust.sum())} inputs"
            )
            index = np.flatnonzero(robust if cascade else clean_correct)
            start = time.perf_counter()
            adversarial = (
                attack.generate(x[index], y[index]) if len(index) else x[index]
            )
            predictions = predict(adversarial)
            seconds = time.perf_counter() - start
            _check_threat(
                attack.name, x[index], adversarial, *threat, clip_values
            )
            fooled = predictions != y[index]
            broken = np.zeros(len(x), bool)
            broken[index[fooled]] = True
            robust &= ~broken
            main = threat == (norm, eps)
            if main:
                first = broken & (adv_pred == y)
                x_adv[first] = adversarial[fooled & first[index]]
                adv_pred[first] = predictions[fooled & first[index]]
            accuracy = float(
                robust.mean() if cascade else (clean_correct & ~broken).mean()
            )
            result = AttackResult(
                name=attack.name,
                kind=attack_kind(attack),
                norm=threat[0],
                eps=threat[1],
                accuracy=accuracy,
                attacked=len(index),
                broken=int(fooled.sum()),
                seconds=seconds,
            )
            timings[attack.name] = seconds
            results.append(result)
            if main:
                entries.append((result, broken))
            else:
                notes.append(
                    f"{attack.name} uses another threat model "
                    f"({threat[0]}, eps={threat[1]:g}); it is not part of the "
                    "worst case."
                )
            progress.update(1)

        zero_share = large_accuracy = sweep = None
        if checks_enabled:
            progress.set_postfix_str("zero-gradient check")
            start = time.perf_counter()
            probe = FGSM(model, **common)
            correct = np.flatnonzero(clean_correct)
            zero_share = checks.zero_gradient_share(
                probe.logits, x[correct], y[correct], batch_size
            )
            timings["zero-gradient check"] = time.perf_counter() - start
            progress.update(1)
            progress.set_postfix_str("large-eps check")
            start = time.perf_counter()
            big = checks.large_eps_attack(
                model,
                x.shape[1:],
                norm=norm,
                clip_values=tuple(clip_values),
                outputs=outputs,
                batch_size=batch_size,
                seed=seed,
            )
            large_accuracy = float(
                (
                    predict(big.generate(x[correct], y[correct])) == y[correct]
                ).sum()
                / len(x)
            )
            timings["large-eps check"] = time.perf_counter() - start
            progress.update(1)
            flags += checks.flag_zero_gradients(zero_share)
            flags += checks.flag_large_eps(large_accuracy, big.eps)
        if sweep_eps:
            progress.set_postfix_str("eps sweep")
            start = time.perf_counter()
            sweep = eps_sweep(
                model,
                x,
                y,
                sweep_eps,
                norm=norm,
                clip_values=clip_values,
                outputs=outputs,
                batch_size=batch_size,
                overrides=overrides,
                seed=seed,
            )
            timings["eps sweep"] = time.perf_counter() - start
            progress.update(1)

    flags += checks.flag_results(entries, clean_correct, cascade)
    if capped and not any(
        r.kind in ("adaptive", "transfer") for r, _ in entries
    ):
        flags.append(
            Flag(
                "not-adaptive",
                "The model has DReLU/SReLU layers but no BPDA or transfer "
                "attack ran; use suite='adaptive'.",
            )
        )
    robust = clean_correct.copy()
    for _, broken in entries:
        robust &= ~broken
    report = RobustnessReport(
        model_name=model_name or getattr(model, "name", type(model).__name__),
        suite=suite_name,
        cascade=cascade,
        norm=norm,
        eps=eps,
        n_examples=len(x),
        clean_accuracy=float(clean_correct.mean()),
        accuracy={r.name: r.accuracy for r in results},
        worst_case_accuracy=float(robust.mean()),
        timings=timings,
        flags=flags,
        results=results,
        notes=notes,
        large_eps_accuracy=large_accuracy,
        zero_gradient_share=zero_share,
        sweep=sweep,
        robust=robust,
        x=x,
        y=y,
        x_adv=x_adv,
        adv_pred=adv_pred,
    )
    if verbose:
        for flag in flags:
            print(f"WARNING {flag}")
    return report
