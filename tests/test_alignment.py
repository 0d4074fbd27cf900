"""Known-answer, invariance and reference tests of the mutual k-NN core (Eq. 1)."""
import numpy as np
import pytest
import torch

import vtalign as va
from naive_reference import naive_knn, naive_mutual_knn, tie_heavy
from vtalign.alignment import sweep_overlaps


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# --------------------------------------------------------------------------- #
# knn_indices
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("n,d,k", [(50, 8, 1), (120, 16, 10), (97, 5, 96)])
def test_knn_matches_naive_random(rng, n, d, k):
    x = rng.normal(size=(n, d)).astype(np.float32)
    np.testing.assert_array_equal(va.knn_indices(x, k), naive_knn(x, k))


@pytest.mark.parametrize("k", [1, 5, 20])
def test_knn_matches_naive_with_ties(rng, k):
    x = tie_heavy(rng, 90, 4)
    np.testing.assert_array_equal(va.knn_indices(x, k), naive_knn(x, k))


def test_knn_tie_rule_is_lower_index():
    # items 1, 2 and 3 are identical, so for item 0 they tie exactly
    x = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    assert va.knn_indices(x, 2)[0].tolist() == [1, 2]
    assert va.knn_indices(x, 1)[3].tolist() == [1]


def test_knn_excludes_self_even_with_duplicates():
    x = np.ones((6, 3))
    nn = va.knn_indices(x, 5)
    for i in range(6):
        assert i not in nn[i]
        assert sorted(nn[i]) == nn[i].tolist()  # all tie: ascending index


def test_knn_chunked_equals_unchunked(rng, monkeypatch):
    x = rng.normal(size=(70, 6)).astype(np.float32)
    full = va.knn_indices(x, 7)
    monkeypatch.setattr("vtalign.knn.ROW_CHUNK", 16)
    np.testing.assert_array_equal(va.knn_indices(x, 7), full)


def test_knn_accepts_torch_and_low_precision(rng):
    x = rng.normal(size=(60, 8)).astype(np.float32)
    ref = va.knn_indices(x, 5)
    np.testing.assert_array_equal(va.knn_indices(torch.from_numpy(x), 5), ref)
    x16 = torch.from_numpy(x).to(torch.float16)
    np.testing.assert_array_equal(va.knn_indices(x16, 5), naive_knn(x16.float().numpy(), 5))
    bf = torch.from_numpy(x).to(torch.bfloat16)
    np.testing.assert_array_equal(va.knn_indices(bf, 5), naive_knn(bf.float().numpy(), 5))


def test_knn_queries_exclude_same_index(rng):
    db = rng.normal(size=(40, 5))
    q = db.copy()  # each query's exact copy is its own row, which must be excluded
    np.testing.assert_array_equal(va.knn_indices(db, 4, queries=q), va.knn_indices(db, 4))


# --------------------------------------------------------------------------- #
# mutual_knn: known answers and invariances
# --------------------------------------------------------------------------- #
def test_identical_spaces_score_one(rng):
    x = rng.normal(size=(200, 12))
    assert va.mutual_knn(x, x, 10) == 1.0


def test_rotation_and_scaling_change_nothing(rng):
    x = rng.normal(size=(150, 12))
    y = rng.normal(size=(150, 20))
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    ref = va.mutual_knn(x, y, 8)
    assert va.mutual_knn(x @ q, y, 8) == ref
    assert va.mutual_knn(7.5 * x, y, 8) == ref
    assert va.mutual_knn(x * rng.uniform(0.1, 10, size=(150, 1)), y, 8) == ref  # per-item scale
    assert va.mutual_knn(x, x @ q, 8) == 1.0


def test_independent_spaces_score_about_chance():
    rng = np.random.default_rng(0)
    n, k = 400, 10
    scores = [va.mutual_knn(rng.normal(size=(n, 32)), rng.normal(size=(n, 32)), k) for _ in range(5)]
    chance = va.chance_level(n, k)
    assert abs(np.mean(scores) - chance) < 0.25 * chance
    assert np.mean(scores) < 0.1


@pytest.mark.parametrize("k", [1, 4, 15])
def test_matches_naive_reference(rng, k):
    x = rng.normal(size=(80, 10)).astype(np.float32)
    y = (x @ rng.normal(size=(10, 7)) + 1.5 * rng.normal(size=(80, 7))).astype(np.float32)
    assert va.mutual_knn(x, y, k) == pytest.approx(naive_mutual_knn(x, y, k), rel=1e-12)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_matches_naive_reference_tie_heavy(rng, k):
    x, y = tie_heavy(rng, 75, 6), tie_heavy(rng, 75, 8)
    assert va.mutual_knn(x, y, k) == pytest.approx(naive_mutual_knn(x, y, k), rel=1e-12)


def test_row_permutation_equivariance(rng):
    x = rng.normal(size=(100, 9))
    y = x[:, :5] + rng.normal(size=(100, 5))
    perm = rng.permutation(100)
    assert va.mutual_knn(x[perm], y[perm], 6) == va.mutual_knn(x, y, 6)
    # neighbour lists permute with the rows (no ties in continuous random data)
    inv = np.argsort(perm)
    np.testing.assert_array_equal(inv[va.knn_indices(x, 6)[perm]], va.knn_indices(x[perm], 6))


def test_symmetric_in_its_arguments(rng):
    x, y = rng.normal(size=(90, 4)), rng.normal(size=(90, 6))
    assert va.mutual_knn(x, y, 5) == va.mutual_knn(y, x, 5)


def test_neighbour_overlap_known_answer():
    ix = np.array([[1, 2, 3], [0, 2, 3]])
    iy = np.array([[3, 2, 1], [4, 5, 0]])
    np.testing.assert_array_equal(va.neighbour_overlap(ix, iy), [3, 1])


# --------------------------------------------------------------------------- #
# Bad input
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "x,y,k,match",
    [
        (np.zeros((10, 3)), np.zeros((11, 3)), 2, "same N"),
        (np.ones((10, 3)), np.ones((10, 3)), 0, "1 <= k < N"),
        (np.ones((10, 3)), np.ones((10, 3)), 10, "1 <= k < N"),
        (np.ones((10, 3)), np.ones((10, 3)), 2.5, "integer"),
        (np.full((10, 3), np.nan), np.ones((10, 3)), 2, "NaN or infinite"),
        (np.ones((10, 3)), np.full((10, 3), np.inf), 2, "NaN or infinite"),
        (np.ones(10), np.ones((10, 3)), 2, r"shape \[N, D\]"),
        (np.ones((10, 2, 3)), np.ones((10, 3)), 2, r"shape \[N, D\]"),
        ([[1.0, 2.0]] * 10, np.ones((10, 3)), 2, "numpy array or a torch tensor"),
    ],
)
def test_bad_input_raises_clear_value_error(x, y, k, match):
    with pytest.raises(ValueError, match=match):
        va.mutual_knn(x, y, k)


def test_unknown_backend():
    with pytest.raises(ValueError, match="Unknown backend"):
        va.knn_indices(np.ones((5, 2)), 1, backend="cuda-magic")


# --------------------------------------------------------------------------- #
# prepare_features
# --------------------------------------------------------------------------- #
def test_prepare_features_clamps_at_quantile_and_normalises():
    x = np.arange(1, 21, dtype=np.float32).reshape(4, 5)  # |x| = 1..20
    out = va.prepare_features(x, q=0.5, normalize=False)
    # the reference rule: sorted(|x|)[int(0.5 * 20)] = sorted[10] = 11
    assert out.max() == 11 and out.min() == 1
    normed = va.prepare_features(x, q=0.5)
    np.testing.assert_allclose(np.linalg.norm(normed, axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(normed, out / np.linalg.norm(out, axis=1, keepdims=True), rtol=1e-6)


def test_prepare_features_switches_and_3d(rng):
    x = rng.normal(size=(20, 3, 7)).astype(np.float32)
    np.testing.assert_array_equal(va.prepare_features(x, clamp=False, normalize=False), x)
    out = va.prepare_features(torch.from_numpy(x), q=0.9)
    assert isinstance(out, torch.Tensor) and out.shape == (20, 3, 7)
    np.testing.assert_allclose(out.norm(dim=-1).numpy(), 1, rtol=1e-5)
    # the clamp threshold is global over all layers, as in the reference code
    t = np.sort(np.abs(x).ravel())[int(0.9 * x.size)]
    np.testing.assert_allclose(
        va.prepare_features(x, q=0.9, normalize=False), np.clip(x, -t, t), rtol=0, atol=0
    )


# --------------------------------------------------------------------------- #
# layer_sweep
# --------------------------------------------------------------------------- #
def test_layer_sweep_matches_pairwise_mutual_knn(rng):
    fx = rng.normal(size=(60, 3, 8)).astype(np.float32)
    fy = np.concatenate([rng.normal(size=(60, 2, 5)), fx[:, [1]] @ rng.normal(size=(8, 5))], axis=1)
    res = va.layer_sweep(fx, fy, k=6)
    assert res.scores.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            assert res.scores[i, j] == va.mutual_knn(fx[:, i], fy[:, j], 6)
    assert res.best[:2] == (1, 2) and res.best[2] == res.scores.max()


def test_layer_sweep_best_tie_rule():
    x = np.random.default_rng(0).normal(size=(30, 1, 4))
    fx = np.concatenate([x, x], axis=1)  # two identical layers -> identical rows of scores
    res = va.layer_sweep(fx, fx, k=3)
    assert res.best == (0, 0, 1.0)


def test_layer_sweep_searches_each_layer_once(rng, monkeypatch):
    calls = []
    import vtalign.alignment as alignment

    cpu_torch = type(alignment.resolve_backend("torch"))  # the class the sweep uses (pytest may import knn twice)
    original = cpu_torch.candidates
    monkeypatch.setattr(cpu_torch, "candidates", lambda *a: calls.append(1) or original(*a))
    va.layer_sweep(rng.normal(size=(40, 5, 4)), rng.normal(size=(40, 7, 3)), k=3)
    assert len(calls) == 5 + 7


def test_sweep_overlaps_blocked_equals_broadcast(rng, monkeypatch):
    nx = np.stack([va.knn_indices(rng.normal(size=(50, 4)), 5) for _ in range(2)])
    ny = np.stack([va.knn_indices(rng.normal(size=(50, 4)), 5) for _ in range(3)])
    direct = np.array([[va.neighbour_overlap(a, b) for b in ny] for a in nx])
    np.testing.assert_array_equal(sweep_overlaps(nx, ny), direct)
    monkeypatch.setattr("vtalign.knn.MASK_ELEMENTS", 7 * 50)  # 7 rows per block
    np.testing.assert_array_equal(sweep_overlaps(nx, ny), direct)


def test_layer_sweep_rejects_2d(rng):
    with pytest.raises(ValueError, match=r"\[N, L, D\]"):
        va.layer_sweep(rng.normal(size=(10, 4)), rng.normal(size=(10, 2, 4)), k=2)


def test_zero_rows_warn_with_their_count(rng):
    x = rng.normal(size=(30, 4))
    x[[3, 17]] = 0
    with pytest.warns(UserWarning, match="x has 2 all-zero row"):
        va.knn_indices(x, 3)
    with pytest.warns(UserWarning, match="y has 2 all-zero row"):
        va.mutual_knn(rng.normal(size=(30, 4)), x, 3)


@pytest.mark.parametrize("backend", [b for b in ("torch", "faiss", "triton") if b in va.available_backends()])
def test_positive_multiples_pinned_behaviour(rng, backend):
    """Power-of-two multiples tie exactly (lower index first); other positive multiples are both found,
    next to each other, in the order of their fp64 cosines (see knn_indices' docstring)."""
    x = rng.normal(size=(40, 6))
    x[30] = 4.0 * x[5]                      # unit rows bitwise equal to row 5's
    x[31] = 3.0 * x[7]                      # the same direction, fp64 unit rows may differ in the last bit
    got = va.knn_indices(x, 3, backend=backend)
    assert got[30][0] == 5 and got[5][0] == 30 and got[31][0] == 7 and got[7][0] == 31
    q = np.repeat(x[[5, 7]], 20, axis=0)    # queries 0-19 point along rows 5 and 30, 20-39 along 7 and 31
    near = va.knn_indices(x, 2, backend=backend, queries=q)
    assert list(near[0]) == [5, 30]         # an exact tie at cosine 1: lower index first
    assert set(near[20]) == {7, 31}         # both found, in the order of their fp64 cosines
