"""Significance tests over the methods x settings table of the D-ReLU runs.

The D-ReLU paper's section 6.2 procedure (Demšar, 2006) with
`keras_drelu.stats`: a one-way ANOVA over methods, the Friedman test with
the Iman-Davenport F, and the Nemenyi critical difference with its
diagram. The rows are the training methods of Table 1 (AT, TRADES-1,
TRADES-6, D-ReLU at the paper's lambda); a setting (column) is one
architecture, seed and attack. It runs twice: over the paper's attacks
(FGSM, PGD, APGD-CE, APGD-DLR, CW-L2), as the paper does, and over the
attacks a cap cannot mask plus the per-example worst case (Square,
BPDA(APGD-CE), Transfer(APGD-CE), worst case).

    python examples/drelu_statistics.py --help
    python examples/drelu_statistics.py \\
        --results docs/results/drelu_mnist_dense/results.json \\
                  docs/results/drelu_mnist_cnn/results.json
"""

import argparse
import json
import pathlib
import sys

import numpy as np

from keras_drelu import stats

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "results" / "drelu_statistics"
SETTINGS = {
    "paper attacks": ("FGSM", "PGD", "APGD-CE", "APGD-DLR", "CW-L2"),
    "adaptive attacks and worst case": (
        "Square", "BPDA(APGD-CE)", "Transfer(APGD-CE)", "worst case"
    ),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--results", nargs="+", type=pathlib.Path,
                        required=True,
                        help="results.json files of examples/drelu_mnist.py")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    parser.add_argument("--alpha", type=float, default=0.05)
    return parser.parse_args(argv)


def score_table(results, attacks):
    """(methods, settings, (k, N) accuracies) from Table 1's runs."""
    scores = {}
    for result in results:
        paper_lambda = result["paper_lambda"]
        for run in result["runs"]:
            if run["method"] == "D-ReLU":
                if run["lam"] != paper_lambda[run["arch"]]:
                    continue
                # One row across architectures: each at its paper lambda.
                method = "D-ReLU"
            else:
                method = run["method"]
            for attack in attacks:
                value = (run["worst_case"] if attack == "worst case"
                         else run["accuracy"][attack])
                setting = f"{run['arch']} seed {run['seed']} {attack}"
                scores.setdefault(method, {})[setting] = value
    methods = sorted(scores)
    settings = sorted(set.intersection(*(set(s) for s in scores.values())))
    table = np.array([[scores[m][s] for s in settings] for m in methods])
    return methods, settings, table


def analyse(results, out, alpha=0.05):
    """Runs the tests for each group of settings; writes MD, JSON, PNGs."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Significance tests over the D-ReLU MNIST runs", "",
             "Methods x settings, a setting being one architecture, seed and "
             f"attack; accuracies from `results.json`; alpha = {alpha}. "
             "D-ReLU is each architecture's paper lambda ("
             + ", ".join(sorted({f"{arch} {lam:g}" for result in results
                                 for arch, lam in
                                 result["paper_lambda"].items()}))
             + "). "
             "Procedure of Demšar (2006) as in the D-ReLU paper, section 6.2."]
    summary, paths = {}, []
    for index, (group, attacks) in enumerate(SETTINGS.items()):
        methods, settings, table = score_table(results, attacks)
        anova = stats.anova(table, methods, alpha=alpha)
        friedman = stats.friedman(table, methods, alpha=alpha)
        nemenyi = stats.nemenyi(table, methods, alpha=alpha)
        png = out / f"critical_difference_{index + 1}.png"
        figure = stats.plot_critical_difference(nemenyi, png)
        figure.axes[0].set_title(group, fontsize=10)
        figure.savefig(png, dpi=110, bbox_inches="tight")
        paths.append(png)
        ranks = dict(zip(methods, map(float, friedman.average_ranks)))
        summary[group] = dict(
            methods=methods, settings=settings, table=table.tolist(),
            anova=dict(F=anova.statistic, p=anova.p_value,
                       critical=anova.critical_value,
                       df=[anova.df_between, anova.df_within]),
            friedman=dict(chi2=friedman.statistic, p=friedman.p_value,
                          iman_davenport=friedman.iman_davenport,
                          iman_davenport_p=friedman.iman_davenport_p_value,
                          critical=friedman.critical_value,
                          df=[friedman.df_numerator,
                              friedman.df_denominator]),
            nemenyi=dict(critical_difference=nemenyi.critical_difference,
                         groups=[list(g) for g in nemenyi.groups]),
            average_ranks=ranks,
        )
        lines += [
            "", f"## {group} ({len(settings)} settings: "
            + ", ".join(attacks) + ")", "",
            "| Method | Mean accuracy (%) | Average rank (1 = best) |",
            "|---|---|---|",
        ]
        for method, row in sorted(zip(methods, table),
                                  key=lambda item: ranks[item[0]]):
            lines.append(f"| {method} | {100 * row.mean():.1f} | "
                         f"{ranks[method]:.2f} |")
        verdict = "differ" if anova.statistic > anova.critical_value else (
            "do not differ significantly")
        fverdict = ("differ" if friedman.iman_davenport
                    > friedman.critical_value else
                    "do not differ significantly")
        best = min(ranks, key=ranks.get)
        distinct = [m for m in methods if m != best and ranks[m] - ranks[best]
                    > nemenyi.critical_difference]
        lines += [
            "",
            f"- ANOVA: F = {anova.statistic:.2f} (critical "
            f"{anova.critical_value:.2f}, p = {anova.p_value:.3g}): the "
            f"methods' means {verdict}.",
            f"- Friedman: chi2 = {friedman.statistic:.2f} (p = "
            f"{friedman.p_value:.3g}); Iman-Davenport F_F = "
            f"{friedman.iman_davenport:.2f} (critical "
            f"{friedman.critical_value:.2f}, df {friedman.df_numerator}, "
            f"{friedman.df_denominator}): the ranks {fverdict}.",
            f"- Nemenyi: CD = {nemenyi.critical_difference:.2f}; best rank "
            f"{best} ({ranks[best]:.2f}) is significantly better than "
            + (", ".join(distinct) if distinct else "none of the others")
            + ".",
            "",
            f"![critical difference, {group}]({png.name})",
        ]
    (out / "statistics.md").write_text("\n".join(lines) + "\n")
    (out / "statistics.json").write_text(json.dumps(summary, indent=2) + "\n")
    return [out / "statistics.md", out / "statistics.json", *paths]


def main(argv=None):
    args = parse_args(argv)
    results = [json.loads(path.read_text()) for path in args.results]
    paths = analyse(results, args.out, args.alpha)
    print("wrote:")
    for path in paths:
        print(f"  {path}")
    return paths


if __name__ == "__main__":
    main(sys.argv[1:])
