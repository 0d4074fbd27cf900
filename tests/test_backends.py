"""Every kNN backend gives the same neighbours, in the same order, as the torch backend and the naive reference."""
import numpy as np
import pytest
import torch

import vtalign as va
from naive_reference import naive_knn, tie_heavy
from vtalign.knn import available_backends, error_bound

BACKENDS = [b for b in ("torch", "faiss", "triton") if b in available_backends()]


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def cases(rng):
    yield "random", rng.normal(size=(130, 24)).astype(np.float32)
    yield "high_dim", rng.normal(size=(60, 1100)).astype(np.float32)  # torch on CPU: fp64 candidates
    yield "tie_heavy", tie_heavy(rng, 120, 8)
    yield "duplicated_block", np.repeat(rng.normal(size=(10, 6)).astype(np.float32), 12, axis=0)
    yield "constant", np.ones((40, 5), np.float32)
    yield "clustered", (np.repeat(rng.normal(size=(8, 16)), 20, axis=0) + 1e-4 * rng.normal(size=(160, 16))).astype(np.float32)


@pytest.mark.parametrize("backend,k", [(b, k) for b in BACKENDS for k in (1, 7, 30)
                                       if not (b == "triton" and k == 7)])  # interpreted triton at k = 7:
def test_backend_equals_naive_reference(backend, k, rng):                   # tests/test_exactness.py
    for name, x in cases(rng):
        np.testing.assert_array_equal(va.knn_indices(x, k, backend=backend), naive_knn(x, k), err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_k_equals_n_minus_1(backend, rng):
    x = rng.normal(size=(33, 4)).astype(np.float32)
    np.testing.assert_array_equal(va.knn_indices(x, 32, backend=backend), naive_knn(x, 32))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_backend_low_precision_inputs(backend, dtype, rng):
    x = torch.from_numpy(rng.normal(size=(90, 16)).astype(np.float32)).to(dtype)
    np.testing.assert_array_equal(va.knn_indices(x, 5, backend=backend), va.knn_indices(x, 5, backend="torch"))
    np.testing.assert_array_equal(va.knn_indices(x, 5, backend=backend), naive_knn(x.float().numpy(), 5))


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_queries_and_sweep(backend, rng):
    x, q = rng.normal(size=(70, 6)), rng.normal(size=(70, 6))
    np.testing.assert_array_equal(va.knn_indices(x, 4, backend=backend, queries=q),
                                  va.knn_indices(x, 4, backend="torch", queries=q))
    fx, fy = rng.normal(size=(50, 2, 8)), rng.normal(size=(50, 3, 5))
    fy[:, 2] = fx[:, 1, :5]
    ref = va.layer_sweep(fx, fy, k=5, backend="torch")
    got = va.layer_sweep(fx, fy, k=5, backend=backend)
    np.testing.assert_array_equal(got.scores, ref.scores)
    assert got.best == ref.best


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_rejects_bad_input_like_the_core(backend):
    with pytest.raises(ValueError, match="1 <= k < N"):
        va.knn_indices(np.ones((5, 3)), 5, backend=backend)
    with pytest.raises(ValueError, match="NaN"):
        va.mutual_knn(np.full((5, 3), np.nan), np.ones((5, 3)), 2, backend=backend)


def test_close_calls_are_decided_in_fp64(monkeypatch, rng):
    """Perturb the fp32 candidate similarities within the error bound: the answer must not change."""
    import vtalign.knn as knn

    x = (np.repeat(rng.normal(size=(6, 12)), 10, axis=0) + 1e-6 * rng.normal(size=(60, 12))).astype(np.float32)
    ref = va.knn_indices(x, 5)
    original = knn._candidates_torch

    def noisy(xn, qn, m, exclude):
        sims, idx = original(xn, qn, m, exclude)
        noise = torch.from_numpy(rng.uniform(-1, 1, size=sims.shape)).to(sims.dtype) * error_bound(12, sims.dtype)
        return sims + noise, idx

    monkeypatch.setitem(knn._CANDIDATES, "torch", noisy)
    np.testing.assert_array_equal(va.knn_indices(x, 5), ref)


def test_unavailable_backend_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("vtalign.knn.available_backends", lambda: ["torch"])
    with pytest.raises(ValueError, match="not available here"):
        va.knn_indices(np.ones((5, 2)), 1, backend="faiss")


def test_auto_backend_choice(monkeypatch):
    from vtalign.knn import AUTO_FAISS_MIN_N, resolve_backend

    assert resolve_backend("auto", 100) == "torch"
    expected = "faiss" if "faiss" in available_backends() else "torch"
    assert resolve_backend("auto", AUTO_FAISS_MIN_N) == expected
    on_gpu = "triton" if "triton" in available_backends() else "torch"  # measured fastest there
    assert resolve_backend("auto", AUTO_FAISS_MIN_N, torch.device("cuda")) == on_gpu
    assert resolve_backend("auto", AUTO_FAISS_MIN_N, None, 2048) == "torch"  # fp64 regime
