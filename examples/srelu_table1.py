"""S-ReLU paper Table 1 on MNIST, with the adaptive attacks beside it.

Sooksatra & Rivas (2023), section 8: the 784-392-196-10 dense network with
its second hidden layer capped (max value none / 1 / 0.1 / 0.01), trained
20 epochs with Adam 1e-3, then optionally retrained 10 epochs with FGSM or
PGD adversarial training (eps 0.1). Each model is attacked with the paper's
FGSM, PGD (eps 0.1, 10 iterations, step 0.01) and unbounded CW-L2, and with
the attacks a capped ReLU cannot mask: APGD-CE, BPDA(APGD-CE) through the
caps, APGD-CE transferred from the uncapped twin, and the gradient-free
Square attack. The per-example worst case over the L-inf attacks is the
honest robust accuracy.

    python examples/srelu_table1.py --help
    python examples/srelu_table1.py --quick --out /tmp/srelu
    python examples/srelu_table1.py --natural-epochs 10 --adv-epochs 3

The defaults are the paper's settings; every reduction given on the command
line is written in the table's header. The network ends in logits (the
paper's softmax is folded into the loss), which the attacks need anyway.
"""

import argparse
import json
import math
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
from keras_drelu.attacks import FGSM  # noqa: E402
from keras_drelu.attacks import PGD  # noqa: E402
from keras_drelu.attacks import CarliniWagnerL2  # noqa: E402
from keras_drelu.attacks import Square  # noqa: E402
from keras_drelu.attacks import Transfer  # noqa: E402
from keras_drelu.evaluation import evaluate_robustness  # noqa: E402
from keras_drelu.training import train  # noqa: E402
from retrofit.data import npz  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mnist.npz"
DEFAULT_OUT = REPO / "docs" / "results" / "srelu_table1"

# Sooksatra & Rivas (2023), Table 1: (max value, adversarial training) ->
# clean, FGSM, PGD, CW-L2 accuracy in percent.
PAPER = {
    ("none", "none"): (98.49, 41.77, 9.47, 0.00),
    ("1", "none"): (98.46, 41.24, 7.45, 0.00),
    ("0.1", "none"): (98.06, 68.04, 39.79, 5.56),
    ("0.01", "none"): (97.88, 92.37, 89.61, 8.07),
    ("none", "fgsm"): (98.26, 91.44, 85.12, 0.19),
    ("1", "fgsm"): (98.35, 92.46, 81.88, 0.18),
    ("0.1", "fgsm"): (98.18, 93.00, 90.37, 3.50),
    ("0.01", "fgsm"): (97.10, 94.07, 96.36, 8.21),
    ("none", "pgd"): (98.67, 91.85, 86.74, 0.10),
    ("1", "pgd"): (98.49, 93.32, 87.09, 0.11),
    ("0.1", "pgd"): (98.09, 92.64, 92.85, 3.62),
    ("0.01", "pgd"): (96.55, 89.21, 95.43, 8.00),
}
PAPER_COLUMNS = ("FGSM", "PGD", "CW-L2")
ADAPTIVE_COLUMNS = ("APGD-CE", "BPDA(APGD-CE)", "Transfer(APGD-CE)", "Square")
RECIPES = {"none": None, "fgsm": "fgsm-at", "pgd": "pgd-at"}
QUICK = dict(
    caps=["0.01"], training=["none", "fgsm"], train_size=1000,
    natural_epochs=1, adv_epochs=1, eval_images=40, cw_iterations=10,
    cw_binary_steps=2, apgd_steps=5, square_queries=20,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA,
                        help="MNIST .npz in the keras.datasets layout")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT,
                        help="directory of the table, JSON and plots")
    parser.add_argument("--caps", nargs="+", default=["none", "1", "0.1",
                        "0.01"], help="max values of the 2nd hidden layer")
    parser.add_argument("--training", nargs="+", choices=sorted(RECIPES),
                        default=["none", "fgsm", "pgd"],
                        help="adversarial retraining after natural training")
    parser.add_argument("--train-size", type=int, default=None,
                        help="training images (random subset); all if unset")
    parser.add_argument("--natural-epochs", type=int, default=20)
    parser.add_argument("--adv-epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--attack-steps", type=int, default=10,
                        help="PGD iterations, in training and evaluation")
    parser.add_argument("--step-size", type=float, default=0.01)
    parser.add_argument("--eval-images", type=int, default=10000,
                        help="first N test images evaluated")
    parser.add_argument("--cw-iterations", type=int, default=10000)
    parser.add_argument("--cw-binary-steps", type=int, default=9)
    parser.add_argument("--cw-learning-rate", type=float, default=0.01)
    parser.add_argument("--cw-initial-const", type=float, default=0.001)
    parser.add_argument("--apgd-steps", type=int, default=100)
    parser.add_argument("--square-queries", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="tiny smoke run (seconds) to check the script; "
                        "not for results")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    for cap in args.caps:
        if cap != "none" and not float(cap) > 0:
            parser.error(f"--caps takes 'none' or positive numbers: {cap!r}")
    return args


def load_data(args):
    """Training pipeline and the first `eval_images` test images."""
    splits = npz(args.data, batch_size=args.batch_size, validation_split=0.0,
                 seed=args.seed, limit=args.train_size)
    x_test, y_test = [], []
    for images, labels in splits.test:
        x_test.append(images.numpy())
        y_test.append(labels.numpy())
        if sum(map(len, x_test)) >= args.eval_images:
            break
    x_test = np.concatenate(x_test)[: args.eval_images]
    y_test = np.concatenate(y_test)[: args.eval_images]
    return splits, x_test, y_test


def build_model(cap):
    """784-392-196-10 with the 2nd hidden layer capped at `cap`."""
    activation = (
        keras.layers.ReLU(name="relu_2") if cap == "none"
        else SReLU(float(cap), name="srelu_2")
    )
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(392, activation="relu"),
            keras.layers.Dense(196),
            activation,
            keras.layers.Dense(10),
        ],
        name=f"cap_{cap}",
    )


def attacks(model, args):
    """The paper's attacks, then the adaptive and gradient-free ones."""
    common = dict(clip_values=(0.0, 1.0), outputs="logits",
                  batch_size=500, seed=args.seed)
    linf = dict(common, eps=args.eps, norm="linf")

    def apgd():
        return APGD(model, loss="ce", steps=args.apgd_steps, **linf)

    return [
        FGSM(model, **linf),
        # The paper's PGD (ART's default): no random start.
        PGD(model, steps=args.attack_steps, step_size=args.step_size,
            random_init=False, **linf),
        # Unbounded, as in the paper: any misclassification counts.
        CarliniWagnerL2(
            model, eps=math.inf, norm="l2",
            max_iterations=args.cw_iterations,
            binary_search_steps=args.cw_binary_steps,
            learning_rate=args.cw_learning_rate,
            initial_const=args.cw_initial_const, **common,
        ),
        apgd(),
        BPDA(apgd()),
        Transfer(apgd()),
        Square(model, n_queries=args.square_queries, **linf),
    ]


def retrained(model, recipe, splits, args):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    # Fast FGSM-AT takes one step of its own length (1.25 eps).
    attack = {} if recipe == "fgsm-at" else dict(
        attack_steps=args.attack_steps, step_size=args.step_size
    )
    return train(
        copy, splits.train, recipe=recipe, epochs=args.adv_epochs,
        eps=args.eps, seed=args.seed, verbose=0, **attack,
    ).model


def run(args):
    splits, x_test, y_test = load_data(args)
    rows = []
    for cap in args.caps:
        start = time.perf_counter()
        natural = train(
            build_model(cap), splits.train, recipe="standard",
            epochs=args.natural_epochs, seed=args.seed, verbose=0,
        ).model
        natural_seconds = time.perf_counter() - start
        for training in args.training:
            start = time.perf_counter()
            model = (
                natural if training == "none"
                else retrained(natural, RECIPES[training], splits, args)
            )
            train_seconds = natural_seconds + time.perf_counter() - start
            start = time.perf_counter()
            report = evaluate_robustness(
                model, x_test, y_test, eps=args.eps,
                suite=attacks(model, args), cascade=False, seed=args.seed,
                verbose=False, model_name=f"cap {cap}, {training}",
            )
            eval_seconds = time.perf_counter() - start
            rows.append(dict(cap=cap, training=training, report=report,
                             train_seconds=train_seconds,
                             eval_seconds=eval_seconds))
            print(f"cap {cap:>5} | {training:>4} | clean "
                  f"{report.clean_accuracy:.3f} | PGD "
                  f"{report.accuracy['PGD']:.3f} | worst case "
                  f"{report.worst_case_accuracy:.3f} | train "
                  f"{train_seconds:.0f}s eval {eval_seconds:.0f}s",
                  flush=True)
    return rows


def _pct(value):
    return "n/a" if value is None else f"{100 * value:.1f}"


def header(args, n_train):
    paper_cw = (10000, 9)
    reduced = []
    if n_train < 60000:
        reduced.append(f"{n_train} training images (paper: 60000)")
    if args.natural_epochs != 20:
        reduced.append(f"{args.natural_epochs} natural epochs (paper: 20)")
    if args.adv_epochs != 10:
        reduced.append(f"{args.adv_epochs} adversarial epochs (paper: 10)")
    if args.eval_images < 10000:
        reduced.append(f"{args.eval_images} test images "
                       "(paper: 10000)")
    if (args.cw_iterations, args.cw_binary_steps) != paper_cw:
        reduced.append(
            f"CW-L2 with {args.cw_iterations} iterations x "
            f"{args.cw_binary_steps} binary-search steps (paper: 10000 x 9)"
        )
    lines = [
        "# S-ReLU Table 1 on MNIST: paper vs. this run",
        "",
        "784-392-196-10 dense network, cap (S-ReLU) on the 2nd hidden layer; "
        f"Adam 1e-3, batch {args.batch_size}, seed {args.seed}. Adversarial "
        "retraining: fast FGSM-AT (Wong et al., 2020) or PGD-AT with "
        f"{args.attack_steps} steps of {args.step_size}, eps {args.eps}. "
        f"Attacks: L-inf eps {args.eps}; FGSM; PGD {args.attack_steps} "
        f"iterations, step {args.step_size}, no random start; CW-L2 "
        f"unbounded (lr {args.cw_learning_rate}, initial constant "
        f"{args.cw_initial_const}); APGD-CE {args.apgd_steps} steps, also "
        "through BPDA and transferred from the uncapped twin; Square "
        f"{args.square_queries} queries.",
        "",
        "**Reduced from the paper:** " + ("; ".join(reduced) or "nothing")
        + ".",
        "",
        "Accuracy in percent, *paper / ours* for the paper's columns. "
        "**Worst case** is per example over every L-inf attack (FGSM, PGD, "
        "APGD-CE, BPDA, Transfer, Square); CW-L2 is unbounded and not part "
        "of it. For the uncapped rows BPDA and Transfer are plain APGD-CE.",
        "",
    ]
    return lines


def table(rows):
    columns = (
        ["Max val.", "Adv. training", "Clean"]
        + list(PAPER_COLUMNS) + list(ADAPTIVE_COLUMNS)
        + ["**Worst case**", "Flags"]
    )
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        report = row["report"]
        paper = PAPER.get((row["cap"], row["training"]))
        ours = [report.clean_accuracy] + [
            report.accuracy[name] for name in PAPER_COLUMNS
        ]
        paired = [
            f"{paper[i]:.2f} / {_pct(value)}" if paper else _pct(value)
            for i, value in enumerate(ours)
        ]
        flags = ", ".join(sorted({flag.code for flag in report.flags}))
        lines.append(
            "| " + " | ".join(
                [row["cap"], row["training"]] + paired
                + [_pct(report.accuracy[name]) for name in ADAPTIVE_COLUMNS]
                + [f"**{_pct(report.worst_case_accuracy)}**", flags or "-"]
            ) + " |"
        )
    return lines


def reading(rows):
    """Facts read off the numbers, generated so that none is typed by hand."""
    lines = ["", "## Reading (generated from the numbers above)", ""]
    for row in rows:
        report = row["report"]
        paper_pgd = report.accuracy["PGD"]
        worst = report.worst_case_accuracy
        strongest = min(
            (name for name in report.accuracy if name != "CW-L2"),
            key=lambda name: report.accuracy[name],
        )
        lines.append(
            f"- cap {row['cap']}, {row['training']}: the paper's PGD leaves "
            f"{_pct(paper_pgd)}%, the worst case {_pct(worst)}% "
            f"({_pct(paper_pgd - worst)} points lower); strongest single "
            f"attack {strongest} ({_pct(report.accuracy[strongest])}%)."
        )
    capped = [r for r in rows if r["cap"] != "none"]
    if capped:
        gap = max(capped, key=lambda r: r["report"].accuracy["PGD"]
                  - r["report"].worst_case_accuracy)
        lines += [
            "",
            f"Largest overstatement by the paper's PGD: cap {gap['cap']}, "
            f"{gap['training']} ({_pct(gap['report'].accuracy['PGD'])}% vs. "
            f"{_pct(gap['report'].worst_case_accuracy)}% worst case).",
        ]
    return lines


def _finite(value):
    """JSON has no infinity; the unbounded CW radius is written as a string."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def plot(rows, args, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(args.training), sharey=True,
                                figsize=(4.2 * len(args.training), 3.6),
                                squeeze=False)
    positions = range(len(args.caps))
    for ax, training in zip(axes[0], args.training):
        chosen = [r for r in rows if r["training"] == training]
        series = {
            "clean": [r["report"].clean_accuracy for r in chosen],
            "PGD (paper's attack)": [r["report"].accuracy["PGD"]
                                     for r in chosen],
            "worst case": [r["report"].worst_case_accuracy for r in chosen],
        }
        for label, values in series.items():
            ax.plot(positions, [100 * v for v in values], marker="o",
                    label=label)
        paper = [PAPER.get((r["cap"], training)) for r in chosen]
        if all(paper):
            ax.plot(positions, [p[2] for p in paper], "k--", marker="x",
                    label="PGD, paper")
        ax.set_xticks(list(positions), args.caps)
        ax.set_xlabel("max value of the 2nd hidden layer")
        ax.set_title(f"adversarial training: {training}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(rows, args, n_train):
    args.out.mkdir(parents=True, exist_ok=True)
    lines = header(args, n_train) + table(rows) + reading(rows)
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    settings = {
        key: str(value) if isinstance(value, pathlib.Path) else value
        for key, value in vars(args).items()
    }
    results = {
        "settings": dict(settings, training_images=n_train),
        "paper": {f"{cap}/{training}": dict(zip(("clean",) + PAPER_COLUMNS,
                                                values))
                  for (cap, training), values in PAPER.items()},
        "runs": [
            dict(cap=r["cap"], training=r["training"],
                 train_seconds=r["train_seconds"],
                 eval_seconds=r["eval_seconds"], **r["report"].to_dict())
            for r in rows
        ],
    }
    (args.out / "results.json").write_text(
        json.dumps(_finite(results), indent=2) + "\n"
    )
    plot(rows, args, args.out / "accuracy.png")
    weakest = min(rows, key=lambda r: r["report"].worst_case_accuracy)
    weakest["report"].save_examples_png(args.out / "examples.png")
    return [args.out / name for name in
            ("table.md", "results.json", "accuracy.png", "examples.png")]


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    rows = run(args)
    n_train = args.train_size or 60000
    paths = write(rows, args, min(n_train, 60000))
    print(f"done in {time.perf_counter() - start:.0f}s; wrote:")
    for path in paths:
        print(f"  {path}")
    return paths


if __name__ == "__main__":
    main(sys.argv[1:])
