"""CPU-scale CIFAR-10: where a D-ReLU goes (head or input) against plain ReLU.

The D-ReLU paper's two placements (`head`: a dense D-ReLU layer before the
output, Figure 10; `input`: a convolution with D-ReLU after the input,
Figure 13) against the plain ReLU network, on two architectures: a shallow
CNN and a retrofitted `keras.applications` backbone (MobileNetV2, random
weights). Each model is evaluated on the lossless CIFAR-10 test images of
`../shared/data/cifar10-subset.npz` at eps 0.01 (the paper's) and 8/255
under the adaptive suite (APGD-CE, APGD-T, Square, BPDA, transfer; worst
case per image; masking checks on), and over a range of eps under APGD-CE
and BPDA(APGD-CE): the eps-generalisation curve of the paper's Figures
25-27.

    python experiments/cifar10_retrofit.py --help
    python experiments/cifar10_retrofit.py --quick --out /tmp/cifar
    python experiments/cifar10_retrofit.py --eval-images 200

Every reduction from the paper (training images, epochs, initial cap,
evaluated images, attack budgets) is written in the header of the table.
"""

import functools
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from common import arguments  # noqa: E402
from common import results  # noqa: E402
from common.data import load  # noqa: E402
from common.evaluation import eps_curves  # noqa: E402
from common.evaluation import train_and_evaluate  # noqa: E402
from common.networks import activation_settings  # noqa: E402
from common.networks import cifar10_cnn  # noqa: E402
from common.networks import retrofit_model  # noqa: E402
from common.results import percent  # noqa: E402

ARCHS = {
    "cnn": cifar10_cnn,
    "mobilenetv2": functools.partial(retrofit_model, "MobileNetV2",
                                     image_shape=(32, 32, 3)),
}
RADII = {"0.01": 0.01, "8/255": 8 / 255}
CURVE_ATTACKS = ("APGD-CE", "BPDA(APGD-CE)")
DATASET = "cifar10"
DEFAULTS = dict(
    arguments.CIFAR10_DEFAULTS, train_size=6000, epochs=8,
    initial_max_value=100.0, eval_images=300,
    models=[("relu", "head"), ("drelu", "head"), ("drelu", "input")],
)
QUICK = dict(
    train_size=300, epochs=1, eval_images=12, apgd_steps=2,
    target_classes=2, square_queries=5, sweep_eps_255=[2.0, 16.0],
    archs=["cnn"], models=[("relu", "head"), ("drelu", "input")],
)


OPTIONS = {
    "--archs": dict(nargs="+", choices=list(ARCHS), default=list(ARCHS)),
    "--sweep-eps-255": dict(nargs="+", type=arguments.positive_float,
                            default=[1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
                            help="radii of the eps curve, in units of 1/255"),
}


def sweep(args):
    """The radii of the eps curve in units of 1/255, in increasing order."""
    return sorted(args.sweep_eps_255)


def run(args):
    splits, x, y = load(args, validation_split=0.1)
    rows = []
    for arch in args.archs:
        for activation, placement in args.models:
            start = time.perf_counter()
            model, record = train_and_evaluate(
                functools.partial(ARCHS[arch], activation, placement,
                                  units=args.units,
                                  **activation_settings(args)),
                splits, x, y, args, RADII,
            )
            curves = eps_curves(model, x, y, args, CURVE_ATTACKS,
                                [e / 255 for e in sweep(args)])
            seconds = time.perf_counter() - start
            print(f"{arch} {activation}:{placement}: "
                  f"{record['epochs_trained']} epochs, {seconds:.0f} s",
                  flush=True)
            rows.append(dict(arch=arch, activation=activation,
                             placement=placement, curves=curves,
                             seconds=seconds, **record))
    return rows


def description(args):
    return [
        f"Shallow CNN (3 conv + dense {args.units}) and MobileNetV2 "
        "(keras.applications, random weights, retrofitted) trained on a "
        "subset of the 20000 CIFAR-10 training images of the data file (10% "
        "held out; all but the first 2000 are JPEG copies) with early "
        f"stopping; D-ReLU lambda {args.lam:g}. Evaluated on the first "
        "lossless test images. Adaptive suite, cascade, worst case per "
        f"image: APGD-CE and APGD-T ({args.target_classes} target classes) "
        f"with {args.apgd_steps} steps, Square with {args.square_queries} "
        "queries, BPDA(APGD-CE), BPDA(APGD-T), Transfer(APGD-CE); masking "
        f"checks on. Seed {args.seed}, one run each.",
        "",
        "Accuracy in percent. **Worst case** is per image over every L-inf "
        "attack of the adaptive suite. Eps curve: eps in units of 1/255.",
    ]


def _names(row):
    return [row["arch"], row["activation"], row["placement"]]


def tables(rows, args):
    header = ["Architecture", "Activation", "Placement", "Mean cap", "Clean"]
    for radius in RADII:
        header += [f"APGD-CE {radius}", f"**Worst case {radius}**"]
    lines = results.markdown_table(header + ["Flags"], [
        _names(row) + [results.mean_caps(row["caps"]), percent(row["clean"])]
        + [cell for radius in RADII for cell in (
            percent(row["reports"][radius]["accuracy"]["APGD-CE"]),
            f"**{percent(row['worst_case'][radius])}**")]
        + [results.flag_codes(row["reports"].values())]
        for row in rows
    ])
    return lines + [""] + results.markdown_table(
        ["Architecture", "Activation", "Placement", "Attack",
         *(f"{e:g}" for e in sweep(args))],
        [_names(row) + [attack, *map(percent, accuracy)]
         for row in rows for attack, accuracy in row["curves"].items()],
    )


def _facts(row):
    return f"clean {percent(row['clean'])}%, worst case " + ", ".join(
        f"{percent(row['worst_case'][radius])}% at eps {radius}"
        for radius in RADII)


def reading(rows, args):
    """Facts read off the numbers, each quoted from the tables."""
    lines = []
    largest = f"{sweep(args)[-1]:g}/255"
    reference = args.models[0]
    for row in rows:
        base = next(r for r in rows if r["arch"] == row["arch"]
                    and (r["activation"], r["placement"]) == reference)
        compared = "" if row is base else (
            f" ({reference[0]} at {reference[1]}: {_facts(base)})")
        lines.append(
            f"- {row['arch']}, {row['activation']} at {row['placement']}: "
            f"{_facts(row)}{compared}. At eps {largest} APGD-CE leaves "
            f"{percent(row['curves']['APGD-CE'][-1])}% and BPDA(APGD-CE) "
            f"{percent(row['curves']['BPDA(APGD-CE)'][-1])}%."
        )
    return lines


def plot_curves(rows, args, path):
    figure, axes = results.panels(len(args.archs))
    for ax, arch in zip(axes[0], args.archs):
        for row in (r for r in rows if r["arch"] == arch):
            for attack, style in zip(CURVE_ATTACKS, ("-", "--")):
                ax.plot(sweep(args), 100 * np.asarray(
                    row["curves"][attack]), style, marker="o",
                    label=f"{row['activation']} at {row['placement']}, "
                    f"{attack}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("eps (x 1/255)")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(arch)
        ax.legend(fontsize=6)
    results.save(figure, path, dpi=120)


def write(rows, args):
    return results.write(
        args,
        title="D-ReLU placements on CIFAR-10 at CPU scale (D-ReLU paper, "
        "sections 6.2 and 9)",
        description=description(args),
        reduced=arguments.reduced(args, arguments.CIFAR10_PAPER),
        tables=tables(rows, args),
        reading=reading(rows, args),
        results={"results": rows},
        figures={"eps_curves.png": lambda path: plot_curves(rows, args, path)},
    )


if __name__ == "__main__":
    results.main(sys.modules[__name__])
