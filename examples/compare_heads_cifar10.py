"""ReLU, D-ReLU and SPLASH heads on CIFAR-10: attacks and common corruptions.

One shallow CNN, trained three times from the same seed with only the
activation of its dense layer before the output changed: a plain ReLU, a
D-ReLU with its cap penalty `lam * sum(m ** 2)` (Sooksatra & Rivas, 2024)
or a SPLASH unit (Tavakoli et al., 2021). Each is evaluated on the lossless
CIFAR-10 test images of `../shared/data/cifar10-subset.npz` under the
adaptive attack suite (APGD-CE, APGD-T, Square, BPDA and transfer attacks;
worst case per image) and under the common corruptions of
`keras_drelu.corruptions` (mean corruption accuracy, and mCE with the ReLU
head as the reference).

    python examples/compare_heads_cifar10.py --help
    python examples/compare_heads_cifar10.py --quick --out /tmp/heads
    python examples/compare_heads_cifar10.py          # the committed run

Everything is seeded; every reduction from the usual CIFAR-10 protocol
(training images, epochs, evaluated images, attack budgets) is written in
the header of the table this writes.
"""

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_drelu import SPLASH  # noqa: E402
from keras_drelu import DReLU  # noqa: E402
from keras_drelu import max_values  # noqa: E402
from keras_drelu.corruptions import evaluate_corruptions  # noqa: E402
from keras_drelu.evaluation import evaluate_robustness  # noqa: E402
from keras_drelu.training import train  # noqa: E402
from retrofit.data import npz  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cifar10-subset.npz"
DEFAULT_OUT = REPO / "docs" / "results" / "compare_heads_cifar10"
HEADS = ("relu", "drelu", "splash")
LABELS = {"relu": "ReLU", "drelu": "D-ReLU", "splash": "SPLASH"}
QUICK = dict(
    train_size=400, epochs=1, eval_images=16, eps_255=[8.0], apgd_steps=2,
    target_classes=2, square_queries=5, severities=[1, 5],
    corruptions=["gaussian_noise", "contrast"], checks=False,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA,
                        help="CIFAR-10 .npz in the keras.datasets layout")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT,
                        help="directory of the table, JSON and plots")
    parser.add_argument("--heads", nargs="+", choices=HEADS,
                        default=list(HEADS),
                        help="head activations; 'relu' is the mCE reference "
                        "and is always trained")
    parser.add_argument("--train-size", type=int, default=8000,
                        help="training images (random subset of the 20000, "
                        "10%% of them held out for validation)")
    parser.add_argument("--epochs", type=int, default=12,
                        help="maximum epochs (early stopping on the "
                        "validation loss)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden-units", type=int, default=128,
                        help="width of the dense layer the head activates")
    parser.add_argument("--lam", type=float, default=0.1,
                        help="D-ReLU cap penalty (the paper's CNN value)")
    parser.add_argument("--initial-max-value", type=float, default=100.0)
    parser.add_argument("--eval-images", type=int, default=500,
                        help="lossless test images evaluated (the first N)")
    parser.add_argument("--eps-255", nargs="+", type=float, default=[2.0, 8.0],
                        help="L-inf radii, in units of 1/255")
    parser.add_argument("--apgd-steps", type=int, default=20,
                        help="steps of APGD-CE and APGD-T (AutoAttack: 100)")
    parser.add_argument("--target-classes", type=int, default=3,
                        help="target classes of APGD-T (AutoAttack: 9)")
    parser.add_argument("--square-queries", type=int, default=300,
                        help="queries of Square (AutoAttack: 5000)")
    parser.add_argument("--corruptions", nargs="+", default=None,
                        help="corruption names; all of them if unset")
    parser.add_argument("--severities", nargs="+", type=int,
                        default=[1, 2, 3, 4, 5])
    parser.add_argument("--no-checks", dest="checks", action="store_false",
                        help="skip the zero-gradient and large-eps checks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="tiny smoke run (under a minute) to check the "
                        "script; not for results")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    for name in ("train_size", "epochs", "batch_size", "hidden_units",
                 "eval_images", "apgd_steps", "target_classes",
                 "square_queries"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1: "
                         f"{getattr(args, name)}")
    if any(eps <= 0 for eps in args.eps_255):
        parser.error(f"--eps-255 must be > 0: {args.eps_255}")
    if args.lam <= 0:
        parser.error(f"--lam must be > 0 for a D-ReLU head: {args.lam}")
    args.heads = ["relu"] + [h for h in args.heads if h != "relu"]
    return args


def build_model(head, args):
    """The shallow CNN, `head` activating its last hidden layer."""
    if head == "relu":
        activation = keras.layers.ReLU(name="head_relu")
    elif head == "drelu":
        activation = DReLU(initial_max_value=args.initial_max_value,
                           max_value_regularizer=args.lam, name="head_cap")
    else:
        activation = SPLASH(name="head_splash")
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(128, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(args.hidden_units),
            activation,
            keras.layers.Dense(10, name="logits"),
        ],
        name=f"cnn_{head}",
    )


def evaluate_attacks(model, x, y, eps, args):
    overrides = {
        "APGD-CE": {"steps": args.apgd_steps},
        "APGD-T": {"steps": args.apgd_steps,
                   "n_target_classes": args.target_classes},
        "Square": {"n_queries": args.square_queries},
    }
    return evaluate_robustness(
        model, x, y, eps=eps, suite="adaptive", overrides=overrides,
        checks_enabled=args.checks, seed=args.seed, verbose=False,
        model_name=LABELS[model.name.split("_")[-1]],
    )


def run(args):
    splits = npz(args.data, batch_size=args.batch_size, seed=args.seed,
                 augment="flip", limit=args.train_size)
    with np.load(args.data) as data:
        # The lossless test images, in file order, as the data README asks.
        x = data["x_test"][: args.eval_images].astype("float32") / 255.0
        y = data["y_test"][: args.eval_images].astype("int32").reshape(-1)
    rows, details, corruption_results = {}, {}, {}
    for head in args.heads:
        start = time.perf_counter()
        history = train(build_model(head, args), splits.train,
                        splits.validation, recipe="drelu" if head == "drelu"
                        else "standard", epochs=args.epochs, seed=args.seed,
                        verbose=0)
        model = history.model
        train_seconds = time.perf_counter() - start
        print(f"{LABELS[head]}: trained {len(history.epochs)} epochs in "
              f"{train_seconds:.0f} s", flush=True)
        start = time.perf_counter()
        reports = {eps: evaluate_attacks(model, x, y, eps / 255.0, args)
                   for eps in args.eps_255}
        print(f"{LABELS[head]}: attacked in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        corruptions = evaluate_corruptions(
            model, x, y, corruptions=args.corruptions,
            severities=args.severities,
            reference=corruption_results.get("relu"),
            seed=args.seed, verbose=False,
        )
        if head == "relu":
            # The reference of itself: mCE 100 by definition.
            corruptions = dataclasses.replace(
                corruptions,
                reference_clean_accuracy=corruptions.clean_accuracy,
                reference_accuracy=corruptions.accuracy,
            )
        corruption_results[head] = corruptions
        eval_seconds = time.perf_counter() - start
        print(f"{LABELS[head]}: evaluated in {eval_seconds:.0f} s", flush=True)
        rows[head] = {
            "clean": reports[args.eps_255[0]].clean_accuracy,
            "worst_case": {f"{e:g}/255": r.worst_case_accuracy
                           for e, r in reports.items()},
            "mean_corruption_accuracy": corruptions.mean_corruption_accuracy,
            "mce": corruptions.mce,
        }
        caps = max_values(model)
        details[head] = {
            "clipped_share": clipped_share(model, x) if caps else None,
            "epochs_trained": len(history.epochs),
            "train_seconds": round(train_seconds, 1),
            "eval_seconds": round(eval_seconds, 1),
            "final_val_accuracy": history.history["val_accuracy"][-1],
            "robustness": {f"{e:g}/255": r.to_dict()
                           for e, r in reports.items()},
            "corruptions": corruptions.to_dict(),
            "caps": {name: {"mean": float(np.mean(v)), "min": float(np.min(v)),
                            "max": float(np.max(v))}
                     for name, v in caps.items()},
        }
    return rows, details, corruption_results


def clipped_share(model, x):
    """Share of the head's activations on `x` that its D-ReLU caps clip."""
    cap = model.get_layer("head_cap")
    before = keras.Model(model.inputs, cap.input).predict(x, verbose=0)
    return float(np.mean(before > keras.ops.convert_to_numpy(cap.max_value)))


def settings_line(args):
    return (
        f"Shallow CNN (3 conv + dense {args.hidden_units} + head), trained "
        f"on {args.train_size} of the 50000 CIFAR-10 training images "
        f"(10% held out for validation; all but the first 2000 are JPEG "
        f"copies), at most {args.epochs} epochs with early stopping, flips; "
        f"D-ReLU penalty lam={args.lam:g}. Evaluated on the first "
        f"{args.eval_images} of the 10000 test images (lossless). Adaptive "
        f"suite, cascade, worst case per image, L-inf: APGD-CE and APGD-T "
        f"with {args.apgd_steps} steps (AutoAttack: 100), APGD-T on "
        f"{args.target_classes} target classes (AutoAttack: 9), Square with "
        f"{args.square_queries} queries (AutoAttack: 5000). Corruptions: "
        f"{'all' if args.corruptions is None else ', '.join(args.corruptions)}"
        f", severities {', '.join(map(str, args.severities))}; mCE relative "
        f"to the ReLU head. Seed {args.seed}."
    )


def markdown_table(rows, details, args):
    eps_names = [f"{e:g}/255" for e in args.eps_255]
    header = (["head", "clean"] + [f"worst case {e}" for e in eps_names]
              + ["mean corruption acc.", "mCE % (ReLU = 100)"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for head, row in rows.items():
        cells = [LABELS[head], f"{100 * row['clean']:.1f}%"]
        cells += [f"{100 * row['worst_case'][e]:.1f}%" for e in eps_names]
        cells += [f"{100 * row['mean_corruption_accuracy']:.1f}%",
                  f"{row['mce']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    flags = sorted({
        flag["code"] if isinstance(flag, dict) else str(flag)
        for head in details
        for report in details[head]["robustness"].values()
        for flag in report.get("flags", [])
    })
    return "\n".join(lines), flags


def reading(rows, details, args):
    """A short reading of the numbers, generated so it can never drift."""
    eps_names = [f"{e:g}/255" for e in args.eps_255]
    relu = rows["relu"]
    parts = []
    if "drelu" in details:
        caps = details["drelu"]["caps"]["head_cap"]
        parts.append(
            f"The D-ReLU caps went from {args.initial_max_value:g} to "
            f"{caps['min']:.2f}-{caps['max']:.2f} in training and clip "
            f"{100 * details['drelu']['clipped_share']:.2f}% of the head's "
            f"activations on the test images: "
            + ("the head acts as a ReLU here." if
               details["drelu"]["clipped_share"] < 0.01 else
               "the caps are active.")
        )
    for head, row in rows.items():
        if head == "relu":
            continue
        worst = ", ".join(
            f"{100 * (row['worst_case'][e] - relu['worst_case'][e]):+.1f} "
            f"points at {e}" for e in eps_names
        )
        corrupted = (row["mean_corruption_accuracy"]
                     - relu["mean_corruption_accuracy"])
        parts.append(
            f"{LABELS[head]} vs ReLU: clean "
            f"{100 * (row['clean'] - relu['clean']):+.1f} points, worst case "
            f"{worst}, mean corruption accuracy {100 * corrupted:+.1f} "
            f"points, mCE {row['mce']:.1f}."
        )
    standard_error = 100 * np.sqrt(0.25 / args.eval_images)
    parts.append(
        f"With {args.eval_images} test images an accuracy has a standard "
        f"error of up to {standard_error:.1f} points, and each head was "
        f"trained once (one seed): differences of a few points are within "
        f"noise. All three heads are naturally trained; none of them is "
        f"an adversarial defence, and the worst case under the adaptive "
        f"suite (which includes BPDA through the caps and transfer from "
        f"the uncapped twin) is what a cap buys against an attacker who "
        f"adapts to it."
    )
    return "\n\n".join(parts)


def bar_chart(rows, args, path):
    from matplotlib.figure import Figure

    series = [("clean", [rows[h]["clean"] for h in rows])]
    for e in args.eps_255:
        name = f"{e:g}/255"
        series.append((f"worst case {name}",
                       [rows[h]["worst_case"][name] for h in rows]))
    series.append(("mean corruption",
                   [rows[h]["mean_corruption_accuracy"] for h in rows]))
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    width = 0.8 / len(series)
    positions = np.arange(len(rows))
    for i, (label, values) in enumerate(series):
        bars = axes.bar(positions + i * width, 100 * np.asarray(values),
                        width, label=label)
        axes.bar_label(bars, fmt="%.0f", fontsize=7)
    axes.set_xticks(positions + width * (len(series) - 1) / 2,
                    [LABELS[h] for h in rows])
    axes.set_ylabel("accuracy (%)")
    axes.set_ylim(0, 100)
    axes.set_title(f"CIFAR-10, {args.eval_images} test images")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv=None):
    args = parse_args(argv)
    if not args.data.exists():
        sys.exit(f"Data file not found: {args.data}")
    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    rows, details, corruption_results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    table, flags = markdown_table(rows, details, args)
    settings = settings_line(args)
    text = [
        "# ReLU, D-ReLU and SPLASH heads on CIFAR-10",
        "",
        f"Written by `examples/compare_heads_cifar10.py"
        f"{' --quick' if args.quick else ''}` (numbers never edited).",
        "",
        f"**Settings (reduced):** {settings}",
        "",
        table,
        "",
        reading(rows, details, args),
        "",
        "Flags raised by the evaluation: "
        + (", ".join(f"`{f}`" for f in flags) if flags else "none")
        + " (see `results.json`; `adaptive-unavailable` means the model has "
        "no cap to bypass).",
        "",
        "![accuracies](accuracy.png)",
        "",
    ]
    for head, result in corruption_results.items():
        heatmap = f"corruptions_{head}.png"
        result.save_heatmap(args.out / heatmap,
                            title=f"{LABELS[head]} head: accuracy")
        text += [f"## {LABELS[head]} head: corruptions", "",
                 result.to_markdown(), "", f"![{head}]({heatmap})", ""]
    (args.out / "results.md").write_text("\n".join(text))
    bar_chart(rows, args, args.out / "accuracy.png")
    payload = {
        "settings": {k: (str(v) if isinstance(v, pathlib.Path) else v)
                     for k, v in vars(args).items()},
        "description": settings,
        "rows": rows,
        "details": details,
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    (args.out / "results.json").write_text(
        json.dumps(payload, indent=2, default=float) + "\n"
    )
    print(table)
    print(f"Results written to {args.out} (results.md, results.json, "
          f"accuracy.png, corruptions_*.png)")


if __name__ == "__main__":
    main()
