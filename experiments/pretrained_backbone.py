"""Pretrained means pretrained: a backbone pretrained here, retrofitted robustly.

ImageNet weights cannot be downloaded here, so the pretrained path of
`retrofit --weights PATH` is tried on weights made here. MobileNetV2
(`keras.applications`, random start, 32x32 inputs) is pretrained naturally
on the training images of the first half of the CIFAR-10 classes in
`../shared/data/cifar10-subset.npz` (airplane, automobile, bird, cat, deer)
and its backbone is saved without its top. The other half (dog, frog,
horse, ship, truck) is the task: `retrofit --dataset npz --data-path
<second half> --eps 8/255 --recipe trades` with `--weights PATH` against
`--weights none`, at equal budget (the same images, epochs and attack
steps), each evaluated on the second half's test images with the adaptive
suite (worst case per image, masking checks on). A second table measures
where the eps ramp belongs: in the robust linear probe (backbone frozen),
in the fine-tuning, in both or in neither.

    python experiments/pretrained_backbone.py --help
    python experiments/pretrained_backbone.py --quick --out /tmp/pretrained
    python experiments/pretrained_backbone.py

The class halves, the backbone weights and the retrofit runs go under
`runs/pretrained_backbone/` (gitignored); a run whose stored settings match
is reused, not trained again. `experiments/robust_retrofit.py --setting
pretrained` fine-tunes the same weights.
"""

import contextlib
import dataclasses
import io
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from common import arguments  # noqa: E402
from common import data  # noqa: E402
from common import results  # noqa: E402
from common.results import percent  # noqa: E402
from keras_drelu.training import build_metrics  # noqa: E402
from keras_drelu.training import train  # noqa: E402
from retrofit import run as runs  # noqa: E402
from retrofit.cli import main as retrofit  # noqa: E402
from retrofit.data import npz  # noqa: E402
from retrofit.data.npz import load_npz_arrays  # noqa: E402
from retrofit.placements import backbone_layer  # noqa: E402
from retrofit.placements import build_retrofit_model  # noqa: E402

BACKBONE = "MobileNetV2"
# The classes the backbone is pretrained on; the others are the task.
FIRST_HALF = (0, 1, 2, 3, 4)
RUNS = data.REPO / "runs" / "pretrained_backbone"
EPS = 8 / 255


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way to fine-tune on the second half.

    Args:
        description: What it is, in words.
        pretrained: Whether the backbone starts from the pretrained weights
            (`--weights PATH`) or from random ones (`--weights none`).
        probe: Whether the first `--probe-epochs` train with the backbone
            frozen (`--freeze-epochs`); without, they are fine-tuning epochs,
            so the budget stays equal.
        ramps: The phases of `retrofit.run.PHASES` in which `--eps-ramp`
            applies (`None`: as the table says).
    """

    description: str
    pretrained: bool
    probe: bool
    ramps: tuple = None


# name -> variant. "pretrained" is the retrofitter's robust path as it
# stands; the comparison with "scratch" is this script's first table.
VARIANTS = {
    "scratch": Variant("random weights, fine-tuned throughout", False, False),
    "pretrained": Variant("pretrained, robust probe, then fine-tuned (the "
                          "retrofitter's robust path)", True, True),
    "pretrained, no probe": Variant("pretrained, fine-tuned throughout",
                                    True, False),
    "ramp: none": Variant("pretrained, probe; no ramp", True, True, ()),
    "ramp: probe": Variant("pretrained, probe; ramp in the probe only",
                           True, True, ("frozen",)),
    "ramp: fine-tune": Variant("pretrained, probe; ramp in the fine-tuning "
                               "only", True, True, ("finetune",)),
    "ramp: both": Variant("pretrained, probe; ramp in the probe and the "
                          "fine-tuning", True, True, ("frozen", "finetune")),
}
COMPARISON = ("scratch", "pretrained", "pretrained, no probe")
RAMP_VARIANTS = ("ramp: none", "ramp: probe", "ramp: fine-tune", "ramp: both")

DATASET = "cifar10"
DEFAULTS = dict(
    train_size=3000, epochs=3, batch_size=64, units=128,
    train_attack_steps=3, eval_images=200, apgd_steps=20, square_queries=300,
    seed=0,
)
QUICK = dict(
    pretrain_epochs=1, pretrain_size=200, train_size=120, epochs=1,
    probe_epochs=1, eps_ramp=0.5, train_attack_steps=1, eval_images=8,
    apgd_steps=2, square_queries=5, seeds=[0], variants=["ramp: both"],
)
# The references the table's header measures the run against.
REFERENCE = dict(train_size=9800, train_attack_steps=10, eval_images=515,
                 apgd_steps=100, square_queries=5000)
WORDING = dict(
    train_size="{ours} training images of the second half (all: {paper})",
    train_attack_steps="TRADES with {ours} attack steps (TRADES: {paper})",
    eval_images="{ours} test images of the second half (all: {paper})",
)
OPTIONS = {
    "--pretrain-epochs": dict(type=arguments.positive_int, default=30,
                              help="maximum epochs of natural pretraining "
                              "on the first half"),
    "--pretrain-size": dict(type=arguments.positive_int, default=None,
                            help="training images of the first half used "
                            "for pretraining (all if unset)"),
    "--probe-epochs": dict(type=arguments.positive_int, default=1,
                           help="epochs with the backbone frozen (robust "
                           "linear probe), before --epochs of fine-tuning"),
    "--eps-ramp": dict(type=arguments.positive_float, default=1.0,
                       help="epochs over which the training radius grows "
                       "to 8/255 (retrofit --eps-ramp)"),
    "--seeds": dict(nargs="+", type=arguments.non_negative_int,
                    action=arguments.Distinct, default=[0, 1, 2]),
    "--variants": dict(nargs="+", choices=list(VARIANTS),
                       action=arguments.Distinct, default=list(VARIANTS)),
    "--runs": dict(type=pathlib.Path, default=RUNS,
                   help="folder of the class halves, the weights and the "
                   "retrofit runs (reused when their settings match)"),
}


def class_halves(source, folder):
    """Writes the two class halves of `source` as `.npz` files in `folder`.

    The second half's labels are renumbered from 0. Test images keep the
    file's order, so its first ones are still the lossless ones.

    Args:
        source: An `.npz` file in the keras.datasets layout with
            `class_names`.
        folder: Where `first-half.npz` and `second-half.npz` go.

    Returns:
        The paths of the two halves.
    """
    (x_train, y_train), (x_test, y_test), names = load_npz_arrays(source)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for half in ("first", "second"):
        classes = [c for c in range(len(names))
                   if (c in FIRST_HALF) == (half == "first")]
        renumber = np.full(len(names), -1)
        renumber[classes] = np.arange(len(classes))
        path = folder / f"{half}-half.npz"
        train_kept, test_kept = (np.isin(y, classes) for y in (y_train, y_test))
        np.savez(path, x_train=x_train[train_kept],
                 y_train=renumber[y_train[train_kept]],
                 x_test=x_test[test_kept], y_test=renumber[y_test[test_kept]],
                 class_names=np.array([names[c] for c in classes]))
        paths.append(path)
    return paths


def _pretraining_settings(args):
    return dict(backbone=BACKBONE, data=str(args.data),
                epochs=args.pretrain_epochs, size=args.pretrain_size,
                batch_size=args.batch_size, units=args.units, seed=args.seed)


def pretrain(args):
    """The pretrained backbone weights, trained here unless already made.

    The backbone (random start) with a ReLU head is trained naturally on
    the first half (10% held out, flip-and-crop augmentation, the paper's
    Adam and early stopping); the backbone without its top is saved in
    `args.runs`. A weights file made with the same settings is reused.

    Args:
        args: Parsed arguments: `data`, `runs`, `pretrain_epochs`,
            `pretrain_size`, `batch_size` and `seed`.

    Returns:
        `(weights path, record)`: the record holds the settings, the
        first half's test accuracy and the seconds pretraining took.
    """
    first, second = class_halves(args.data, args.runs)
    weights = args.runs / f"{BACKBONE.lower()}-first-half.weights.h5"
    record_path = weights.with_suffix("").with_suffix(".json")
    settings = _pretraining_settings(args)
    if weights.is_file() and record_path.is_file():
        record = json.loads(record_path.read_text())
        if record["settings"] == settings:
            return weights, record
    start = time.perf_counter()
    splits = npz(first, batch_size=args.batch_size, validation_split=0.1,
                 seed=args.seed, augment="flip-crop",
                 limit=args.pretrain_size)
    keras.utils.set_random_seed(args.seed)
    model = build_retrofit_model(
        BACKBONE, splits.info.image_shape, splits.info.num_classes,
        activation="relu", units=args.units, weights=None,
    )
    result = train(model, splits.train, splits.validation,
                   recipe="standard", epochs=args.pretrain_epochs,
                   seed=args.seed, verbose=0)
    model.compile(metrics=["accuracy"], loss=keras.losses.
                  SparseCategoricalCrossentropy(from_logits=True))
    build_metrics(model, splits.test)
    _, accuracy = model.evaluate(splits.test, verbose=0)
    backbone_layer(model).save_weights(weights)
    record = dict(settings=settings, test_accuracy=float(accuracy),
                  epochs_trained=len(result.epochs),
                  seconds=time.perf_counter() - start,
                  task=str(second))
    record_path.write_text(json.dumps(record, indent=2))
    return weights, record


@contextlib.contextmanager
def ramps_in(phases):
    """`retrofit.run.PHASES` with the ramp in `phases` only, for a variant
    that moves it (`None`: unchanged)."""
    saved = runs.PHASES
    if phases is not None:
        runs.PHASES = tuple(dataclasses.replace(phase, ramps=phase.name in
                                                phases) for phase in saved)
    try:
        yield
    finally:
        runs.PHASES = saved


def command(variant, seed, weights, task, args):
    """The `retrofit` arguments of one run of `variant`."""
    epochs = args.epochs + (0 if variant.probe else args.probe_epochs)
    return [
        "--backbone", BACKBONE, "--dataset", "npz", "--data-path", str(task),
        "--weights", str(weights) if variant.pretrained else "none",
        "--activation", "relu", "--units", str(args.units),
        "--eps", "8/255", "--recipe", "trades",
        "--attack-steps", str(args.train_attack_steps),
        "--eps-ramp", f"{args.eps_ramp:g}",
        "--freeze-epochs", str(args.probe_epochs if variant.probe else 0),
        "--epochs", str(epochs), "--batch-size", str(args.batch_size),
        "--limit", str(args.train_size), "--eval-images",
        str(args.eval_images), "--apgd-steps", str(args.apgd_steps),
        "--square-queries", str(args.square_queries), "--seed", str(seed),
    ]


def _ramping(variant):
    """The phases in which the ramp applies for `variant`."""
    with ramps_in(variant.ramps):
        return [phase.name for phase in runs.PHASES if phase.ramps]


def retrofit_run(name, seed, weights, task, args):
    """Runs (or reuses) one retrofit; returns its `run.json` record.

    A run evaluated with the same command and ramp phases is reused. The
    tables read only the reports: the run stops before the SavedModel
    (`--no-export`, which is not part of the command compared), and a
    stored run that went on to export it is reused as well.
    """
    variant = VARIANTS[name]
    # Variants that train alike share their runs ("pretrained" is one of
    # the ramp variants, whichever the phase table makes it).
    ramps = "+".join(_ramping(variant)) or "none"
    out = args.runs / "finetune" / (
        f"{'pretrained' if variant.pretrained else 'scratch'}-"
        f"{'probe' if variant.probe else 'no-probe'}-ramp-{ramps}-seed{seed}")
    argv = command(variant, seed, weights, task, args)
    stored = out / "run.json"
    if stored.is_file():
        record = json.loads(stored.read_text())
        if (record.get("stage") in runs.STAGES[runs.STAGES.index("evaluated"):]
                and record.get("argv") == argv
                and record.get("ramp_phases") == _ramping(variant)):
            return record
    start = time.perf_counter()
    with ramps_in(variant.ramps), contextlib.redirect_stdout(io.StringIO()):
        status = retrofit(
            [*argv, "--no-export", "--out", str(out), "--overwrite"])
    if status != 0:
        raise RuntimeError(f"retrofit {' '.join(argv)} ended with {status}")
    record = json.loads(stored.read_text())
    record.update(argv=argv, ramp_phases=_ramping(variant),
                  seconds=time.perf_counter() - start)
    stored.write_text(json.dumps(record, indent=2))
    return record


def run(args):
    weights, pretraining = pretrain(args)
    task = args.runs / "second-half.npz"
    print(f"pretrained {BACKBONE} on the first half: test accuracy "
          f"{pretraining['test_accuracy']:.3f}", flush=True)
    rows = []
    for name in args.variants:
        for seed in args.seeds:
            record = retrofit_run(name, seed, weights, task, args)
            robustness = record["results"]["robustness"]
            rows.append(dict(
                variant=name, seed=seed, seconds=record["seconds"],
                clean=robustness["clean_accuracy"],
                worst_case=robustness["worst_case_accuracy"],
                accuracy=robustness["accuracy"],
                flags=[flag["code"] for flag in robustness["flags"]],
                history=record["history"], command=record["argv"],
                ramp_phases=record["ramp_phases"],
            ))
            print(f"{name} seed {seed}: clean {rows[-1]['clean']:.3f}, worst "
                  f"case {rows[-1]['worst_case']:.3f}, "
                  f"{record['seconds']:.0f} s", flush=True)
    return dict(pretraining=pretraining, rows=rows)


def summary(rows):
    """Variant -> (clean, worst case) values over seeds, in %."""
    groups = {}
    for row in rows:
        groups.setdefault(row["variant"], []).append(
            (100 * row["clean"], 100 * row["worst_case"]))
    return {name: np.array(values) for name, values in groups.items()}


def _cell(values):
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"


def _table(names, groups, rows):
    flags = {name: sorted({f for row in rows if row["variant"] == name
                           for f in row["flags"]}) for name in names}
    return results.markdown_table(
        ["Variant", "What", "Clean", "**Worst case**", "Flags"],
        [[name, VARIANTS[name].description, _cell(groups[name][:, 0]),
          f"**{_cell(groups[name][:, 1])}**",
          ", ".join(flags[name]) or "-"]
         for name in names if name in groups])


def tables(outcome, args):
    groups = summary(outcome["rows"])
    lines = ["## Pretrained against random weights, at equal budget", ""]
    lines += _table(COMPARISON, groups, outcome["rows"])
    if any(name in groups for name in RAMP_VARIANTS):
        lines += ["", "## Where the eps ramp belongs (pretrained, robust "
                  "probe, then fine-tuning)", ""]
        lines += _table(RAMP_VARIANTS, groups, outcome["rows"])
    return lines


def reading(outcome, args):
    """Facts read off the numbers, each quoted from the tables."""
    groups = summary(outcome["rows"])
    lines = []
    if "scratch" in groups and "pretrained" in groups:
        scratch, pretrained = groups["scratch"], groups["pretrained"]
        wins = [what for i, what in enumerate(("clean", "worst-case"))
                if pretrained[:, i].mean() > scratch[:, i].mean()]
        lines.append(
            "- Pretrained against random weights: clean "
            f"{_cell(pretrained[:, 0])}% against {_cell(scratch[:, 0])}%, "
            f"worst case {_cell(pretrained[:, 1])}% against "
            f"{_cell(scratch[:, 1])}%: the pretrained start "
            + (f"is ahead in {' and '.join(wins)} accuracy" if wins else
               "is ahead in neither") + " (mean over seeds).")
    ramps = {name: groups[name] for name in RAMP_VARIANTS if name in groups}
    if ramps:
        best = max(ramps, key=lambda name: ramps[name][:, 1].mean())
        others = [f"{name} {_cell(values[:, 1])}%"
                  for name, values in ramps.items() if name != best]
        lines.append(
            f"- Eps ramp: the highest worst case is with {best} "
            f"({_cell(ramps[best][:, 1])}%, clean "
            f"{_cell(ramps[best][:, 0])}%)"
            + (f"; {'; '.join(others)}" if others else "") + ".")
    flagged = {}
    for row in outcome["rows"]:
        flagged.setdefault(row["variant"], set()).update(row["flags"])
    named = [f"{variant}: {', '.join(sorted(codes))}"
             for variant, codes in flagged.items() if codes]
    lines.append("- Evaluation flags: " + ("; ".join(named) or "none") + ".")
    return lines


def description(outcome, args):
    pretraining = outcome["pretraining"]
    return [
        f"{BACKBONE} pretrained naturally on the first half of the classes "
        f"(at most {args.pretrain_epochs} epochs, early stopping, flip and "
        "crop; test accuracy on the first half "
        f"{percent(pretraining['test_accuracy'])}%, "
        f"{pretraining['epochs_trained']} epochs, "
        f"{pretraining['seconds']:.0f} s), its backbone saved without the top "
        "and retrofitted through the `retrofit` command (dense ReLU head of "
        f"{args.units} units) on the second half: TRADES (beta 6), eps 8/255, "
        f"{args.train_attack_steps} attack steps, eps ramp "
        f"{args.eps_ramp:g} epoch(s), {args.probe_epochs} probe epoch(s) "
        f"(backbone frozen) then {args.epochs} fine-tuning epoch(s); a "
        "variant without the probe fine-tunes for those epochs too. Seeds "
        f"{', '.join(map(str, args.seeds))}. Each `retrofit` command is in "
        "`results.json`.",
        "",
        "Evaluated on the first test images of the second half (lossless) "
        f"with the adaptive suite, cascade: APGD-CE and APGD-T with "
        f"{args.apgd_steps} steps, FAB-T, Square with {args.square_queries} "
        "queries, BPDA(APGD-CE), BPDA(APGD-T), Transfer(APGD-CE); masking "
        "checks on. Accuracy in percent, mean ± standard deviation over "
        "seeds; **worst case** per image over every attack. Run on 2 CPU "
        "cores shared with other work.",
    ]


def write(outcome, args):
    return results.write(
        args,
        title="Pretrained means pretrained: a backbone pretrained here, "
        "retrofitted robustly",
        description=description(outcome, args),
        reduced=arguments.reduced(args, REFERENCE, WORDING),
        tables=tables(outcome, args),
        reading=reading(outcome, args),
        results=outcome,
    )


if __name__ == "__main__":
    results.main(sys.modules[__name__])
