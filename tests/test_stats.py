"""Tests for keras_drelu.stats: ANOVA, Friedman/Iman-Davenport, Nemenyi."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from keras_drelu import stats

METHODS = ["AT", "TRADES-1", "TRADES-6", "D-ReLU"]

# Sooksatra & Rivas (2024), Table 2 (CIFAR-10): per model, the columns are
# Clean, FGSM, PGD, APGD-CE, APGD-DLR, CW-L2; the rows follow METHODS.
PAPER_TABLE_2 = {
    "Dense": [
        [52.33, 34.20, 32.83, 32.73, 31.80, 40.10],
        [52.32, 29.97, 29.23, 29.20, 28.37, 38.67],
        [51.30, 37.00, 36.53, 36.50, 34.57, 42.30],
        [51.87, 26.03, 23.87, 23.80, 23.77, 36.10],
    ],
    "Shallow CNN": [
        [67.13, 42.83, 40.07, 39.90, 38.37, 50.67],
        [67.37, 38.83, 35.93, 35.97, 34.13, 48.60],
        [63.47, 46.13, 44.80, 44.80, 42.67, 51.67],
        [66.37, 65.60, 65.60, 64.60, 64.07, 65.83],
    ],
    "ResNet50": [
        [78.20, 54.77, 49.37, 48.90, 49.97, 63.00],
        [75.63, 52.12, 40.77, 39.87, 40.20, 56.43],
        [71.63, 54.20, 50.90, 50.40, 48.23, 57.63],
        [78.87, 78.83, 78.73, 78.20, 78.40, 78.87],
    ],
    "ResNet101": [
        [68.90, 44.90, 40.33, 39.43, 38.27, 49.30],
        [74.60, 47.07, 32.87, 31.17, 31.37, 51.40],
        [66.67, 45.43, 39.80, 39.17, 35.93, 47.67],
        [75.10, 75.03, 75.37, 74.73, 74.67, 75.10],
    ],
    "MobilenetV2": [
        [77.97, 46.50, 32.93, 30.73, 32.10, 51.80],
        [73.13, 46.23, 31.00, 28.87, 28.77, 49.37],
        [68.40, 48.80, 43.23, 43.03, 40.80, 51.13],
        [81.67, 81.57, 82.00, 80.87, 80.77, 81.67],
    ],
    "InceptionV3": [
        [84.60, 64.27, 58.80, 58.30, 59.33, 66.47],
        [82.53, 62.30, 52.67, 51.90, 51.87, 62.40],
        [76.97, 61.97, 58.00, 57.80, 56.03, 62.10],
        [87.17, 86.70, 86.57, 86.13, 86.23, 86.83],
    ],
}


@pytest.fixture
def paper_table():
    return np.concatenate([np.array(v) for v in PAPER_TABLE_2.values()], 1)


# Demšar (2006), Table 5: q_alpha of the Nemenyi test for k = 2..10.
DEMSAR_Q = {
    0.05: [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164],
    0.10: [1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920],
}


class TestPaperSection62:
    """Section 6.2 of the D-ReLU paper, recomputed from its Table 2."""

    def test_anova(self, paper_table):
        result = stats.anova(paper_table, METHODS, alpha=0.01)
        # Paper: "F score of 17.4, surpassing the critical value of 3.92".
        assert result.statistic == pytest.approx(17.4, abs=0.05)
        assert result.critical_value == pytest.approx(3.92, abs=0.005)
        assert (result.df_between, result.df_within) == (3, 140)
        assert result.p_value < 1e-8

    def test_friedman(self, paper_table):
        result = stats.friedman(paper_table, METHODS, alpha=0.01)
        # Paper: "a chi^2 score of 39.43 and an F_F score of 20.12", with 3
        # and 105 degrees of freedom; our F_F is 20.129, which the paper
        # truncated.
        assert result.statistic == pytest.approx(39.43, abs=0.005)
        assert result.iman_davenport == pytest.approx(20.12, abs=0.01)
        assert (result.df_numerator, result.df_denominator) == (3, 105)
        assert result.iman_davenport_p_value < 1e-9

    def test_nemenyi_rank_differences(self, paper_table):
        result = stats.nemenyi(paper_table, METHODS)
        ranks = dict(zip(METHODS, result.average_ranks))
        gaps = [ranks[m] - ranks["D-ReLU"] for m in METHODS[:3]]
        # Paper: "0.86 for adversarial training, 1.89 for TRADES-1, and
        # 1.14 for TRADES-6".
        np.testing.assert_allclose(gaps, [0.86, 1.89, 1.14], atol=0.005)
        # The paper's CD of 0.656 does not follow from its own k = 4 and
        # N = 36; the formula gives 0.782 (alpha 0.05), 0.697 (alpha 0.10).
        assert result.critical_difference == pytest.approx(
            2.569 * math.sqrt(4 * 5 / (6 * 36)), abs=1e-3
        )
        assert min(gaps) > result.critical_difference
        assert all("D-ReLU" not in group for group in result.groups)


class TestFriedman:
    def test_matches_scipy_without_ties(self):
        table = np.random.default_rng(0).normal(size=(5, 12))
        result = stats.friedman(table)
        reference = scipy_stats.friedmanchisquare(*table)
        assert result.statistic == pytest.approx(reference.statistic)
        assert result.p_value == pytest.approx(reference.pvalue)

    def test_iman_davenport_formula(self):
        table = np.random.default_rng(1).normal(size=(4, 9))
        result = stats.friedman(table, alpha=0.1)
        n, k, chi2 = 9, 4, result.statistic
        f_f = (n - 1) * chi2 / (n * (k - 1) - chi2)
        assert result.iman_davenport == pytest.approx(f_f)
        assert result.iman_davenport_p_value == pytest.approx(
            scipy_stats.f.sf(f_f, k - 1, (k - 1) * (n - 1))
        )
        assert result.critical_value == pytest.approx(
            scipy_stats.f.ppf(0.9, k - 1, (k - 1) * (n - 1))
        )

    def test_hand_computed_with_ties(self):
        # Ranks per column: (1, 2.5, 2.5), (1, 2, 3), (2, 1, 3).
        table = [[9, 9, 5], [4, 7, 6], [4, 1, 2]]
        result = stats.friedman(table, ["a", "b", "c"])
        np.testing.assert_allclose(
            result.average_ranks, [4 / 3, 11 / 6, 17 / 6]
        )
        rank_sq = (4 / 3) ** 2 + (11 / 6) ** 2 + (17 / 6) ** 2
        chi2 = 12 * 3 / (3 * 4) * (rank_sq - 3 * 16 / 4)
        assert result.statistic == pytest.approx(chi2)
        assert result.p_value == pytest.approx(scipy_stats.chi2.sf(chi2, 2))

    def test_lower_is_better_reverses_ranks(self):
        table = np.array([[0.1, 0.2, 0.3], [0.5, 0.6, 0.7], [0.9, 0.8, 0.95]])
        higher = stats.friedman(table).average_ranks
        lower = stats.friedman(table, higher_is_better=False).average_ranks
        np.testing.assert_allclose(higher, [3, 2, 1])
        np.testing.assert_allclose(lower, [1, 2, 3])

    def test_unanimous_ranking_gives_infinite_f(self):
        table = np.array([[3.0, 3.0, 3.0], [2.0, 2.0, 2.0], [1.0, 1.0, 1.0]])
        result = stats.friedman(table)
        assert result.statistic == pytest.approx(3 * 2)
        assert math.isinf(result.iman_davenport)
        assert result.iman_davenport_p_value == 0.0


class TestNemenyi:
    @pytest.mark.parametrize("alpha", [0.05, 0.10])
    def test_q_alpha_matches_demsar_table(self, alpha):
        for k, expected in zip(range(2, 11), DEMSAR_Q[alpha]):
            result = stats.nemenyi(np.eye(k)[:, [0, 1]] + np.arange(k)[:, None],
                                   alpha=alpha)
            assert result.q_alpha == pytest.approx(expected, abs=1e-3)

    def test_critical_difference_formula(self):
        table = np.random.default_rng(2).normal(size=(6, 20))
        result = stats.nemenyi(table)
        assert result.critical_difference == pytest.approx(
            2.850 * math.sqrt(6 * 7 / (6 * 20)), abs=1e-3
        )

    def test_p_values_agree_with_critical_difference(self):
        rng = np.random.default_rng(3)
        shift = np.array([0, 0.2, 0.5, 1, 2])[:, None]
        table = rng.normal(size=(5, 30)) + shift
        result = stats.nemenyi(table)
        gaps = np.abs(result.average_ranks[:, None] - result.average_ranks)
        off_diagonal = ~np.eye(5, dtype=bool)
        # Both come from the same studentized range distribution: a gap
        # beyond CD is exactly a p-value below alpha.
        np.testing.assert_array_equal(
            (gaps > result.critical_difference)[off_diagonal],
            (result.p_values < result.alpha)[off_diagonal],
        )
        assert (gaps > result.critical_difference).any()
        np.testing.assert_allclose(result.p_values, result.p_values.T)

    def test_p_values_match_scikit_posthocs(self):
        import scikit_posthocs
        table = np.random.default_rng(5).normal(size=(4, 15))
        table[3] += 1.5
        result = stats.nemenyi(table)
        reference = scikit_posthocs.posthoc_nemenyi_friedman(table.T)
        np.testing.assert_allclose(
            result.p_values, reference.to_numpy(), rtol=1e-9, atol=1e-12
        )
        assert result.p_values.min() < 0.05

    def test_groups(self):
        table = [[4.0] * 8, [3.0] * 8, [2.0] * 8, [1.0] * 8]
        result = stats.nemenyi(table, ["a", "b", "c", "d"])
        # N = 8, k = 4: CD = 2.569 * sqrt(20 / 48) = 1.66; ranks 1, 2, 3, 4.
        assert result.groups == [("a", "b"), ("b", "c"), ("c", "d")]
        wide = stats.nemenyi(table, ["a", "b", "c", "d"], alpha=0.001)
        assert wide.critical_difference > 2
        assert wide.groups == [("a", "b", "c"), ("b", "c", "d")]


class TestAnova:
    def test_matches_scipy(self):
        table = np.random.default_rng(4).normal(size=(3, 7))
        result = stats.anova(table)
        reference = scipy_stats.f_oneway(*table)
        assert result.statistic == pytest.approx(reference.statistic)
        assert result.p_value == pytest.approx(reference.pvalue)
        assert result.critical_value == pytest.approx(
            scipy_stats.f.ppf(0.95, 2, 18)
        )


def test_critical_difference_diagram_png(tmp_path, paper_table):
    import matplotlib

    matplotlib.use("Agg")
    result = stats.nemenyi(paper_table, METHODS)
    path = tmp_path / "cd.png"
    figure = stats.plot_critical_difference(result, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert "CD = 0.78" in texts
    assert "D-ReLU (1.53)" in texts
    # One thick bar per group of methods not significantly different.
    thick = [
        c for c in figure.axes[0].collections if max(c.get_linewidth()) == 4
    ]
    assert len(thick) == len(result.groups) == 2


class TestBadInput:
    def test_not_2d(self):
        with pytest.raises(ValueError, match=r"2-D.*shape \(4,\)"):
            stats.friedman([1, 2, 3, 4])

    def test_too_few_methods_for_friedman(self):
        with pytest.raises(ValueError, match=r"at least 3 methods.*\(2, 5\)"):
            stats.friedman(np.ones((2, 5)))

    def test_too_few_methods_for_anova_and_nemenyi(self):
        with pytest.raises(ValueError, match="at least 2 methods"):
            stats.anova(np.ones((1, 5)))
        with pytest.raises(ValueError, match="at least 2 methods"):
            stats.nemenyi(np.ones((1, 5)))

    def test_too_few_settings(self):
        with pytest.raises(ValueError, match=r"at least 2 settings.*\(3, 1\)"):
            stats.nemenyi(np.ones((3, 1)))

    def test_non_finite(self):
        table = np.ones((3, 3))
        table[1, 1] = np.nan
        with pytest.raises(ValueError, match="finite"):
            stats.anova(table)

    @pytest.mark.parametrize("methods", [["a", "b"], ["a", "a", "b"]])
    def test_bad_method_names(self, methods):
        with pytest.raises(ValueError, match="3 distinct names"):
            stats.friedman(np.random.rand(3, 4), methods)

    @pytest.mark.parametrize("alpha", [0, 1.5, True])
    def test_bad_alpha(self, alpha):
        with pytest.raises(ValueError, match=r"alpha=.*"):
            stats.nemenyi(np.random.rand(3, 4), alpha=alpha)

    def test_plot_needs_nemenyi_result(self):
        with pytest.raises(TypeError, match="FriedmanResult"):
            stats.plot_critical_difference(stats.friedman(np.random.rand(3, 4)))
