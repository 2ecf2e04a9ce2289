"""Robust training with and without learned caps, over the settings run.

Reads the `results.json` that `experiments/robust_retrofit.py` wrote for
each setting (MNIST, the CIFAR-10 subset, the pretrained backbone) and
puts them side by side: each method's worst case per setting, the answer to
the question per setting and over all of them, and the significance tests
of `keras_drelu.stats` (one-way ANOVA, Friedman with the Iman-Davenport
F, Nemenyi critical difference; Demšar 2006) over the methods x settings
table, a setting being one data set and seed, the score the per-image
worst-case accuracy under the adaptive suite.

    python experiments/robust_retrofit_summary.py --help
    python experiments/robust_retrofit_summary.py
"""

import json
import pathlib
import sys

import numpy as np

from common import arguments
from common import results
from common.arguments import RESULTS
from keras_drelu import stats
from robust_retrofit import CLEAN_TOLERANCE
from robust_retrofit import MARGIN
from robust_retrofit import QUESTION
from robust_retrofit import t_interval

SETTING_FOLDERS = ("robust_retrofit_mnist", "robust_retrofit_cifar10",
                   "robust_retrofit_pretrained")
# The reference pairs the reading compares: a D-ReLU method and the same
# training without caps.
PAIRS = (("D-ReLU alone", "plain"), ("D-ReLU + PGD-AT", "PGD-AT"),
         ("D-ReLU + TRADES", "TRADES"))

DATASET = None
DEFAULTS = {}
QUICK = None
OPTIONS = {
    "--results": dict(
        nargs="+", type=pathlib.Path,
        default=[RESULTS / folder / "results.json"
                 for folder in SETTING_FOLDERS],
        help="results.json files of experiments/robust_retrofit.py, one per "
        "setting"),
    "--alpha": dict(type=arguments.positive_float, default=0.05,
                    help="significance level"),
}


def _lam(row, settings):
    """Whether `row` is at its setting's main lambda (or has no caps)."""
    return row["lam"] is None or row["lam"] == settings["lam"]


def score_table(outcomes, key="worst_case"):
    """`(methods, columns, (k, N) scores in %)` over setting and seed."""
    scores = {}
    for outcome in outcomes:
        settings = outcome["settings"]
        for row in outcome["rows"]:
            if row["seed"] in settings["seeds"] and _lam(row, settings):
                column = f"{outcome['setting']} seed {row['seed']}"
                scores.setdefault(row["method"], {})[column] = 100 * row[key]
    methods = [m for m in outcomes[0]["settings"]["methods"] if m in scores]
    columns = sorted(set.intersection(*(set(s) for s in scores.values())))
    return methods, columns, np.array([[scores[m][c] for c in columns]
                                       for m in methods])


def pooled_question(methods, columns, worst, clean):
    """The paired differences of `QUESTION` over every setting and seed."""
    first, second = (methods.index(name) for name in QUESTION)
    answer = {}
    for key, table in (("worst_case", worst), ("clean", clean)):
        differences = table[first] - table[second]
        mean, low, high = t_interval(differences)
        answer[key] = dict(mean=mean, low=low, high=high,
                           differences=differences.tolist())
    return answer


def run(args):
    outcomes = [json.loads(path.read_text()) for path in args.results]
    methods, columns, worst = score_table(outcomes)
    _, _, clean = score_table(outcomes, "clean")
    return dict(
        outcomes=outcomes, methods=methods, columns=columns, worst=worst,
        clean=clean,
        anova=stats.anova(worst, methods, alpha=args.alpha),
        friedman=stats.friedman(worst, methods, alpha=args.alpha),
        nemenyi=stats.nemenyi(worst, methods, alpha=args.alpha),
        pooled=pooled_question(methods, columns, worst, clean)
        if all(name in methods for name in QUESTION) else None,
    )


def _setting_means(summary, table):
    """Method -> setting -> mean over its seeds."""
    means = {}
    for i, method in enumerate(summary["methods"]):
        for outcome in summary["outcomes"]:
            setting = outcome["setting"]
            picked = [table[i][j] for j, column in
                      enumerate(summary["columns"])
                      if column.startswith(f"{setting} seed ")]
            means.setdefault(method, {})[setting] = float(np.mean(picked))
    return means


def _interval(part):
    return f"[{part['low']:+.1f}, {part['high']:+.1f}]"


def tables(summary, args):
    settings = [outcome["setting"] for outcome in summary["outcomes"]]
    worst = _setting_means(summary, summary["worst"])
    clean = _setting_means(summary, summary["clean"])
    ranks = dict(zip(summary["methods"],
                     map(float, summary["friedman"].average_ranks)))
    lines = ["## Worst case (and clean) per setting, mean over seeds", ""]
    lines += results.markdown_table(
        ["Method", *settings, "Average rank (1 = best)"],
        [[method] + [f"{worst[method][s]:.1f} ({clean[method][s]:.1f})"
                     for s in settings] + [f"{ranks[method]:.2f}"]
         for method in summary["methods"]])
    lines += ["", f"## {QUESTION[0]} minus {QUESTION[1]}, points", ""]
    body = []
    for outcome in summary["outcomes"]:
        answer = outcome["question"]
        if answer is not None:
            body.append([outcome["setting"],
                         f"{answer['worst_case']['mean']:+.1f} "
                         f"{_interval(answer['worst_case'])}",
                         f"{answer['clean']['mean']:+.1f} "
                         f"{_interval(answer['clean'])}",
                         answer["verdict"]])
    pooled = summary["pooled"]
    if pooled is not None:
        body.append([f"all {len(summary['columns'])} setting-seeds",
                     f"{pooled['worst_case']['mean']:+.1f} "
                     f"{_interval(pooled['worst_case'])}",
                     f"{pooled['clean']['mean']:+.1f} "
                     f"{_interval(pooled['clean'])}", "-"])
    lines += results.markdown_table(
        ["Setting", "Worst case [95% t interval over paired seeds]",
         "Clean [95% t interval]", f"Beats by >= {MARGIN:.1f} at "
         f"clean within {CLEAN_TOLERANCE:.1f}?"], body)
    anova, friedman = summary["anova"], summary["friedman"]
    lines += ["", f"## Significance tests over the worst case "
              f"({len(summary['columns'])} settings: data set and seed)", ""]
    lines += results.significance_table(
        anova, friedman, summary["nemenyi"].critical_difference)
    return lines


def reading(summary, args):
    """Facts read off the numbers, each quoted from the tables."""
    settings = [outcome["setting"] for outcome in summary["outcomes"]]
    worst = _setting_means(summary, summary["worst"])
    lines = []
    for capped, plain in PAIRS:
        if capped in worst and plain in worst:
            lines.append(
                f"- {capped} against {plain}, worst case per setting: "
                + "; ".join(f"{s} {worst[capped][s]:.1f}% against "
                            f"{worst[plain][s]:.1f}%" for s in settings)
                + ".")
    for outcome in summary["outcomes"]:
        answer = outcome["question"]
        if answer is not None:
            lines.append(
                f"- {outcome['setting']}: does {QUESTION[0]} beat "
                f"{QUESTION[1]} by {MARGIN:.1f} points at clean within "
                f"{CLEAN_TOLERANCE:.1f}? {answer['verdict']} (worst case "
                f"{answer['worst_case']['mean']:+.1f} points, 95% t interval "
                f"{_interval(answer['worst_case'])}).")
    pooled = summary["pooled"]
    if pooled is not None:
        lines.append(
            f"- Over all {len(summary['columns'])} setting-seeds the worst "
            f"case moves by {pooled['worst_case']['mean']:+.1f} points "
            f"{_interval(pooled['worst_case'])} and clean by "
            f"{pooled['clean']['mean']:+.1f} {_interval(pooled['clean'])}.")
    friedman, cd = summary["friedman"], summary["nemenyi"].critical_difference
    ranks, best, apart = results.rank_leader(summary["methods"], friedman, cd)
    lines.append(
        f"- Ranks: Iman-Davenport F_F {friedman.iman_davenport:.2f} against "
        f"{friedman.critical_value:.2f} ("
        + ("the methods differ" if friedman.iman_davenport
           > friedman.critical_value else "no significant difference")
        + f"); best average rank {best} ({ranks[best]:.2f}), significantly "
        f"ahead (Nemenyi CD {cd:.2f}) of "
        + (", ".join(apart) or "none of the others") + ".")
    return lines


def write(summary, args):
    def draw(path):
        figure = stats.plot_critical_difference(summary["nemenyi"], path)
        figure.axes[0].set_title("worst case, adaptive suite", fontsize=10)
        figure.savefig(path, dpi=110, bbox_inches="tight")

    return results.write(
        args,
        title="Robust training with and without learned caps: "
        + ", ".join(o["setting"] for o in summary["outcomes"]) + " together",
        description=[
            "From " + ", ".join(f"`{path}`" for path in args.results)
            + f"; alpha = {args.alpha:g}. A setting of the tests is one data "
            "set and seed; the score the per-image worst-case accuracy (%) "
            "under the adaptive suite. D-ReLU methods at each setting's main "
            "lambda. Each setting's own table states its reductions.",
        ],
        reduced=None,
        tables=tables(summary, args),
        reading=reading(summary, args),
        results=dict(
            methods=summary["methods"], columns=summary["columns"],
            worst_case=summary["worst"].tolist(),
            clean=summary["clean"].tolist(), pooled=summary["pooled"],
            questions={o["setting"]: o["question"]
                       for o in summary["outcomes"]},
            anova=dict(F=summary["anova"].statistic,
                       p=summary["anova"].p_value),
            friedman=dict(
                iman_davenport=summary["friedman"].iman_davenport,
                p=summary["friedman"].iman_davenport_p_value,
                average_ranks=dict(zip(
                    summary["methods"],
                    map(float, summary["friedman"].average_ranks)))),
            nemenyi=dict(
                critical_difference=summary["nemenyi"].critical_difference,
                groups=[list(g) for g in summary["nemenyi"].groups]),
        ),
        figures={"critical_difference.png": draw},
    )


if __name__ == "__main__":
    results.main(sys.modules[__name__])
