"""S-ReLU paper sections 4-5: where to cap, and how wide the capped layer is.

Sooksatra & Rivas (2023): three two-hidden-layer MNIST networks, "general"
(392-196), "reversed" (196-392) and "equal" (784-784), capped at hidden
layer 1, 2 or both. Each is trained with an initial max value, then
evaluated with its caps set to each max value of a range (0.01-0.15)
without retraining: clean accuracy and accuracy under the paper's PGD
(eps 0.1, 10 iterations, step 0.01), and beside it under the attacks a cap
cannot mask (BPDA(APGD-CE), APGD-CE transferred from the uncapped twin,
Square) and their per-example worst case.

    python examples/srelu_layer_position.py --help
    python examples/srelu_layer_position.py --quick --out /tmp/position

The defaults are the paper's settings where it gives them; every reduction
is written in the table's header.
"""

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_drelu import SReLU  # noqa: E402
from keras_drelu.attacks import APGD  # noqa: E402
from keras_drelu.attacks import BPDA  # noqa: E402
from keras_drelu.attacks import PGD  # noqa: E402
from keras_drelu.attacks import Square  # noqa: E402
from keras_drelu.attacks import Transfer  # noqa: E402
from keras_drelu.evaluation import evaluate_robustness  # noqa: E402
from keras_drelu.training import train  # noqa: E402
from retrofit.data import first_examples  # noqa: E402
from retrofit.data import npz  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mnist.npz"
DEFAULT_OUT = REPO / "docs" / "results" / "srelu_layer_position"

NETWORKS = {"general": (392, 196), "reversed": (196, 392),
            "equal": (784, 784)}
POSITIONS = {"1": (0,), "2": (1,), "both": (0, 1)}
COLUMNS = ("PGD", "BPDA(APGD-CE)", "Transfer(APGD-CE)", "Square")
MAX_VALUES = [round(0.01 * k, 2) for k in range(1, 16)]
QUICK = dict(
    networks=["general"], positions=["both"], initial_max_values=[0.1],
    max_values=[0.01, 0.1], train_size=1000, epochs=1, eval_images=32,
    apgd_steps=3, square_queries=10,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    parser.add_argument("--networks", nargs="+", choices=list(NETWORKS),
                        default=list(NETWORKS))
    parser.add_argument("--positions", nargs="+", choices=list(POSITIONS),
                        default=list(POSITIONS),
                        help="capped hidden layer: 1, 2 or both")
    parser.add_argument("--initial-max-values", nargs="+", type=float,
                        default=[0.01, 0.1, 1.0],
                        help="cap each network is trained with")
    parser.add_argument("--max-values", nargs="+", type=float,
                        default=MAX_VALUES,
                        help="caps each trained network is evaluated with")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--pgd-steps", type=int, default=10)
    parser.add_argument("--step-size", type=float, default=0.01)
    parser.add_argument("--eval-images", type=int, default=10000)
    parser.add_argument("--apgd-steps", type=int, default=100)
    parser.add_argument("--square-queries", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="tiny smoke run to check the script; not for "
                        "results")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    for value in args.initial_max_values + args.max_values:
        if not value > 0:
            parser.error(f"max values must be positive. Received: {value}")
    return args


def build_model(network, position, cap):
    layers = [keras.Input((28, 28, 1)), keras.layers.Flatten()]
    for index, units in enumerate(NETWORKS[network]):
        layers.append(keras.layers.Dense(units))
        layers.append(SReLU(cap) if index in POSITIONS[position]
                      else keras.layers.ReLU())
    layers.append(keras.layers.Dense(10))
    return keras.Sequential(layers, name=f"{network}_{position}")


def set_caps(model, cap):
    """Sets every S-ReLU cap of `model` to `cap`, keeping the other weights."""
    for layer in model.layers:
        if isinstance(layer, SReLU):
            layer.max_value.assign(np.full(layer.max_value.shape, cap))


def attacks(model, args):
    linf = dict(eps=args.eps, norm="linf", clip_values=(0.0, 1.0),
                outputs="logits", batch_size=500, seed=args.seed)

    def apgd():
        return APGD(model, loss="ce", steps=args.apgd_steps, **linf)

    return [
        PGD(model, steps=args.pgd_steps, step_size=args.step_size,
            random_init=False, **linf),
        BPDA(apgd()),
        Transfer(apgd()),
        Square(model, n_queries=args.square_queries, **linf),
    ]


def load_data(args):
    splits = npz(args.data, batch_size=args.batch_size, validation_split=0.0,
                 seed=args.seed, limit=args.train_size)
    return (splits, *first_examples(splits.test, args.eval_images))


def run(args):
    splits, x_test, y_test = load_data(args)
    runs = []
    for network in args.networks:
        for position in args.positions:
            for initial in args.initial_max_values:
                start = time.perf_counter()
                model = train(build_model(network, position, initial),
                              splits.train, epochs=args.epochs,
                              seed=args.seed, verbose=0).model
                train_seconds = time.perf_counter() - start
                for cap in args.max_values:
                    set_caps(model, cap)
                    report = evaluate_robustness(
                        model, x_test, y_test, eps=args.eps,
                        suite=attacks(model, args), cascade=False,
                        checks_enabled=False, seed=args.seed, verbose=False,
                    )
                    runs.append(dict(
                        network=network, position=position, initial=initial,
                        max_value=cap, train_seconds=train_seconds,
                        clean=report.clean_accuracy,
                        accuracy=dict(report.accuracy),
                        worst_case=report.worst_case_accuracy,
                    ))
                print(f"{network:>8} | cap at {position:>4} | initial "
                      f"{initial:g} | train {train_seconds:.0f}s | total "
                      f"{time.perf_counter() - start:.0f}s", flush=True)
    return runs


def header(args):
    n_train = min(args.train_size or 60000, 60000)
    reduced = []
    if n_train < 60000:
        reduced.append(f"{n_train} training images (paper: 60000)")
    if args.eval_images < 10000:
        reduced.append(f"{args.eval_images} test images (paper: 10000)")
    if args.max_values != MAX_VALUES:
        reduced.append("max values " + ", ".join(
            f"{v:g}" for v in args.max_values) + " (paper: 0.01-0.15)")
    if args.initial_max_values != [0.01, 0.1, 1.0]:
        reduced.append("initial max values " + ", ".join(
            f"{v:g}" for v in args.initial_max_values)
            + " (paper: 0.01, 0.1, 1)")
    return [
        "# S-ReLU layer position and width (paper sections 4-5)",
        "",
        f"Networks {', '.join(args.networks)}; {args.epochs} epochs of Adam "
        f"1e-3, batch {args.batch_size}, seed {args.seed}; caps set to each "
        "max value after training, without retraining. Attacks at L-inf eps "
        f"{args.eps}: the paper's PGD ({args.pgd_steps} iterations, step "
        f"{args.step_size}, no random start), BPDA(APGD-CE) and "
        f"Transfer(APGD-CE) ({args.apgd_steps} steps), Square "
        f"({args.square_queries} queries).",
        "",
        "**Reduced from the paper:** " + ("; ".join(reduced) or "nothing")
        + ".",
        "",
        "Accuracy in percent. **Worst case** is per example over the four "
        "attacks.",
        "",
    ]


def table(runs):
    names = ["Network", "Capped", "Initial", "Max value", "Clean", *COLUMNS,
             "**Worst case**"]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for run in runs:
        cells = [run["network"], run["position"], f"{run['initial']:g}",
                 f"{run['max_value']:g}", f"{100 * run['clean']:.1f}"]
        cells += [f"{100 * run['accuracy'][name]:.1f}" for name in COLUMNS]
        cells.append(f"**{100 * run['worst_case']:.1f}**")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def reading(runs, args):
    """Facts read off the numbers, generated so that none is typed by hand."""
    lines = ["", "## Reading (generated from the numbers above)", ""]
    for network in args.networks:
        chosen = [r for r in runs if r["network"] == network]
        by_pgd = max(chosen, key=lambda r: r["accuracy"]["PGD"])
        by_worst = max(chosen, key=lambda r: r["worst_case"])
        lines.append(
            f"- {network}: the paper's PGD favours capping layer(s) "
            f"{by_pgd['position']} at max value {by_pgd['max_value']:g} "
            f"(initial {by_pgd['initial']:g}): "
            f"{100 * by_pgd['accuracy']['PGD']:.1f}% PGD, "
            f"{100 * by_pgd['worst_case']:.1f}% worst case. The best worst "
            f"case is {100 * by_worst['worst_case']:.1f}% (layer(s) "
            f"{by_worst['position']}, max value {by_worst['max_value']:g}, "
            f"clean {100 * by_worst['clean']:.1f}%)."
        )
    return lines


def plot(runs, args, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(n, i) for n in args.networks for i in args.initial_max_values]
    figure, axes = plt.subplots(len(rows), 3, sharex=True, sharey=True,
                                figsize=(12, 2.8 * len(rows)), squeeze=False)
    metrics = (("clean", lambda r: r["clean"]),
               ("PGD (paper's attack)", lambda r: r["accuracy"]["PGD"]),
               ("worst case", lambda r: r["worst_case"]))
    for (network, initial), row_axes in zip(rows, axes):
        for ax, (title, metric) in zip(row_axes, metrics):
            for position in args.positions:
                chosen = [r for r in runs if r["network"] == network
                          and r["initial"] == initial
                          and r["position"] == position]
                ax.plot([r["max_value"] for r in chosen],
                        [100 * metric(r) for r in chosen], marker="o",
                        markersize=3, label=f"cap layer {position}")
            ax.set_title(f"{network}, initial {initial:g}: {title}",
                         fontsize=9)
            ax.grid(alpha=0.3)
        row_axes[0].set_ylabel("accuracy (%)")
    for ax in axes[-1]:
        ax.set_xlabel("max value")
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write(runs, args):
    args.out.mkdir(parents=True, exist_ok=True)
    lines = header(args) + table(runs) + reading(runs, args)
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    settings = {key: str(value) if isinstance(value, pathlib.Path) else value
                for key, value in vars(args).items()}
    (args.out / "results.json").write_text(
        json.dumps({"settings": settings, "runs": runs}, indent=2) + "\n")
    plot(runs, args, args.out / "curves.png")
    return [args.out / name for name in
            ("table.md", "results.json", "curves.png")]


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    runs = run(args)
    paths = write(runs, args)
    print(f"done in {time.perf_counter() - start:.0f}s; wrote:")
    for path in paths:
        print(f"  {path}")
    return paths


if __name__ == "__main__":
    main(sys.argv[1:])
