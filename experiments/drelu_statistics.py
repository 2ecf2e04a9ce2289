"""Significance tests over the methods x settings table of the D-ReLU runs.

The D-ReLU paper's section 6.2 procedure (Demšar, 2006) with
`keras_drelu.stats`: a one-way ANOVA over methods, the Friedman test with
the Iman-Davenport F, and the Nemenyi critical difference with its
diagram. The rows are the training methods of the paper's Table 1 (AT,
TRADES-1, TRADES-6, D-ReLU at the paper's lambda); a setting (column) is
one architecture, seed and attack. It runs twice: over the paper's attacks
(FGSM, PGD, APGD-CE, APGD-DLR, CW-L2), as the paper does, and over the
attacks a cap cannot mask plus the per-example worst case (Square,
BPDA(APGD-CE), Transfer(APGD-CE), worst case).

    python experiments/drelu_statistics.py --help
    python experiments/drelu_statistics.py \\
        --results docs/results/drelu_mnist_dense/results.json \\
                  docs/results/drelu_mnist_cnn/results.json
"""

import json
import pathlib
import sys

import numpy as np

from common import arguments
from common import results
from keras_drelu import stats

SETTINGS = {
    "paper attacks": ("FGSM", "PGD", "APGD-CE", "APGD-DLR", "CW-L2"),
    "adaptive attacks and worst case": (
        "Square", "BPDA(APGD-CE)", "Transfer(APGD-CE)", "worst case"
    ),
}


DATASET = None
DEFAULTS = {}
QUICK = None
OPTIONS = {
    "--results": dict(nargs="+", type=pathlib.Path, required=True,
                      help="results.json files of experiments/drelu_mnist.py"),
    "--alpha": dict(type=arguments.positive_float, default=0.05,
                    help="significance level"),
}


def score_table(runs_files, attacks):
    """(methods, settings, (k, N) accuracies) of the paper's Table 1 methods."""
    scores = {}
    for result in runs_files:
        for run in result["runs"]:
            paper_lambda = result["paper_lambda"][run["arch"]]
            if run["method"] not in result["paper"][run["arch"]] or (
                run["lam"] not in (None, paper_lambda)
            ):
                continue
            for attack in attacks:
                value = (run["worst_case"] if attack == "worst case"
                         else run["accuracy"][attack])
                setting = f"{run['arch']} seed {run['seed']} {attack}"
                scores.setdefault(run["method"], {})[setting] = value
    methods = sorted(scores)
    settings = sorted(set.intersection(*(set(s) for s in scores.values())))
    table = np.array([[scores[m][s] for s in settings] for m in methods])
    return methods, settings, table


def run(args):
    runs_files = [json.loads(path.read_text()) for path in args.results]
    tests = {}
    for group, attacks in SETTINGS.items():
        methods, settings, table = score_table(runs_files, attacks)
        tests[group] = dict(
            methods=methods, settings=settings, table=table,
            anova=stats.anova(table, methods, alpha=args.alpha),
            friedman=stats.friedman(table, methods, alpha=args.alpha),
            nemenyi=stats.nemenyi(table, methods, alpha=args.alpha),
        )
    lambdas = sorted({f"{arch} {lam:g}" for result in runs_files
                      for arch, lam in result["paper_lambda"].items()})
    return tests, lambdas


def _ranks(test):
    return dict(zip(test["methods"],
                    map(float, test["friedman"].average_ranks)))


def tables(tests):
    lines = []
    for group, test in tests.items():
        ranks = _ranks(test)
        anova, friedman = test["anova"], test["friedman"]
        rows = [[method, f"{100 * row.mean():.1f}", f"{ranks[method]:.2f}"]
                for method, row in sorted(zip(test["methods"], test["table"]),
                                          key=lambda item: ranks[item[0]])]
        lines += [f"## {group} ({len(test['settings'])} settings: "
                  + ", ".join(SETTINGS[group]) + ")", ""]
        lines += results.markdown_table(
            ["Method", "Mean accuracy (%)", "Average rank (1 = best)"], rows)
        lines += [""] + results.significance_table(
            anova, friedman, test["nemenyi"].critical_difference) + [""]
    return lines


def _verdict(statistic, critical, what):
    return f"{what} differ" if statistic > critical else (
        f"{what} do not differ significantly")


def reading(tests):
    """Facts read off the test results, each quoted from the tables."""
    lines = []
    for group, test in tests.items():
        anova, friedman = test["anova"], test["friedman"]
        cd = test["nemenyi"].critical_difference
        ranks, best, distinct = results.rank_leader(test["methods"], friedman,
                                                    cd)
        lines.append(
            f"- {group}: ANOVA F {anova.statistic:.2f} against "
            f"{anova.critical_value:.2f}, "
            f"{_verdict(anova.statistic, anova.critical_value, 'the means')}"
            f"; Iman-Davenport F_F {friedman.iman_davenport:.2f} against "
            f"{friedman.critical_value:.2f}, "
            + _verdict(friedman.iman_davenport, friedman.critical_value,
                       "the ranks")
            + f". Best rank {best} ({ranks[best]:.2f}) is significantly "
            f"better (Nemenyi CD {cd:.2f}) than "
            + (", ".join(distinct) or "none of the others") + "."
        )
    return lines


def write(outcome, args):
    tests, lambdas = outcome
    figures = {}
    for index, (group, test) in enumerate(tests.items()):
        def draw(path, group=group, test=test):
            figure = stats.plot_critical_difference(test["nemenyi"], path)
            figure.axes[0].set_title(group, fontsize=10)
            figure.savefig(path, dpi=110, bbox_inches="tight")

        figures[f"critical_difference_{index + 1}.png"] = draw
    return results.write(
        args,
        title="Significance tests over the D-ReLU MNIST runs",
        description=[
            "Methods x settings, a setting being one architecture, seed and "
            "attack; accuracies from `results.json`; alpha = "
            f"{args.alpha:g}. D-ReLU is each architecture's paper lambda ("
            + ", ".join(lambdas) + "). Procedure of Demšar (2006) as in the "
            "D-ReLU paper, section 6.2."
        ],
        reduced=None,
        tables=tables(tests),
        reading=reading(tests),
        results={group: _summary(test) for group, test in tests.items()},
        figures=figures,
    )


def _summary(test):
    anova, friedman = test["anova"], test["friedman"]
    nemenyi = test["nemenyi"]
    return dict(
        methods=test["methods"], settings=test["settings"],
        table=test["table"].tolist(),
        anova=dict(F=anova.statistic, p=anova.p_value,
                   critical=anova.critical_value,
                   df=[anova.df_between, anova.df_within]),
        friedman=dict(chi2=friedman.statistic, p=friedman.p_value,
                      iman_davenport=friedman.iman_davenport,
                      iman_davenport_p=friedman.iman_davenport_p_value,
                      critical=friedman.critical_value,
                      df=[friedman.df_numerator, friedman.df_denominator]),
        nemenyi=dict(critical_difference=nemenyi.critical_difference,
                     groups=[list(g) for g in nemenyi.groups]),
        average_ranks=_ranks(test),
    )


if __name__ == "__main__":
    results.main(sys.modules[__name__])
