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

    python experiments/srelu_table1.py --help
    python experiments/srelu_table1.py --quick --out /tmp/srelu
    python experiments/srelu_table1.py --natural-epochs 10 --adv-epochs 3

The defaults are the paper's settings; every reduction given on the command
line is written in the table's header. The network ends in logits (the
paper's softmax is folded into the loss), which the attacks need anyway.
"""

import functools
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from common import arguments  # noqa: E402
from common import results  # noqa: E402
from common.evaluation import train_model  # noqa: E402
from common.data import load  # noqa: E402
from common.evaluation import evaluate  # noqa: E402
from common.networks import dense_network  # noqa: E402
from common.results import percent  # noqa: E402

# Sooksatra & Rivas (2023), Table 1: (max value, adversarial training) ->
# clean, FGSM, PGD, CW-L2 accuracy in percent.
PAPER_TABLE = {
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
# The paper's PGD (ART's default) has no random start; CW-L2 is unbounded.
FIXED = {"PGD": {"random_init": False}, "CW-L2": {"eps": math.inf}}
# --training -> recipe of `keras_drelu.training.train` and its arguments
# (recipe argument -> command-line argument); fast FGSM-AT takes one step
# of its own length (1.25 eps).
RECIPES = {
    "none": None,
    "fgsm": ("fgsm-at", {}),
    "pgd": ("pgd-at", {"attack_steps": "train_attack_steps",
                       "step_size": "step_size"}),
}
PAPER = dict(train_size=60000, natural_epochs=20, adv_epochs=10,
             eval_images=10000, cw_iterations=10000, cw_binary_steps=9)
DATASET = "mnist"
DEFAULTS = dict(
    PAPER, train_size=None, batch_size=128, eps=0.1, pgd_steps=10,
    step_size=0.01, train_attack_steps=10, apgd_steps=100,
    square_queries=5000, cw_learning_rate=0.01, cw_initial_const=0.001,
    seed=0,
)
QUICK = dict(
    caps=["0.01"], training=["none", "fgsm"], train_size=1000,
    natural_epochs=1, adv_epochs=1, eval_images=40, cw_iterations=10,
    cw_binary_steps=2, apgd_steps=5, square_queries=20,
)


def cap(text):
    """A `--caps` value: `none` or a positive number, kept as written."""
    if text != "none":
        arguments.positive_float(text)
    return text


OPTIONS = {
    "--caps": dict(nargs="+", type=cap, default=["none", "1", "0.1", "0.01"],
                   help="max values of the 2nd hidden layer"),
    "--training": dict(nargs="+", choices=list(RECIPES), default=list(RECIPES),
                       help="adversarial retraining after natural training"),
}


def network(cap):
    """784-392-196-10 with the 2nd hidden layer capped at `cap`."""
    second = "relu" if cap == "none" else ("srelu", {"max_value": float(cap)})
    return dense_network((392, 196), ["relu", second], name=f"cap_{cap}")


def retrained(model, training, splits, args):
    recipe, names = RECIPES[training]
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return train_model(
        copy, splits, recipe=recipe, epochs=args.adv_epochs, eps=args.eps,
        seed=args.seed,
        **{key: getattr(args, name) for key, name in names.items()},
    )[0]


def run(args):
    splits, x, y = load(args)
    rows = []
    for max_value in args.caps:
        start = time.perf_counter()
        natural, _ = train_model(functools.partial(network, max_value),
                                 splits, epochs=args.natural_epochs,
                                 seed=args.seed)
        natural_seconds = time.perf_counter() - start
        for training in args.training:
            start = time.perf_counter()
            model = (natural if RECIPES[training] is None
                     else retrained(natural, training, splits, args))
            train_seconds = natural_seconds + time.perf_counter() - start
            start = time.perf_counter()
            report = evaluate(
                model, x, y, args, eps=args.eps,
                suite=PAPER_COLUMNS + ADAPTIVE_COLUMNS, fixed=FIXED,
                model_name=f"cap {max_value}, {training}",
            )
            rows.append(dict(cap=max_value, training=training, report=report,
                             train_seconds=train_seconds,
                             eval_seconds=time.perf_counter() - start))
            print(f"cap {max_value:>5} | {training:>4} | clean "
                  f"{report.clean_accuracy:.3f} | PGD "
                  f"{report.accuracy['PGD']:.3f} | worst case "
                  f"{report.worst_case_accuracy:.3f}", flush=True)
    return rows


def description(args):
    return [
        "784-392-196-10 dense network, cap (S-ReLU) on the 2nd hidden layer; "
        f"Adam 1e-3, batch {args.batch_size}, seed {args.seed}. Adversarial "
        "retraining: fast FGSM-AT (Wong et al., 2020) or PGD-AT with "
        f"{args.train_attack_steps} steps of {args.step_size}, eps {args.eps}."
        f" Attacks: L-inf eps {args.eps}; FGSM; PGD {args.pgd_steps} "
        f"iterations, step {args.step_size}, no random start; CW-L2 "
        f"unbounded (lr {args.cw_learning_rate}, initial constant "
        f"{args.cw_initial_const}); APGD-CE {args.apgd_steps} steps, also "
        "through BPDA and transferred from the uncapped twin; Square "
        f"{args.square_queries} queries. Masking checks on.",
        "",
        "Accuracy in percent, *paper / ours* for the paper's columns. "
        "**Worst case** is per example over every L-inf attack (FGSM, PGD, "
        "APGD-CE, BPDA, Transfer, Square); CW-L2 is unbounded and not part "
        "of it. For the uncapped rows BPDA and Transfer are plain APGD-CE.",
    ]


def table(rows):
    header = (["Max val.", "Adv. training", "Clean", *PAPER_COLUMNS,
               *ADAPTIVE_COLUMNS, "**Worst case**", "Flags"])
    cells = []
    for row in rows:
        report = row["report"]
        paper = PAPER_TABLE.get((row["cap"], row["training"]))
        ours = [report.clean_accuracy] + [report.accuracy[name]
                                          for name in PAPER_COLUMNS]
        paired = [f"{paper[i]:.2f} / {percent(value)}" if paper
                  else percent(value) for i, value in enumerate(ours)]
        cells.append(
            [row["cap"], row["training"], *paired]
            + [percent(report.accuracy[name]) for name in ADAPTIVE_COLUMNS]
            + [f"**{percent(report.worst_case_accuracy)}**",
               results.flag_codes([report.to_dict()])]
        )
    return results.markdown_table(header, cells)


def reading(rows, args):
    """Facts read off the numbers, each quoted from the table."""
    lines = []
    for row in rows:
        report = row["report"]
        strongest = min((name for name in report.accuracy if name != "CW-L2"),
                        key=report.accuracy.get)
        lines.append(
            f"- cap {row['cap']}, {row['training']}: the paper's PGD leaves "
            f"{percent(report.accuracy['PGD'])}%, the worst case "
            f"{percent(report.worst_case_accuracy)}%; the strongest single "
            f"attack is {strongest} ({percent(report.accuracy[strongest])}%)."
        )
    for training in args.training:
        chosen = [row for row in rows if row["training"] == training]
        best = max(chosen, key=lambda row: row["report"].worst_case_accuracy)
        lines.append(
            f"- Adversarial training {training}: worst case " + ", ".join(
                f"{percent(row['report'].worst_case_accuracy)}% at cap "
                f"{row['cap']}" for row in chosen
            ) + f"; the highest is at cap {best['cap']}."
        )
    capped = [row for row in rows if row["cap"] != "none"]
    if capped:
        gap = max(capped, key=lambda row: row["report"].accuracy["PGD"]
                  - row["report"].worst_case_accuracy)
        lines.append(
            f"- Largest overstatement by the paper's PGD: cap {gap['cap']}, "
            f"{gap['training']} ({percent(gap['report'].accuracy['PGD'])}% "
            f"vs. {percent(gap['report'].worst_case_accuracy)}% worst case)."
        )
    return lines


def plot(rows, args, path):
    figure, axes = results.panels(len(args.training), size=(4.2, 3.6),
                                  sharey=True)
    positions = range(len(args.caps))
    for ax, training in zip(axes[0], args.training):
        chosen = [row["report"] for row in rows
                  if row["training"] == training]
        series = {
            "clean": [r.clean_accuracy for r in chosen],
            "PGD (paper's attack)": [r.accuracy["PGD"] for r in chosen],
            "worst case": [r.worst_case_accuracy for r in chosen],
        }
        for label, values in series.items():
            ax.plot(positions, [100 * v for v in values], marker="o",
                    label=label)
        paper = [PAPER_TABLE.get((c, training)) for c in args.caps]
        if all(paper):
            ax.plot(positions, [p[2] for p in paper], "k--", marker="x",
                    label="PGD, paper")
        ax.set_xticks(list(positions), args.caps)
        ax.set_xlabel("max value of the 2nd hidden layer")
        ax.set_title(f"adversarial training: {training}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(fontsize=8)
    results.save(figure, path)


def write(rows, args):
    weakest = min(rows, key=lambda row: row["report"].worst_case_accuracy)
    return results.write(
        args,
        title="S-ReLU Table 1 on MNIST: paper vs. this run",
        description=description(args),
        reduced=arguments.reduced(args, PAPER),
        tables=table(rows),
        reading=reading(rows, args),
        results={
            "paper": {f"{cap}/{training}": dict(zip(("clean",)
                                                    + PAPER_COLUMNS, values))
                      for (cap, training), values in PAPER_TABLE.items()},
            "runs": [dict(cap=row["cap"], training=row["training"],
                          train_seconds=row["train_seconds"],
                          eval_seconds=row["eval_seconds"],
                          **row["report"].to_dict()) for row in rows],
        },
        figures={
            "accuracy.png": lambda path: plot(rows, args, path),
            "examples.png": weakest["report"].save_examples_png,
        },
    )


if __name__ == "__main__":
    results.main(sys.modules[__name__])
