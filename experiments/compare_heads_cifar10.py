"""ReLU, D-ReLU and SPLASH activations on CIFAR-10: attacks and corruptions.

One shallow CNN, trained once per activation from the same seed with only
the activation at its placement changed (by default the dense layer before
the output: a plain ReLU, a D-ReLU with its cap penalty
`lambda * sum(m ** 2)` (Sooksatra & Rivas, 2024) or a SPLASH unit (Tavakoli
et al., 2021)). Each is evaluated on the lossless CIFAR-10 test images of
`../shared/data/cifar10-subset.npz` under the adaptive attack suite
(APGD-CE, APGD-T, Square, BPDA and transfer attacks; worst case per image;
masking checks on) and under the common corruptions of
`keras_drelu.corruptions` (mean corruption accuracy, and mCE with the first
model as the reference).

    python experiments/compare_heads_cifar10.py --help
    python experiments/compare_heads_cifar10.py --quick --out /tmp/heads
    python experiments/compare_heads_cifar10.py          # the committed run

Everything is seeded; every reduction from the usual CIFAR-10 protocol
(training images, epochs, evaluated images, attack budgets) is written in
the header of the table this writes.
"""

import dataclasses
import functools
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from common import arguments  # noqa: E402
from common import results  # noqa: E402
from common.data import load  # noqa: E402
from common.evaluation import train_and_evaluate  # noqa: E402
from common.networks import activation_settings  # noqa: E402
from common.networks import cifar10_cnn  # noqa: E402
from common.results import percent  # noqa: E402
from keras_drelu import DReLU  # noqa: E402
from keras_drelu.corruptions import evaluate_corruptions  # noqa: E402

DATASET = "cifar10"
DEFAULTS = dict(
    arguments.CIFAR10_DEFAULTS, train_size=8000, epochs=12,
    initial_max_value=100.0, eval_images=500,
    models=[("relu", "head"), ("drelu", "head"), ("splash", "head")],
)
QUICK = dict(
    train_size=400, epochs=1, eval_images=16, eps_255=[8.0], apgd_steps=2,
    target_classes=2, square_queries=5, severities=[1, 5],
    corruptions=["gaussian_noise", "contrast"],
)


OPTIONS = {
    "--eps-255": dict(nargs="+", type=arguments.positive_float,
                      default=[2.0, 8.0], help="L-inf radii, in units of 1/255"),
    "--corruptions": dict(nargs="+", default=None,
                          help="corruption names; all of them if unset"),
    "--severities": dict(nargs="+", type=arguments.positive_int,
                         default=[1, 2, 3, 4, 5]),
}


def label(model):
    return f"{model[0]} at {model[1]}"


def clipped_share(model, x):
    """Share of the capped layers' inputs on `x` above their caps, or `None`."""
    capped = [layer for layer in model.layers if isinstance(layer, DReLU)]
    if not capped:
        return None
    clipped = [
        keras.Model(model.inputs, layer.input).predict(x, verbose=0)
        > keras.ops.convert_to_numpy(layer.max_value)
        for layer in capped
    ]
    return float(np.concatenate([c.ravel() for c in clipped]).mean())


def run(args):
    splits, x, y = load(args, validation_split=0.1, augment="flip")
    radii = {f"{e:g}/255": e / 255 for e in args.eps_255}
    rows, corruptions = [], {}
    for spec in args.models:
        model, record = train_and_evaluate(
            functools.partial(cifar10_cnn, *spec, units=args.units,
                              **activation_settings(args)),
            splits, x, y, args, radii,
        )
        reference = corruptions.get(args.models[0])
        result = evaluate_corruptions(
            model, x, y, corruptions=args.corruptions,
            severities=args.severities, reference=reference, seed=args.seed,
            verbose=False,
        )
        if reference is None:
            # The reference of itself: mCE 100 by definition.
            result = dataclasses.replace(
                result, reference_clean_accuracy=result.clean_accuracy,
                reference_accuracy=result.accuracy,
            )
        corruptions[spec] = result
        rows.append(dict(
            activation=spec[0], placement=spec[1],
            clipped_share=clipped_share(model, x),
            mean_corruption_accuracy=result.mean_corruption_accuracy,
            mce=result.mce, corruptions=result.to_dict(), **record,
        ))
        print(f"{label(spec)}: {record['epochs_trained']} epochs", flush=True)
    return rows, corruptions


def description(args):
    standard_error = 100 * np.sqrt(0.25 / args.eval_images)
    return [
        f"Shallow CNN (3 conv + dense {args.units} + activation), trained on "
        "a subset of the 20000 CIFAR-10 training images of the data file "
        "(10% held out for validation; all but the first 2000 are JPEG "
        f"copies) with early stopping and flips; D-ReLU lambda {args.lam:g}. "
        "Evaluated on the first lossless test images. Adaptive suite, "
        "cascade, worst case per image, L-inf: APGD-CE and APGD-T "
        f"({args.target_classes} target classes) with {args.apgd_steps} "
        f"steps, Square with {args.square_queries} queries, BPDA and "
        "transfer attacks; masking checks on. Corruptions: "
        + ("all" if args.corruptions is None else ", ".join(args.corruptions))
        + f", severities {', '.join(map(str, args.severities))}; mCE relative "
        f"to {label(args.models[0])}. Seed {args.seed}, one run each: with "
        f"{args.eval_images} test images an accuracy has a standard error of "
        f"up to {standard_error:.1f} points.",
        "",
        "Accuracy in percent. *Clipped*: share of the capped layers' inputs "
        "above their caps on the test images. None of these networks is "
        "adversarially trained; the worst case under the adaptive suite is "
        "what a cap buys against an attacker who adapts to it.",
    ]


def tables(rows, corruptions):
    radii = list(rows[0]["worst_case"])
    lines = results.markdown_table(
        ["Activation", "Placement", "Mean cap", "Clipped (%)", "Clean",
         *(f"Worst case {r}" for r in radii), "Mean corruption acc.",
         "mCE (reference = 100)", "Flags"],
        [[row["activation"], row["placement"], results.mean_caps(row["caps"]),
          percent(row["clipped_share"]), percent(row["clean"]),
          *(percent(row["worst_case"][r]) for r in radii),
          percent(row["mean_corruption_accuracy"]), f"{row['mce']:.1f}",
          results.flag_codes(row["reports"].values())] for row in rows],
    )
    for spec, result in corruptions.items():
        lines += ["", f"## {label(spec)}: corruptions", "",
                  result.to_markdown()]
    return lines


def reading(rows, args):
    """Facts read off the numbers, each quoted from the tables."""
    reference = rows[0]
    lines = []
    for row in rows:
        if row["caps"]:
            lines.append(
                f"- {label((row['activation'], row['placement']))}: mean cap "
                f"{results.mean_caps(row['caps'])}, clipping "
                f"{percent(row['clipped_share'])}% of the capped layers' "
                "inputs on the test images."
            )
    for row in rows[1:]:
        worst = ", ".join(
            f"{percent(row['worst_case'][r])}% vs {percent(value)}% at {r}"
            for r, value in reference["worst_case"].items())
        lines.append(
            f"- {label((row['activation'], row['placement']))} vs "
            f"{label(args.models[0])}: clean {percent(row['clean'])}% vs "
            f"{percent(reference['clean'])}%, worst case {worst}, mean "
            f"corruption accuracy {percent(row['mean_corruption_accuracy'])}% "
            f"vs {percent(reference['mean_corruption_accuracy'])}%, mCE "
            f"{row['mce']:.1f}."
        )
    return lines


def bar_chart(rows, args, path):
    radii = list(rows[0]["worst_case"])
    series = {"clean": [row["clean"] for row in rows]}
    series.update({f"worst case {r}": [row["worst_case"][r] for row in rows]
                   for r in radii})
    series["mean corruption"] = [row["mean_corruption_accuracy"]
                                 for row in rows]
    figure, axes = results.panels(1, size=(7, 4))
    ax = axes[0][0]
    width = 0.8 / len(series)
    positions = np.arange(len(rows))
    for i, (name, values) in enumerate(series.items()):
        bars = ax.bar(positions + i * width, 100 * np.asarray(values), width,
                      label=name)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(positions + width * (len(series) - 1) / 2,
                  [label(spec) for spec in args.models])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"CIFAR-10, {args.eval_images} test images")
    ax.legend(fontsize=8)
    results.save(figure, path, dpi=120)


def write(outcome, args):
    rows, corruptions = outcome
    figures = {"accuracy.png": lambda path: bar_chart(rows, args, path)}
    for spec, result in corruptions.items():
        figures[f"corruptions_{'_'.join(spec)}.png"] = functools.partial(
            result.save_heatmap, title=f"{label(spec)}: accuracy")
    return results.write(
        args,
        title="ReLU, D-ReLU and SPLASH activations on CIFAR-10",
        description=description(args),
        reduced=arguments.reduced(args, arguments.CIFAR10_PAPER),
        tables=tables(rows, corruptions),
        reading=reading(rows, args),
        results={"rows": rows},
        figures=figures,
    )


if __name__ == "__main__":
    results.main(sys.modules[__name__])
