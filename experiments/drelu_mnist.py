"""D-ReLU paper Table 1 and Figure 11 on MNIST, with the adaptive attacks.

Sooksatra & Rivas (2024), section 6.1: a dense network and a shallow CNN
with a dense layer before the output whose activation is D-ReLU (initial
cap 100, penalty `lambda * sum(m ** 2)`) or, for the baselines, ReLU. The
D-ReLU models are trained naturally over a sweep of `lambda` (Figure 11);
the baselines are the undefended ReLU network (natural training, not in
the paper), PGD adversarial training (AT) and TRADES with beta 1 and 6,
each retraining the naturally trained network (paper section 5.4). Every
model is attacked at L-inf eps 0.1 with the paper's FGSM, PGD, APGD-CE,
APGD-DLR and Square, CW-L2 bounded at L2 radius 18, and with the attacks a
cap cannot mask: BPDA(APGD-CE) and APGD-CE transferred from the uncapped
twin. Accuracies are the mean and standard deviation over seeds.

    python experiments/drelu_mnist.py --help
    python experiments/drelu_mnist.py --quick --out /tmp/drelu
    python experiments/drelu_mnist.py --archs dense --train-size 10000 ...

Then `experiments/drelu_statistics.py` runs the significance tests on the
`results.json` this writes. The defaults are the paper's settings where it
gives them; every reduction is written in the table's header.
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
from common.networks import shallow_cnn  # noqa: E402
from keras_drelu import max_values  # noqa: E402

PAPER_COLUMNS = ("FGSM", "PGD", "APGD-CE", "APGD-DLR", "CW-L2")
ADAPTIVE_COLUMNS = ("Square", "BPDA(APGD-CE)", "Transfer(APGD-CE)")
ATTACKS = PAPER_COLUMNS + ADAPTIVE_COLUMNS
# Sooksatra & Rivas (2024), Table 1: clean and PAPER_COLUMNS accuracy (%).
PAPER_TABLE = {
    "dense": {
        "AT": (98.10, 89.77, 87.70, 87.63, 87.47, 12.57),
        "TRADES-1": (98.07, 93.03, 90.87, 90.97, 90.83, 16.50),
        "TRADES-6": (96.20, 91.40, 89.53, 89.57, 89.13, 12.83),
        "D-ReLU": (97.77, 97.47, 97.10, 96.93, 97.03, 12.63),
    },
    "cnn": {
        "AT": (99.20, 96.77, 95.83, 95.70, 95.73, 16.47),
        "TRADES-1": (98.90, 96.93, 96.77, 96.60, 96.67, 13.87),
        "TRADES-6": (98.17, 96.47, 95.30, 95.03, 95.03, 16.23),
        "D-ReLU": (99.40, 98.73, 99.00, 98.30, 98.10, 16.60),
    },
}
# The paper's chosen balancer per architecture (Table 1).
PAPER_LAMBDA = {"dense": 1e2, "cnn": 1e-1}
LAMBDAS = [0.0] + [10.0 ** k for k in range(-7, 5)]


def _natural(args):
    return dict(recipe="standard", epochs=args.natural_epochs)


def _retrained(recipe, **extra):
    def arguments_of(args):
        return dict(recipe=recipe, natural_epochs=args.natural_epochs,
                    epochs=args.adv_epochs, eps=args.eps,
                    attack_steps=args.train_attack_steps, **extra)

    return arguments_of


# method -> activation of the added layer, and its training's arguments.
METHODS = {
    "D-ReLU": ("drelu", _natural),
    "ReLU": ("relu", _natural),
    "AT": ("relu", _retrained("pgd-at")),
    "TRADES-1": ("relu", _retrained("trades", beta=1.0)),
    "TRADES-6": ("relu", _retrained("trades", beta=6.0)),
}
BASELINES = [method for method in METHODS if method != "D-ReLU"]
PAPER = dict(train_size=60000, natural_epochs=2000, adv_epochs=10,
             eval_images=10000, square_queries=5000, initial_max_value=100.0,
             lambdas=LAMBDAS)
WORDING = dict(lambdas="lambda sweep {ours} besides the paper's lambda "
               "(paper: 0, 1e-7 ... 1e4)")
DATASET = "mnist"
DEFAULTS = dict(
    train_size=None, natural_epochs=2000, adv_epochs=10, batch_size=128,
    units=128, initial_max_value=100.0, eps=0.1, cw_eps=18.0,
    train_attack_steps=10, eval_images=10000, pgd_steps=20, apgd_steps=100,
    cw_iterations=100, cw_binary_steps=5, square_queries=5000,
)
QUICK = dict(
    archs=["dense"], lambdas=[], baselines=["AT", "TRADES-1"], seeds=[0],
    train_size=600, natural_epochs=1, adv_epochs=1, eval_images=24,
    pgd_steps=3, apgd_steps=3, cw_iterations=5, cw_binary_steps=1,
    square_queries=10,
)


def _dense(activation, units, settings):
    return dense_network((392, 196, units),
                         ["relu", "relu", (activation, settings)],
                         name="dense")


def _cnn(activation, units, settings):
    return shallow_cnn(activation, filters=(32, 64), padding="valid",
                       input_shape=(28, 28, 1), units=units, name="cnn",
                       **settings)


# The paper's two architectures, each with its activation before the output.
ARCHS = {"dense": _dense, "cnn": _cnn}


OPTIONS = {
    "--archs": dict(nargs="+", choices=list(ARCHS), default=list(ARCHS)),
    "--lambdas": dict(nargs="+", type=arguments.non_negative_float,
                      default=LAMBDAS,
                      help="D-ReLU balancers of the sweep; the paper's choice "
                      "per architecture is always added"),
    "--baselines": dict(nargs="+", choices=BASELINES, default=BASELINES),
    "--seeds": dict(nargs="+", type=arguments.non_negative_int,
                    action=arguments.Distinct, default=[0, 1, 2]),
}


def runs_to_do(args):
    for arch in args.archs:
        lambdas = sorted(set(args.lambdas) | {PAPER_LAMBDA[arch]})
        for seed in args.seeds:
            for lam in lambdas:
                yield arch, "D-ReLU", lam, seed
            for method in args.baselines:
                yield arch, method, None, seed


def run(args):
    splits, x, y = load(args, validation_split=0.1)
    runs = []
    for arch, method, lam, seed in runs_to_do(args):
        activation, recipe = METHODS[method]
        settings = dict(lam=lam or 0.0,
                        initial_max_value=args.initial_max_value)
        start = time.perf_counter()
        model, _ = train_model(
            lambda: ARCHS[arch](activation, args.units, settings), splits,
            seed=seed, **recipe(args),
        )
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        report = evaluate(model, x, y, args, eps=args.eps, suite=ATTACKS,
                          seed=seed)
        caps = [np.ravel(c) for c in max_values(model).values()]
        runs.append(dict(
            arch=arch, method=method, lam=lam, seed=seed,
            cap_mean=float(np.mean(np.concatenate(caps))) if caps else None,
            train_seconds=train_seconds,
            eval_seconds=time.perf_counter() - start,
            clean=report.clean_accuracy, worst_case=report.worst_case_accuracy,
            accuracy=dict(report.accuracy), report=report.to_dict(),
        ))
        print(f"{arch:>5} | {label(method, lam):>16} | seed {seed} | clean "
              f"{report.clean_accuracy:.3f} | PGD "
              f"{report.accuracy['PGD']:.3f} | worst "
              f"{report.worst_case_accuracy:.3f}", flush=True)
    return runs


def label(method, lam):
    return method if lam is None else f"{method}-{lam:g}"


def table1_rows(args, arch):
    """Table 1's `(method, lambda)`: the baselines, then the paper's D-ReLU."""
    return ([(method, None) for method in args.baselines]
            + [("D-ReLU", PAPER_LAMBDA[arch])])


def summary(runs):
    """(arch, method, lambda) -> mean and std (ddof 1) over seeds in %, runs."""
    groups = {}
    for run in runs:
        groups.setdefault((run["arch"], run["method"], run["lam"]),
                          []).append(run)
    result = {}
    for key, chosen in groups.items():
        values = 100 * np.array([
            [run["clean"], *(run["accuracy"][name] for name in ATTACKS),
             run["worst_case"]] for run in chosen
        ])
        std = (values.std(axis=0, ddof=1) if len(values) > 1
               else np.full(values.shape[1], np.nan))
        result[key] = (values.mean(axis=0), std, chosen)
    return result


def _cell(mean, std):
    return f"{mean:.1f}" if np.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def description(args):
    return [
        f"Architectures {', '.join(args.archs)}; added layer of "
        f"{args.units} units (D-ReLU, initial cap "
        f"{args.initial_max_value:g}, or ReLU for the baselines); Adam 1e-3, "
        f"batch {args.batch_size}, plateau halving and early stopping on the "
        f"validation loss; seeds {', '.join(map(str, args.seeds))}. AT and "
        f"TRADES retrain the natural network with PGD-"
        f"{args.train_attack_steps} at eps {args.eps}. Attacks at L-inf eps "
        f"{args.eps}: FGSM, PGD {args.pgd_steps} steps, APGD-CE/DLR "
        f"{args.apgd_steps} steps, Square {args.square_queries} queries, "
        "BPDA(APGD-CE), Transfer(APGD-CE) from the uncapped twin; CW-L2 at "
        f"L2 radius {args.cw_eps:g}, {args.cw_iterations} iterations x "
        f"{args.cw_binary_steps} binary-search steps (the paper gives no CW "
        "budget). Masking checks on.",
        "",
        "Accuracy in percent, mean ± standard deviation over seeds; *paper / "
        "ours* in the paper's columns. **Worst case** is per example over "
        "every L-inf attack; CW-L2 (another threat model) is not part of it. "
        "For the ReLU baselines BPDA and Transfer are plain APGD-CE. "
        "*Mean cap*: the trained D-ReLU caps, averaged over units and seeds. "
        "Flags: raised on any seed.",
    ]


COLUMNS = ["Clean", *ATTACKS, "**Worst case**"]


def _cells(stats, paper=None):
    mean, std, chosen = stats
    cells = [_cell(m, s) for m, s in zip(mean, std)]
    for i, value in enumerate(paper or ()):
        cells[i] = f"{value:.2f} / {cells[i]}"
    cells[-1] = f"**{cells[-1]}**"
    return cells + [results.flag_codes([run["report"] for run in chosen])]


def table1(args, stats):
    rows = []
    for arch in args.archs:
        for method, lam in table1_rows(args, arch):
            rows.append([arch, label(method, lam)] + _cells(
                stats[(arch, method, lam)], PAPER_TABLE[arch].get(method)))
    return (["## Table 1: robust training schemes", ""]
            + results.markdown_table(["Model", "Training", *COLUMNS,
                                      "Flags"], rows))


def sweep_table(stats):
    rows = [
        [arch, f"{lam:g}", f"{np.mean([r['cap_mean'] for r in chosen]):.3g}",
         *_cells((mean, std, chosen))]
        for (arch, method, lam), (mean, std, chosen) in sorted(
            stats.items(), key=lambda item: (item[0][0], item[0][2] or 0))
        if method == "D-ReLU"
    ]
    return (["", "## Figure 11 as a table: the lambda sweep (D-ReLU)", ""]
            + results.markdown_table(["Model", "lambda", "Mean cap",
                                      *COLUMNS, "Flags"], rows))


def reading(args, stats):
    """Facts read off the numbers, each quoted from the tables."""
    pgd, worst = 1 + ATTACKS.index("PGD"), -1
    lines = []
    for arch in args.archs:
        rows = {label(method, lam): stats[(arch, method, lam)][0]
                for method, lam in table1_rows(args, arch)}
        by_pgd = max(rows, key=lambda name: rows[name][pgd])
        by_worst = max(rows, key=lambda name: rows[name][worst])
        drelu = label("D-ReLU", PAPER_LAMBDA[arch])
        lines.append(
            f"- {arch}: best under the paper's PGD is {by_pgd} "
            f"({rows[by_pgd][pgd]:.1f}%); best in the per-example worst case "
            f"is {by_worst} ({rows[by_worst][worst]:.1f}%). {drelu} goes "
            f"from {rows[drelu][pgd]:.1f}% (PGD) to {rows[drelu][worst]:.1f}% "
            "(worst case)."
        )
        if "ReLU" in rows:
            lines.append(
                f"- {arch}, undefended ReLU network: "
                f"{rows['ReLU'][pgd]:.1f}% under PGD, "
                f"{rows['ReLU'][worst]:.1f}% in the worst case."
            )
        sweep = {lam: mean for (a, m, lam), (mean, _, _) in stats.items()
                 if a == arch and m == "D-ReLU"}
        best = max(sweep, key=lambda lam: sweep[lam][worst])
        top = max(sweep, key=lambda lam: sweep[lam][pgd])
        lines.append(
            f"- {arch} sweep: the highest worst-case accuracy of any lambda "
            f"is {sweep[best][worst]:.1f}% (lambda {best:g}, clean "
            f"{sweep[best][0]:.1f}%); the highest PGD accuracy is "
            f"{sweep[top][pgd]:.1f}% (lambda {top:g})."
        )
    return lines


def plot_sweep(args, stats, path):
    names = ["Clean", *ATTACKS, "worst case"]
    figure, axes = results.panels(len(args.archs), size=(5.5, 4),
                                  sharey=True)
    for ax, arch in zip(axes[0], args.archs):
        points = sorted((lam, mean, std) for (a, m, lam), (mean, std, _)
                        in stats.items() if a == arch and m == "D-ReLU")
        # lambda 0 sits one decade left of the smallest positive lambda.
        positive = [lam for lam, _, _ in points if lam > 0]
        zero_at = min(positive) / 10 if positive else 1.0
        xs = [lam or zero_at for lam, _, _ in points]
        for i, name in enumerate(names):
            style = (dict(linewidth=2.5, color="black")
                     if name == "worst case" else {})
            ax.errorbar(xs, [mean[i] for _, mean, _ in points],
                        yerr=np.nan_to_num([std[i] for _, _, std in points]),
                        marker="o", markersize=3, capsize=2, label=name,
                        **style)
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{lam:g}" for lam, _, _ in points], rotation=60,
                      fontsize=7)
        ax.set_xlabel("lambda (balancer)")
        ax.set_title(f"{arch}: D-ReLU before the output")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    results.save(figure, path)


def plot_table1(args, stats, path):
    methods = [*args.baselines, "D-ReLU"]
    picks = {"PGD (paper's attack)": 1 + ATTACKS.index("PGD"),
             "worst case": -1}
    figure, axes = results.panels(len(args.archs), size=(5, 3.6),
                                  sharey=True)
    width = 0.38
    for ax, arch in zip(axes[0], args.archs):
        rows = [stats[key] for key in
                ((arch, *row) for row in table1_rows(args, arch))]
        for j, (name, index) in enumerate(picks.items()):
            ax.bar(np.arange(len(methods)) + (j - 0.5) * width,
                   [mean[index] for mean, _, _ in rows], width,
                   yerr=[np.nan_to_num(std[index]) for _, std, _ in rows],
                   capsize=3, label=name)
        ax.set_xticks(range(len(methods)), methods)
        ax.set_title(arch)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(fontsize=8)
    results.save(figure, path)


def write(runs, args):
    stats = summary(runs)
    return results.write(
        args,
        title="D-ReLU on MNIST (paper Table 1 and Figure 11): paper vs. this "
        "run",
        description=description(args),
        reduced=arguments.reduced(args, PAPER, WORDING),
        tables=table1(args, stats) + sweep_table(stats),
        reading=reading(args, stats),
        results={
            "columns": ["clean", *ATTACKS, "worst_case"],
            "paper": {arch: {method: dict(zip(("clean",) + PAPER_COLUMNS, v))
                             for method, v in methods.items()}
                      for arch, methods in PAPER_TABLE.items()},
            "paper_lambda": PAPER_LAMBDA,
            "runs": runs,
        },
        figures={
            "figure11_sweep.png": lambda path: plot_sweep(args, stats, path),
            "table1.png": lambda path: plot_table1(args, stats, path),
        },
    )


if __name__ == "__main__":
    results.main(sys.modules[__name__])
