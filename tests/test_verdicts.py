"""Known answers for every branch of every status rule (vtalign.verdicts), and of the grid rules that feed them
(vtalign.scaling.grid_curves, relative_gain, mean_gain): a status must be able to come out either way."""
import numpy as np
import pandas as pd
import pytest

from vtalign import verdicts as v
from vtalign.scaling import grid_curves, grid_draws, mean_gain, relative_gain

UP, FLAT, DOWN = v.Interval(.1, .05, .15), v.Interval(0, -.01, .01), v.Interval(-.1, -.15, -.05)


def test_direction_reads_the_whole_interval():
    assert [v.direction(i) for i in (UP, FLAT, DOWN)] == [1, 0, -1]
    assert v.direction(v.Interval(0.5, 0.0, 1.0)) == 0  # touching zero is not beyond it


@pytest.mark.parametrize("steps, overall, expected", [
    ([UP, UP], UP, "rises"),
    ([UP, FLAT], UP, "rises"),            # saturating: a flat step is allowed
    ([UP, DOWN], UP, "flat"),             # a step that falls beyond its noise breaks the rise
    ([FLAT, FLAT], FLAT, "flat"),         # nothing beyond the noise
    ([DOWN, FLAT], DOWN, "falls"),
    ([DOWN, UP], DOWN, "flat"),
])
def test_trend(steps, overall, expected):
    assert v.trend(steps, overall) == expected


@pytest.mark.parametrize("n_for, n_against, n, expected", [
    (3, 0, 3, v.SUPPORTED), (2, 0, 3, v.UNRESOLVED), (2, 1, 3, v.CONTRADICTED), (0, 0, 0, v.NOT_TESTABLE),
])
def test_claim_status(n_for, n_against, n, expected):
    assert v.claim_status(n_for, n_against, n) == expected


@pytest.mark.parametrize("args, expected", [
    ((True, False, UP), v.DETECTED),
    ((True, False, None), v.DETECTED),
    ((True, True, UP), v.FIRES_ON_NULL),
    ((False, True, None), v.FIRES_ON_NULL),
    ((True, False, FLAT), v.NOT_DETECTED),             # found in both senses of the rule but not told apart
    ((False, False, None, 0.001, 0.009), v.NOT_DETECTED),
    ((False, False, None, 0.01, 0.009), v.NO_POWER),
    ((False, False, None, 0.01, -0.009), v.NO_POWER),  # the paper's effect size is taken unsigned
    ((False, None), v.NOT_TESTABLE),
])
def test_method_check(args, expected):
    assert v.method_check(*args) == expected


def test_versus_published_and_form_status():
    assert v.versus_published(v.Interval(.55, .52, .59), .60) == "smaller"
    assert v.versus_published(v.Interval(1.7, 1.5, 1.9), .60) == "larger"
    assert v.versus_published(v.Interval(.6, .6, .7), .60) == "matches"  # bounds included
    assert v.form_status(0.0, 10.5) == v.SUPPORTED
    assert v.form_status(0.0, 10.0) == v.UNRESOLVED      # a margin of exactly 10 is not "more than 10"
    assert v.form_status(10.5, 0.0) == v.CONTRADICTED
    assert v.form_status(4.0, 0.0) == v.UNRESOLVED


def test_holm_against_a_naive_step_down():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.uniform(0, 0.06, size=rng.integers(1, 6))
        expected = np.zeros(p.size, bool)
        for rank, i in enumerate(np.argsort(p, kind="stable")):
            if p[i] > 0.05 / (p.size - rank):
                break
            expected[i] = True
        assert (v.holm(p) == expected).all()


def test_verdict_refuses_unknown_words():
    with pytest.raises(ValueError, match="status"):
        v.Verdict("x", "re-analysis", "reproduced", "", "")
    with pytest.raises(ValueError, match="evidence"):
        v.Verdict("x", "live", v.SUPPORTED, "", "")
    assert set(v.DEFINITIONS) >= {v.SUPPORTED, v.CONTRADICTED, v.UNRESOLVED, v.DETECTED, v.FIRES_ON_NULL,
                                  v.NOT_DETECTED, v.NO_POWER, v.NOT_TESTABLE, v.AS_PUBLISHED}


def _grid(scores, frames=(1, 2, 4), captions=(1, 10)):
    cells = [(f, c) for f in frames for c in captions]
    return pd.DataFrame([dict(model="m", n_frames=f, n_captions=c, score=s) for (f, c), s in zip(cells, scores)])


def test_grid_curves_with_a_margin_needs_a_step_beyond_twice_the_margin():
    # frames 1 -> 2 -> 4 at 1 caption: +0.004, -0.001 (both inside 2 x 0.003), first-to-last +0.003: flat
    g = _grid([0.300, 0.40, 0.304, 0.41, 0.303, 0.45])
    c = grid_curves(g, margin=0.003).set_index(["axis", "at"])
    assert c.loc[("frames", 1), "trend"] == "flat" and c.loc[("frames", 1), "rising_steps"] == 0
    assert c.loc[("frames", 10), "trend"] == "rises" and c.loc[("frames", 10), "falling_steps"] == 0
    assert (c.loc["captions", "trend"] == "rises").all()
    # the same grid with no margin: +0.004 then -0.001 counts as a fall, the curve is not rising
    assert grid_curves(g, margin=0.0).set_index(["axis", "at"]).loc[("frames", 1), "trend"] == "flat"
    assert grid_curves(g, margin=0.0).set_index(["axis", "at"]).loc[("frames", 1), "falling_steps"] == 1


def test_grid_curves_with_draws_pairs_the_items():
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, size=400)
    # 3 frame counts x 1 caption... two caption counts so both axes have curves
    per_item = np.stack([base, base + 0.5, base + 0.01, base + 0.5, base + 0.02, base + 0.5])
    g = _grid(per_item.mean(axis=1))
    c = grid_curves(g, grid_draws(per_item, n_boot=300, seed=0)).set_index(["axis", "at"])
    # +0.01 per step on every item: paired, the interval is a point and lies above zero
    assert c.loc[("frames", 1), "trend"] == "rises" and c.loc[("frames", 1), "gain_low"] == pytest.approx(0.02)
    assert c.loc[("frames", 10), "trend"] == "flat"
    with pytest.raises(ValueError, match="cells"):
        grid_curves(g, np.zeros((5, 3)))


def test_relative_and_mean_gain():
    g = _grid([0.1, 0.16, 0.2, 0.32, 0.25, 0.4])
    gain = relative_gain(g)
    assert gain.estimate == pytest.approx(0.6)
    wide = relative_gain(g, margin=0.01)
    assert wide.low < 0.6 < wide.high
    est, draws = mean_gain(g, np.tile(g.score.values, (4, 1)), "frames")
    assert est == pytest.approx(((0.25 - 0.1) + (0.4 - 0.16)) / 2) and np.allclose(draws, est)


def test_independent_difference_and_percentile_interval():
    d = v.independent_difference(np.ones(100), np.zeros(100), 1.0, 0.0)
    assert (d.estimate, d.low, d.high) == (1.0, 1.0, 1.0)
    assert v.percentile_interval(np.arange(101) / 100, 0.5).low == pytest.approx(0.025)
