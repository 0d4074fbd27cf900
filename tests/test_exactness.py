"""Exact means exact: every backend returns the rational answer (cosines compared in exact arithmetic on
the input floats, ties -> lower index), also where different vectors' cosines tie or nearly tie, at any
scale of the rows (issue 22)."""
import warnings

import numpy as np
import pytest
import torch

import vtalign as va
from naive_reference import integer_ties, rational_knn
from vtalign import knn

BACKENDS = [b for b in ("torch", "faiss", "triton") if b in knn.available_backends()]
INTERPRETED = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def ties():
    """Issue 22's case (131 rows in {1, 2, 3}^4) and its rational answers for k = 1, 7, N - 1."""
    x = integer_ties()
    return x, {k: rational_knn(x, k) for k in (1, 7, 130)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_between_different_vectors_follow_the_rational_answer(backend, ties):
    x, want = ties
    # interpreted Triton takes seconds a search: the k the issue found wrong; the small case below has all three
    for k in (7,) if backend == "triton" and INTERPRETED else want:
        np.testing.assert_array_equal(va.knn_indices(x, k, backend=backend), want[k], err_msg=f"k={k}")
        sets = va.layer_neighbours(x[:, None], k, backend=backend)[0]
        np.testing.assert_array_equal(np.sort(sets, axis=1), np.sort(want[k], axis=1), err_msg=f"sets, k={k}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_small_case_every_k(backend):
    x = integer_ties(48, 4, seed=10)  # the triton backend at 5594cd4 got 3 rows wrong at k = 7, 18 at k = 47
    for k in (1, 7, 47):
        np.testing.assert_array_equal(va.knn_indices(x, k, backend=backend), rational_knn(x, k), err_msg=f"k={k}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicates_multiples_and_scaled_rows(backend):
    """Copies, power-of-two and other positive multiples (3x, 0.1x: they tie with x where the product is
    exact in fp32) and rows scaled by 1e-30 and 1e30 beside the originals."""
    base = integer_ties(40, 5, seed=8)
    x = np.concatenate([base, base[:6], 3 * base[6:12], 4 * base[12:16], np.float32(0.1) * base[16:20],
                        np.float32(1e-30) * base[20:24], np.float32(1e30) * base[24:28]])
    for k in (1, 7, len(x) - 1):
        np.testing.assert_array_equal(va.knn_indices(x, k, backend=backend), rational_knn(x, k), err_msg=f"k={k}")


def test_positive_multiples_tie_exactly():
    """x, 3x and 5x point the same way: for every other row they tie, so they come in index order."""
    x = np.array([[3.0, 1, 1], [1, 2, 3], [3, 6, 9], [5, 10, 15], [2, 2, 1]], np.float32)
    assert va.knn_indices(x, 3).tolist()[0] == [4, 1, 2]
    for i in (0, 4):
        row = va.knn_indices(x, 4)[i].tolist()
        assert [j for j in row if j in (1, 2, 3)] == [1, 2, 3]


def test_exact_decisions_are_counted():
    # knn's own entry point: the searches knn.profile() sees, also where pytest imported a second copy of
    # knn (its doctests, when lib/vtalign/knn.py is listed before tests/)
    x = torch.from_numpy(integer_ties())
    with knn.profile() as p:
        knn.knn_search(x, None, 7, "torch")
    assert p.exact_rows > 0 and p.exact_cosines > 0
    with knn.profile() as p:
        knn.knn_search(torch.from_numpy(np.random.default_rng(0).normal(size=(200, 16))), None, 7, "torch")
    assert p.exact_rows == 0


def test_sharded_search_decides_near_ties_as_the_unsharded_one(ties):
    x, want = ties
    got = knn.sharded_knn_search(torch.from_numpy(x), None, 7, "torch", 3).numpy()
    np.testing.assert_array_equal(got, want[7])


def test_rational_reference_on_a_hand_case():
    x = np.array([[1.0, 0], [3, 3], [1, 1], [0, 0], [-1, -1]])
    # row 0: items 1 and 2 tie (cos 1/sqrt 2) -> lower index; zero row 3 has cosine 0; item 4 last
    assert rational_knn(x, 4)[0].tolist() == [1, 2, 3, 4]
    assert rational_knn(x, 4)[3].tolist() == [0, 1, 2, 4]  # a zero row ties with everything


# --------------------------------------------------------------------------- #
# Scale invariance
# --------------------------------------------------------------------------- #
SCALES = {np.float32: (1e-30, 1e-13, 1e30, 2.0**-149 * 3), np.float64: (1e-30, 1e-13, 1e30, 1e-300, 1e300, 1e-310)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_neighbours_do_not_depend_on_the_scale_of_rows(backend, dtype):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(48, 6)).astype(dtype)
    want = va.knn_indices(x, 5, backend="torch")
    scales = SCALES[dtype][:2] if backend == "triton" and INTERPRETED else SCALES[dtype]
    for c in scales:
        xc = (x * dtype(c)).astype(dtype)
        got = va.knn_indices(xc, 5, backend=backend)
        np.testing.assert_array_equal(got, rational_knn(xc, 5), err_msg=f"scale {c}")
        if np.all(np.abs(xc[x != 0]) >= np.finfo(dtype).tiny):  # normal numbers: a multiple up to rounding
            np.testing.assert_array_equal(got, want, err_msg=f"scale {c}")
    # mixed scales within one matrix
    mixed = x * np.array([1e-30, 1e-13, 1.0, 1e30], dtype)[rng.integers(0, 4, size=48)][:, None]
    np.testing.assert_array_equal(va.knn_indices(mixed, 5, backend=backend), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tiny_rows_are_not_zero_rows(backend):
    x = np.random.default_rng(2).normal(size=(30, 4)).astype(np.float32)
    x[3] *= np.float32(1e-38)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = va.knn_indices(x, 4, backend=backend)                 # no all-zero row: no warning
    np.testing.assert_array_equal(got, rational_knn(x, 4))
    x[3] = 0.0
    with pytest.warns(UserWarning, match="1 all-zero row"):
        va.knn_indices(x, 4, backend=backend)


def test_sweep_at_any_scale():
    rng = np.random.default_rng(9)
    fx, fy = rng.normal(size=(40, 2, 5)), rng.normal(size=(40, 3, 4))
    want = va.layer_sweep(fx, fy, k=4).scores
    for c in (1e-300, 1e-13, 1e300):
        np.testing.assert_array_equal(va.layer_sweep(fx * c, fy / c, k=4).scores, want)


def test_pow2_scaling_is_exact_and_safe_rows_keep_ordinary_rows():
    t = torch.tensor([[3e-310, -1e-320, 0.0], [1e300, 2e300, 0.5], [1.0, 2.0, 3.0]], dtype=torch.float64)
    scaled = knn.pow2_scaled(t)
    assert bool((scaled.abs().amax(dim=1) >= 0.5).all() and (scaled.abs().amax(dim=1) < 1).all())
    assert torch.equal(knn.pow2_scaled(scaled), scaled)           # a power of two only: nothing rounds
    safe = knn.safe_rows(t)
    assert torch.equal(safe[2], t[2]) and bool(torch.isfinite(safe.norm(dim=1)).all())
    x = torch.ones(4, 3)
    assert knn.safe_rows(x) is x                                   # fp32 rows never need it


# --------------------------------------------------------------------------- #
# Feature preparation: q is validated
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("q", [2.0, 0.0, -0.5, float("nan"), float("inf")])
def test_prepare_features_rejects_q_outside_the_unit_interval(q):
    with pytest.raises(ValueError, match=r"q must be in \(0, 1\]"):
        va.prepare_features(np.ones((4, 3)), q=q)


def test_prepare_features_accepts_q_one_and_none():
    x = np.array([[1.0, 100.0], [2.0, 3.0]])
    expected = x / np.linalg.norm(x, axis=1, keepdims=True)
    for q in (1, 1.0, None):
        np.testing.assert_allclose(va.prepare_features(x, q=q), expected, rtol=1e-6)


def test_prepare_features_normalises_rows_at_any_scale():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(20, 8)).astype(np.float32)
    ref = va.prepare_features(x, q=0.9)
    for c in (1e-30, 1e-13, 1e30):
        np.testing.assert_allclose(va.prepare_features(x * np.float32(c), q=0.9), ref, rtol=1e-6, atol=1e-7,
                                   err_msg=f"scale {c}")
    mixed = x * np.float32(1e-25) ** rng.integers(0, 2, size=(20, 1)).astype(np.float32)
    np.testing.assert_allclose(np.linalg.norm(va.prepare_features(mixed, q=None), axis=1), 1.0, rtol=1e-6)
