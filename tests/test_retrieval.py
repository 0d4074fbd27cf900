"""The paper's retrieval metric (weighted k-NN accuracy, k = 8, leave-one-out): known answers, a naive
reference, invariances and controls where the effect is absent."""
import numpy as np
import pytest

from vtalign.probes import RETRIEVAL_K, RETRIEVAL_TEMPERATURE, retrieval_accuracies, retrieval_accuracy


def _naive(x, y, k, t):
    """Leave-one-out weighted k-NN written out item by item (the definition, no shared code)."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = list(y)
    right = asked = 0
    for i in range(len(x)):
        if y.count(y[i]) < 2:
            continue
        others = sorted((j for j in range(len(x)) if j != i), key=lambda j: (-(x[i] @ x[j]), j))[:k]
        votes = {}
        for j in others:
            votes[y[j]] = votes.get(y[j], 0.0) + np.exp(x[i] @ x[j] / t)
        best = max(votes.values())
        right += min(c for c, v in votes.items() if np.isclose(v, best, rtol=1e-12, atol=0)) == y[i]
        asked += 1
    return right / asked


def test_defaults_are_the_papers_k_and_dinos_temperature():
    assert RETRIEVAL_K == 8 and RETRIEVAL_TEMPERATURE == 0.07


def test_known_answers_by_hand():
    # Two tight pairs and one item between them: k = 1 finds each pair's partner.
    x = np.array([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0], [0.05, 0.99]])
    assert retrieval_accuracy(x, [0, 0, 1, 1], k=1) == 1.0
    assert retrieval_accuracy(x, [0, 1, 0, 1], k=1) == 0.0      # every nearest neighbour is the other class
    # k = 3 with a sharp temperature: the nearest neighbour's weight dominates the two far ones.
    assert retrieval_accuracy(x, [0, 0, 1, 1], k=3, temperature=0.01) == 1.0
    # ... with a flat temperature the two far items of the other class outvote it: 2 against 1 for everyone.
    assert retrieval_accuracy(x, [0, 0, 1, 1], k=3, temperature=1e6) == 0.0
    # A class of one is left out of the queries (it stays in the memory bank).
    assert retrieval_accuracy(np.vstack([x, [[0.7, 0.7]]]), [0, 0, 1, 1, 2], k=1) == 1.0
    with pytest.raises(ValueError, match="No class has two items"):
        retrieval_accuracy(x, ["a", "b", "c", "d"])


@pytest.mark.parametrize("seed", [0, 1])
def test_equals_the_naive_definition(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, size=70)
    x = rng.normal(size=(70, 6)) + 0.8 * np.eye(6)[y]
    for k, t in ((1, 0.07), (8, 0.07), (8, 0.5), (30, 0.07)):
        assert retrieval_accuracy(x, y, k=k, temperature=t, block=16) == pytest.approx(_naive(x, y, k, t))


def test_invariances_scale_label_names_and_blocks():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, size=120)
    x = rng.normal(size=(120, 8)) + np.eye(8)[y]
    base = retrieval_accuracy(x, y)
    assert 0.3 < base < 1.0                       # neither trivial nor at chance: the invariances are not empty
    assert retrieval_accuracy(x * rng.uniform(0.1, 10, size=(120, 1)), y) == base   # cosine: per-item scale
    assert retrieval_accuracy(x * 1000, y) == base
    names = np.array(["d", "b", "c", "a"])         # classes renamed by a permutation (changes the tie order)
    assert retrieval_accuracy(x, names[y]) == pytest.approx(base, abs=1 / 120)
    assert retrieval_accuracy(x, y, block=7) == base
    order = rng.permutation(120)                   # items reordered together with their labels
    assert retrieval_accuracy(x[order], y[order]) == pytest.approx(base, abs=2 / 120)


def test_controls_features_without_the_label_sit_at_chance():
    rng = np.random.default_rng(4)
    y = np.repeat(np.arange(10), 50)
    clustered = rng.normal(size=(500, 16)) + 6 * np.eye(16)[y]
    assert retrieval_accuracy(clustered, y) > 0.95
    noise = rng.normal(size=(500, 16))
    assert abs(retrieval_accuracy(noise, y) - 0.1) < 0.06                     # 10 balanced classes
    assert abs(retrieval_accuracy(clustered, rng.permutation(y)) - 0.1) < 0.06  # labels shuffled over items


def test_bad_input_is_refused_before_work():
    x = np.ones((4, 2))
    with pytest.raises(ValueError, match="same N"):
        retrieval_accuracy(x, [0, 0, 1])
    with pytest.raises(ValueError, match="k must be"):
        retrieval_accuracy(x, [0, 0, 1, 1], k=0)
    with pytest.raises(ValueError, match="temperature"):
        retrieval_accuracy(x, [0, 0, 1, 1], temperature=0)
    with pytest.raises(ValueError, match="NaN"):
        retrieval_accuracy(np.full((4, 2), np.nan), [0, 0, 1, 1])


def test_several_label_sets_share_the_neighbours_and_give_the_single_answers():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, size=90)
    x = rng.normal(size=(90, 6)) + np.eye(6)[y]
    sets = [y, rng.permutation(y), (y > 1).astype(int), np.r_[y[:-1], 9]]   # the last: one singleton class
    assert retrieval_accuracies(x, sets, k=5, block=32) == [retrieval_accuracy(x, s, k=5) for s in sets]
    assert retrieval_accuracies(x, []) == []
