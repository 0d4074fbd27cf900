"""The power rule of the live correlation checks: the smallest Pearson r the chapter's test can declare
significant (known answers, and the permutation test agrees), and the verdicts that say "no power" when the
paper's effect is not above it."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t

from vtalign import verdicts as v
from vtalign.book import claims
from vtalign.correlation import correlate
from vtalign.verdicts import critical_pearson_r


def test_critical_r_known_answers():
    assert critical_pearson_r(3, 1) == np.inf          # 3! = 6 orders: a permutation p is at least 1/6
    assert critical_pearson_r(2, 1) == np.inf and critical_pearson_r(12, 0) == np.inf  # no df; nothing tested
    assert critical_pearson_r(4, 1) == pytest.approx(0.95, abs=1e-3)   # 4! = 24 orders: 1/24 < 0.05
    assert critical_pearson_r(4, 2) == np.inf                          # but 1/24 > 0.05 / 2
    r = critical_pearson_r(12, 3)
    t = r * np.sqrt(10) / np.sqrt(1 - r * r)           # back to t: its two-sided p is exactly alpha / m
    assert 2 * student_t.sf(t, 10) == pytest.approx(0.05 / 3, rel=1e-9) and r == pytest.approx(0.672, abs=1e-3)
    assert critical_pearson_r(1000, 3) < 0.08          # many points: small effects are detectable
    rs = [critical_pearson_r(n, 3) for n in (5, 8, 12, 30, 100)]
    assert all(a > b for a, b in zip(rs, rs[1:]))      # more points, smaller critical r
    assert critical_pearson_r(12, 1) < critical_pearson_r(12, 3) < critical_pearson_r(12, 7)
    assert critical_pearson_r(12, 3, n_permutations=50) == np.inf      # 1/51 > 0.05/3
    with pytest.raises(ValueError, match="alpha"):
        critical_pearson_r(12, 3, alpha=1.5)


def _with_r(n, r, seed=0):
    """x and y of n points with Pearson r exactly r."""
    rng = np.random.default_rng(seed)
    x, e = rng.normal(size=n), rng.normal(size=n)
    x = (x - x.mean()) / x.std()
    e = e - e.mean() - (e @ x) / n * x
    e /= e.std()
    return x, r * x + np.sqrt(1 - r * r) * e


def test_the_permutation_test_agrees_with_the_critical_r():
    n, m = 12, 3
    r_c = critical_pearson_r(n, m)
    above = correlate(*_with_r(n, min(r_c + 0.06, 0.99)), n_boot=10, n_permutations=20000).permutation_p
    below = correlate(*_with_r(n, r_c - 0.06), n_boot=10, n_permutations=20000).permutation_p
    assert above < 0.05 / m < below


def _lines(r, n, p):
    return pd.DataFrame(dict(text=["a", "b", "c"], n=n, pearson_r=r, permutation_p=p))


PAPER_FIG2 = [0.87, 0.87, 0.88, 0.81, 0.81, 0.82]


def test_figure2_check_says_no_power_when_the_paper_effect_is_below_the_critical_r():
    quiet = _lines(0.3, 5, 0.5)
    few = claims.live_strength_verdict(quiet, quiet, paper_r=PAPER_FIG2, n_permutations=10000)
    assert few.status == v.NO_POWER                    # n = 5, m = 3: r_c = 0.942 > 0.81
    for text in ("r_c = 0.942", "n = 5 variants", "m = 3 lines", "0.81"):
        assert text in few.rule and text in few.control
    many = claims.live_strength_verdict(_lines(0.3, 12, 0.5), _lines(0.3, 12, 0.5), paper_r=PAPER_FIG2)
    assert many.status == v.NOT_DETECTED and "r_c = 0.672" in many.rule    # 0.81 > 0.67: the test could find it
    found = _lines(0.9, 5, 0.001)
    assert claims.live_strength_verdict(found, quiet, paper_r=PAPER_FIG2).status == v.DETECTED
    assert claims.live_strength_verdict(found, found, paper_r=PAPER_FIG2).status == v.FIRES_ON_NULL
    assert claims.live_strength_verdict(quiet, quiet).status == v.NOT_DETECTED   # no paper r: no power rule


def test_figure4_check_counts_the_entered_tasks():
    above = pd.DataFrame(dict(task=["bg", "shape"], semantic=True, above=[True, False]))
    corr = pd.DataFrame(dict(task=["bg", "shape"], n=12, pearson_r=[0.2, 0.9], permutation_p=[0.5, 0.001]))
    quiet = claims.live_downstream_verdict(corr, above, corr.assign(permutation_p=0.9), above, paper_r=[0.82, 0.92])
    assert quiet.status == v.NOT_DETECTED and "m = 1 entered task," in quiet.control   # one task entered
    none_in = claims.live_downstream_verdict(corr, above.assign(above=False), corr, above.assign(above=False),
                                             paper_r=[0.82, 0.92])
    assert none_in.status == v.NO_POWER and "nothing is tested" in none_in.rule     # no task beat chance
    small = corr.assign(n=4)
    assert claims.live_downstream_verdict(small, above, small, above, paper_r=[0.82]).status == v.NO_POWER
