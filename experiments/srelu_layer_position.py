"""S-ReLU paper sections 4-5: where to cap, and how wide the capped layer is.

Sooksatra & Rivas (2023): three two-hidden-layer MNIST networks, "general"
(392-196), "reversed" (196-392) and "equal" (784-784), capped at hidden
layer 1, 2 or both. Each is trained with an initial max value, then
evaluated with its caps set to each max value of a range (0.01-0.15)
without retraining: clean accuracy and accuracy under the paper's PGD
(eps 0.1, 10 iterations, step 0.01), and beside it under the attacks a cap
cannot mask (BPDA(APGD-CE), APGD-CE transferred from the uncapped twin,
Square) and their per-example worst case, with the masking checks on.

    python experiments/srelu_layer_position.py --help
    python experiments/srelu_layer_position.py --quick --out /tmp/position

The defaults are the paper's settings where it gives them; every reduction
is written in the table's header.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from common import arguments  # noqa: E402
from common import results  # noqa: E402
from common.evaluation import train_model  # noqa: E402
from common.data import load  # noqa: E402
from common.evaluation import evaluate  # noqa: E402
from common.networks import dense_network  # noqa: E402
from common.results import percent  # noqa: E402
from keras_drelu import SReLU  # noqa: E402

NETWORKS = {"general": (392, 196), "reversed": (196, 392),
            "equal": (784, 784)}
POSITIONS = {"1": (0,), "2": (1,), "both": (0, 1)}
COLUMNS = ("PGD", "BPDA(APGD-CE)", "Transfer(APGD-CE)", "Square")
# The paper's PGD (ART's default) has no random start.
FIXED = {"PGD": {"random_init": False}}
MAX_VALUES = [round(0.01 * k, 2) for k in range(1, 16)]
PAPER = dict(train_size=60000, epochs=20, eval_images=10000,
             max_values=MAX_VALUES, initial_max_values=[0.01, 0.1, 1.0])
WORDING = dict(max_values="max values {ours} (paper: 0.01 to 0.15 in steps "
               "of 0.01)",
               initial_max_values="initial max values {ours} (paper: {paper})")
DATASET = "mnist"
DEFAULTS = dict(train_size=None, epochs=20, batch_size=128, eps=0.1,
                pgd_steps=10, step_size=0.01, eval_images=10000,
                apgd_steps=100, square_queries=5000, seed=0)
QUICK = dict(
    networks=["general"], positions=["both"], initial_max_values=[0.1],
    max_values=[0.01, 0.1], train_size=1000, epochs=1, eval_images=32,
    apgd_steps=3, square_queries=10,
)


OPTIONS = {
    "--networks": dict(nargs="+", choices=list(NETWORKS),
                       default=list(NETWORKS)),
    "--positions": dict(nargs="+", choices=list(POSITIONS),
                        default=list(POSITIONS),
                        help="capped hidden layer: 1, 2 or both"),
    "--initial-max-values": dict(nargs="+", type=arguments.positive_float,
                                 default=PAPER["initial_max_values"],
                                 help="cap each network is trained with"),
    "--max-values": dict(nargs="+", type=arguments.positive_float,
                         default=MAX_VALUES,
                         help="caps each trained network is evaluated with"),
}


def network(name, position, cap):
    activations = [("srelu", {"max_value": cap})
                   if index in POSITIONS[position] else "relu"
                   for index in range(len(NETWORKS[name]))]
    return dense_network(NETWORKS[name], activations,
                         name=f"{name}_{position}")


def set_caps(model, cap):
    """Sets every S-ReLU cap of `model` to `cap`, keeping the other weights."""
    for layer in model.layers:
        if isinstance(layer, SReLU):
            layer.assign_max_value(cap)


def run(args):
    splits, x, y = load(args)
    runs = []
    for name in args.networks:
        for position in args.positions:
            for initial in args.initial_max_values:
                start = time.perf_counter()
                model, _ = train_model(
                    lambda: network(name, position, initial), splits,
                    epochs=args.epochs, seed=args.seed,
                )
                train_seconds = time.perf_counter() - start
                for cap in args.max_values:
                    set_caps(model, cap)
                    report = evaluate(model, x, y, args, eps=args.eps,
                                      suite=COLUMNS, fixed=FIXED)
                    runs.append(dict(
                        network=name, position=position, initial=initial,
                        max_value=cap, train_seconds=train_seconds,
                        report=report.to_dict(),
                    ))
                print(f"{name:>8} | cap at {position:>4} | initial "
                      f"{initial:g} | train {train_seconds:.0f}s | total "
                      f"{time.perf_counter() - start:.0f}s", flush=True)
    return runs


def description(args):
    return [
        f"Networks {', '.join(args.networks)}; {args.epochs} epochs of Adam "
        f"1e-3, batch {args.batch_size}, seed {args.seed}; caps set to each "
        "max value after training, without retraining. Attacks at L-inf eps "
        f"{args.eps}: the paper's PGD ({args.pgd_steps} iterations, step "
        f"{args.step_size}, no random start), BPDA(APGD-CE) and "
        f"Transfer(APGD-CE) ({args.apgd_steps} steps), Square "
        f"({args.square_queries} queries). Masking checks on.",
        "",
        "Accuracy in percent. **Worst case** is per example over the four "
        "attacks.",
    ]


def table(runs):
    header = ["Network", "Capped", "Initial", "Max value", "Clean", *COLUMNS,
              "**Worst case**", "Flags"]
    return results.markdown_table(header, [
        [run["network"], run["position"], f"{run['initial']:g}",
         f"{run['max_value']:g}", percent(run["report"]["clean_accuracy"]),
         *(percent(run["report"]["accuracy"][name]) for name in COLUMNS),
         f"**{percent(run['report']['worst_case_accuracy'])}**",
         results.flag_codes([run["report"]])]
        for run in runs
    ])


def _pgd(run):
    return run["report"]["accuracy"]["PGD"]


def _worst(run):
    return run["report"]["worst_case_accuracy"]


def _span(runs, metric):
    values = [metric(run) for run in runs]
    return f"from {percent(min(values))}% to {percent(max(values))}%"


def reading(runs, args):
    """Facts read off the numbers, each quoted from the table."""
    lines = []
    smallest = min(args.max_values)
    for name in args.networks:
        chosen = [run for run in runs if run["network"] == name]
        low = [run for run in chosen if run["max_value"] == smallest]
        by_pgd = max(chosen, key=_pgd)
        by_worst = max(chosen, key=_worst)
        lines.append(
            f"- {name}: at max value {smallest:g} the paper's PGD leaves "
            f"{_span(low, _pgd)} and the worst case is {_span(low, _worst)} "
            "(every position and initial cap). The paper's PGD favours "
            f"capping layer(s) {by_pgd['position']} at max value "
            f"{by_pgd['max_value']:g} (initial {by_pgd['initial']:g}): "
            f"{percent(_pgd(by_pgd))}% PGD, {percent(_worst(by_pgd))}% worst "
            f"case. The best worst case is {percent(_worst(by_worst))}% "
            f"(layer(s) {by_worst['position']}, max value "
            f"{by_worst['max_value']:g}, initial {by_worst['initial']:g}, "
            f"clean {percent(by_worst['report']['clean_accuracy'])}%)."
        )
    return lines


def plot(runs, args, path):
    rows = [(n, i) for n in args.networks for i in args.initial_max_values]
    figure, axes = results.panels(3, len(rows), size=(4, 2.8), sharex=True,
                                  sharey=True)
    metrics = (("clean", lambda run: run["report"]["clean_accuracy"]),
               ("PGD (paper's attack)", _pgd), ("worst case", _worst))
    for (name, initial), row_axes in zip(rows, axes):
        for ax, (title, metric) in zip(row_axes, metrics):
            for position in args.positions:
                chosen = [run for run in runs if run["network"] == name
                          and run["initial"] == initial
                          and run["position"] == position]
                ax.plot([run["max_value"] for run in chosen],
                        [100 * metric(run) for run in chosen], marker="o",
                        markersize=3, label=f"cap layer {position}")
            ax.set_title(f"{name}, initial {initial:g}: {title}", fontsize=9)
            ax.grid(alpha=0.3)
        row_axes[0].set_ylabel("accuracy (%)")
    for ax in axes[-1]:
        ax.set_xlabel("max value")
    axes[0][0].legend(fontsize=8)
    results.save(figure, path, dpi=100)


def write(runs, args):
    return results.write(
        args,
        title="S-ReLU layer position and width (paper sections 4-5)",
        description=description(args),
        reduced=arguments.reduced(args, PAPER, WORDING),
        tables=table(runs),
        reading=reading(runs, args),
        results={"runs": runs},
        figures={"curves.png": lambda path: plot(runs, args, path)},
    )


if __name__ == "__main__":
    results.main(sys.modules[__name__])
