"""Writes `docs/results/README.md`: each experiment, its command, its reading.

The readings are copied from the `table.md` each experiment wrote, so the
index says only what the tables say; a reading that quotes a number its
table lacks is marked. Run it after rerunning an experiment:

    python experiments/results_index.py
"""

import argparse
import pathlib

from common.arguments import RESULTS
from common.results import split_reading
from common.results import unquoted_numbers

# folder of docs/results -> what it reproduces, the command that wrote it,
# and about how long that took on 2 CPU cores.
EXPERIMENTS = {
    "srelu_table1": (
        "S-ReLU paper, Table 1",
        "python experiments/srelu_table1.py --natural-epochs 10 "
        "--adv-epochs 3 --eval-images 500 --cw-iterations 200 "
        "--cw-binary-steps 6 --square-queries 1000",
        "8 min",
    ),
    "drelu_mnist_dense": (
        "D-ReLU paper, Table 1 and Figure 11, dense network",
        "python experiments/drelu_mnist.py --archs dense "
        "--out docs/results/drelu_mnist_dense --train-size 12000 "
        "--batch-size 64 --natural-epochs 10 "
        "--adv-epochs 2 --eval-images 200 --square-queries 1000 "
        "--lambdas 0 1e-6 1e-3 1 1e4",
        "7 min",
    ),
    "drelu_mnist_cnn": (
        "D-ReLU paper, Table 1 and Figure 11, shallow CNN",
        "python experiments/drelu_mnist.py --archs cnn "
        "--out docs/results/drelu_mnist_cnn --train-size 6000 "
        "--batch-size 64 --natural-epochs 5 "
        "--adv-epochs 1 --eval-images 200 --square-queries 1000 "
        "--lambdas 0 1e-3 1e2",
        "26 min",
    ),
    "drelu_statistics": (
        "Significance tests (D-ReLU paper, section 6.2)",
        "python experiments/drelu_statistics.py --results "
        "docs/results/drelu_mnist_dense/results.json "
        "docs/results/drelu_mnist_cnn/results.json",
        "seconds",
    ),
    "srelu_layer_position": (
        "S-ReLU paper, sections 4-5 (layer position and width)",
        "python experiments/srelu_layer_position.py --initial-max-values 0.1 "
        "1 --max-values 0.01 0.03 0.05 0.1 0.15 --train-size 20000 "
        "--epochs 5 --eval-images 200 --apgd-steps 30 --square-queries 300",
        "5 min",
    ),
    "compare_heads_cifar10": (
        "ReLU vs D-ReLU vs SPLASH activations on CIFAR-10",
        "python experiments/compare_heads_cifar10.py",
        "5 min",
    ),
    "cap_learning": (
        "D-ReLU caps against training steps on MNIST, stored linearly (the "
        "paper's layer) or as a logarithm",
        "python experiments/cap_learning.py",
        "8 min",
    ),
    "cap_learning_decay": (
        "The same, with a weight decay on the Dense after the caps (not in "
        "the paper), which breaks the scale symmetry",
        "python experiments/cap_learning.py --outgoing-decay 1e-3 "
        "--reference-epochs 10 --out docs/results/cap_learning_decay",
        "5 min",
    ),
    "cifar10_retrofit": (
        "D-ReLU placements (head, input) vs plain ReLU on CIFAR-10, eps "
        "curves, CPU scale",
        "python experiments/cifar10_retrofit.py --eval-images 200",
        "19 min",
    ),
    "robust_retrofit_mnist": (
        "Robust training with and without learned caps (plain, PGD-AT, "
        "TRADES, D-ReLU + PGD-AT, D-ReLU + TRADES, D-ReLU alone), MNIST, "
        "eps 0.3",
        "python experiments/robust_retrofit.py --setting mnist "
        "--train-attack-steps 5 --out docs/results/robust_retrofit_mnist",
        "18 min",
    ),
    "robust_retrofit_cifar10": (
        "Robust training with and without learned caps (plain, PGD-AT, "
        "TRADES, D-ReLU + PGD-AT, D-ReLU + TRADES, D-ReLU alone), CIFAR-10 "
        "subset, eps 8/255",
        "python experiments/robust_retrofit.py --setting cifar10 "
        "--out docs/results/robust_retrofit_cifar10",
        "52 min",
    ),
    "robust_retrofit_pretrained": (
        "Robust training with and without learned caps (plain, PGD-AT, "
        "TRADES, D-ReLU + PGD-AT, D-ReLU + TRADES, D-ReLU alone), "
        "MobileNetV2 pretrained here on half the CIFAR-10 classes, "
        "retrofitted on the other half, eps 8/255",
        "python experiments/robust_retrofit.py --setting pretrained "
        "--out docs/results/robust_retrofit_pretrained",
        "67 min",
    ),
    "pretrained_backbone": (
        "Pretrained means pretrained: MobileNetV2 pretrained here on half "
        "the CIFAR-10 classes, retrofitted with TRADES on the other half, "
        "against random weights at equal budget",
        "python experiments/pretrained_backbone.py --variants scratch "
        "pretrained 'pretrained, no probe'",
        "35 min",
    ),
    "robust_retrofit_summary": (
        "Robust training with and without learned caps: the settings "
        "together, with significance tests",
        "python experiments/robust_retrofit_summary.py --results "
        "docs/results/robust_retrofit_mnist/results.json "
        "docs/results/robust_retrofit_cifar10/results.json "
        "docs/results/robust_retrofit_pretrained/results.json",
        "seconds",
    ),
}
INTRODUCTION = """\
# Experiment results

Each folder holds what one run of a script in `experiments/` wrote: `table.md` (the
command, the settings, what they reduce from the paper, the tables and a reading
generated from the numbers), `results.json` (settings and per-model reports with timings
and flags) and figures. Numbers are never edited by hand: rerun the command to
regenerate them, then `python experiments/results_index.py` to regenerate this index.
All runs are CPU-sized (2 shared cores), so every table says what it reduced.

Every table puts the paper's attacks beside the attacks a capped ReLU cannot mask:
`BPDA(APGD-CE)` (straight-through gradients through the caps), `Transfer(APGD-CE)`
(crafted on the uncapped twin), the gradient-free `Square`, and the **per-example worst
case** over all L-inf attacks, which is the number to quote. Flags are the evaluation's
masking checks (`keras_drelu.evaluation.FLAG_DOCS`).
"""


def _links(folder):
    files = sorted(folder.iterdir(), key=lambda path: (
        [".md", ".png", ".json"].index(path.suffix), path.name))
    return ", ".join(f"[{path.name}]({folder.name}/{path.name})"
                     for path in files)


def _reading(folder):
    # table.md, or the one file an older script wrote under another name.
    table = min(folder.glob("*.md"), key=lambda path: path.name != "table.md")
    tables, reading = split_reading(table.read_text())
    if not reading:
        return [f"No generated reading in `{table.name}` yet: rerun the "
                "command."]
    lines = [reading]
    missing = unquoted_numbers(reading, tables)
    if missing:
        lines += ["", f"**This reading quotes numbers its tables lack "
                  f"({', '.join(f'{n:g}' for n in sorted(missing))}): it "
                  "was written by an older script; rerun the command.**"]
    return lines


def index(results=RESULTS):
    """The text of `docs/results/README.md` for the folders in `results`."""
    lines = [INTRODUCTION, "| Experiment | Command | Files |",
             "|---|---|---|"]
    for name, (title, command, duration) in EXPERIMENTS.items():
        lines.append(f"| {title} | `{command}` ({duration}) | "
                     f"{_links(results / name)} |")
    lines += ["", "## Readings (generated from each table)"]
    for name, (title, _, _) in EXPERIMENTS.items():
        lines += ["", f"### {title}", "", *_reading(results / name)]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS,
                        help="folder of the experiments' results")
    args = parser.parse_args(argv)
    path = args.results / "README.md"
    path.write_text(index(args.results))
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
