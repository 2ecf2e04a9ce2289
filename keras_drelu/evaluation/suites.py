"""The named attack suites of `evaluate_robustness`, fixed in one place.

A suite lists attacks by name; `"Wrapper(Name)"` runs the attack `Name`
through `BPDA` or `Transfer`. Budgets live in `ATTACKS` (shared by every
suite) and in each suite's `budgets`, and can be overridden per call.
`build_suite` turns a suite (a name or a list of attacks) into the attacks
to run, in cascade order.
"""

import dataclasses
import re

from keras_drelu.arguments import check_bool
from keras_drelu.attacks import APGD
from keras_drelu.attacks import APGDT
from keras_drelu.attacks import BPDA
from keras_drelu.attacks import FABT
from keras_drelu.attacks import FGSM
from keras_drelu.attacks import PGD
from keras_drelu.attacks import CarliniWagnerL2
from keras_drelu.attacks import Square
from keras_drelu.attacks import Transfer
from keras_drelu.attacks.base import Attack
from keras_drelu.evaluation.report import Flag
from keras_drelu.inspection import contains_capped_relu

# name -> (class, default arguments)
ATTACKS = {
    "FGSM": (FGSM, {}),
    "PGD": (PGD, {"steps": 20}),
    "APGD-CE": (APGD, {"loss": "ce", "steps": 100}),
    "APGD-DLR": (APGD, {"loss": "dlr", "steps": 100}),
    "APGD-T": (APGDT, {"steps": 100, "n_target_classes": 9}),
    "FAB-T": (FABT, {"steps": 100, "n_target_classes": 9}),
    "CW-L2": (CarliniWagnerL2, {}),
    # AutoAttack's standard Square: 5000 queries, `p` not rescaled.
    "Square": (
        Square, {"n_queries": 5000, "p_init": 0.8, "rescale_schedule": False}
    ),
}

WRAPPERS = {"BPDA": BPDA, "Transfer": Transfer}

# Budget name -> the (attack, argument) pairs it sets: one knob per kind of
# budget for command lines and experiments (`budget_overrides`).
BUDGETS = {
    "apgd_steps": (
        ("APGD-CE", "steps"), ("APGD-DLR", "steps"), ("APGD-T", "steps"),
        ("FAB-T", "steps"),
    ),
    "target_classes": (
        ("APGD-T", "n_target_classes"), ("FAB-T", "n_target_classes"),
    ),
    "square_queries": (("Square", "n_queries"),),
    "pgd_steps": (("PGD", "steps"),),
    "step_size": (("PGD", "step_size"),),
    "cw_eps": (("CW-L2", "eps"),),
    "cw_iterations": (("CW-L2", "max_iterations"),),
    "cw_binary_steps": (("CW-L2", "binary_search_steps"),),
    "cw_learning_rate": (("CW-L2", "learning_rate"),),
    "cw_initial_const": (("CW-L2", "initial_const"),),
}


def budget_overrides(**budgets):
    """The `overrides` of `evaluate_robustness` setting named budgets.

    `apgd_steps` sets the iterations of APGD and FAB-T, `square_queries`
    Square's queries, and so on (see `BUDGETS`); budgets given as `None`
    keep the suites' own.

    Example:

    >>> budget_overrides(apgd_steps=10, square_queries=None)["FAB-T"]
    {'steps': 10}

    Args:
        **budgets: Names of `BUDGETS` and their values.

    Returns:
        A dict from attack name to its overriding arguments.
    """
    overrides = {}
    for budget, value in budgets.items():
        if budget not in BUDGETS:
            raise ValueError(
                f"Unknown budget {budget!r}; known: {sorted(BUDGETS)}"
            )
        if value is not None:
            for attack, argument in BUDGETS[budget]:
                overrides.setdefault(attack, {})[argument] = value
    return overrides


@dataclasses.dataclass(frozen=True)
class Suite:
    """A named list of attacks and how they are scheduled.

    Args:
        attacks: Attack names, run in this order.
        cascade: `True` to run each attack only on the inputs that the
            attacks before it left robust (AutoAttack's schedule); `False`
            to run every attack on every correctly classified input, which
            gives each attack's own accuracy, as papers' tables report.
        budgets: Per-attack arguments overriding `ATTACKS`.
        description: One line for reports.
    """

    attacks: tuple
    cascade: bool
    budgets: dict = dataclasses.field(default_factory=dict)
    description: str = ""


SUITES = {
    "paper": Suite(
        attacks=("FGSM", "PGD", "APGD-CE", "APGD-DLR", "CW-L2", "Square"),
        cascade=False,
        # The D-ReLU paper bounds CW-L2 at an L2 radius of 18.
        budgets={"CW-L2": {"eps": 18.0}},
        description="the D-ReLU paper's attacks, each on every input",
    ),
    "standard": Suite(
        attacks=("APGD-CE", "APGD-T", "FAB-T", "Square"),
        cascade=True,
        description="AutoAttack's standard attacks",
    ),
    "adaptive": Suite(
        attacks=(
            "APGD-CE",
            "APGD-T",
            "FAB-T",
            "Square",
            "BPDA(APGD-CE)",
            "BPDA(APGD-T)",
            "Transfer(APGD-CE)",
        ),
        cascade=True,
        description=(
            "standard plus BPDA through the caps and transfer from the "
            "uncapped twin"
        ),
    ),
}

_WRAPPED = re.compile(r"^(\w+)\((.+)\)$")


def _check_overrides(overrides):
    for key in overrides:
        if key not in ATTACKS:
            raise ValueError(
                f"Argument `overrides` names unknown attack {key!r}; known: "
                f"{sorted(ATTACKS)}. Received: overrides={overrides!r}"
            )


def build_attack(
    name, model, common, budgets=None, overrides=None, surrogates=None
):
    """Instantiates the attack `name` (e.g. `"APGD-CE"`, `"BPDA(APGD-T)"`).

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5)])
    >>> attack = build_attack("Square", model, {"eps": 0.1},
    ...                       overrides={"Square": {"n_queries": 50}})
    >>> attack.n_queries
    50

    Args:
        name: A name of `ATTACKS`, or `"BPDA(name)"` / `"Transfer(name)"`.
        model: The model to attack.
        common: Arguments given to every attack (`eps`, `norm`, ...).
        budgets: Per-attack arguments of the suite. Defaults to `None`.
        overrides: Per-attack arguments given by the user, which win over
            the others; they apply to wrapped attacks too. Defaults to
            `None`.
        surrogates: A dict shared by the calls that build attacks on the
            same `model`: the first `BPDA(...)` / `Transfer(...)` leaves its
            surrogate model in it (under the wrapper's name) and the later
            ones reuse it. Defaults to `None`: each makes its own.

    Returns:
        An `Attack`.
    """
    overrides = overrides or {}
    _check_overrides(overrides)
    match = _WRAPPED.match(name)
    if match:
        wrapper, inner = match.groups()
        if wrapper not in WRAPPERS:
            raise ValueError(
                f"Unknown attack wrapper {wrapper!r} in {name!r}; known: "
                f"{sorted(WRAPPERS)}"
            )
        surrogates = {} if surrogates is None else surrogates
        attack = WRAPPERS[wrapper](
            build_attack(inner, model, common, budgets, overrides),
            surrogate=surrogates.get(wrapper),
        )
        surrogates[wrapper] = attack.surrogate
        return attack
    if name not in ATTACKS:
        raise ValueError(
            f"Unknown attack {name!r}; known: {sorted(ATTACKS)} and their "
            f"BPDA(...) and Transfer(...) forms"
        )
    cls, defaults = ATTACKS[name]
    arguments = dict(common)
    if cls is CarliniWagnerL2:
        # CW-L2 is an L2 attack whatever norm the evaluation uses.
        arguments.pop("norm", None)
    arguments.update(defaults)
    arguments.update((budgets or {}).get(name, {}))
    arguments.update(overrides.get(name, {}))
    return cls(model, **arguments)


# Cascade order of the kinds of attack (`Attack.kind`): the strongest, most
# informed attacks first, so that an input broken only by a later, weaker
# kind of attack is a warning sign.
KIND_ORDER = ("white-box", "single-step", "black-box", "transfer", "adaptive")


def default_suite(model):
    """`"adaptive"` for a model with capped activations, else `"standard"`.

    Capped activations are those `keras_drelu.inspection.capped_activations`
    finds (DReLU, SReLU, `ReLU(max_value)`, relu6), wherever they sit.
    """
    return "adaptive" if contains_capped_relu(model) else "standard"


@dataclasses.dataclass
class BuiltSuite:
    """The attacks of a suite, ready to run.

    Args:
        name: The suite's name, or `"custom"` for a list of attacks.
        attacks: `Attack` instances, in the order they run.
        cascade: Whether each attack runs only on the inputs still robust.
        notes: Attacks skipped and why.
        flags: `adaptive-unavailable` flags for wrapped attacks that could
            not be built.
    """

    name: str
    attacks: list
    cascade: bool
    notes: list = dataclasses.field(default_factory=list)
    flags: list = dataclasses.field(default_factory=list)


def _suite_attacks(spec, model, common, overrides, n_classes, built):
    surrogates = {}
    for name in spec.attacks:
        try:
            attack = build_attack(
                name, model, common, spec.budgets, overrides, surrogates
            )
        except ValueError as error:
            if name.startswith(tuple(WRAPPERS)):
                built.flags.append(
                    Flag("adaptive-unavailable", f"{name}: {error}")
                )
            else:
                raise
            continue
        if attack.min_classes > n_classes:
            built.notes.append(
                f"{name} skipped: it needs at least {attack.min_classes} "
                f"classes and the model has {n_classes}."
            )
            continue
        built.attacks.append(attack)


def build_suite(
    suite, model, common, *, n_classes, overrides=None, cascade=None
):
    """The attacks of `suite` for `model`, in the order they will run.

    Attacks a model cannot take are left out with a note (too few classes)
    or a flag (a BPDA or transfer attack on a model that cannot be
    rewritten). A cascade runs the attacks by kind in `KIND_ORDER`,
    keeping the given order within each kind.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> built = build_suite("standard", model, {"eps": 0.1}, n_classes=3)
    >>> [attack.name for attack in built.attacks], built.notes
    (['APGD-CE', 'FAB-T', 'Square'], ['APGD-T skipped: it needs at least 4 classes and the model has 3.'])

    Args:
        suite: A name of `SUITES`, or a non-empty list of `Attack`
            instances (`"custom"`, a cascade unless `cascade=False`).
        model: The model to attack.
        common: Arguments given to every attack (`eps`, `norm`, ...), as
            in `build_attack`.
        n_classes: Number of classes of the model.
        overrides: Per-attack arguments, as in `build_attack`. Defaults to
            `None`.
        cascade: Overrides the suite's schedule. Defaults to `None`.

    Returns:
        A `BuiltSuite`.
    """
    if isinstance(suite, str):
        if suite not in SUITES:
            raise ValueError(
                f"Argument `suite` should be one of {sorted(SUITES)} or a list "
                f"of `Attack` instances. Received: suite={suite!r}"
            )
        spec = SUITES[suite]
        built = BuiltSuite(name=suite, attacks=[], cascade=spec.cascade)
        _suite_attacks(spec, model, common, overrides, n_classes, built)
    else:
        attacks = list(suite)
        if not attacks or not all(isinstance(a, Attack) for a in attacks):
            raise ValueError(
                "Argument `suite` should be a suite name or a non-empty list "
                f"of `Attack` instances. Received: suite={suite!r}"
            )
        built = BuiltSuite(name="custom", attacks=attacks, cascade=True)
    if cascade is not None:
        built.cascade = check_bool("cascade", cascade)
    if built.cascade:
        built.attacks.sort(key=lambda a: KIND_ORDER.index(a.kind))
    return built
