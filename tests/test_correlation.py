"""Correlations with bootstrap intervals, linear fits, and the printed values of Figures 2 and 4."""
import numpy as np
import pytest
from scipy import stats

import vtalign as va
from vtalign.book.paper import load_published
from vtalign.correlation import figure2_regressions


def test_correlate_matches_scipy_and_is_seeded():
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    y = 0.6 * x + rng.normal(size=12)
    c = va.correlate(x, y, n_boot=2000, seed=5)
    assert c.pearson_r == pytest.approx(stats.pearsonr(x, y)[0])
    assert c.spearman_r == pytest.approx(stats.spearmanr(x, y)[0])
    assert c.ci_low < c.pearson_r < c.ci_high
    assert va.correlate(x, y, n_boot=2000, seed=5) == c


def test_perfect_and_anti_correlation():
    x = np.arange(6.0)
    assert va.correlate(x, 2 * x + 1, n_boot=100).pearson_r == pytest.approx(1.0)
    assert va.correlate(x, -x, n_boot=100).spearman_r == pytest.approx(-1.0)


@pytest.mark.parametrize("x,y,match", [([1, 2], [1, 2], "at least 3"), ([1, 2, 3], [1, 2], "same length"),
                                       ([1, 1, 1], [1, 2, 3], "constant"), ([1, np.nan, 3], [1, 2, 3], "finite")])
def test_correlate_bad_input(x, y, match):
    with pytest.raises(ValueError, match=match):
        va.correlate(x, y)


def test_linear_fit_known_line():
    f = va.linear_fit([0.1, 0.2, 0.3, 0.4], [0.142, 0.302, 0.462, 0.622])
    assert f.slope == pytest.approx(1.6) and f.intercept == pytest.approx(-0.018) and f.r == pytest.approx(1.0)


def test_figure4_recomputed_r_matches_printed():
    data = load_published("fig4_downstream_digitized")
    printed = load_published("fig4_printed_pearson").set_index("task")
    table = va.correlation_table(data, "alignment", list(printed.index), n_boot=200).set_index("task")
    for task, row in printed.iterrows():
        assert table.loc[task, "pearson_r"] == pytest.approx(row.pearson_r, abs=0.0015)
        assert table.loc[task, "pearson_p"] == pytest.approx(row.p_value, abs=0.0015)


def test_figure2_refit_matches_published_lines():
    refit = figure2_regressions(load_published("fig2_alignment_vs_retrieval_digitized"), n_boot=100).set_index("panel")
    lines = load_published("fig2_regression_lines_digitized")
    printed = load_published("fig2_printed_legend_r")
    for panel in ("k400", "ssv2"):
        line = lines[(lines.llm == "gemma2-9b-it") & (lines.panel == panel)].iloc[0]
        assert refit.loc[panel, "slope"] == pytest.approx(line.slope, abs=0.005)
        r = printed[(printed.llm == "gemma2-9b-it") & (printed.panel == panel)].r.iloc[0]
        assert refit.loc[panel, "pearson_r"] == pytest.approx(r, abs=0.005)


def test_correlation_table_names_missing_columns():
    data = load_published("fig4_downstream_digitized")
    with pytest.raises(ValueError, match="not in the table"):
        va.correlation_table(data, "alignment", ["no_such_task"])
