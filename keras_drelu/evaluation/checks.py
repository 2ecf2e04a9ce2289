"""AutoAttack-style checks that tell real robustness from gradient masking.

Two kinds, as in AutoAttack's `checks.py`: checks that measure something on
the model (`CHECKS`, each one call on a `CheckContext`, run by `run_checks`),
and rules over the attacks' results (`flag_results`, `flag_not_adaptive`).
Each returns `Flag`s; `FLAG_DOCS` explains every flag code, as AutoAttack's
`flags_doc.md` does.
"""

import dataclasses
import math
import time

import numpy as np
import tensorflow as tf

from keras_drelu.arguments import check_choice
from keras_drelu.attacks import FGSM
from keras_drelu.attacks import PGD
from keras_drelu.attacks.losses import cross_entropy
from keras_drelu.evaluation.report import Flag
from keras_drelu.evaluation.report import percent

FLAG_DOCS = {
    "zero-gradients": (
        "Some correctly classified inputs have an input gradient of exactly "
        "zero, so no gradient attack can move them: their 'robustness' "
        "under FGSM/PGD/APGD is an artefact (capped ReLUs saturate above "
        "their cap). Use the adaptive suite (BPDA, transfer) and Square."
    ),
    "black-box-stronger": (
        "A gradient-free (Square) or transfer attack broke inputs that every "
        "white-box gradient attack left robust. A white-box attack that "
        "knows the model should be at least as strong, so the gradients "
        "are likely masked and the white-box numbers overstate robustness."
    ),
    "fgsm-stronger-than-pgd": (
        "Single-step FGSM did better than iterative PGD/APGD, which it "
        "should never do with working gradients: a sign of gradient "
        "masking or of a too-small step size."
    ),
    "large-eps-not-broken": (
        "PGD with a radius spanning the whole input range, where any input "
        "can be turned into any other, still leaves inputs classified "
        "correctly. Accuracy should reach about 0 as eps grows; if it does "
        "not, the attack is not working on this model."
    ),
    "adaptive-gain": (
        "Attacks adapted to the capped ReLUs (BPDA through the caps, "
        "transfer from the uncapped twin) lowered the worst-case accuracy "
        "by more than 2 points below the non-adaptive attacks: the caps "
        "mask gradients and only the adaptive number is meaningful."
    ),
    "not-adaptive": (
        "The model contains DReLU/SReLU layers but no adaptive attack (BPDA "
        "or transfer) was run: the reported accuracy may only reflect "
        "masked gradients. Evaluate with suite='adaptive'."
    ),
    "adaptive-unavailable": (
        "An adaptive attack could not be built for this model (for example "
        "a subclassed model, which cannot be rewritten layer by layer)."
    ),
}

LARGE_EPS_THRESHOLD = 0.05
ADAPTIVE_GAIN_THRESHOLD = 0.02


def zero_gradient_share(logits_fn, x, y, batch_size):
    """Share of inputs whose cross-entropy input gradient is exactly zero.

    Args:
        logits_fn: `logits_fn(x)` returning logits (see `Attack.logits`).
        x: Inputs, typically the correctly classified ones.
        y: Integer labels.
        batch_size: Inputs per gradient computation.

    Returns:
        A float in [0, 1] (`nan` for no inputs).
    """
    if not len(x):
        return math.nan

    @tf.function(reduce_retracing=True)
    def is_zero(xb, yb):
        with tf.GradientTape() as tape:
            tape.watch(xb)
            loss = tf.reduce_sum(cross_entropy(logits_fn(xb), yb))
        grad = tape.gradient(
            loss, xb, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        flat = tf.reshape(tf.abs(grad), [tf.shape(xb)[0], -1])
        return tf.reduce_max(flat, axis=1) == 0.0

    zero = np.concatenate(
        [
            is_zero(
                tf.constant(x[i : i + batch_size]),
                tf.constant(y[i : i + batch_size].astype("int32")),
            ).numpy()
            for i in range(0, len(x), batch_size)
        ]
    )
    return float(zero.mean())


def large_eps(norm, clip_values, input_shape):
    """A radius spanning the whole input range in `norm`.

    Example:

    >>> large_eps("linf", (0.0, 1.0), (8, 8, 1))
    1.0
    >>> large_eps("l2", (0.0, 1.0), (8, 8, 1))
    8.0
    """
    width = clip_values[1] - clip_values[0]
    if norm == "linf":
        return float(width)
    return float(width * math.sqrt(int(np.prod(input_shape))))


@dataclasses.dataclass(frozen=True)
class CheckContext:
    """What the checks of `CHECKS` look at.

    Args:
        model: The evaluated classifier.
        x: The correctly classified inputs.
        y: Their labels.
        n_examples: Number of inputs evaluated (correct or not), the
            denominator of accuracies.
        n_classes: Number of classes of the model.
        settings: The evaluation's `EvaluationSettings` (outputs resolved).
        predict: `predict(x)` returning classes (see `cascade.predictor`).
    """

    model: object
    x: np.ndarray
    y: np.ndarray
    n_examples: int
    n_classes: int
    settings: object
    predict: object


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    """A check's measurement and the flags it raises."""

    value: float
    flags: list


def check_zero_gradients(context):
    """Share of correct inputs with a zero input gradient; flags if any."""
    settings = context.settings
    probe = FGSM(context.model, **settings.attack_arguments())
    share = zero_gradient_share(
        probe.logits, context.x, context.y, settings.batch_size
    )
    return CheckOutcome(share, flag_zero_gradients(share))


def check_large_eps(context):
    """Accuracy under PGD-20 at the radius `large_eps`; flags if not ~0."""
    settings = context.settings
    eps = large_eps(settings.norm, settings.clip_values, context.x.shape[1:])
    attack = PGD(
        context.model, **(settings.attack_arguments() | {"eps": eps}), steps=20
    )
    x_adv = attack.generate(context.x, context.y)
    correct = int((context.predict(x_adv) == context.y).sum())
    accuracy = correct / context.n_examples
    return CheckOutcome(accuracy, flag_large_eps(accuracy, attack.eps))


# Check name (progress bar, timings) -> (report field, check).
CHECKS = {
    "zero-gradient check": ("zero_gradient_share", check_zero_gradients),
    "large-eps check": ("large_eps_accuracy", check_large_eps),
}


@dataclasses.dataclass
class CheckResults:
    """What `run_checks` measured.

    Args:
        values: Report field (e.g. `"zero_gradient_share"`) -> measurement.
        flags: The checks' flags, in the order of `CHECKS`.
        timings: Check name -> seconds.
    """

    values: dict
    flags: list
    timings: dict


def run_checks(context, checks=None, progress=None):
    """Runs the checks of `CHECKS` on `context`, one after another.

    Example:

    >>> import keras
    >>> from keras_drelu.evaluation.cascade import predictor
    >>> from keras_drelu.evaluation.inputs import check_settings
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> x, y = np.full((3, 2), 0.5, "float32"), np.zeros(3, "int64")
    >>> context = CheckContext(model, x, y, n_examples=3, n_classes=2,
    ...     settings=check_settings(0.1, outputs="logits"),
    ...     predict=predictor(model, 3, (2,)))
    >>> results = run_checks(context)
    >>> results.values["zero_gradient_share"]
    0.0

    Args:
        context: A `CheckContext`.
        checks: Names of the checks to run, a subset of `CHECKS`. Defaults
            to `None`, all of them.
        progress: Optional `tqdm` bar, advanced once per check. Defaults to
            `None`.

    Returns:
        A `CheckResults`.
    """
    names = list(CHECKS) if checks is None else list(checks)
    for name in names:
        check_choice("checks", name, CHECKS)
    results = CheckResults(values={}, flags=[], timings={})
    for name in names:
        field, check = CHECKS[name]
        if progress is not None:
            progress.set_postfix_str(name)
        start = time.perf_counter()
        outcome = check(context)
        results.timings[name] = time.perf_counter() - start
        results.values[field] = outcome.value
        results.flags += outcome.flags
        if progress is not None:
            progress.update(1)
    return results


def flag_zero_gradients(share):
    """A `zero-gradients` flag if `share` is above zero."""
    if share is None or not share > 0:
        return []
    return [
        Flag(
            "zero-gradients",
            f"{percent(share)} of correctly classified inputs have an input "
            "gradient of exactly zero; gradient attacks cannot move them.",
        )
    ]


def flag_large_eps(accuracy, eps):
    """A `large-eps-not-broken` flag if `accuracy` is not about zero."""
    if accuracy is None or not accuracy > LARGE_EPS_THRESHOLD:
        return []
    return [
        Flag(
            "large-eps-not-broken",
            f"PGD with eps={eps:g} (the whole input range) leaves "
            f"{percent(accuracy)} of inputs correct; it should reach about "
            "0%.",
        )
    ]


def flag_results(entries, clean_correct, cascade):
    """Flags comparing attacks of the evaluated threat model.

    Args:
        entries: List of `(result, broken)` with `result` an `AttackResult`
            and `broken` a boolean array over all inputs.
        clean_correct: Boolean array, inputs classified correctly.
        cascade: Whether attacks ran only on inputs still robust.

    Returns:
        A list of `Flag`.
    """
    n = len(clean_correct)
    none = np.zeros(n, bool)

    def union(kinds):
        masks = [b for r, b in entries if r.kind in kinds]
        return np.logical_or.reduce(masks) if masks else none

    flags = []
    white = union(("white-box", "single-step"))
    has_white = any(r.kind in ("white-box", "single-step") for r, _ in entries)
    for result, broken in entries:
        if result.kind not in ("black-box", "transfer") or not has_white:
            continue
        extra = int((broken & ~white & clean_correct).sum())
        if extra:
            flags.append(
                Flag(
                    "black-box-stronger",
                    f"{result.name} broke {extra} inputs ({percent(extra / n)}) "
                    "that every white-box gradient attack left robust.",
                )
            )
    iterative = [(r, b) for r, b in entries if r.kind == "white-box"]
    for result, broken in entries:
        if result.kind != "single-step" or not iterative:
            continue
        if cascade:
            extra = int((broken & ~union(("white-box",))).sum())
            stronger = extra > 0
            detail = f"broke {extra} inputs that iterative attacks left robust"
        else:
            weakest = max(iterative, key=lambda e: e[0].accuracy)[0]
            stronger = result.accuracy < weakest.accuracy
            detail = (
                f"reached {percent(result.accuracy)} against "
                f"{percent(weakest.accuracy)} for the iterative {weakest.name}"
            )
        if stronger:
            flags.append(
                Flag("fgsm-stronger-than-pgd", f"{result.name} {detail}.")
            )
    if any(r.kind in ("adaptive", "transfer") for r, _ in entries):
        plain = union(("white-box", "single-step", "black-box"))
        every = union(
            ("white-box", "single-step", "black-box", "adaptive", "transfer")
        )
        before = float((clean_correct & ~plain).mean())
        after = float((clean_correct & ~every).mean())
        if before - after > ADAPTIVE_GAIN_THRESHOLD:
            flags.append(
                Flag(
                    "adaptive-gain",
                    f"Adaptive attacks lowered the worst-case accuracy from "
                    f"{percent(before)} to {percent(after)} "
                    f"({100 * (before - after):.1f} points).",
                )
            )
    return flags


def flag_not_adaptive(capped, entries):
    """A `not-adaptive` flag for a capped model no adaptive attack ran on.

    Args:
        capped: Whether the model holds capped ReLUs.
        entries: `(result, broken)` pairs, as in `flag_results`.

    Returns:
        A list of `Flag`.
    """
    if not capped or any(
        r.kind in ("adaptive", "transfer") for r, _ in entries
    ):
        return []
    return [
        Flag(
            "not-adaptive",
            "The model has DReLU/SReLU layers but no BPDA or transfer "
            "attack ran; use suite='adaptive'.",
        )
    ]


def flag_attacks(run, capped):
    """Every flag read from the attacks' results (a `CascadeResult`).

    Args:
        run: The `CascadeResult` of the evaluation.
        capped: Whether the model holds capped ReLUs.

    Returns:
        `flag_results(...)` followed by `flag_not_adaptive(...)`.
    """
    entries = run.entries
    return flag_results(entries, run.clean_correct, run.cascade) + (
        flag_not_adaptive(capped, entries)
    )
