"""AutoAttack-style checks that tell real robustness from gradient masking.

Two kinds, as in AutoAttack's `checks.py`: checks that measure something on
the model (`CHECKS`, each one call on a `CheckContext`, run by `run_checks`),
and rules over the attacks (`flag_straight_through` before they run,
`flag_results` and `flag_not_adaptive` on their results).
Each returns `Flag`s; `FLAG_DOCS` explains every flag code, as AutoAttack's
`flags_doc.md` does.
"""

import dataclasses
import math
import time

import numpy as np
from keras import ops

from keras_drelu import backends
from keras_drelu.arguments import check_choice
from keras_drelu.attacks import BPDA
from keras_drelu.attacks import FGSM
from keras_drelu.attacks import PGD
from keras_drelu.attacks.losses import cross_entropy
from keras_drelu.evaluation.report import Flag
from keras_drelu.evaluation.report import percent
from keras_drelu.inspection import CAP_KINDS
from keras_drelu.outputs import logits_model
from keras_drelu.outputs import outputs_probabilities

# `large-eps-not-broken`: accuracy above this share of chance (1 / classes),
# which for 10 classes is the 5% used before classes were counted.
LARGE_EPS_CHANCE_SHARE = 0.5
# `black-box-stronger`: AutoAttack's margin (`check_square_sr`, alpha).
BLACK_BOX_MARGIN = 0.002
ADAPTIVE_GAIN_THRESHOLD = 0.02
# `randomized-outputs`: AutoAttack's `check_randomized` (n and alpha).
RANDOMIZED_PASSES = 5
RANDOMIZED_TOLERANCE = 1e-4
# `adaptive-unavailable` for BPDA: inputs whose gradients are compared.
GRADIENT_CHECK_INPUTS = 64

FLAG_DOCS = {
    "zero-gradients": (
        "Some correctly classified inputs have an input gradient of exactly "
        "zero, so no gradient attack can move them: their 'robustness' "
        "under FGSM/PGD/APGD is an artefact (capped ReLUs saturate above "
        "their cap). Use the adaptive suite (BPDA, transfer) and Square."
    ),
    "black-box-stronger": (
        "A gradient-free (Square) or transfer attack broke inputs that every "
        "white-box gradient attack left robust: more than "
        f"{BLACK_BOX_MARGIN:.1%} of the inputs (AutoAttack's margin in "
        "`check_square_sr`) and more than one. A white-box attack that "
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
        "can be turned into any other, still leaves more than "
        f"{LARGE_EPS_CHANCE_SHARE:g} of chance level (1 / number of classes) "
        "of the inputs classified correctly. Accuracy should reach about 0 "
        "as eps grows; if it does not, the attack is not working on this "
        "model."
    ),
    "adaptive-gain": (
        "Attacks adapted to the capped activations (BPDA through the caps, "
        "transfer from the uncapped twin) lowered the worst-case accuracy "
        f"by more than {100 * ADAPTIVE_GAIN_THRESHOLD:g} points below the "
        "non-adaptive attacks: the caps mask gradients and only the "
        "adaptive number is meaningful."
    ),
    "not-adaptive": (
        "The model contains capped activations "
        f"({', '.join(kind.description for kind in CAP_KINDS.values())}; "
        "`keras_drelu.inspection.capped_activations`) but no adaptive "
        "attack (BPDA or transfer) was run: the reported accuracy may only "
        "reflect masked gradients. Evaluate with suite='adaptive'."
    ),
    "adaptive-unavailable": (
        "An adaptive attack could not be built or does not work on this "
        "model: a transfer attack needs every cap rewritten in an uncapped "
        "copy of the model (impossible inside custom layers and subclassed "
        "models), BPDA needs every cap seen through (DReLU/SReLU layers "
        "anywhere; other caps only in Sequential and functional models), "
        "and BPDA's input gradient must differ from the exact one on "
        "inputs where caps clip, or it would run as the plain attack."
    ),
    "randomized-outputs": (
        "Repeated forward passes on the same inputs gave different outputs "
        "or predictions (AutoAttack's `check_randomized`): dropout or noise "
        "left on at inference. Attacks and accuracies of a random model "
        "vary from run to run and need Expectation over Transformation "
        "(averaged gradients); the numbers reported here may overstate "
        "robustness."
    ),
    "probability-outputs": (
        "The model outputs probabilities (rows non-negative, summing to "
        "one; AutoAttack's `check_range_output`) and its logits could not "
        "be recovered, because the softmax is not the last layer of a "
        "Sequential or functional model. Attacks then work on log "
        "probabilities, which are flat for over-confident inputs; pass a "
        "model that outputs logits."
    ),
}


def zero_gradient_share(logits_fn, x, y, batch_size, variables=()):
    """Share of inputs whose cross-entropy input gradient is exactly zero.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.ReLU()])
    >>> x = np.array([[1.0, -1.0], [-1.0, -2.0]], "float32")
    >>> zero_gradient_share(model, x, np.array([0, 1]), 2, model.variables)
    0.5

    Args:
        logits_fn: `logits_fn(x)` returning logits (see `Attack.logits`).
        x: Inputs, typically the correctly classified ones.
        y: Integer labels.
        batch_size: Inputs per gradient computation.
        variables: The Keras variables `logits_fn` reads, which the
            compiled gradient reads at each call
            (`keras_drelu.backends.compile`). Defaults to `()`.

    Returns:
        A float in [0, 1] (`nan` for no inputs).
    """
    if not len(x):
        return math.nan

    def is_zero(xb, yb):
        def loss(xb):
            return ops.sum(cross_entropy(logits_fn(xb), yb)), None

        _, _, grad = backends.value_and_grad(loss, xb)
        flat = ops.reshape(ops.abs(grad), (ops.shape(xb)[0], -1))
        return ops.max(flat, axis=1) == 0.0

    is_zero = backends.compile(is_zero, variables)
    y = y.astype("int32")
    zero = np.concatenate(
        [
            is_zero(x[i : i + batch_size], y[i : i + batch_size])
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
    """A check's measurement (a number or a word) and the flags it raises."""

    value: object
    flags: list


def check_zero_gradients(context):
    """Share of correct inputs with a zero input gradient; flags if any."""
    settings = context.settings
    probe = FGSM(context.model, **settings.attack_arguments())
    share = zero_gradient_share(
        probe.logits, context.x, context.y, settings.batch_size,
        backends.variables_of(context.model),
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
    return CheckOutcome(
        accuracy, flag_large_eps(accuracy, attack.eps, context.n_classes)
    )


def _first_batch(context):
    return context.x[: context.settings.batch_size]


def check_randomized(context):
    """Largest change between repeated passes; flags a random model.

    AutoAttack's `check_randomized`: `RANDOMIZED_PASSES` forward passes on
    the first batch of correct inputs; the value is the largest L2 distance
    between two passes' outputs, each row scaled to unit norm.
    """
    x = _first_batch(context)
    if not len(x):
        return CheckOutcome(None, [])
    passes = [
        ops.convert_to_numpy(context.model(x, training=False)).astype("float64")
        for _ in range(RANDOMIZED_PASSES)
    ]
    predictions = {tuple(np.argmax(p, axis=1)) for p in passes}
    scaled = [
        p / (np.linalg.norm(p, axis=1, keepdims=True) + 1e-10) for p in passes
    ]
    variation = max(
        float(np.linalg.norm(a - b, axis=1).max())
        for i, a in enumerate(scaled)
        for b in scaled[i + 1 :]
    )
    return CheckOutcome(
        variation, flag_randomized(variation, len(predictions) > 1)
    )


def check_range_output(context):
    """What the model outputs; flags probabilities whose logits are lost.

    AutoAttack's `check_range_output`, with the logits recovered where
    possible: `"logits"`, `"probabilities (logits recovered)"` when the
    softmax is the last layer of a Sequential or functional model
    (`keras_drelu.outputs.logits_model`), else `"probabilities"`.
    """
    x = _first_batch(context)
    if not len(x):
        return CheckOutcome(None, [])
    model = context.model
    if not outputs_probabilities(model, model(x, training=False)):
        return CheckOutcome("logits", [])
    try:
        recovered = logits_model(model) is not model
    except ValueError:
        recovered = False
    if recovered:
        return CheckOutcome("probabilities (logits recovered)", [])
    return CheckOutcome("probabilities", flag_probabilities())


# Check name (progress bar, timings, saved state) -> (report field, check).
CHECKS = {
    "randomness check": ("output_variation", check_randomized),
    "output check": ("output_type", check_range_output),
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


def run_checks(
    context, checks=None, progress=None, *, done=None, on_check=None
):
    """Runs the checks of `CHECKS` on `context`, one after another.

    Example:

    >>> import keras
    >>> from keras_drelu.evaluation.cascade import predictor
    >>> from keras_drelu.evaluation.inputs import check_settings
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> x, y = np.full((3, 2), 0.5, "float32"), np.zeros(3, "int64")
    >>> context = CheckContext(model, x, y, n_examples=3, n_classes=2,
    ...     settings=check_settings(0.1, outputs="logits"),
    ...     predict=predictor(model, 3))
    >>> results = run_checks(context)
    >>> results.values["zero_gradient_share"], results.values["output_variation"]
    (0.0, 0.0)

    Args:
        context: A `CheckContext`.
        checks: Names of the checks to run, a subset of `CHECKS`. Defaults
            to `None`, all of them.
        progress: Optional `tqdm` bar, advanced once per check. Defaults to
            `None`.
        done: Check name -> `(CheckOutcome, seconds)` of checks already run
            on the same evaluation (a saved state), which are not run
            again. Defaults to `None`.
        on_check: Called as `on_check(name, outcome, seconds)` after each
            check that ran, e.g. to save it. Defaults to `None`.

    Returns:
        A `CheckResults`.
    """
    names = list(CHECKS) if checks is None else list(checks)
    for name in names:
        check_choice("checks", name, CHECKS)
    done = done or {}
    results = CheckResults(values={}, flags=[], timings={})
    for name in names:
        field, check = CHECKS[name]
        if progress is not None:
            progress.set_postfix_str(name)
        if name in done:
            outcome, seconds = done[name]
        else:
            start = time.perf_counter()
            outcome = check(context)
            seconds = time.perf_counter() - start
            if on_check is not None:
                on_check(name, outcome, seconds)
        results.timings[name] = seconds
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


def flag_large_eps(accuracy, eps, n_classes):
    """A `large-eps-not-broken` flag if `accuracy` is not about zero.

    About zero is at most `LARGE_EPS_CHANCE_SHARE` of chance level,
    `1 / n_classes`: 5% for 10 classes, 0.5% for 100.

    Example:

    >>> [f.code for f in flag_large_eps(0.02, 1.0, n_classes=100)]
    ['large-eps-not-broken']
    >>> flag_large_eps(0.02, 1.0, n_classes=10)
    []
    """
    threshold = LARGE_EPS_CHANCE_SHARE / n_classes
    if accuracy is None or not accuracy > threshold:
        return []
    return [
        Flag(
            "large-eps-not-broken",
            f"PGD with eps={eps:g} (the whole input range) leaves "
            f"{percent(accuracy)} of inputs correct; it should reach about "
            f"0% (at most {percent(threshold)}, {LARGE_EPS_CHANCE_SHARE:g} of "
            f"chance level for {n_classes} classes).",
        )
    ]


def flag_randomized(variation, predictions_changed):
    """A `randomized-outputs` flag if repeated passes differ."""
    if not (predictions_changed or variation > RANDOMIZED_TOLERANCE):
        return []
    changed = "changed predictions and " if predictions_changed else ""
    return [
        Flag(
            "randomized-outputs",
            f"{RANDOMIZED_PASSES} forward passes on the same inputs "
            f"{changed}moved the unit-scaled outputs by up to {variation:.3g} "
            f"(tolerance {RANDOMIZED_TOLERANCE:g}): the model is random at "
            "inference (dropout or noise left on).",
        )
    ]


def flag_probabilities():
    """A `probability-outputs` flag: probabilities without their logits."""
    return [
        Flag(
            "probability-outputs",
            "The model outputs probabilities and its logits could not be "
            "recovered (no softmax as the last layer of a Sequential or "
            "functional model); the attacks used log probabilities.",
        )
    ]


def flag_straight_through(attacks, x, y):
    """`adaptive-unavailable` flags for BPDA attacks that see no further.

    Each `BPDA` attack of `attacks` compares its input gradient with the
    exact one on the first `GRADIENT_CHECK_INPUTS` inputs
    (`BPDA.gradient_check`). Where caps clip (or cannot be observed), a
    straight-through gradient that equals the exact one on every input
    means the attack would run as the plain attack.

    Args:
        attacks: The attacks of the evaluation.
        x: Inputs.
        y: Their labels.

    Returns:
        A list of `Flag`.
    """
    x, y = x[:GRADIENT_CHECK_INPUTS], y[:GRADIENT_CHECK_INPUTS]
    flags = []
    for attack in attacks:
        if not isinstance(attack, BPDA) or not len(x):
            continue
        check = attack.gradient_check(x, y)
        clipping = (
            np.ones(len(x), bool) if check.clipping is None else check.clipping
        )
        if clipping.any() and not (check.differs & clipping).any():
            where = (
                "none of its caps could be observed"
                if check.clipping is None
                else f"caps clip on {int(clipping.sum())} of them"
            )
            flags.append(
                Flag(
                    "adaptive-unavailable",
                    f"{attack.name}: its input gradient equals the exact "
                    f"gradient on all {len(x)} inputs checked ({where}); it "
                    "runs as the plain attack. A cap may be called inside a "
                    "function compiled before the attack.",
                )
            )
    return flags


def flag_results(entries, clean_correct, cascade):
    """Flags comparing attacks of the evaluated threat model.

    `black-box-stronger` needs more than `BLACK_BOX_MARGIN` of the inputs
    (AutoAttack's `check_square_sr` margin) and more than one input, so
    that one input a white-box attack happened to miss does not raise it.

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
        if extra > max(BLACK_BOX_MARGIN * n, 1):
            flags.append(
                Flag(
                    "black-box-stronger",
                    f"{result.name} broke {extra} of {n} inputs "
                    f"({percent(extra / n)}) that every white-box gradient "
                    "attack left robust (more than the margin of "
                    f"{BLACK_BOX_MARGIN:.1%} of the inputs and one input).",
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
        capped: Whether the model holds capped activations
            (`keras_drelu.inspection.contains_capped_relu`).
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
            "The model has capped activations but no BPDA or transfer "
            "attack ran; use suite='adaptive'.",
        )
    ]


def flag_attacks(run, capped):
    """Every flag read from the attacks' results (a `CascadeResult`).

    Args:
        run: The `CascadeResult` of the evaluation.
        capped: Whether the model holds capped activations.

    Returns:
        `flag_results(...)` followed by `flag_not_adaptive(...)`.
    """
    entries = run.entries
    return flag_results(entries, run.clean_correct, run.cascade) + (
        flag_not_adaptive(capped, entries)
    )
