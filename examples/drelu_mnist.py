"""D-ReLU paper Table 1 and Figure 11 on MNIST, with the adaptive attacks.

Sooksatra & Rivas (2024), section 6.1: a dense network and a shallow CNN
with a dense layer before the output whose activation is D-ReLU (initial
cap 100, penalty `lambda * sum(m ** 2)`) or, for the baselines, ReLU. The
D-ReLU models are trained naturally over a sweep of `lambda` (Figure 11);
the baselines are PGD adversarial training (AT) and TRADES with beta 1 and
6, each retraining the naturally trained network (paper section 5.4).
Every model is attacked at L-inf eps 0.1 with the paper's FGSM, PGD,
APGD-CE, APGD-DLR and Square, CW-L2 bounded at L2 radius 18, and with the
attacks a cap cannot mask: BPDA(APGD-CE) and APGD-CE transferred from the
uncapped twin. Accuracies are the mean and standard deviation over seeds.

    python examples/drelu_mnist.py --help
    python examples/drelu_mnist.py --quick --out /tmp/drelu
    python examples/drelu_mnist.py --archs dense --train-size 10000 ...

Then `examples/drelu_statistics.py` runs the significance tests on the
`results.json` this writes. The defaults are the paper's settings where it
gives them; every reduction is written in the table's header.
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

from keras_drelu import DReLU  # noqa: E402
from keras_drelu import max_values  # noqa: E402
from keras_drelu.evaluation import build_attack  # noqa: E402
from keras_drelu.evaluation import evaluate_robustness  # noqa: E402
from keras_drelu.training import train  # noqa: E402
from retrofit.data import first_examples  # noqa: E402
from retrofit.data import npz  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mnist.npz"
DEFAULT_OUT = REPO / "docs" / "results" / "drelu_mnist"

PAPER_COLUMNS = ("FGSM", "PGD", "APGD-CE", "APGD-DLR", "CW-L2")
ADAPTIVE_COLUMNS = ("Square", "BPDA(APGD-CE)", "Transfer(APGD-CE)")
ATTACK_NAMES = PAPER_COLUMNS + ADAPTIVE_COLUMNS
# Sooksatra & Rivas (2024), Table 1: clean and PAPER_COLUMNS accuracy (%).
PAPER = {
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
BASELINES = {"AT": ("pgd-at", None), "TRADES-1": ("trades", 1.0),
             "TRADES-6": ("trades", 6.0)}
LAMBDAS = [0.0] + [10.0 ** k for k in range(-7, 5)]
QUICK = dict(
    archs=["dense"], lambdas=[], baselines=["AT", "TRADES-1"], seeds=[0],
    train_size=600,
    natural_epochs=1, adv_epochs=1, eval_images=24, pgd_steps=3,
    apgd_steps=3, cw_iterations=5, cw_binary_steps=1, square_queries=10,
    checks=False,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA,
                        help="MNIST .npz in the keras.datasets layout")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT,
                        help="directory of the tables, JSON and plots")
    parser.add_argument("--archs", nargs="+", choices=sorted(PAPER),
                        default=["dense", "cnn"])
    parser.add_argument("--lambdas", nargs="+", type=float, default=LAMBDAS,
                        help="D-ReLU balancers of the sweep; the paper's "
                        "choice per architecture is always added")
    parser.add_argument("--baselines", nargs="+", choices=list(BASELINES),
                        default=list(BASELINES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--train-size", type=int, default=None,
                        help="training images (random subset, 10%% of them "
                        "held out for validation); all 60000 if unset")
    parser.add_argument("--natural-epochs", type=int, default=2000,
                        help="maximum epochs, with early stopping on the "
                        "validation loss (patience 10) as in the paper")
    parser.add_argument("--adv-epochs", type=int, default=10,
                        help="epochs of AT / TRADES retraining")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden-units", type=int, default=128,
                        help="width of the added layer before the output")
    parser.add_argument("--initial-max-value", type=float, default=100.0)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--cw-eps", type=float, default=18.0)
    parser.add_argument("--train-attack-steps", type=int, default=10,
                        help="PGD steps of AT and TRADES")
    parser.add_argument("--eval-images", type=int, default=10000)
    parser.add_argument("--pgd-steps", type=int, default=20)
    parser.add_argument("--apgd-steps", type=int, default=100)
    parser.add_argument("--cw-iterations", type=int, default=100)
    parser.add_argument("--cw-binary-steps", type=int, default=5)
    parser.add_argument("--square-queries", type=int, default=5000)
    parser.add_argument("--no-checks", dest="checks", action="store_false",
                        help="skip the zero-gradient and large-eps checks")
    parser.add_argument("--quick", action="store_true",
                        help="tiny smoke run (seconds) to check the script; "
                        "not for results")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if any(lam < 0 for lam in args.lambdas):
        parser.error(f"--lambdas must be >= 0: {args.lambdas}")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must be distinct: {args.seeds}")
    return args


def build_model(arch, lam, args):
    """Dense or shallow CNN; `lam=None` puts a ReLU in the added layer."""
    if arch == "dense":
        trunk = [
            keras.layers.Flatten(),
            keras.layers.Dense(392, activation="relu"),
            keras.layers.Dense(196, activation="relu"),
        ]
    else:
        trunk = [
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
        ]
    activation = (
        keras.layers.ReLU() if lam is None
        else DReLU(initial_max_value=args.initial_max_value,
                   max_value_regularizer=lam or None)
    )
    return keras.Sequential(
        [keras.Input((28, 28, 1)), *trunk,
         keras.layers.Dense(args.hidden_units), activation,
         keras.layers.Dense(10)],
        name=arch,
    )


def train_model(arch, method, lam, seed, splits, args):
    common = dict(validation_data=splits.validation, seed=seed, verbose=0)
    if method == "D-ReLU":
        recipe = "drelu" if lam else "standard"
        return train(build_model(arch, lam, args), splits.train,
                     recipe=recipe, epochs=args.natural_epochs,
                     **common).model
    recipe, beta = BASELINES[method]
    extra = {} if beta is None else {"beta": beta}
    return train(
        build_model(arch, None, args), splits.train, recipe=recipe,
        natural_epochs=args.natural_epochs, epochs=args.adv_epochs,
        eps=args.eps, attack_steps=args.train_attack_steps, **common,
        **extra,
    ).model


def evaluate(model, x, y, seed, args):
    common = dict(eps=args.eps, norm="linf", clip_values=(0.0, 1.0),
                  outputs="logits", batch_size=500, seed=seed)
    overrides = {
        "PGD": {"steps": args.pgd_steps},
        "APGD-CE": {"steps": args.apgd_steps},
        "APGD-DLR": {"steps": args.apgd_steps},
        "CW-L2": {"eps": args.cw_eps, "max_iterations": args.cw_iterations,
                  "binary_search_steps": args.cw_binary_steps},
        "Square": {"n_queries": args.square_queries},
    }
    attacks = [build_attack(name, model, common, overrides=overrides)
               for name in ATTACK_NAMES]
    return evaluate_robustness(
        model, x, y, eps=args.eps, suite=attacks, cascade=False,
        checks_enabled=args.checks, seed=seed, verbose=False,
    )


def runs_to_do(args):
    for arch in args.archs:
        lambdas = sorted(set(args.lambdas) | {PAPER_LAMBDA[arch]})
        for seed in args.seeds:
            for lam in lambdas:
                yield arch, "D-ReLU", lam, seed
            for method in args.baselines:
                yield arch, method, None, seed


def load_data(args):
    splits = npz(args.data, batch_size=args.batch_size, validation_split=0.1,
                 seed=0, limit=args.train_size)
    return (splits, *first_examples(splits.test, args.eval_images))


def run(args):
    splits, x_test, y_test = load_data(args)
    runs = []
    for arch, method, lam, seed in runs_to_do(args):
        start = time.perf_counter()
        model = train_model(arch, method, lam, seed, splits, args)
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        report = evaluate(model, x_test, y_test, seed, args)
        eval_seconds = time.perf_counter() - start
        caps = np.concatenate(
            [c.ravel() for c in max_values(model).values()] or [np.zeros(0)]
        )
        row = dict(arch=arch, method=method, lam=lam, seed=seed,
                   cap_mean=float(caps.mean()) if caps.size else None,
                   train_seconds=train_seconds, eval_seconds=eval_seconds,
                   clean=report.clean_accuracy,
                   worst_case=report.worst_case_accuracy,
                   accuracy=dict(report.accuracy),
                   flags=sorted({flag.code for flag in report.flags}),
                   report=report.to_dict())
        runs.append(row)
        label = method if lam is None else f"D-ReLU lambda={lam:g}"
        print(f"{arch:>5} | {label:>20} | seed {seed} | clean "
              f"{row['clean']:.3f} | PGD {row['accuracy']['PGD']:.3f} | "
              f"worst {row['worst_case']:.3f} | mean cap {row['cap_mean']} | "
              f"train {train_seconds:.0f}s "
              f"eval {eval_seconds:.0f}s", flush=True)
    return runs


def methods_of(args):
    """The rows of Table 1: the baselines run, then D-ReLU."""
    return [*args.baselines, "D-ReLU"]


def columns_of(run):
    return ([run["clean"]] + [run["accuracy"][name] for name in ATTACK_NAMES]
            + [run["worst_case"]])


def summary(runs):
    """(arch, method, lambda) -> mean and std (ddof 1) over seeds, in %."""
    groups = {}
    for run in runs:
        key = (run["arch"], run["method"], run["lam"])
        groups.setdefault(key, []).append(columns_of(run))
    result = {}
    for key, values in groups.items():
        values = 100 * np.asarray(values)
        std = (values.std(axis=0, ddof=1) if len(values) > 1
               else np.full(values.shape[1], np.nan))
        result[key] = (values.mean(axis=0), std, len(values))
    return result


def _cell(mean, std):
    return f"{mean:.1f}" if np.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def header(args):
    n_train = min(args.train_size or 60000, 60000)
    reduced = []
    if n_train < 60000:
        reduced.append(f"{n_train} training images (paper: 60000)")
    if args.natural_epochs < 2000:
        reduced.append(f"at most {args.natural_epochs} natural epochs "
                       "(paper: 2000 with early stopping)")
    if args.adv_epochs != 10:
        reduced.append(f"{args.adv_epochs} AT/TRADES epochs (paper: 10)")
    if args.eval_images < 10000:
        reduced.append(f"{args.eval_images} test images (paper: 10000)")
    if args.square_queries < 5000:
        reduced.append(f"Square with {args.square_queries} queries "
                       "(AutoAttack: 5000)")
    if args.initial_max_value != 100.0:
        reduced.append(
            f"initial cap {args.initial_max_value:g} (paper: 100; Adam moves "
            "a cap by about its learning rate per step, so caps starting at "
            "100 barely come down in a budget of a few thousand steps)"
        )
    if args.lambdas != LAMBDAS:
        reduced.append("lambda sweep " + (", ".join(
            f"{lam:g}" for lam in args.lambdas) or "none") + " besides the "
            "paper's lambda (paper: 0, 1e-7 ... 1e4)")
    return [
        f"Architectures {', '.join(args.archs)}; added layer of "
        f"{args.hidden_units} units (D-ReLU, initial cap "
        f"{args.initial_max_value:g}, or ReLU for AT/TRADES); Adam 1e-3, "
        f"batch {args.batch_size}, plateau halving and early stopping on the "
        f"validation loss; seeds {', '.join(map(str, args.seeds))}. AT and "
        f"TRADES retrain the natural network with PGD-{args.train_attack_steps}"
        f" at eps {args.eps}. Attacks at L-inf eps {args.eps}: FGSM, PGD "
        f"{args.pgd_steps} steps, APGD-CE/DLR {args.apgd_steps} steps, "
        f"Square {args.square_queries} queries, BPDA(APGD-CE), "
        f"Transfer(APGD-CE) from the uncapped twin; CW-L2 at L2 radius "
        f"{args.cw_eps:g}, {args.cw_iterations} iterations x "
        f"{args.cw_binary_steps} binary-search steps (the paper gives no CW "
        "budget).",
        "",
        "**Reduced from the paper:** " + ("; ".join(reduced) or "nothing")
        + ".",
        "",
        "Accuracy in percent, mean ± standard deviation over seeds; *paper / "
        "ours* in the paper's columns. **Worst case** is per example over "
        "every L-inf attack; CW-L2 (another threat model) is not part of it. "
        "For the ReLU baselines BPDA and Transfer are plain APGD-CE. "
        "*Mean cap*: the trained D-ReLU caps, averaged over units and seeds.",
        "",
    ]


def table1(args, stats):
    names = ["Clean", *ATTACK_NAMES, "**Worst case**"]
    lines = ["## Table 1: robust training schemes", "",
             "| Model | Training | " + " | ".join(names) + " |",
             "|" + "---|" * (len(names) + 2)]
    for arch in args.archs:
        for method in methods_of(args):
            lam = PAPER_LAMBDA[arch] if method == "D-ReLU" else None
            mean, std, _ = stats[(arch, method, lam)]
            paper = PAPER[arch][method]
            cells = []
            for i in range(len(names)):
                cell = _cell(mean[i], std[i])
                if i <= len(PAPER_COLUMNS):
                    cell = f"{paper[i]:.2f} / {cell}"
                cells.append(f"**{cell}**" if i == len(names) - 1 else cell)
            label = f"D-ReLU-{lam:g}" if lam else method
            lines.append(f"| {arch} | {label} | " + " | ".join(cells) + " |")
    return lines


def sweep_table(args, stats, runs):
    names = ["Clean", *ATTACK_NAMES, "**Worst case**"]
    caps = {}
    for run in runs:
        if run["method"] == "D-ReLU":
            caps.setdefault((run["arch"], run["lam"]), []).append(
                run["cap_mean"])
    caps = {key: float(np.mean(values)) for key, values in caps.items()}
    lines = ["", "## Figure 11 as a table: the lambda sweep (D-ReLU)", "",
             "| Model | lambda | Mean cap | " + " | ".join(names) + " |",
             "|" + "---|" * (len(names) + 3)]
    for (arch, method, lam), (mean, std, _) in sorted(
        stats.items(), key=lambda item: (item[0][0], item[0][2] or 0)
    ):
        if method == "D-ReLU":
            cells = [_cell(m, s) for m, s in zip(mean, std)]
            lines.append(f"| {arch} | {lam:g} | {caps[(arch, lam)]:.3g} | "
                         + " | ".join(cells) + " |")
    return lines


def reading(args, stats, runs):
    """Facts read off the numbers, generated so that none is typed by hand."""
    lines = ["", "## Reading (generated from the numbers above)", ""]
    flags = {}
    for run in runs:
        name = (f"{run['arch']} D-ReLU-{run['lam']:g}"
                if run["method"] == "D-ReLU" else
                f"{run['arch']} {run['method']}")
        flags.setdefault(name, set()).update(run["flags"])
    lines.append(
        "- Evaluation flags (any seed; see `keras_drelu.evaluation."
        "FLAG_DOCS`): " + "; ".join(
            f"{name}: {', '.join(sorted(codes)) or 'none'}"
            for name, codes in flags.items()) + "."
    )
    pgd, worst = 1 + ATTACK_NAMES.index("PGD"), -1
    for arch in args.archs:
        rows = {method: stats[(arch, method, PAPER_LAMBDA[arch]
                               if method == "D-ReLU" else None)][0]
                for method in methods_of(args)}
        by_pgd = max(rows, key=lambda m: rows[m][pgd])
        by_worst = max(rows, key=lambda m: rows[m][worst])
        drelu = rows["D-ReLU"]
        lines.append(
            f"- {arch}: best under the paper's PGD is {by_pgd} "
            f"({rows[by_pgd][pgd]:.1f}%); best in the per-example worst case "
            f"is {by_worst} ({rows[by_worst][worst]:.1f}%). D-ReLU-"
            f"{PAPER_LAMBDA[arch]:g} goes from {drelu[pgd]:.1f}% (PGD) to "
            f"{drelu[worst]:.1f}% (worst case)."
        )
        sweep = {lam: mean for (a, m, lam), (mean, _, _) in stats.items()
                 if a == arch and m == "D-ReLU"}
        best = max(sweep, key=lambda lam: sweep[lam][worst])
        lines.append(
            f"- {arch} sweep: the highest worst-case accuracy of any lambda "
            f"is {sweep[best][worst]:.1f}% (lambda {best:g}, clean "
            f"{sweep[best][0]:.1f}%); the highest PGD accuracy is "
            f"{max(v[pgd] for v in sweep.values()):.1f}%."
        )
    return lines


def plot_sweep(args, stats, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["Clean", *ATTACK_NAMES, "worst case"]
    figure, axes = plt.subplots(1, len(args.archs), sharey=True,
                                figsize=(5.5 * len(args.archs), 4),
                                squeeze=False)
    for ax, arch in zip(axes[0], args.archs):
        points = sorted((lam, mean, std) for (a, m, lam), (mean, std, _)
                        in stats.items() if a == arch and m == "D-ReLU")
        # lambda 0 sits one decade left of the smallest positive lambda.
        positive = [lam for lam, _, _ in points if lam > 0]
        zero_at = min(positive) / 10 if positive else 1.0
        xs = [lam or zero_at for lam, _, _ in points]
        for i, name in enumerate(names):
            means = np.array([mean[i] for _, mean, _ in points])
            stds = np.nan_to_num([std[i] for _, _, std in points])
            style = dict(linewidth=2.5, color="black") if (
                name == "worst case") else {}
            ax.errorbar(xs, means, yerr=stds, marker="o", markersize=3,
                        capsize=2, label=name, **style)
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{lam:g}" for lam, _, _ in points], rotation=60,
                      fontsize=7)
        ax.set_xlabel("lambda (balancer)")
        ax.set_title(f"{arch}: D-ReLU before the output")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_table1(args, stats, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = methods_of(args)
    picks = {"PGD (paper's attack)": 1 + ATTACK_NAMES.index("PGD"),
             "worst case": -1}
    figure, axes = plt.subplots(1, len(args.archs), sharey=True,
                                figsize=(5 * len(args.archs), 3.6),
                                squeeze=False)
    width = 0.38
    for ax, arch in zip(axes[0], args.archs):
        for j, (label, index) in enumerate(picks.items()):
            means, stds = [], []
            for method in methods:
                lam = PAPER_LAMBDA[arch] if method == "D-ReLU" else None
                mean, std, _ = stats[(arch, method, lam)]
                means.append(mean[index])
                stds.append(0.0 if np.isnan(std[index]) else std[index])
            ax.bar(np.arange(len(methods)) + (j - 0.5) * width, means, width,
                   yerr=stds, capsize=3, label=label)
        ax.set_xticks(range(len(methods)), methods)
        ax.set_title(arch)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(runs, args):
    args.out.mkdir(parents=True, exist_ok=True)
    stats = summary(runs)
    lines = (["# D-ReLU on MNIST (paper Table 1 and Figure 11): paper vs. "
              "this run", ""] + header(args) + table1(args, stats)
             + sweep_table(args, stats, runs) + reading(args, stats, runs))
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    settings = {key: str(value) if isinstance(value, pathlib.Path) else value
                for key, value in vars(args).items()}
    results = {
        "settings": settings,
        "columns": ["clean", *ATTACK_NAMES, "worst_case"],
        "paper": {arch: {method: dict(zip(("clean",) + PAPER_COLUMNS, v))
                         for method, v in methods.items()}
                  for arch, methods in PAPER.items()},
        "paper_lambda": PAPER_LAMBDA,
        "runs": runs,
    }
    (args.out / "results.json").write_text(
        json.dumps(results, indent=2, default=str) + "\n")
    plot_sweep(args, stats, args.out / "figure11_sweep.png")
    plot_table1(args, stats, args.out / "table1.png")
    return [args.out / name for name in
            ("table.md", "results.json", "figure11_sweep.png", "table1.png")]


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
