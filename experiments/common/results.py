"""What an experiment writes: `table.md`, `results.json` and figures.

`table.md` holds the command that wrote it, the settings, what they reduce
from the paper, the tables and a reading generated from the numbers. A
reading may quote only numbers that stand in its tables (`check_reading`);
the writer refuses one that does not. `main` runs an experiment from its
command line to these files.
"""

import json
import math
import os
import pathlib
import re
import time

import numpy as np

from common.arguments import ExperimentParser
from common.data import REPO
from common.data import SHARED

READING = "## Reading (generated from the numbers above)"
# A number standing on its own: not a digit of a name such as "CW-L2".
_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])\d+(?:\.\d+)?(?:e[-+]?\d+)?(?!\w)")


def percent(value):
    """An accuracy as a percentage with one decimal; `n/a` for none.

    Example:

    >>> percent(0.4567), percent(None), percent(float("nan"))
    ('45.7', 'n/a', 'n/a')
    """
    if value is None or math.isnan(value):
        return "n/a"
    return f"{100 * value:.1f}"


def markdown_table(header, rows):
    """The lines of a markdown table.

    Example:

    >>> print("\\n".join(markdown_table(["a", "b"], [[1, "x"]])))
    | a | b |
    |---|---|
    | 1 | x |
    """
    return (["| " + " | ".join(map(str, header)) + " |",
             "|" + "---|" * len(header)]
            + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def significance_table(anova, friedman, critical_difference):
    """The lines of the table of `keras_drelu.stats`' tests (Demšar 2006).

    Args:
        anova: The result of `keras_drelu.stats.anova`.
        friedman: The result of `keras_drelu.stats.friedman`.
        critical_difference: The Nemenyi critical difference.
    """
    return markdown_table(
        ["Test", "Statistic", "Critical value", "p", "df"],
        [["ANOVA F", f"{anova.statistic:.2f}", f"{anova.critical_value:.2f}",
          f"{anova.p_value:.3g}", f"{anova.df_between}, {anova.df_within}"],
         ["Friedman chi2", f"{friedman.statistic:.2f}", "-",
          f"{friedman.p_value:.3g}", f"{friedman.df_numerator}"],
         ["Iman-Davenport F_F", f"{friedman.iman_davenport:.2f}",
          f"{friedman.critical_value:.2f}",
          f"{friedman.iman_davenport_p_value:.3g}",
          f"{friedman.df_numerator}, {friedman.df_denominator}"],
         ["Nemenyi CD", f"{critical_difference:.2f}", "-", "-", "-"]])


def rank_leader(methods, friedman, critical_difference):
    """The best average rank and the methods significantly behind it.

    Args:
        methods: Method names, in the order of the Friedman test's columns.
        friedman: The result of `keras_drelu.stats.friedman`.
        critical_difference: The Nemenyi critical difference.

    Returns:
        `(ranks, best, behind)`: method -> average rank, the best-ranked
        method, and `"method (rank)"` of each method whose rank is more
        than `critical_difference` behind it.
    """
    ranks = dict(zip(methods, map(float, friedman.average_ranks)))
    best = min(ranks, key=ranks.get)
    behind = [f"{m} ({ranks[m]:.2f})" for m in methods
              if ranks[m] - ranks[best] > critical_difference]
    return ranks, best, behind


def flag_codes(reports):
    """The flag codes of `reports` (`RobustnessReport.to_dict()`), or `-`.

    Example:

    >>> flag_codes([{"flags": [{"code": "zero-gradients"}]}, {"flags": []}])
    'zero-gradients'
    """
    codes = {flag["code"] for report in reports for flag in report["flags"]}
    return ", ".join(sorted(codes)) or "-"


def mean_caps(caps):
    """The mean cap of each capped layer (`cap_summary`), or `-` if none.

    Example:

    >>> mean_caps({"head_drelu": {"mean": 0.4437}}), mean_caps({})
    ('0.444', '-')
    """
    return ", ".join(f"{layer['mean']:.3g}" for layer in caps.values()) or "-"


def numbers(text):
    """The numbers written in `text`, as floats.

    Example:

    >>> sorted(numbers("CW-L2 leaves 8.6% at eps 8/255 (lambda 1e-06)"))
    [1e-06, 8.0, 8.6, 255.0]
    """
    return {float(match) for match in _NUMBER.findall(text)}


def unquoted_numbers(reading, table):
    """The numbers of `reading` that stand in no row of `table`.

    Example:

    >>> table = "| cap | PGD |\\n|---|---|\\n| 0.01 | 91.6 |"
    >>> sorted(unquoted_numbers("cap 0.01: PGD 91.6%, 83.0 points", table))
    [83.0]

    Args:
        reading: Text (or lines) of a reading.
        table: Markdown text (or lines) holding the tables; only table rows
            (lines starting with `|`) count.

    Returns:
        A set of floats; empty when the reading quotes only the tables.
    """
    reading = _text(reading)
    rows = [line for line in _text(table).splitlines()
            if line.lstrip().startswith("|")]
    return numbers(reading) - numbers("\n".join(rows))


def check_reading(reading, table):
    """Raises `ValueError` if `reading` quotes a number its `table` lacks."""
    missing = unquoted_numbers(reading, table)
    if missing:
        raise ValueError(
            "The reading quotes numbers that stand in none of its tables: "
            f"{sorted(missing)}. Reading:\n{_text(reading)}"
        )


def split_reading(markdown):
    """`(tables, reading)` of a `table.md`; the reading is `""` if none.

    The reading runs from its heading to the next heading or figure.
    """
    head, found, tail = markdown.partition(READING)
    if not found:
        return markdown, ""
    reading = []
    for line in tail.splitlines():
        if line.startswith(("#", "![")):
            break
        reading.append(line)
    return head, "\n".join(reading).strip()


def _text(lines):
    return lines if isinstance(lines, str) else "\n".join(lines)


def _portable(path):
    """`path` relative to the repository root where it lies in the
    repository or in `../shared` (as the command names it), else as it is:
    a results file does not keep the checkout it was written in."""
    absolute = pathlib.Path(os.path.abspath(path))
    for root in (REPO, SHARED.parent):
        if absolute.is_relative_to(root):
            return os.path.relpath(absolute, REPO)
    return str(path)


def _plain(value):
    """JSON-ready: paths and numpy values converted, infinities as strings."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, pathlib.PurePath):
        return _portable(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write(args, *, title, description, reduced, tables, reading, results,
          figures=None):
    """Writes `table.md`, `results.json` and the figures into `args.out`.

    Args:
        args: Parsed arguments (`out`, `command` and the settings).
        title: Heading of `table.md`.
        description: Paragraphs (lines) saying what was run.
        reduced: Phrases of what the run reduces from the paper (see
            `common.arguments.reduced`), or `None` where no paper sets it.
        tables: Lines of the tables.
        reading: Lines of the reading; each number it quotes must stand in
            `tables`.
        results: What `results.json` holds beside the settings.
        figures: File name -> function writing the figure to a path.
            Defaults to `None`.

    Returns:
        The paths written.
    """
    check_reading(reading, tables)
    figures = figures or {}
    lines = [f"# {title}", "",
             f"Written by `{args.command}` (numbers never edited).", "",
             *description, ""]
    if reduced is not None:
        lines += ["**Reduced from the paper:** "
                  + ("; ".join(reduced) or "nothing") + ".", ""]
    lines += [*tables, "", READING, "", *reading, ""]
    lines += [f"![{name}]({name})" for name in figures]
    args.out.mkdir(parents=True, exist_ok=True)
    paths = [args.out / "table.md", args.out / "results.json"]
    paths[0].write_text("\n".join(lines) + "\n")
    settings = {key: value for key, value in vars(args).items()
                if key != "command"}
    payload = {"command": args.command, "settings": settings, **results}
    paths[1].write_text(json.dumps(_plain(payload), indent=2) + "\n")
    for name, draw in figures.items():
        draw(args.out / name)
        paths.append(args.out / name)
    return paths


def panels(columns, rows=1, *, size=(5, 4), **shared):
    """A matplotlib figure of `rows` x `columns` axes (no pyplot state)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(size[0] * columns, size[1] * rows))
    axes = figure.subplots(rows, columns, squeeze=False, **shared)
    return figure, axes


def save(figure, path, dpi=110):
    """Lays out `figure` and writes it to `path`."""
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)


def main(experiment, argv=None):
    """Parses, runs and writes an experiment module; prints what it wrote.

    Args:
        experiment: An experiment module (see `common`).
        argv: Command-line arguments. Defaults to `None`: `sys.argv`.

    Returns:
        The paths written.
    """
    args = ExperimentParser.of(experiment).parse_args(argv)
    start = time.perf_counter()
    paths = experiment.write(experiment.run(args), args)
    print(f"done in {time.perf_counter() - start:.0f}s; wrote:")
    for path in paths:
        print(f"  {path}")
    return paths
