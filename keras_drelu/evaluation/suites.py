"""The named attack suites of `evaluate_robustness`, fixed in one place.

A suite lists attacks by name; `"Wrapper(Name)"` runs the attack `Name`
through `BPDA` or `Transfer`. Budgets live in `ATTACKS` (shared by every
suite) and in each suite's `budgets`, and can be overridden per call.
"""

import dataclasses
import re

from keras_drelu.attacks import APGD
from keras_drelu.attacks import APGDT
from keras_drelu.attacks import BPDA
from keras_drelu.attacks import FGSM
from keras_drelu.attacks import PGD
from keras_drelu.attacks import CarliniWagnerL2
from keras_drelu.attacks import Square
from keras_drelu.attacks import Transfer

# name -> (class, default arguments)
ATTACKS = {
    "FGSM": (FGSM, {}),
    "PGD": (PGD, {"steps": 20}),
    "APGD-CE": (APGD, {"loss": "ce", "steps": 100}),
    "APGD-DLR": (APGD, {"loss": "dlr", "steps": 100}),
    "APGD-T": (APGDT, {"steps": 100, "n_target_classes": 9}),
    "CW-L2": (CarliniWagnerL2, {}),
    "Square": (Square, {"n_queries": 5000, "p_init": 0.8}),
}

WRAPPERS = {"BPDA": BPDA, "Transfer": Transfer}


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
        attacks=("APGD-CE", "APGD-T", "Square"),
        cascade=True,
        description="AutoAttack's standard attacks without FAB",
    ),
    "adaptive": Suite(
        attacks=(
            "APGD-CE",
            "APGD-T",
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


def build_attack(name, model, common, budgets=None, overrides=None):
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
        return WRAPPERS[wrapper](
            build_attack(inner, model, common, budgets, overrides)
        )
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
