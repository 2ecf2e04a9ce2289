"""How fast D-ReLU caps learn on MNIST: stored as themselves or as a logarithm.

The D-ReLU paper's dense network (784 -> 392 -> 196 -> Dense(units) ->
D-ReLU -> 10, as in `drelu_mnist.py`) trains naturally from the paper's
initial cap 100 with Adam 1e-3 and batch 64, at the paper's lambda for the
dense network (100) and at lambda 1, once with the caps stored as
themselves (`max_value_parameterization="linear"`, the paper's layer) and
once as a logarithm (`"log"`, the layer's default). The median and
quartiles of the caps over the units are recorded every few steps. Each
run lasts `--reference-epochs`; the log run's caps at its end are the
reference ("converged value") of its lambda, since both forms have the
same stationary points and only the log form gets near them in this budget.
Issue 12's goal: caps within 10% of their converged value after at most 2
epochs.

The capped layer has a scale symmetry: multiplying the kernel and bias of
the Dense before it and its caps by `a > 0`, and the kernel of the Dense
after it by `1 / a`, leaves the network's function unchanged but
multiplies the penalty `lam * sum(m ** 2)` by `a ** 2`. A cap alone is
therefore not a property of the function. Its *effective cap*, the cap
times the norm of the unit's outgoing weights (`effective_caps`), is
invariant under the symmetry; it is recorded alongside the caps and
measured against the same goal.

    python experiments/cap_learning.py
    python experiments/cap_learning.py --outgoing-decay 1e-3 \
        --out docs/results/cap_learning_decay
    python experiments/cap_learning.py --quick --out /tmp/caps

`--outgoing-decay MU` adds a weight decay `MU * sum(W ** 2)` on the kernel
`W` of the Dense after the caps (not in the paper). It breaks the symmetry:
scaling by `a` now also multiplies the decay by `1 / a ** 2`, so the loss
has stationary points with caps above 0, where the caps have a converged
value to be measured against.

The learning rate stays at 1e-3 and nothing stops early (the paper's
plateau halving and early stopping are off), so that the steps measure the
parameterisation alone.
"""

import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from common import arguments  # noqa: E402
from common import results  # noqa: E402
from common.data import load  # noqa: E402
from common.networks import dense_network  # noqa: E402
from drelu_mnist import PAPER_LAMBDA  # noqa: E402
from keras_drelu import DReLU  # noqa: E402
from keras_drelu import max_values  # noqa: E402
from keras_drelu.layers.cap_parameterizations import PARAMETERIZATIONS  # noqa: E402
from keras_drelu.training import train  # noqa: E402

# The form whose run defines each lambda's converged caps.
REFERENCE = "log"
# Issue 12: within this share of the converged value...
TOLERANCE = 0.1
# ...and the step at which the reading compares the two forms early on.
EARLY_STEP = 500
# What is recorded per unit: the prefix of its keys in `results.json` (runs
# and summary rows) -> its name in the tables and the reading.
QUANTITIES = {"": "cap", "effective_": "effective cap"}
DATASET = "mnist"
DEFAULTS = dict(seed=0, train_size=None, batch_size=64, units=128,
                initial_max_value=100.0, eval_images=10000)
QUICK = dict(train_size=640, eval_images=200, reference_epochs=3,
             goal_epochs=1, record_every=5)
OPTIONS = {
    "--lambdas": dict(nargs="+", type=arguments.non_negative_float,
                      action=arguments.Distinct,
                      default=[PAPER_LAMBDA["dense"], 1.0],
                      help="cap penalties; the first is the paper's for the "
                      "dense network"),
    "--parameterizations": dict(nargs="+", choices=list(PARAMETERIZATIONS),
                                action=arguments.Distinct,
                                default=list(PARAMETERIZATIONS),
                                help=f"how the caps are stored; {REFERENCE!r} "
                                "defines the converged caps and is always run"),
    "--goal-epochs": dict(type=arguments.positive_int, default=2,
                          help="epochs within which the caps should be "
                          "within 10%% of their converged value"),
    "--reference-epochs": dict(type=arguments.positive_int, default=20,
                               help="epochs of every run; the log run's "
                               "final caps are the converged value"),
    "--record-every": dict(type=arguments.positive_int, default=25,
                           help="steps between two records of the caps"),
    "--outgoing-decay": dict(type=arguments.non_negative_float, default=0.0,
                             help="weight decay MU * sum(W ** 2) on the "
                             "kernel W of the Dense after the caps (not in "
                             "the paper; breaks the scale symmetry)"),
}


def network(args, lam, parameterization):
    """The D-ReLU dense network of `drelu_mnist.py`, caps stored as asked,
    with `args.outgoing_decay` (if any) on the kernel of the last Dense."""
    model = dense_network(
        (392, 196, args.units),
        ["relu", "relu", ("drelu", dict(
            lam=lam, initial_max_value=args.initial_max_value))],
        name="dense",
    )
    decay = getattr(args, "outgoing_decay", 0.0)
    if not decay and all(
            layer.max_value_parameterization == parameterization
            for layer in model.layers if isinstance(layer, DReLU)):
        return model
    last = model.layers[-1]

    # The activation table builds the default form: swap the D-ReLU layer
    # for one storing its caps otherwise, and give the last Dense its
    # decay, keeping every other layer.
    def swap(layer):
        config = layer.get_config()
        if isinstance(layer, DReLU):
            config["max_value_parameterization"] = parameterization
        if layer is last and decay:
            config["kernel_regularizer"] = keras.regularizers.L2(decay)
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=swap)
    for old, new in zip(model.layers, twin.layers):
        if not isinstance(old, DReLU):
            new.set_weights(old.get_weights())
    return twin


def caps_of(model):
    return np.concatenate([np.ravel(c) for c in max_values(model).values()])


def effective_caps(model):
    """Each D-ReLU unit's cap times the L2 norm of its outgoing weights.

    `m_i * ||W[i, :]||` with `W` the kernel of the `Dense` layer that
    follows the D-ReLU layer in `model.layers`: unchanged when the caps
    and the preceding layer's kernel and bias are multiplied by `a > 0` and
    `W` by `1 / a`, which leaves the network's function unchanged.

    Args:
        model: A `keras.Sequential` in which every `DReLU` layer is
            followed by a `Dense` layer (`network`).

    Returns:
        A 1-D array, one entry per unit, in the order of `model.layers`.
    """
    effective = []
    for layer, following in zip(model.layers, model.layers[1:]):
        if not isinstance(layer, DReLU):
            continue
        if not isinstance(following, keras.layers.Dense):
            raise ValueError(
                f"The D-ReLU layer {layer.name!r} should be followed by a "
                f"Dense layer. Received: {following.__class__.__name__}"
            )
        caps = np.ravel(keras.ops.convert_to_numpy(layer.max_value))
        kernel = keras.ops.convert_to_numpy(following.kernel)
        effective.append(caps * np.linalg.norm(kernel, axis=1))
    return np.concatenate(effective)


class CapRecorder(keras.callbacks.Callback):
    """Records the quartiles of the caps and of the effective caps every
    `every` steps and at each epoch's end, and every one of both at the
    step `keep`."""

    def __init__(self, every, keep):
        super().__init__()
        self.every, self.keep = every, keep
        self.steps, self.quartiles, self.effective = [], [], []
        self.kept = self.kept_effective = None
        self.step = 0

    def _record(self):
        caps, effective = caps_of(self.model), effective_caps(self.model)
        self.steps.append(self.step)
        self.quartiles.append(np.quantile(caps, [0.25, 0.5, 0.75]).tolist())
        self.effective.append(
            np.quantile(effective, [0.25, 0.5, 0.75]).tolist())
        if self.step == self.keep:
            self.kept, self.kept_effective = caps, effective

    def on_train_begin(self, logs=None):
        self._record()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every == 0 or self.step == self.keep:
            self._record()

    def on_epoch_end(self, epoch, logs=None):
        if self.steps[-1] != self.step:
            self._record()


def run(args):
    splits, x, y = load(args)
    steps_per_epoch = sum(1 for _ in splits.train)
    goal_step = args.goal_epochs * steps_per_epoch
    forms = [REFERENCE] + [p for p in args.parameterizations
                           if p != REFERENCE]
    runs = []
    for lam in args.lambdas:
        for parameterization in forms:
            recorder = CapRecorder(args.record_every, goal_step)
            result = train(
                lambda: network(args, lam, parameterization), splits.train,
                (x, y), recipe="drelu", epochs=args.reference_epochs,
                seed=args.seed, default_callbacks=False, callbacks=[recorder],
                verbose=0,
            )
            runs.append(dict(
                lam=lam, parameterization=parameterization,
                steps=recorder.steps, quartiles=recorder.quartiles,
                caps_at_goal=recorder.kept.tolist(),
                caps_at_end=caps_of(result.model).tolist(),
                effective_quartiles=recorder.effective,
                effective_caps_at_goal=recorder.kept_effective.tolist(),
                effective_caps_at_end=effective_caps(result.model).tolist(),
                test_accuracy=result.history["val_accuracy"],
                task_loss=result.history["task_loss"],
            ))
            median = recorder.quartiles[-1][1]
            effective = recorder.effective[-1][1]
            print(f"lambda {lam:g} | {parameterization:>6} | median cap "
                  f"{median:.4g}, effective {effective:.4g} after "
                  f"{recorder.step} steps | test accuracy "
                  f"{result.history['val_accuracy'][-1]:.3f}", flush=True)
    return dict(runs=runs, steps_per_epoch=steps_per_epoch,
                goal_step=goal_step)


def _at(run, step, prefix=""):
    """The quartiles of the quantity `prefix` (`QUANTITIES`) at `step`."""
    return run[f"{prefix}quartiles"][run["steps"].index(step)]


def settled_step(run, target, prefix=""):
    """The first recorded step from which the median of the quantity
    `prefix` (`QUANTITIES`) stays within `TOLERANCE` of `target`; `None` if
    it never settles."""
    settled = None
    for step, (_, median, _) in zip(run["steps"], run[f"{prefix}quartiles"]):
        if abs(median - target) <= TOLERANCE * target:
            settled = step if settled is None else settled
        else:
            settled = None
    return settled


def _against(run, prefix, reference, per_epoch, goal):
    """The quantity `prefix` of `run` against its converged value
    `reference` (one per unit): summary entries named `prefix + key`."""
    quartiles = run[f"{prefix}quartiles"]
    target = float(np.median(reference))
    at_goal = np.array(run[f"{prefix}caps_at_goal"])
    epoch_before = run["steps"][-1] - per_epoch
    last_epoch_change = (
        quartiles[-1][1] / _at(run, epoch_before, prefix)[1] - 1
        if epoch_before in run["steps"] else float("nan")
    )
    numbers = dict(
        start=_at(run, 0, prefix)[1], goal=_at(run, goal, prefix),
        reference=target, end=quartiles[-1][1],
        within=float(np.mean(
            np.abs(at_goal - reference) <= TOLERANCE * reference)),
        median_within=bool(abs(_at(run, goal, prefix)[1] - target)
                           <= TOLERANCE * target),
        settled=settled_step(run, target, prefix),
        last_epoch_change=last_epoch_change,
    )
    return {prefix + key: value for key, value in numbers.items()}


def outgoing_norms(run):
    """The median L2 norm of the units' outgoing weights (effective cap over
    cap, per unit) at step 0, after the goal's epochs and at the end.

    At step 0 every cap is the initial one, so the median norm is the
    median effective cap over it.
    """
    at = {
        when: float(np.median(np.array(run[f"effective_caps_at_{when}"])
                              / np.array(run[f"caps_at_{when}"])))
        for when in ("goal", "end")
    }
    start = run["quartiles"][0][1]
    return dict(norm_start=run["effective_quartiles"][0][1] / start,
                norm_goal=at["goal"], norm_end=at["end"])


def summarise(outcome, args):
    """Per run: the numbers the tables and the reading quote."""
    per_epoch = outcome["steps_per_epoch"]
    goal = outcome["goal_step"]
    references = {(run["lam"], prefix): np.array(run[f"{prefix}caps_at_end"])
                  for run in outcome["runs"] for prefix in QUANTITIES
                  if run["parameterization"] == REFERENCE}
    rows = []
    for run in outcome["runs"]:
        row = dict(lam=run["lam"], parameterization=run["parameterization"])
        for prefix in QUANTITIES:
            row.update(_against(run, prefix, references[run["lam"], prefix],
                                per_epoch, goal))
        row["fall_done"] = (math.log(row["start"] / row["goal"][1])
                            / math.log(row["start"] / row["reference"]))
        row.update(outgoing_norms(run))
        row["accuracy_goal"] = run["test_accuracy"][args.goal_epochs - 1]
        row["accuracy_end"] = run["test_accuracy"][-1]
        rows.append(row)
    return rows


def _epochs(count):
    return f"{count} epoch" + ("" if count == 1 else "s")


def _cap(value):
    return f"{value:.3g}"


def _settled(row, per_epoch, prefix=""):
    settled = row[f"{prefix}settled"]
    if settled is None:
        return "never"
    return f"{settled} ({settled / per_epoch:.1f} epochs)"


def tables(args, outcome, rows):
    per_epoch = outcome["steps_per_epoch"]
    goal = args.goal_epochs
    summary = results.markdown_table(
        ["lambda", "caps stored as", "median cap at step 0",
         f"median cap after {_epochs(goal)} (quartiles)",
         f"converged median (end of {args.reference_epochs} epochs, "
         f"{REFERENCE})",
         f"fall to converged done after {_epochs(goal)}, log scale (%)",
         f"units within 10% of converged after {_epochs(goal)} (%)",
         "median within 10% from step", "median change over last epoch (%)",
         f"test accuracy after {_epochs(goal)} (%)",
         f"test accuracy after {args.reference_epochs} epochs (%)"],
        [[f"{row['lam']:g}", row["parameterization"], _cap(row["start"]),
          f"{_cap(row['goal'][1])} ({_cap(row['goal'][0])}-"
          f"{_cap(row['goal'][2])})", _cap(row["reference"]),
          f"{100 * row['fall_done']:.0f}", results.percent(row["within"]),
          _settled(row, per_epoch),
          f"{100 * row['last_epoch_change']:+.1f}",
          results.percent(row["accuracy_goal"]),
          results.percent(row["accuracy_end"])] for row in rows],
    )
    effective = results.markdown_table(
        ["lambda", "caps stored as", "median effective cap at step 0",
         f"median effective cap after {_epochs(goal)} (quartiles)",
         f"converged effective median (end of {args.reference_epochs} "
         f"epochs, {REFERENCE})",
         f"units with effective cap within 10% of converged after "
         f"{_epochs(goal)} (%)",
         "median effective cap within 10% from step",
         "median effective cap change over last epoch (%)"],
        [[f"{row['lam']:g}", row["parameterization"],
          _cap(row["effective_start"]),
          f"{_cap(row['effective_goal'][1])} "
          f"({_cap(row['effective_goal'][0])}-"
          f"{_cap(row['effective_goal'][2])})",
          _cap(row["effective_reference"]),
          results.percent(row["effective_within"]),
          _settled(row, per_epoch, "effective_"),
          f"{100 * row['effective_last_epoch_change']:+.1f}"]
         for row in rows],
    )
    norms = results.markdown_table(
        ["lambda", "caps stored as", "median outgoing norm at step 0",
         f"after {_epochs(goal)}", f"after {args.reference_epochs} epochs",
         "median cap change over last epoch (%)"],
        [[f"{row['lam']:g}", row["parameterization"],
          _cap(row["norm_start"]), _cap(row["norm_goal"]),
          _cap(row["norm_end"]), f"{100 * row['last_epoch_change']:+.1f}"]
         for row in rows],
    )
    marks = sorted({0, *[s for s in (100, 250, EARLY_STEP, 1000)
                         if s < outcome["goal_step"]],
                    *[e * per_epoch for e in range(1, args.reference_epochs + 1)
                      if e in (1, goal, 6, 10) or e == args.reference_epochs]})
    runs = outcome["runs"]
    trajectories = {
        prefix: results.markdown_table(
            ["step", "epochs",
             *[f"lambda {r['lam']:g}, {r['parameterization']}" for r in runs]],
            [[step, f"{step / per_epoch:.2f}",
              *[_cap(_at(r, step, prefix)[1]) if step in r["steps"] else "-"
                for r in runs]] for step in marks],
        )
        for prefix in QUANTITIES
    }
    accuracy = results.markdown_table(
        ["epoch", *[f"lambda {r['lam']:g}, {r['parameterization']}"
                    for r in runs]],
        [[epoch + 1, *[results.percent(r["test_accuracy"][epoch])
                       for r in runs]]
         for epoch in range(args.reference_epochs)],
    )
    return (["## Caps against the goal", "", *summary, "",
             "## Effective caps (cap x norm of the unit's outgoing weights) "
             "against the goal", "", *effective, "",
             "## The scale symmetry, broken by the weight decay: outgoing "
             "norms and caps" if args.outgoing_decay else
             "## The scale symmetry: outgoing weights grow, caps keep "
             "falling", "", *norms, "",
             *[line for prefix, name in QUANTITIES.items()
               for line in (f"## Median {name} against training steps", "",
                            *trajectories[prefix], "")],
             "## Test accuracy (%) after each epoch", "", *accuracy])


def reading(args, outcome, rows):
    """Facts read off the numbers, each quoted from the tables."""
    per_epoch = outcome["steps_per_epoch"]
    goal = args.goal_epochs
    lines = []
    for lam in args.lambdas:
        forms = {row["parameterization"]: row for row in rows
                 if row["lam"] == lam}
        ref = forms[REFERENCE]
        met = "meets" if ref["median_within"] else "misses"
        lines.append(
            f"- lambda {lam:g}, caps stored as a logarithm: the median cap "
            f"goes from {_cap(ref['start'])} to {_cap(ref['goal'][1])} "
            f"after {_epochs(goal)} against a converged median of "
            f"{_cap(ref['reference'])}, so it {met} the goal of 10% "
            f"({100 * ref['fall_done']:.0f}% of the fall from "
            f"{_cap(ref['start'])} done, on a log scale); "
            f"{results.percent(ref['within'])}% of units are within 10% of "
            f"their converged cap, and the median stays within 10% from step "
            f"{_settled(ref, per_epoch)}."
        )
        run = next(r for r in outcome["runs"] if r["lam"] == lam
                   and r["parameterization"] == REFERENCE)
        lowest = int(np.argmin(run["test_accuracy"]))
        drift = ("" if math.isnan(ref["last_epoch_change"]) else
                 f"over the last epoch of {args.reference_epochs} the median "
                 f"cap still changes by {100 * ref['last_epoch_change']:+.1f}%; ")
        lines.append(
            f"- lambda {lam:g}, logarithm: {drift}test accuracy "
            f"{results.percent(ref['accuracy_goal'])}% after "
            f"{_epochs(goal)}, lowest "
            f"{results.percent(run['test_accuracy'][lowest])}% after "
            f"{_epochs(lowest + 1)}, {results.percent(ref['accuracy_end'])}% "
            f"after {args.reference_epochs}."
        )
        met = "meets" if ref["effective_median_within"] else "misses"
        drift = ("" if math.isnan(ref["effective_last_epoch_change"]) else
                 f"; over the last epoch of {args.reference_epochs} it "
                 "changes by "
                 f"{100 * ref['effective_last_epoch_change']:+.1f}%")
        lines.append(
            f"- lambda {lam:g}, logarithm, effective caps (cap x norm of the "
            f"unit's outgoing weights): the median goes from "
            f"{_cap(ref['effective_start'])} to "
            f"{_cap(ref['effective_goal'][1])} after {_epochs(goal)} against "
            f"a converged effective median of "
            f"{_cap(ref['effective_reference'])}, so it {met} the goal of "
            f"10%; {results.percent(ref['effective_within'])}% of units are "
            "within 10% of their converged effective cap, and the median "
            "stays within 10% from step "
            f"{_settled(ref, per_epoch, 'effective_')}{drift}."
        )
        for form, row in forms.items():
            if form == REFERENCE:
                continue
            early = [r for r in outcome["runs"] if r["lam"] == lam
                     and r["parameterization"] in (REFERENCE, form)]
            if all(EARLY_STEP in r["steps"] for r in early):
                lines.append(
                    f"- lambda {lam:g}, after {EARLY_STEP} steps: median cap "
                    f"{_cap(_at(early[0], EARLY_STEP)[1])} stored as a "
                    f"logarithm, {_cap(_at(early[1], EARLY_STEP)[1])} stored "
                    "as itself."
                )
            lines.append(
                f"- lambda {lam:g}, caps stored as themselves ({form}, the "
                f"paper's layer): the median cap is {_cap(row['goal'][1])} "
                f"after {_epochs(goal)} and {_cap(row['end'])} after "
                f"{args.reference_epochs}; the median effective cap is "
                f"{_cap(row['effective_goal'][1])} after {_epochs(goal)} "
                f"and {_cap(row['effective_end'])} after "
                f"{args.reference_epochs}, against a converged effective "
                f"median of {_cap(row['effective_reference'])}."
            )
    # The symmetry leaves the task loss unchanged and scales the penalty by
    # a^2: at any point with a cap above 0 the loss falls as a goes below 1,
    # so training has no stationary point and the caps no converged value.
    for lam in args.lambdas:
        ref = next(row for row in rows if row["lam"] == lam
                   and row["parameterization"] == REFERENCE)
        later = (ref["norm_goal"], ref["norm_end"])
        moves = ("grows" if min(later) > ref["norm_start"] else "falls"
                 if max(later) < ref["norm_start"] else "goes")
        lines.append(
            f"- lambda {lam:g}, logarithm: the median norm of a unit's "
            f"outgoing weights {moves} from {_cap(ref['norm_start'])} at step "
            f"0 to {_cap(ref['norm_goal'])} after {_epochs(goal)} and "
            f"{_cap(ref['norm_end'])} after {args.reference_epochs}, while "
            f"the median cap still changes by "
            f"{100 * ref['last_epoch_change']:+.1f}% over the last epoch."
        )
    lines.append(_why(args))
    goals = {
        "median_within": "The goal (median cap within 10% of its converged "
        "value after {}) is met by ",
        "effective_median_within": "Measured on effective caps (median "
        "effective cap within 10% of its converged value after {}), the "
        "goal is met by ",
    }
    for key, sentence in goals.items():
        met = [f"lambda {row['lam']:g} ({row['parameterization']})"
               for row in rows if row[key]]
        lines.append("- " + sentence.format(_epochs(goal))
                     + (", ".join(met) or "no run") + ".")
    return lines


def _why(args):
    """The reading's closing line: why the caps do or do not converge."""
    if args.outgoing_decay:
        return (
            "- Why: with the weight decay on the last kernel W (see the "
            "header), scaling the caps and the preceding Dense "
            "by a and W by 1/a leaves the task loss unchanged, multiplies "
            "the penalty by a^2 and the decay by 1/a^2: along the symmetry "
            "the loss has a minimum, so training can have stationary points "
            "with caps above 0 and the caps a converged value, unless the "
            "penalty outweighs the task (then the caps fall towards 0). "
            "The change over the last epoch above says which."
        )
    return (
        "- Why: scaling the caps and the preceding Dense's kernel and bias "
        "by a and the last kernel by 1/a leaves the task loss unchanged and "
        "multiplies the penalty by a^2, so for any caps above 0 the total "
        "loss falls as a goes below 1 (tests/test_experiments.py checks the "
        "closed form). So training has no stationary point with caps above "
        "0, and the caps no converged value: along the symmetry the loss "
        "always falls towards smaller caps and larger outgoing weights, as "
        "fast as the optimizer moves them, for as long as training runs. "
        "What the tables call converged is where the caps stood after "
        f"{args.reference_epochs} epochs, with the outgoing weights grown "
        "to the norms above."
    )


def plot(args, outcome, rows, path):
    """Median and quartiles per lambda: of the caps over the whole run (top)
    and its first `goal_epochs + 1` epochs (middle), and of the effective
    caps over the whole run (bottom)."""
    per_epoch = outcome["steps_per_epoch"]
    early = min(args.goal_epochs + 1, args.reference_epochs)
    shown_rows = (("", args.reference_epochs), ("", early),
                  ("effective_", args.reference_epochs))
    figure, axes = results.panels(len(args.lambdas), len(shown_rows),
                                  size=(5.5, 3.6))
    # Caps share one scale, effective caps another.
    for row, (prefix, _) in enumerate(shown_rows):
        first = axes[[p for p, _ in shown_rows].index(prefix)][0]
        for ax in axes[row]:
            if ax is not first:
                ax.sharey(first)
    for column, lam in enumerate(args.lambdas):
        summary = next(row for row in rows if row["lam"] == lam)
        for row, (prefix, last) in enumerate(shown_rows):
            name = QUANTITIES[prefix]
            reference = summary[f"{prefix}reference"]
            ax = axes[row][column]
            for run in outcome["runs"]:
                if run["lam"] != lam:
                    continue
                epochs = np.array(run["steps"]) / per_epoch
                shown = epochs <= last
                q1, median, q3 = np.array(run[f"{prefix}quartiles"])[shown].T
                line, = ax.plot(epochs[shown], median,
                                label=f"caps stored {run['parameterization']}")
                ax.fill_between(epochs[shown], q1, q3, alpha=0.25,
                                color=line.get_color())
            ax.axhspan(reference * (1 - TOLERANCE),
                       reference * (1 + TOLERANCE), color="grey", alpha=0.3,
                       label="converged median ± 10%")
            ax.axvline(args.goal_epochs, color="black", linestyle=":",
                       label=f"goal: {_epochs(args.goal_epochs)}")
            ax.set_yscale("log")
            ax.set_xlabel("epochs")
            ax.set_title(f"lambda {lam:g}: {name}s (median, quartiles)"
                         + (f", first {last} epochs"
                            if last < args.reference_epochs else ""))
            ax.grid(alpha=0.3)
            if column == 0:
                ax.set_ylabel(name)
    axes[0][-1].legend(fontsize=8)
    results.save(figure, path)


def write(outcome, args):
    rows = summarise(outcome, args)
    return results.write(
        args,
        title="D-ReLU caps against training steps on MNIST: linear vs log "
        "storage",
        description=[
            f"Dense network 784-392-196-{args.units} (D-ReLU)-10, initial cap "
            f"{args.initial_max_value:g}, lambda "
            f"{', '.join(f'{lam:g}' for lam in args.lambdas)} (the paper's "
            f"for the dense network is {PAPER_LAMBDA['dense']:g}); Adam 1e-3 "
            f"held constant, batch {args.batch_size}, "
            f"{outcome['steps_per_epoch']} steps per epoch, "
            f"{args.reference_epochs} epochs, seed {args.seed}, no early "
            "stopping. Caps recorded every "
            f"{args.record_every} steps; *converged* is the median cap at the "
            f"end of the {REFERENCE} run of the same lambda; *within 10%* "
            "compares each unit with its own converged cap. Test accuracy on "
            f"the first {args.eval_images} MNIST test images (monitoring "
            "only: nothing is selected on it).",
            "",
            "The *effective cap* of a unit is its cap times the L2 norm of "
            "its outgoing weights (its row of the last Dense kernel). "
            "Multiplying the caps and the preceding Dense's kernel and bias "
            "by a > 0 and the last kernel by 1/a leaves the network's "
            "function unchanged and multiplies the penalty by a^2; the caps "
            "can slide along this symmetry, the effective caps cannot. They "
            "are recorded with the caps and read against the same goal, "
            "their converged value being that of the "
            f"{REFERENCE} run's end.",
            *([] if not args.outgoing_decay else [
                "",
                f"Not in the paper: a weight decay {args.outgoing_decay:g} "
                "* sum(W^2) on the kernel W of the last Dense (in the "
                "training loss with the cap penalty), which breaks the "
                "symmetry (scaling by a multiplies it by 1/a^2).",
            ]),
        ],
        reduced=None,
        tables=tables(args, outcome, rows),
        reading=reading(args, outcome, rows),
        results={"steps_per_epoch": outcome["steps_per_epoch"],
                 "goal_step": outcome["goal_step"], "summary": rows,
                 "runs": outcome["runs"]},
        figures={"caps_vs_steps.png":
                 lambda path: plot(args, outcome, rows, path)},
    )


if __name__ == "__main__":
    results.main(sys.modules[__name__])
