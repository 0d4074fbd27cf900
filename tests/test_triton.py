"""The Triton backend equals the torch backend (CPU: under TRITON_INTERPRET=1, small N)."""
import numpy as np
import pytest
import torch

import vtalign as va
from vtalign.knn import available_backends

from naive_reference import naive_knn, tie_heavy

pytestmark = pytest.mark.skipif("triton" not in available_backends(),
                                reason="triton needs a CUDA GPU or TRITON_INTERPRET=1")
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def same(x, k, **kw):
    got = va.knn_indices(x, k, backend="triton", **kw)
    np.testing.assert_array_equal(got, va.knn_indices(x, k, backend="torch", **kw))
    return got


def test_kernel_candidates_equal_torch_topk(rng):
    from vtalign.knn import _candidates_torch
    from vtalign.triton_kernels import fused_topk

    x = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(77, 40)).astype(np.float32)), dim=-1)
    vals, idx = fused_topk(x, x, 11)
    ref_vals, ref_idx = _candidates_torch(x, x, 11)
    np.testing.assert_array_equal(idx.numpy(), ref_idx.numpy())
    np.testing.assert_allclose(vals.numpy(), ref_vals.numpy(), atol=1e-6)


@pytest.mark.parametrize("n,d,k", [(64, 32, 10), (97, 20, 1), (45, 7, 44), (150, 16, 128)])
def test_random_any_n_and_k(rng, n, d, k):
    x = rng.normal(size=(n, d)).astype(np.float32)  # n = 97, 45, 150: not multiples of the blocks
    np.testing.assert_array_equal(same(x, k), naive_knn(x, k))


def test_tie_heavy(rng):
    x = tie_heavy(rng, 90, 8)
    for k in (1, 5, 20):
        np.testing.assert_array_equal(same(x, k), naive_knn(x, k))
    same(np.ones((40, 5), np.float32), 7)  # constant rows: every similarity ties
    same(np.repeat(rng.normal(size=(5, 6)), 9, axis=0).astype(np.float32), 12)  # duplicated rows


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs(rng, dtype):
    same(torch.from_numpy(rng.normal(size=(70, 24)).astype(np.float32)).to(dtype), 6)


def test_queries(rng):
    same(rng.normal(size=(50, 12)), 4, queries=rng.normal(size=(50, 12)))


def test_sweep_two_by_three(rng):
    fx, fy = rng.normal(size=(60, 2, 16)), rng.normal(size=(60, 3, 8))
    fy[:, 1] = fx[:, 0, :8]
    got = va.layer_sweep(fx, fy, k=5, backend="triton")
    ref = va.layer_sweep(fx, fy, k=5, backend="torch")
    np.testing.assert_array_equal(got.scores, ref.scores)
    np.testing.assert_array_equal(got.overlaps, ref.overlaps)
    assert got.best == ref.best


def test_overlap_kernel_equals_mask_lookup(rng):
    nx = np.stack([va.knn_indices(rng.normal(size=(70, 4)), 6) for _ in range(2)])
    ny = np.stack([va.knn_indices(rng.normal(size=(70, 4)), 6) for _ in range(3)])
    ny[2] = nx[1]
    np.testing.assert_array_equal(va.sweep_overlaps(nx, ny, backend="triton"), va.sweep_overlaps(nx, ny, backend="torch"))


def test_bad_input_same_errors(rng):
    with pytest.raises(ValueError, match="1 <= k < N"):
        va.knn_indices(np.ones((5, 3)), 5, backend="triton")
    with pytest.raises(ValueError, match="NaN"):
        va.mutual_knn(np.full((6, 3), np.nan), np.ones((6, 3)), 2, backend="triton")


@gpu
def test_gpu_tensors_stay_on_gpu_and_match_cpu(rng):
    x = torch.from_numpy(rng.normal(size=(3000, 256)).astype(np.float32))
    np.testing.assert_array_equal(va.knn_indices(x.cuda(), 10, backend="triton"), va.knn_indices(x, 10, backend="torch"))
    np.testing.assert_array_equal(va.knn_indices(x.cuda(), 10, backend="torch"), va.knn_indices(x, 10, backend="torch"))
