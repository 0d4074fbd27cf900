"""The GPU path (certified fp16 screening + fp64 decisions) and its Triton kernels.

On a CPU the kernels run under TRITON_INTERPRET=1 (small N); on a GPU the same tests run on
the device, with inputs placed there.
"""
import numpy as np
import pytest
import torch

import vtalign as va
from naive_reference import naive_knn, tie_heavy
from vtalign import knn
from vtalign.knn import available_backends, fp16_screen_bound

pytestmark = pytest.mark.skipif("triton" not in available_backends(),
                                reason="triton needs a CUDA GPU or TRITON_INTERPRET=1")
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def same(x, k, **kw):
    got = va.knn_indices(x, k, backend="triton", **kw)
    np.testing.assert_array_equal(got, va.knn_indices(x, k, backend="torch", **kw))
    return got


def screened(x, k):
    """triton's neighbours, equal to torch's, and the screen report of its one search. Through knn's own
    entry point: the searches knn.profile() and monkeypatching knn see, also where pytest imported a second
    copy of knn for its doctests (lib/vtalign/knn.py listed before tests/)."""
    with knn.profile() as p:
        got = knn.knn_search(torch.as_tensor(x), None, k, "triton").cpu().numpy()
    np.testing.assert_array_equal(got, va.knn_indices(x, k, backend="torch"))
    assert len(p.screens) == 1
    return got, p.screens[0]


def test_screen_kernel_is_the_top_m_of_its_scores(rng):
    """The kernel's candidates are the m best screened scores, each computed to fp32 accuracy."""
    from vtalign.triton_kernels import screen_topk

    x = torch.from_numpy(rng.normal(size=(1, 77, 40))).to(DEVICE)
    xs = knn.TorchGPUBackend().prepare(x)
    ids = torch.arange(77, dtype=torch.int32, device=DEVICE)
    vals, idx = screen_topk(xs.r16, xs.r16, xs.w.float(), xs.w.float(), xs.b.float(), ids, 11)
    r = xs.r16[0].double()
    ref = xs.b[0][None, :] + xs.w[0][:, None] * xs.w[0][None, :] * (r @ r.T)  # exact products of the fp16 inputs
    ref.fill_diagonal_(-torch.inf)
    got_ref = torch.gather(ref, 1, idx[0])
    np.testing.assert_allclose(vals[0].double().cpu(), got_ref.cpu(), atol=1e-5)
    eleventh = torch.topk(ref, 11, dim=1).values[:, -1]
    assert bool((got_ref[:, -1] >= eleventh - 1e-5).all())          # nothing better was left out
    assert bool((idx[0] != torch.arange(77, device=DEVICE)[:, None]).all())  # never itself


def test_fp16_screen_bound_holds_including_subnormals(rng):
    d = 512
    worst = 0.0
    for scale_tail in (1.0, 1e-6):  # 1e-6: half of every vector's entries fall into fp16's subnormal range
        a = rng.normal(size=(400, d))
        a[:, d // 2 :] *= scale_tail
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        a16 = torch.from_numpy(a).half()
        screened = (a16.float() @ a16.float().T).double()   # exact products, fp32 sums (at least as good as TCs)
        exact = torch.from_numpy(a @ a.T)
        worst = max(worst, float((screened - exact).abs().max()))
    assert worst <= fp16_screen_bound(d)
    assert fp16_screen_bound(d) < 2e-3  # and it is not vacuous


@pytest.mark.parametrize("n,d,k", [(64, 32, 10), (97, 20, 1), (45, 7, 44), (150, 16, 128)])
def test_random_any_n_and_k(rng, n, d, k):
    x = rng.normal(size=(n, d)).astype(np.float32)  # n = 97, 45, 150: not multiples of the blocks
    np.testing.assert_array_equal(same(x, k), naive_knn(x, k))


def test_tie_heavy(rng):
    x = tie_heavy(rng, 90, 8)
    for k in (1, 5, 20):
        np.testing.assert_array_equal(same(x, k), naive_knn(x, k))
    same(np.repeat(rng.normal(size=(5, 6)), 9, axis=0).astype(np.float32), 12)  # duplicated rows


def test_constant_rows_fall_back_to_the_exhaustive_search(monkeypatch):
    """Every similarity ties, so no screen narrower than all N - 1 items certifies a row."""
    monkeypatch.setattr(knn, "SCREEN_MAX_M", 64)  # below N - 1: the widened pass cannot see every item
    x = np.ones((80, 5), np.float32)
    got, report = screened(x, 7)
    np.testing.assert_array_equal(got, naive_knn(x, 7))
    assert report["fallback_rows"] == 80
    x = np.ones((40, 5), np.float32)  # N - 1 <= k + margin: every item is a candidate, certified at once
    got, report = screened(x, 7)
    np.testing.assert_array_equal(got, naive_knn(x, 7))
    assert report["certified_first_pass"] == 40


def test_near_ties_need_a_wider_screen(rng):
    """Clusters of 48 items 1e-4 apart (cosines within 1e-7 of each other): with k + 32 candidates the k-th
    place's cluster reaches the last candidate, so the rows are not certified at first; the wider pass
    certifies them."""
    x = (np.repeat(rng.normal(size=(3, 16)), 48, axis=0) + 1e-4 * rng.normal(size=(144, 16))).astype(np.float32)
    got, report = screened(x, 5)
    np.testing.assert_array_equal(got, naive_knn(x, 5))
    assert report["certified_first_pass"] < report["rows"] and report["certified_widened"] > 0
    assert report["fallback_rows"] == 0


@pytest.mark.parametrize("mean_cosine", [0.99, 0.999999])
def test_anisotropic_features_certify_in_one_pass(rng, mean_cosine):
    """Items that share a dominant direction (real encoder layers do): the screen works on residuals."""
    common = rng.normal(size=24)
    common /= np.linalg.norm(common)
    spread = rng.normal(size=(120, 24))
    spread /= np.linalg.norm(spread, axis=1, keepdims=True)
    x = np.sqrt(mean_cosine) * common + np.sqrt(1 - mean_cosine) * spread
    got, report = screened(x, 6)
    np.testing.assert_array_equal(got, naive_knn(x, 6))
    assert report["certified_first_pass"] == report["rows"] == 120


def test_torch_screening_path_equals_naive(rng):
    """The torch backend's GPU path (fp16 matmul screen, same decisions), run here on this device."""
    x = torch.from_numpy(tie_heavy(rng, 90, 8)).to(DEVICE)
    for k in (1, 5):
        got = knn.screened_search(x[None], None, k, "torch")[0].cpu().numpy()
        np.testing.assert_array_equal(got, naive_knn(x.cpu().numpy(), k))
    q = torch.from_numpy(rng.normal(size=(90, 8))).to(DEVICE)
    got = knn.screened_search(x[None].double(), q[None], 4, "torch")[0].cpu().numpy()
    np.testing.assert_array_equal(got, va.knn_indices(x.cpu(), 4, queries=q.cpu()))


def test_inputs_are_never_written_to(rng):
    x = torch.from_numpy(rng.normal(size=(40, 6)))  # fp64: a conversion would not copy
    before = x.clone()
    va.knn_indices(x, 3, backend="triton")
    va.layer_sweep(x[:, None], x[:, None], 3, backend="triton")
    assert torch.equal(x, before)


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
    np.testing.assert_array_equal(va.sweep_overlaps(nx, ny, backend="triton"),
                                  va.sweep_overlaps(nx, ny, backend="torch"))


def test_bad_input_same_errors(rng):
    with pytest.raises(ValueError, match="1 <= k < N"):
        va.knn_indices(np.ones((5, 3)), 5, backend="triton")
    with pytest.raises(ValueError, match="NaN"):
        va.mutual_knn(np.full((6, 3), np.nan), np.ones((6, 3)), 2, backend="triton")


@gpu
def test_gpu_tensors_stay_on_gpu_and_match_cpu(rng):
    x = torch.from_numpy(rng.normal(size=(3000, 256)).astype(np.float32))
    cpu = va.knn_indices(x, 10, backend="torch")
    np.testing.assert_array_equal(va.knn_indices(x.cuda(), 10, backend="triton"), cpu)
    np.testing.assert_array_equal(va.knn_indices(x.cuda(), 10, backend="torch"), cpu)
    np.testing.assert_array_equal(va.knn_indices(x.cuda(), 10), cpu)  # auto on a GPU


@gpu
def test_gpu_clustered_duplicates_and_sweep(rng):
    x = (np.repeat(rng.normal(size=(500, 768)), 40, axis=0)
         + 1e-3 * rng.normal(size=(20000, 768))).astype(np.float32)
    x[::97] = x[1::97]  # exact duplicate rows
    t = torch.from_numpy(x)
    np.testing.assert_array_equal(va.knn_indices(t.cuda(), 10, backend="triton"),
                                  va.knn_indices(t, 10, backend="torch"))
    fx = torch.from_numpy(rng.normal(size=(1024, 5, 300)).astype(np.float32))
    fy = torch.from_numpy(rng.normal(size=(1024, 4, 700)).astype(np.float32))
    fy[:, 2, :300] = fx[:, 1]
    ref = va.layer_sweep(fx, fy, k=10, backend="torch")
    for b in ("triton", "torch"):
        got = va.layer_sweep(fx.cuda(), fy.cuda(), k=10, backend=b)
        np.testing.assert_array_equal(got.scores, ref.scores)


def test_fused_preparation_equals_the_torch_one(rng):
    """The residual kernel (one read of the input per pass, fp64 in registers) prepares what the torch
    path prepares: same norms, residual norms and mean products to fp64 rounding, fp16 unit residuals
    within one fp16 step; read in place from a transposed [N, L, D] view, zero rows included."""
    t = torch.from_numpy(rng.normal(size=(70, 3, 40))).float()
    t[5] = 0.0                                   # zero rows in every layer
    t[9, 1, 20:] *= 1e-7                         # entries in fp16's subnormal range once normalised
    x = t.to(DEVICE).transpose(0, 1)             # [L, N, D], not contiguous
    fused = knn.TritonBackend().prepare(x)
    ref = knn.TorchGPUBackend().prepare(x, fused.mean)  # the mean is a free choice: use the same one
    for name in ("inv_norm", "w", "b", "offset"):
        np.testing.assert_allclose(getattr(fused, name).cpu(), getattr(ref, name).cpu(), rtol=1e-13, atol=1e-15,
                                   err_msg=name)
    step = torch.finfo(torch.float16).eps * ref.r16.float().abs().clamp_min(2.0**-14)  # one fp16 ulp (or subnormal)
    assert bool(((fused.r16.float() - ref.r16.float()).abs() <= step).all())
    # its own mean is the mean unit row, up to fp32 rounding of the batched product
    unit = torch.nn.functional.normalize(x.double(), dim=2)
    np.testing.assert_allclose(fused.mean.cpu(), unit.mean(dim=1).cpu(), atol=1e-6)
    # identical rows get identical values (each row's sums run in the same order)
    dup = torch.cat([x, x[:, :7]], dim=1)
    inv = knn.inv_norms(dup, "triton")
    assert torch.equal(inv[:, 70:], inv[:, :7])


def test_fp16_conversion_rounds_through_fp32_within_the_bound(rng):
    """fp64 -> fp16 in torch rounds through fp32: 1 + 2^-11 + 2^-40 (above an fp16 midpoint) becomes 1, not
    1 + 2^-10. The per-entry error the bound assumes still holds: u16 |a| in the normal range and
    2^-25 + 2^-38 below it, also at values built to land on midpoints after the fp32 step."""
    a = torch.tensor([1 + 2.0**-11 + 2.0**-40], dtype=torch.float64)
    assert float(a.half()) == 1.0
    mids = []
    for e in range(-24, 0):                                # midpoints of fp16 (subnormal and normal binades)
        spacing = 2.0 ** max(e - 10, -24)
        j = rng.integers(0, 1024, size=200)
        base = 2.0**e + (2 * j + 1) * spacing / 2 if e >= -14 else (2 * j + 1) * 2.0**-25
        mids.append(base * (1 + rng.choice([-1, 1], size=200) * rng.uniform(0, 2.0**-24, size=200)))
    v = torch.from_numpy(np.concatenate(mids + [rng.uniform(-1, 1, size=5000)]))
    err = (v.half().double() - v).abs()
    normal = v.abs() >= 2.0**-14
    assert bool((err[normal] <= knn.U16 * v.abs()[normal]).all())
    assert bool((err[~normal] <= 2.0**-25 + 2.0**-38).all())


def test_stage_profile_names_where_the_time_goes(rng):
    x = torch.from_numpy(rng.normal(size=(60, 2, 12)).astype(np.float32))
    y = torch.from_numpy(rng.normal(size=(60, 3, 9)).astype(np.float32))

    def sweep():  # layer_sweep's steps, through knn's own entry points (see screened())
        return knn.count_overlaps(knn.layer_search(x, 5, "triton"), knn.layer_search(y, 5, "triton"), "triton")

    plain = sweep()
    with knn.profile_stages() as stages:
        profiled = sweep()
    assert {"prepare", "screen", "decide", "overlaps"} <= set(stages)
    assert all(v > 0 for v in stages.values())
    assert torch.equal(profiled, plain)
    assert knn._PROFILE.get() is None  # profiling ends with the block


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_sets_rerank_only_the_contenders_at_the_boundary(rng, monkeypatch, backend):
    """Without order, a candidate whose screened value clears the (k+1)-th by the window is in for sure
    and gets no fp64 value: fewer pairs are re-ranked than for the ordered search, the sets are the
    exact ones, and ties (duplicated items) still go to the lower index."""
    x = rng.normal(size=(2, 160, 24))
    x[:, 40:52] = x[:, 0:12]                      # duplicated items: exact ties at the boundary
    t = torch.from_numpy(x).float().to(DEVICE)
    reranked = []
    screening = knn.TritonBackend if backend == "triton" else knn.TorchGPUBackend  # what screened_search uses
    real = screening.rerank
    monkeypatch.setattr(screening, "rerank",
                        lambda self, *a: reranked.append(int((a[-1] >= 0).sum())) or real(self, *a))
    ordered = knn.screened_search(t, None, 10, backend, ordered=True)
    n_ordered = sum(reranked)
    reranked.clear()
    with knn.profile() as p:
        sets = knn.screened_search(t, None, 10, backend, ordered=False)
    assert sum(reranked) < n_ordered
    assert p.screens[0]["reranked_pairs"] == sum(reranked) > 0  # what the benchmark records
    for layer in range(2):
        expected = np.sort(naive_knn(x[layer].astype(np.float32), 10), axis=1)
        np.testing.assert_array_equal(np.sort(sets[layer].cpu().numpy(), axis=1), expected)
        np.testing.assert_array_equal(np.sort(ordered[layer].cpu().numpy(), axis=1), expected)
