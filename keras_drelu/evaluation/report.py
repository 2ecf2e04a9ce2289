"""`RobustnessReport`: what `evaluate_robustness` returns, and its renderings."""

import csv
import dataclasses
import io
import json
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class Flag:
    """A warning that the evaluation may overstate robustness.

    Args:
        code: Short identifier, one of `keras_drelu.evaluation.FLAG_DOCS`.
        message: What was measured and what to do about it.
    """

    code: str
    message: str

    def __str__(self):
        return f"[{self.code}] {self.message}"


@dataclasses.dataclass(frozen=True)
class AttackResult:
    """One attack's row of the report.

    Args:
        name: The attack's name, e.g. `"BPDA(APGD-CE)"`.
        kind: `"white-box"`, `"single-step"`, `"black-box"`, `"transfer"`
            or `"adaptive"`.
        norm: Norm of the attack's threat model.
        eps: Radius of the attack's threat model.
        accuracy: In a cascade, the accuracy left after this attack and
            every earlier one of its threat model; otherwise this attack's
            own accuracy.
        attacked: Number of inputs the attack ran on.
        broken: Number of those it misclassified.
        seconds: Wall-clock time of the attack.
        queries: For an attack that counts its queries (`Square.queries`),
            the median number of model queries spent on the inputs it
            broke; otherwise `None`. Defaults to `None`.
    """

    name: str
    kind: str
    norm: str
    eps: float
    accuracy: float
    attacked: int
    broken: int
    seconds: float
    queries: float = None


def _norm_label(norm, eps):
    return f"{'Linf' if norm == 'linf' else 'L2'} eps={eps:g}"


def percent(value):
    """`value` as a percentage with one decimal, `"n/a"` for None or nan.

    Example:

    >>> percent(0.1234), percent(None)
    ('12.3%', 'n/a')
    """
    return (
        "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"
    )


@dataclasses.dataclass
class RobustnessReport:
    """The result of `evaluate_robustness`.

    `worst_case_accuracy` is the number to quote: the share of inputs that
    are classified correctly and that no attack of the evaluated threat
    model (`norm`, `eps`) broke, taken per input. Attacks of another threat
    model (CW-L2 in the `"paper"` suite) are reported but not part of it.
    `flags` are warnings in the spirit of AutoAttack's checks (see
    `keras_drelu.evaluation.FLAG_DOCS`); an evaluation with flags is not to
    be trusted as it stands.

    Renderings: `str(report)` and `to_markdown()` (a table and the flags),
    `to_dict()`, `to_json()`, `to_csv()` (one row per attack), and
    `save_examples_png(path)` (clean / adversarial / perturbation images).

    Args:
        model_name: Name of the evaluated model.
        suite: Suite name, or `"custom"` for a list of attacks.
        cascade: Whether attacks ran only on inputs still robust.
        norm: Norm of the evaluated threat model.
        eps: Radius of the evaluated threat model.
        n_examples: Number of inputs evaluated.
        clean_accuracy: Accuracy on the clean inputs.
        accuracy: Attack name -> accuracy (see `AttackResult.accuracy`).
        worst_case_accuracy: Per-input worst case over the attacks of the
            evaluated threat model.
        timings: Attack or check name -> seconds.
        flags: List of `Flag`.
        results: List of `AttackResult`, in the order the attacks ran.
        notes: Informational lines (attacks skipped and why).
        large_eps_accuracy: Accuracy of PGD with a radius spanning the whole
            input range, or `None` if not measured.
        zero_gradient_share: Share of correctly classified inputs whose
            input gradient is exactly zero, or `None`.
        output_variation: Largest change of the (unit-scaled) outputs
            between repeated forward passes, 0 for a deterministic model,
            or `None`.
        output_type: `"logits"`, `"probabilities (logits recovered)"` or
            `"probabilities"`, or `None` if not measured.
        sweep: `EpsSweep` or `None`.
        robust: Per-input boolean array: correct and never broken.
        x: The clean inputs.
        y: Their labels.
        x_adv: Per input, the first adversarial example found (the clean
            input where none was).
        adv_pred: The model's prediction on `x_adv`.
    """

    model_name: str
    suite: str
    cascade: bool
    norm: str
    eps: float
    n_examples: int
    clean_accuracy: float
    accuracy: dict
    worst_case_accuracy: float
    timings: dict
    flags: list
    results: list
    notes: list = dataclasses.field(default_factory=list)
    large_eps_accuracy: float = None
    zero_gradient_share: float = None
    output_variation: float = None
    output_type: str = None
    sweep: object = None
    robust: np.ndarray = dataclasses.field(default=None, repr=False)
    x: np.ndarray = dataclasses.field(default=None, repr=False)
    y: np.ndarray = dataclasses.field(default=None, repr=False)
    x_adv: np.ndarray = dataclasses.field(default=None, repr=False)
    adv_pred: np.ndarray = dataclasses.field(default=None, repr=False)

    def to_dict(self):
        """The summary as plain Python values (no arrays)."""
        return {
            "model": self.model_name,
            "suite": self.suite,
            "cascade": self.cascade,
            "threat_model": {"norm": self.norm, "eps": self.eps},
            "n_examples": self.n_examples,
            "clean_accuracy": self.clean_accuracy,
            "accuracy": dict(self.accuracy),
            "worst_case_accuracy": self.worst_case_accuracy,
            "timings": dict(self.timings),
            "flags": [dataclasses.asdict(flag) for flag in self.flags],
            "attacks": [dataclasses.asdict(result) for result in self.results],
            "notes": list(self.notes),
            "large_eps_accuracy": self.large_eps_accuracy,
            "zero_gradient_share": self.zero_gradient_share,
            "output_variation": self.output_variation,
            "output_type": self.output_type,
            "sweep": None if self.sweep is None else self.sweep.to_dict(),
        }

    def to_json(self, indent=2):
        """The summary as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_csv(self):
        """One CSV row per attack, plus `clean` and `worst-case` rows."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(
            [
                "attack",
                "kind",
                "norm",
                "eps",
                "accuracy",
                "attacked",
                "broken",
                "seconds",
                "queries",
            ]
        )
        writer.writerow(
            [
                "clean",
                "",
                "",
                "",
                f"{self.clean_accuracy:.6f}",
                self.n_examples,
                "",
                "",
            ]
        )
        for r in self.results:
            writer.writerow(
                [
                    r.name,
                    r.kind,
                    r.norm,
                    r.eps,
                    f"{r.accuracy:.6f}",
                    r.attacked,
                    r.broken,
                    f"{r.seconds:.3f}",
                    "" if r.queries is None else f"{r.queries:g}",
                ]
            )
        writer.writerow(
            [
                "worst-case",
                "",
                self.norm,
                self.eps,
                f"{self.worst_case_accuracy:.6f}",
                self.n_examples,
                "",
                "",
            ]
        )
        return buffer.getvalue()

    def to_markdown(self):
        """A Markdown summary: the threat model, one row per attack, flags."""
        schedule = (
            "cascade: each attack runs on the inputs still robust"
            if self.cascade
            else "each attack runs on every correctly classified input"
        )
        accuracy_column = (
            "robust accuracy after" if self.cascade else "accuracy"
        )
        lines = [
            f"## Robustness of `{self.model_name}`",
            "",
            (
                f"{self.n_examples} inputs, threat model "
                f"{_norm_label(self.norm, self.eps)}, suite `{self.suite}` "
                f"({schedule})."
            ),
            "",
            f"| attack | kind | threat model | {accuracy_column} | broken / attacked | time (s) |",
            "| --- | --- | --- | ---: | ---: | ---: |",
            f"| clean | | | {percent(self.clean_accuracy)} | | |",
        ]
        for r in self.results:
            queries = (
                "" if r.queries is None
                else f" (median {r.queries:g} queries)"
            )
            lines.append(
                f"| {r.name} | {r.kind} | {_norm_label(r.norm, r.eps)} | "
                f"{percent(r.accuracy)} | "
                f"{r.broken} / {r.attacked}{queries} | {r.seconds:.1f} |"
            )
        lines += [
            "",
            (
                "**Worst-case robust accuracy: "
                f"{percent(self.worst_case_accuracy)}** (per input, over every "
                f"{_norm_label(self.norm, self.eps)} attack)."
            ),
        ]
        checks = []
        if self.output_type is not None:
            checks.append(f"outputs: {self.output_type}")
        if self.output_variation is not None:
            checks.append(
                "change between repeated passes: "
                f"{self.output_variation:.3g}"
            )
        if self.zero_gradient_share is not None:
            checks.append(
                f"zero input gradient: {percent(self.zero_gradient_share)} "
                "of correct inputs"
            )
        if self.large_eps_accuracy is not None:
            checks.append(
                "PGD accuracy with eps spanning the input range: "
                f"{percent(self.large_eps_accuracy)}"
            )
        if checks:
            lines += ["", "Checks: " + "; ".join(checks) + "."]
        if self.sweep is not None:
            lines += ["", self.sweep.to_markdown()]
        lines += ["", "### Flags", ""]
        if self.flags:
            lines += [
                f"- **{flag.code}**: {flag.message}" for flag in self.flags
            ]
        else:
            lines.append("None: no sign of gradient masking was found.")
        if self.notes:
            lines += ["", "### Notes", ""] + [
                f"- {note}" for note in self.notes
            ]
        return "\n".join(lines)

    def __str__(self):
        return self.to_markdown()

    def save_examples_png(self, path, n=8):
        """Saves a grid of clean, adversarial and perturbation images.

        Columns are up to `n` inputs an attack broke (inputs it did not
        break if none was); rows show the clean image with its label, the
        adversarial image with the model's prediction, and the perturbation
        scaled to fill the grey range.

        Args:
            path: Where to write the PNG.
            n: Maximum number of columns. Defaults to `8`.

        Returns:
            `path`.
        """
        # The object-oriented Figure API draws without touching pyplot's
        # global state or needing a display.
        from matplotlib.figure import Figure

        if self.x is None:
            raise ValueError("This report holds no images to draw.")
        broken = np.flatnonzero(
            np.any(self.x_adv != self.x, axis=tuple(range(1, self.x.ndim)))
            & ~self.robust
        )
        chosen = broken[:n] if len(broken) else np.arange(min(n, len(self.x)))
        figure = Figure(figsize=(1.6 * max(len(chosen), 1), 5.0))
        axes = figure.subplots(3, max(len(chosen), 1), squeeze=False)
        for column, index in enumerate(chosen):
            clean = _as_image(self.x[index])
            adversarial = _as_image(self.x_adv[index])
            delta = adversarial - clean
            scale = max(float(np.abs(delta).max()), 1e-12)
            low, high = float(self.x.min()), float(self.x.max())
            panels = [
                (
                    (clean - low) / max(high - low, 1e-12),
                    f"label {self.y[index]}",
                ),
                (
                    (adversarial - low) / max(high - low, 1e-12),
                    f"pred {self.adv_pred[index]}",
                ),
                (0.5 + 0.5 * delta / scale, f"|d|max {scale:.3g}"),
            ]
            for row, (image, title) in enumerate(panels):
                ax = axes[row, column]
                ax.imshow(
                    np.clip(image, 0, 1).squeeze(), cmap="gray", vmin=0, vmax=1
                )
                ax.set_title(title, fontsize=8)
                ax.axis("off")
        for row, label in enumerate(("clean", "adversarial", "perturbation")):
            axes[row, 0].text(
                -0.15,
                0.5,
                label,
                transform=axes[row, 0].transAxes,
                rotation=90,
                va="center",
                ha="right",
                fontsize=9,
            )
        figure.suptitle(
            f"{self.model_name}: {_norm_label(self.norm, self.eps)}",
            fontsize=10,
        )
        figure.savefig(path, dpi=100, bbox_inches="tight")
        return path


def assemble_report(
    *, model_name, suite, settings, x, y, run, checks, flags, sweep=None,
    timings=None,
):
    """The `RobustnessReport` of an evaluation, from the results of its steps.

    Args:
        model_name: Name shown in the report.
        suite: The `BuiltSuite` that ran (its name and notes).
        settings: The `EvaluationSettings` (threat model).
        x: The evaluated inputs.
        y: Their labels.
        run: The `CascadeResult` of the attacks.
        checks: The `CheckResults` (its values fill the report fields of the
            same name).
        flags: Every `Flag` raised, in order.
        sweep: An `EpsSweep`, or `None`. Defaults to `None`.
        timings: Further step name -> seconds, after the attacks' and the
            checks'. Defaults to `None`.

    Returns:
        A `RobustnessReport`.
    """
    robust = run.robust
    return RobustnessReport(
        model_name=model_name,
        suite=suite.name,
        cascade=run.cascade,
        norm=settings.norm,
        eps=settings.eps,
        n_examples=len(x),
        clean_accuracy=float(run.clean_correct.mean()),
        accuracy={r.name: r.accuracy for r in run.results},
        worst_case_accuracy=float(robust.mean()),
        timings={**run.timings, **checks.timings, **(timings or {})},
        flags=list(flags),
        results=list(run.results),
        notes=suite.notes + run.notes,
        sweep=sweep,
        robust=robust,
        x=x,
        y=y,
        x_adv=run.x_adv,
        adv_pred=run.adv_pred,
        **checks.values,
    )


def _as_image(x):
    if x.ndim == 3 and x.shape[-1] in (1, 3):
        return x
    if x.ndim == 2:
        return x[..., None]
    side = math.isqrt(x.size)
    if x.ndim == 1 and side * side == x.size:
        return x.reshape(side, side, 1)
    raise ValueError(
        "Only images (height, width[, 1 or 3 channels]) or flat square "
        f"images can be drawn. Received: an input of shape {x.shape}"
    )
