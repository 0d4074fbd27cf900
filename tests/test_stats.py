"""Chance level, permutation null (including the maximum over layer pairs) and bootstrap."""
import numpy as np
import pytest

import vtalign as va
from vtalign.stats import relabel_neighbours


def test_chance_level_known_answer():
    assert va.chance_level(1024, 10) == 10 / 1023
    with pytest.raises(ValueError, match="1 <= k < N"):
        va.chance_level(10, 10)


def test_relabel_equals_new_search_without_ties():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(80, 6))
    perm = rng.permutation(80)
    nn = va.knn_indices(y, 5)
    np.testing.assert_array_equal(relabel_neighbours(nn, perm), va.knn_indices(y[perm], 5))


def test_permutation_null_single_layer_centres_on_chance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 8))
    y = x + 0.5 * rng.normal(size=(200, 8))
    res = va.permutation_test(x, y, k=10, n_permutations=300, seed=3)
    assert res.observed == va.mutual_knn(x, y, 10)
    assert res.p_value == pytest.approx(1 / 301)  # far above every shuffle
    assert abs(res.null_mean - res.chance) < 0.2 * res.chance
    # independent spaces are not significant
    z = rng.normal(size=(200, 8))
    assert va.permutation_test(x, z, k=10, n_permutations=200, seed=3).p_value > 0.01


def test_permutation_null_takes_max_over_layer_pairs():
    rng = np.random.default_rng(2)
    fx, fy = rng.normal(size=(150, 6, 8)), rng.normal(size=(150, 7, 8))
    sweep = va.layer_sweep(fx, fy, k=5)
    res = va.permutation_test(None, None, k=5, n_permutations=100, seed=0, sweep=sweep)
    single = va.permutation_test(fx[:, 0], fy[:, 0], k=5, n_permutations=100, seed=0)
    # the best of 42 pairs on shuffled pairings sits clearly above chance and above one pair's null
    assert res.null_mean > 1.15 * res.chance
    assert res.null_mean > single.null_mean
    # the observed best of random layers is no better than that null
    assert res.p_value > 0.05
    # same seed, same null
    again = va.permutation_test(fx, fy, k=5, n_permutations=100, seed=0)
    np.testing.assert_array_equal(again.null, res.null)


def test_bootstrap_interval_contains_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(4)
    widths = []
    for n in (100, 800):
        x = rng.normal(size=(n, 8))
        y = x + rng.normal(size=(n, 8))
        b = va.bootstrap_ci(x, y, k=10, n_boot=300, seed=0)
        assert b.low <= b.estimate <= b.high
        assert b.estimate == va.mutual_knn(x, y, 10)
        widths.append(b.high - b.low)
    assert widths[1] < widths[0]


def test_bootstrap_reselect_is_biased_upwards_on_random_layers():
    rng = np.random.default_rng(5)
    sweep = va.layer_sweep(rng.normal(size=(300, 5, 6)), rng.normal(size=(300, 5, 6)), k=5)
    fixed = va.bootstrap_ci(None, None, k=5, n_boot=200, sweep=sweep)
    reselected = va.bootstrap_ci(None, None, k=5, n_boot=200, sweep=sweep, reselect=True)
    assert np.median(reselected.samples) > np.median(fixed.samples)


def test_stats_reject_bad_arguments():
    x = np.ones((10, 2))
    with pytest.raises(ValueError, match="n_permutations"):
        va.permutation_test(x, x, k=2, n_permutations=0)
    with pytest.raises(ValueError, match="confidence"):
        va.bootstrap_ci(x, x, k=2, confidence=1.5)
    with pytest.raises(ValueError, match=r"both be \[N, D\]"):
        va.permutation_test(x, np.ones((10, 2, 2)), k=2)
