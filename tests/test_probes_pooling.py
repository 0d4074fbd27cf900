"""Readouts, frame pooling, per-layer preparation and the paired statistics of the live Figures 2, 4, 6:
known answers, invariances and naive reference implementations."""
import numpy as np
import pytest

import vtalign as va
from vtalign.extract.sampling import frame_indices
from vtalign.pooling import frame_positions, parse_pooling, pool_frames
from vtalign.probes import chance_score, fold_assignment, knn_probe, linear_probe, task_score

RNG = np.random.default_rng(0)


# --------------------------------------------------------------------------- #
# Probes
# --------------------------------------------------------------------------- #
def _linear_world(n=300, d=20, n_classes=4, seed=0, margin=0.0):
    """Labels that are a linear function of the features: argmax of x @ w (points closer than ``margin``
    to a class boundary are left out)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(d, n_classes))
    x = rng.normal(size=(4 * n, d))
    s = np.sort(x @ w, axis=1)
    x = x[np.flatnonzero(s[:, -1] - s[:, -2] > margin)[:n]]
    return x, np.argmax(x @ w, axis=1)


def test_linear_probe_scores_linear_labels_near_one_and_shuffled_labels_near_chance():
    x, y = _linear_world(n_classes=2, margin=0.5)               # a half-space with a margin
    assert linear_probe(x, y, "class") > 0.97
    x4, y4 = _linear_world(margin=1.0)                           # argmax of 4 linear functions
    assert linear_probe(x4, y4, "class") > 0.85                  # least squares on one-hot targets: not 1
    shuffled = np.random.default_rng(1).permutation(y4)
    assert abs(linear_probe(x4, shuffled, "class") - 1 / 4) < 0.1
    target = x @ RNG.normal(size=(20, 2))
    assert linear_probe(x, target, "regression") > 0.999
    assert linear_probe(x, np.random.default_rng(2).permutation(target), "regression") < 0.05


def test_multilabel_probes_known_answers():
    x = RNG.normal(size=(300, 10))
    labels = (x[:, :3] > 0).astype(int)                      # three labels, each a half-space
    assert linear_probe(x, labels, "multilabel") > 0.9
    assert knn_probe(x * 0 + RNG.normal(size=x.shape), labels, "multilabel") < 0.65  # unrelated features
    assert chance_score(labels, "multilabel") == pytest.approx(np.maximum(labels.mean(0), 1 - labels.mean(0)).mean())


def test_knn_probe_on_separated_clusters_and_on_noise():
    centres = np.eye(5) * 10
    y = np.repeat(np.arange(5), 40)
    x = centres[y] + RNG.normal(size=(200, 5))
    assert knn_probe(x, y, "class") == 1.0
    assert knn_probe(RNG.normal(size=(200, 5)), y, "class") < 0.35
    assert knn_probe(x, y.astype(str), "class") == 1.0          # string classes work alike


def test_knn_probe_equals_a_naive_weighted_vote():
    x, y = _linear_world(n=60, d=6)
    folds = fold_assignment(60, 3, seed=4)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    predicted = np.empty(60, dtype=int)
    for i in range(60):
        train = np.flatnonzero(folds != folds[i])
        sims = unit[train] @ unit[i]
        top = sorted(range(len(train)), key=lambda t: (-sims[t], t))[:7]
        votes = {}
        for t in top:
            votes[y[train[t]]] = votes.get(y[train[t]], 0) + np.exp(sims[t] / 0.1)
        predicted[i] = max(sorted(votes), key=lambda c: votes[c])
    assert knn_probe(x, y, "class", k=7, temperature=0.1, n_folds=3, seed=4) == pytest.approx((predicted == y).mean())


def test_folds_are_fixed_balanced_and_seeded():
    a = fold_assignment(23, 5, seed=1)
    assert np.array_equal(a, fold_assignment(23, 5, seed=1)) and not np.array_equal(a, fold_assignment(23, 5, seed=2))
    assert sorted(np.bincount(a)) == [4, 4, 5, 5, 5]
    with pytest.raises(ValueError, match="n_folds"):
        fold_assignment(3, 5)


def test_probe_inputs_are_checked():
    with pytest.raises(ValueError, match="same N"):
        linear_probe(np.zeros((5, 2)), [0, 1], "class")
    with pytest.raises(ValueError, match="kind"):
        knn_probe(np.zeros((5, 2)), [0] * 5, "ranking")
    with pytest.raises(ValueError, match="0/1"):
        linear_probe(np.zeros((5, 2)), [0, 1, 2, 0, 1], "multilabel")
    assert task_score([[0.0], [2.0]], [[1.0], [1.0]], "regression") == 0.0   # predicting the mean: R^2 = 0


# --------------------------------------------------------------------------- #
# Pooling
# --------------------------------------------------------------------------- #
def _naive_pool(x, dims, pooling):
    name, arg = parse_pooling(pooling)
    n, f, n_layers, _ = x.shape
    out = []
    for i in range(n):
        layers = []
        for layer, w in enumerate(dims):
            frames = [x[i, t, layer, :w].astype(np.float64) for t in range(f)]
            if name == "first":
                v = frames[0]
            elif name == "mean":
                v = np.mean([frames[t] for t in frame_positions(f, arg)], axis=0)
            else:
                size = f // arg
                v = np.concatenate([np.mean(frames[s * size:(s + 1) * size], axis=0) for s in range(arg)])
            layers.append(v)
        out.append(layers)
    return out


@pytest.mark.parametrize("pooling", ["first", "mean:1", "mean:3", "mean:8", "segments:2", "segments:4"])
def test_pool_frames_equals_a_naive_loop(pooling):
    dims = [3, 5, 2]
    x = np.zeros((4, 8, 3, 5), dtype=np.float32)
    for layer, w in enumerate(dims):
        x[:, :, layer, :w] = RNG.normal(size=(4, 8, w))
    pooled, new_dims = pool_frames(x, dims, pooling)
    naive = _naive_pool(x, dims, pooling)
    for i in range(4):
        for layer, w in enumerate(new_dims):
            assert np.allclose(pooled[i, layer, :w], naive[i][layer], atol=1e-6)
            assert not pooled[i, layer, w:].any()               # padding stays zero


def test_segments_see_order_and_means_do_not():
    x = RNG.normal(size=(2, 4, 1, 3)).astype(np.float32)
    reversed_in_time = x[:, ::-1]
    assert np.allclose(pool_frames(x, None, "mean:4")[0], pool_frames(reversed_in_time, None, "mean:4")[0])
    assert not np.allclose(pool_frames(x, None, "segments:2")[0], pool_frames(reversed_in_time, None, "segments:2")[0])


def test_frame_positions_follow_the_sampling_rule_and_nest_in_the_world():
    for f in (4, 16, 32):
        for n in range(1, f + 1):
            assert np.array_equal(frame_positions(f, n), frame_indices(f, n))
    # the synthetic world's 32 frames, 16 cached: 1 and 4 of those 16 are the frames sampled directly
    cached = frame_indices(32, 16)
    for n in (1, 4, 16):
        assert np.array_equal(cached[frame_positions(16, n)], frame_indices(32, n))


def test_pooling_errors_name_the_fix():
    with pytest.raises(ValueError, match="Unknown pooling"):
        parse_pooling("max")
    with pytest.raises(ValueError, match="multiple"):
        pool_frames(np.zeros((1, 6, 1, 2)), None, "segments:4")
    with pytest.raises(ValueError, match="cache at least"):
        pool_frames(np.zeros((1, 4, 1, 2)), None, "mean:8")


# --------------------------------------------------------------------------- #
# Per-layer preparation
# --------------------------------------------------------------------------- #
def test_per_layer_preparation_equals_preparing_each_layer_alone():
    dims = [4, 16, 8]
    x = np.zeros((30, 3, 16), dtype=np.float32)
    for layer, w in enumerate(dims):
        x[:, layer, :w] = RNG.normal(size=(30, w)) * 10 ** layer   # scales 30x and more apart
    per_layer = va.prepare_features(x, layer_dims=dims, per_layer=True)
    for layer, w in enumerate(dims):
        alone = va.prepare_features(x[:, layer, :w])
        assert np.allclose(per_layer[:, layer, :w], alone, atol=1e-7)
        assert not per_layer[:, layer, w:].any()
    shared = va.prepare_features(x, layer_dims=dims, per_layer=False)
    assert not np.allclose(shared, per_layer)
    assert np.array_equal(va.prepare_features(x, layer_dims=dims), per_layer)       # default: per layer for CNNs
    same_width = RNG.normal(size=(30, 3, 8)).astype(np.float32)
    assert np.array_equal(va.prepare_features(same_width, layer_dims=[8, 8, 8]), va.prepare_features(same_width))


# --------------------------------------------------------------------------- #
# Correlation permutation p-value and paired differences
# --------------------------------------------------------------------------- #
def test_correlation_permutation_p_value():
    x = np.arange(12.0)
    strong = va.correlate(x, 2 * x + RNG.normal(scale=0.1, size=12), n_boot=100, n_permutations=2000)
    assert strong.permutation_p < 0.01
    weak = va.correlate(x, RNG.normal(size=12), n_boot=100, n_permutations=2000)
    assert weak.permutation_p > 0.05
    assert va.correlate(x, x ** 2, n_boot=100).permutation_p is None


def test_paired_difference_known_answers():
    a = RNG.normal(size=200)
    same = va.paired_difference(a, a.copy(), n_boot=500, n_permutations=500)
    assert same.difference == 0 and same.p_value == 1.0 and same.null_low <= 0 <= same.null_high
    shifted = va.paired_difference(a + 0.5, a, n_boot=500, n_permutations=500)
    assert shifted.difference == pytest.approx(0.5) and shifted.p_value < 0.01 and shifted.ci_low > 0.4
    # no preference: the sign-flip null holds the observed difference about 95% of the time
    inside = [va.paired_difference(RNG.normal(size=50), RNG.normal(size=50), n_boot=10, n_permutations=400,
                                   seed=s) for s in range(200)]
    rate = np.mean([r.null_low <= r.difference <= r.null_high for r in inside])
    assert 0.88 < rate < 0.99
    with pytest.raises(va.InsufficientData):
        va.paired_difference([1.0], [0.0])


def test_negative_caption_overlaps_match_the_scores():
    v, p = RNG.normal(size=(40, 6)), RNG.normal(size=(40, 5))
    n = p + 0.3 * RNG.normal(size=p.shape)
    pos, neg = va.negative_caption_overlaps(v, p, n, k=4)
    assert (pos.mean() / 4, neg.mean() / 4) == va.negative_caption_alignment(v, p, n, k=4)
    same_pos, same_neg = va.negative_caption_overlaps(v, p, p, k=4)        # an order-blind text side
    assert np.array_equal(same_pos, same_neg)
