"""Significance tests over a methods x settings table of scores.

The procedure of Demšar (2006), "Statistical Comparisons of Classifiers over
Multiple Data Sets", as used by Sooksatra & Rivas (2024, section 6.2): a
one-way ANOVA over methods, the Friedman test on per-setting ranks with the
Iman-Davenport correction, and the Nemenyi critical difference, drawn as a
critical-difference diagram. A *setting* is one column of a results table
(a model under one attack, a data set), a *method* one row (a defence).
"""

import dataclasses
import math

import numpy as np
from scipy import stats as scipy_stats

from keras_drelu.arguments import check_number


@dataclasses.dataclass(frozen=True)
class AnovaResult:
    """One-way ANOVA of the scores, grouped by method.

    Attributes:
        statistic: The F statistic.
        p_value: Its p-value.
        df_between: Degrees of freedom between methods, `k - 1`.
        df_within: Degrees of freedom within methods, `k (N - 1)`.
        critical_value: The F value the statistic must exceed to reject
            equal means at level `alpha`.
        alpha: The significance level.
    """

    statistic: float
    p_value: float
    df_between: int
    df_within: int
    critical_value: float
    alpha: float


@dataclasses.dataclass(frozen=True)
class FriedmanResult:
    """Friedman test on the per-setting ranks of the methods.

    Attributes:
        methods: Method names, in table order.
        average_ranks: Mean rank of each method over settings (1 = best).
        statistic: Friedman's chi-square, `chi2_F`.
        p_value: Its p-value, against chi-square with `k - 1` degrees of
            freedom.
        iman_davenport: The Iman-Davenport statistic `F_F`.
        iman_davenport_p_value: Its p-value, against F with
            `(df_numerator, df_denominator)` degrees of freedom.
        df_numerator: `k - 1`.
        df_denominator: `(k - 1)(N - 1)`.
        critical_value: The `F_F` value to exceed at level `alpha`.
        alpha: The significance level.
        num_settings: `N`, the number of settings (columns).
    """

    methods: tuple
    average_ranks: np.ndarray
    statistic: float
    p_value: float
    iman_davenport: float
    iman_davenport_p_value: float
    df_numerator: int
    df_denominator: int
    critical_value: float
    alpha: float
    num_settings: int


@dataclasses.dataclass(frozen=True)
class NemenyiResult:
    """Nemenyi post-hoc comparison of all pairs of methods.

    Attributes:
        methods: Method names, in table order.
        average_ranks: Mean rank of each method over settings (1 = best).
        critical_difference: Two methods differ significantly when their
            average ranks differ by more than this.
        q_alpha: The studentized range quantile divided by `sqrt(2)`.
        alpha: The significance level.
        num_settings: `N`, the number of settings (columns).
        p_values: `(k, k)` matrix of pairwise p-values.
    """

    methods: tuple
    average_ranks: np.ndarray
    critical_difference: float
    q_alpha: float
    alpha: float
    num_settings: int
    p_values: np.ndarray

    @property
    def groups(self):
        """Maximal sets of methods that do not differ significantly.

        Each group is a tuple of method names, best first, whose average
        ranks all lie within one critical difference; these are the bars of
        the critical-difference diagram. Methods in no group differ from
        every other.
        """
        order = np.argsort(self.average_ranks, kind="stable")
        ranks = self.average_ranks[order]
        groups = []
        last_end = -1
        for start in range(len(order)):
            end = start
            while (
                end + 1 < len(order)
                and ranks[end + 1] - ranks[start] <= self.critical_difference
            ):
                end += 1
            if end > start and end > last_end:
                members = order[start : end + 1]
                groups.append(tuple(self.methods[i] for i in members))
                last_end = end
        return groups


def _check_alpha(alpha):
    return check_number("alpha", alpha, low=0, high=1, closed="neither")


def _check_table(table, methods, min_methods):
    scores = np.asarray(table, dtype=float)
    if scores.ndim != 2:
        raise ValueError(
            "Argument `table` should be 2-D, one row per method and one "
            f"column per setting. Received: table of shape {scores.shape}"
        )
    num_methods, num_settings = scores.shape
    if num_methods < min_methods:
        raise ValueError(
            f"This test needs at least {min_methods} methods (rows). "
            f"Received: table of shape {scores.shape}"
        )
    if num_settings < 2:
        raise ValueError(
            "This test needs at least 2 settings (columns). Received: table "
            f"of shape {scores.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("Argument `table` should hold only finite numbers.")
    if methods is None:
        methods = tuple(f"method {i}" for i in range(num_methods))
    methods = tuple(str(name) for name in methods)
    if len(methods) != num_methods or len(set(methods)) != num_methods:
        raise ValueError(
            f"Argument `methods` should hold {num_methods} distinct names, one "
            f"per row. Received: methods={methods!r}"
        )
    return scores, methods


def average_ranks(table, higher_is_better=True):
    """Mean rank of each method (row) over settings (columns); 1 is best.

    Ties share the mean of the ranks they span.

    Example:

    >>> average_ranks([[0.9, 0.8], [0.7, 0.8], [0.1, 0.2]]).tolist()
    [1.25, 1.75, 3.0]

    Args:
        table: `(k, N)` scores, one row per method.
        higher_is_better: Whether a higher score ranks first (accuracy).
            Defaults to `True`.

    Returns:
        A numpy array of `k` average ranks.
    """
    scores = np.asarray(table, dtype=float)
    signed = -scores if higher_is_better else scores
    return scipy_stats.rankdata(signed, axis=0).mean(axis=1)


def anova(table, methods=None, alpha=0.05):
    """One-way ANOVA: do the methods' mean scores differ?

    Each method's scores over all settings form one group
    (`scipy.stats.f_oneway`).

    Example:

    >>> result = anova([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    >>> round(result.statistic, 2), (result.df_between, result.df_within)
    (13.5, (1, 4))

    Args:
        table: `(k, N)` scores, one row per method, `k >= 2`, `N >= 2`.
        methods: Optional names of the `k` methods.
        alpha: Significance level of the critical value. Defaults to
            `0.05`.

    Returns:
        An `AnovaResult`.
    """
    alpha = _check_alpha(alpha)
    scores, _ = _check_table(table, methods, min_methods=2)
    num_methods, num_settings = scores.shape
    statistic, p_value = scipy_stats.f_oneway(*scores)
    df_between = num_methods - 1
    df_within = num_methods * (num_settings - 1)
    return AnovaResult(
        statistic=float(statistic),
        p_value=float(p_value),
        df_between=df_between,
        df_within=df_within,
        critical_value=float(
            scipy_stats.f.ppf(1 - alpha, df_between, df_within)
        ),
        alpha=alpha,
    )


def friedman(table, methods=None, higher_is_better=True, alpha=0.05):
    """Friedman test with the Iman-Davenport correction.

    Formula:
    ```python
    chi2_F = 12 N / (k (k + 1)) * (sum_j R_j ** 2 - k (k + 1) ** 2 / 4)
    F_F = (N - 1) chi2_F / (N (k - 1) - chi2_F)
    ```
    with `R_j` the average rank of method `j` over the `N` settings.
    `F_F` follows the F distribution with `k - 1` and `(k - 1)(N - 1)`
    degrees of freedom and is less conservative than `chi2_F` (Iman &
    Davenport, 1980). `chi2_F` is Demšar's form, without the correction for
    ties that `scipy.stats.friedmanchisquare` applies; the two agree when no
    setting has tied scores. `F_F` is infinite when every setting ranks the
    methods the same way.

    Example:

    >>> result = friedman([[3, 3, 3, 3], [2, 2, 2, 1], [1, 1, 1, 2]])
    >>> result.average_ranks.tolist(), round(result.statistic, 2)
    ([1.0, 2.25, 2.75], 6.5)
    >>> round(result.iman_davenport, 2)
    13.0

    Args:
        table: `(k, N)` scores, one row per method, `k >= 3`, `N >= 2`.
        methods: Optional names of the `k` methods.
        higher_is_better: Whether a higher score ranks first. Defaults to
            `True`.
        alpha: Significance level of the critical value. Defaults to
            `0.05`.

    Returns:
        A `FriedmanResult`.
    """
    alpha = _check_alpha(alpha)
    scores, methods = _check_table(table, methods, min_methods=3)
    k, n = scores.shape
    ranks = average_ranks(scores, higher_is_better)
    chi2 = 12 * n / (k * (k + 1)) * (np.sum(ranks**2) - k * (k + 1) ** 2 / 4)
    denominator = n * (k - 1) - chi2
    iman_davenport = (
        (n - 1) * chi2 / denominator if denominator > 0 else math.inf
    )
    df_numerator = k - 1
    df_denominator = (k - 1) * (n - 1)
    return FriedmanResult(
        methods=methods,
        average_ranks=ranks,
        statistic=float(chi2),
        p_value=float(scipy_stats.chi2.sf(chi2, df_numerator)),
        iman_davenport=float(iman_davenport),
        iman_davenport_p_value=float(
            scipy_stats.f.sf(iman_davenport, df_numerator, df_denominator)
        ),
        df_numerator=df_numerator,
        df_denominator=df_denominator,
        critical_value=float(
            scipy_stats.f.ppf(1 - alpha, df_numerator, df_denominator)
        ),
        alpha=alpha,
        num_settings=n,
    )


def nemenyi(table, methods=None, higher_is_better=True, alpha=0.05):
    """Nemenyi critical difference between average ranks.

    Formula:
    ```python
    CD = q_alpha * sqrt(k (k + 1) / (6 N))
    ```
    where `q_alpha` is the studentized range quantile for `k` means and
    infinite degrees of freedom, divided by `sqrt(2)` (2.569 for `k = 4`,
    `alpha = 0.05`). The p-value of a pair is the studentized range tail
    probability of `sqrt(2) |R_i - R_j| / sqrt(k (k + 1) / (6 N))`, the
    same as `scikit_posthocs.posthoc_nemenyi_friedman` computes (written
    with scipy here to keep that package's seaborn and statsmodels
    dependencies out of the library).

    Example:

    >>> result = nemenyi([[3, 3, 3, 3], [2, 2, 2, 1], [1, 1, 1, 2]])
    >>> round(result.q_alpha, 3), round(result.critical_difference, 3)
    (2.344, 1.657)
    >>> result.groups
    [('method 0', 'method 1'), ('method 1', 'method 2')]

    Args:
        table: `(k, N)` scores, one row per method, `k >= 2`, `N >= 2`.
        methods: Optional names of the `k` methods.
        higher_is_better: Whether a higher score ranks first. Defaults to
            `True`.
        alpha: Significance level. Defaults to `0.05`.

    Returns:
        A `NemenyiResult`.
    """
    alpha = _check_alpha(alpha)
    scores, methods = _check_table(table, methods, min_methods=2)
    k, n = scores.shape
    q_alpha = scipy_stats.studentized_range.ppf(1 - alpha, k, np.inf)
    q_alpha /= math.sqrt(2)
    ranks = average_ranks(scores, higher_is_better)
    scale = math.sqrt(k * (k + 1) / (6 * n))
    gaps = np.abs(ranks[:, None] - ranks[None, :])
    p_values = scipy_stats.studentized_range.sf(
        math.sqrt(2) * gaps / scale, k, np.inf
    )
    np.fill_diagonal(p_values, 1.0)
    return NemenyiResult(
        methods=methods,
        average_ranks=ranks,
        critical_difference=float(q_alpha * scale),
        q_alpha=float(q_alpha),
        alpha=alpha,
        num_settings=n,
        p_values=p_values,
    )


def plot_critical_difference(result, path=None):
    """Draws a critical-difference diagram (Demšar, 2006, Figure 1).

    Methods sit at their average rank on an axis running from 1 (best, left)
    to `k`; a bar of length CD is drawn above it, and a thick line joins
    each group of methods that do not differ significantly.
    `scikit_posthocs.critical_difference_diagram` draws groups from p-values
    without the CD scale, so this draws Demšar's layout by hand.

    Example:

    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> result = nemenyi([[3, 3, 3, 3], [2, 2, 2, 1], [1, 1, 1, 2]],
    ...                  methods=["D-ReLU", "AT", "TRADES"])
    >>> figure = plot_critical_difference(result)
    >>> [t.get_text() for t in figure.axes[0].texts if "(" in t.get_text()]
    ['D-ReLU (1.00)', 'AT (2.25)', 'TRADES (2.75)']

    Args:
        result: A `NemenyiResult`.
        path: Where to save the PNG. Defaults to `None`, not saved.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    if not isinstance(result, NemenyiResult):
        raise TypeError(
            "Argument `result` should be a `NemenyiResult` (from `nemenyi`). "
            f"Received: result of type {type(result).__name__}"
        )
    k = len(result.methods)
    order = np.argsort(result.average_ranks, kind="stable")
    groups = result.groups
    left = list(order[: (k + 1) // 2])
    right = list(order[(k + 1) // 2 :])
    label_rows = max(len(left), len(right))
    height = 1.2 + 0.3 * (label_rows + len(groups))
    figure, ax = plt.subplots(figsize=(7, height))
    low, high = 1, max(k, 2)
    ax.set_xlim(low - 0.9, high + 0.9)
    ax.set_ylim(-(label_rows + len(groups) + 1) * 0.3, 0.9)
    ax.axis("off")

    ax.hlines(0, low, high, color="black")
    for tick in range(low, high + 1):
        ax.vlines(tick, 0, 0.08, color="black")
        ax.text(tick, 0.12, str(tick), ha="center", va="bottom", fontsize=9)
    cd = result.critical_difference
    ax.hlines(0.6, low, low + cd, color="black", linewidth=1.5)
    for end in (low, low + cd):
        ax.vlines(end, 0.55, 0.65, color="black")
    ax.text(low + cd / 2, 0.68, f"CD = {cd:.2f}", ha="center", va="bottom",
            fontsize=9)

    for group_index, group in enumerate(groups):
        ranks = [result.average_ranks[result.methods.index(m)] for m in group]
        y = -0.12 - 0.2 * group_index
        ax.hlines(y, min(ranks) - 0.03, max(ranks) + 0.03, color="black",
                  linewidth=4)
    top = -0.12 - 0.2 * len(groups)
    for side, members in (("left", left), ("right", right)):
        # The best methods are labelled on the left, the rest on the right,
        # nearest the axis first, so connector lines never cross.
        members = members if side == "left" else members[::-1]
        for row, index in enumerate(members):
            rank = result.average_ranks[index]
            y = top - 0.3 * (row + 1)
            x_end = low - 0.2 if side == "left" else high + 0.2
            ax.plot([rank, rank, x_end], [0, y, y], color="black",
                    linewidth=0.8)
            ax.text(
                x_end + (-0.05 if side == "left" else 0.05),
                y,
                f"{result.methods[index]} ({rank:.2f})",
                ha="right" if side == "left" else "left",
                va="center",
                fontsize=9,
            )
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=150, bbox_inches="tight")
    return figure
