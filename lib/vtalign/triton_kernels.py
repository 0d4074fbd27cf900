"""Triton kernels: certified low-precision screening with a running top-m, exact fp64 re-ranking
of the candidates, and layer-pair overlap counts.

On a GPU these compile as usual. On a CPU-only machine Triton runs them only in its
interpreter, which must be switched on *before* this module is imported:
``TRITON_INTERPRET=1`` in the environment (slow, but exact; the tests use it with small N).

``screen_topk`` never materialises the N x N similarity matrix. Each program takes a block of
query rows of one layer, walks the database in tiles, computes each tile's screened scores with
``tl.dot`` on fp16 inputs with fp32 accumulation (tensor cores) and merges them into the rows'
running top-m held in registers. The merge moves one entry per row per step and stops as soon as
no row of the block has an entry above its current m-th value, so after the first tiles a tile
costs one comparison: entries that cannot enter are skipped. What the scores are and why the
answer stays exact is :mod:`vtalign.knn`'s business (the error bound and the certification rule);
these kernels only compute.

``residuals`` prepares a space for screening in one read of the input per pass (three passes: row
norms, residual norms and mean products, then the fp16 unit residuals), with every sum in fp64 held
in registers: the fp64 copies of the whole [L, N, D] input that a tensor library would allocate
for each step never exist.

``rerank`` computes fp64 cosines of given (query, candidate) pairs from the input rows:
``(sum_t q_t x_t) * (1 / |q|) * (1 / |x|)`` in fp64, one fixed summation order per pair, so two
identical items get bitwise identical values and tie exactly.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

__all__ = ["screen_topk", "rerank", "residuals", "pair_overlaps", "SCREEN_DTYPE"]

SCREEN_DTYPE = torch.float16  # tensor-core input type of the screening pass (see vtalign.knn for the bound)
_INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"


@triton.jit
def _screen_topk_kernel(q_ptr, x_ptr, qw_ptr, xw_ptr, xb_ptr, qid_ptr, vals_ptr, idx_ptr,
                        n_q, n_x, d,
                        stride_ql, stride_q, stride_xl, stride_x, stride_qwl, stride_xwl, stride_vl,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, KP: tl.constexpr):
    pid = tl.program_id(0)
    layer = tl.program_id(1).to(tl.int64)  # 64-bit offsets: L * N * D can pass 2^31 (N = 10^6, D = 3584)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_q
    qid = tl.load(qid_ptr + rows, mask=row_ok, other=-1)
    wq = tl.load(qw_ptr + layer * stride_qwl + rows, mask=row_ok, other=0.0)
    q_base = q_ptr + layer * stride_ql
    x_base = x_ptr + layer * stride_xl
    slots = tl.arange(0, KP)
    lanes = tl.arange(0, BLOCK_N)
    top_v = tl.full((BLOCK_M, KP), float("-inf"), tl.float32)
    top_i = tl.full((BLOCK_M, KP), -1, tl.int32)
    cur_min = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    for start in range(0, n_x, BLOCK_N):
        cols = start + lanes
        col_ok = cols < n_x
        acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
        for kk in range(0, d, BLOCK_K):
            ks = kk + tl.arange(0, BLOCK_K)
            k_ok = ks < d
            a = tl.load(q_base + rows[:, None].to(tl.int64) * stride_q + ks[None, :],
                        mask=row_ok[:, None] & k_ok[None, :], other=0.0)
            b = tl.load(x_base + cols[:, None].to(tl.int64) * stride_x + ks[None, :],
                        mask=col_ok[:, None] & k_ok[None, :], other=0.0)
            acc = tl.dot(a, tl.trans(b), acc)
        xw = tl.load(xw_ptr + layer * stride_xwl + cols, mask=col_ok, other=0.0)
        xb = tl.load(xb_ptr + layer * stride_xwl + cols, mask=col_ok, other=0.0)
        s = xb[None, :] + (wq[:, None] * xw[None, :]) * acc
        invalid = (~col_ok[None, :]) | (cols[None, :] == qid[:, None])
        s = tl.where(invalid | (s <= cur_min[:, None]), float("-inf"), s)  # only entries that can enter
        t_max = tl.max(s, 1)
        more = tl.max((t_max > cur_min).to(tl.int32), 0)
        while more > 0:
            t_arg = tl.argmax(s, 1, tie_break_left=True)
            cur_arg = tl.argmin(top_v, 1, tie_break_left=True)
            better = t_max > cur_min
            replace = (slots[None, :] == cur_arg[:, None]) & better[:, None]
            top_v = tl.where(replace, t_max[:, None], top_v)
            top_i = tl.where(replace, (start + t_arg)[:, None], top_i)
            s = tl.where(lanes[None, :] == t_arg[:, None], float("-inf"), s)
            cur_min = tl.min(top_v, 1)
            t_max = tl.max(s, 1)
            more = tl.max((t_max > cur_min).to(tl.int32), 0)
    out = layer * stride_vl + rows[:, None] * KP + slots[None, :]
    tl.store(vals_ptr + out, top_v, mask=row_ok[:, None])
    tl.store(idx_ptr + out, top_i, mask=row_ok[:, None])


# The running top-m lives in registers beside the tile's accumulator, so at KP = 64 every one of the
# first nine configurations spills on sm_90 (176 to 1,520 bytes a thread, bench/kernels/sm_90.json).
# The last four are the wgmma tiles that compile without spills there (8 warps, 128 to 254 registers);
# the autotuner times them all on the GPU and keeps the fastest.
_SCREEN_CONFIGS = [
    triton.Config(dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk), num_warps=w, num_stages=s)
    for bm, bn, bk, w, s in [(64, 128, 64, 4, 3), (64, 128, 64, 4, 4), (64, 128, 64, 8, 3), (128, 128, 64, 8, 3),
                             (64, 64, 64, 4, 4), (64, 256, 64, 8, 3), (128, 64, 64, 4, 3), (32, 128, 64, 4, 4),
                             (64, 128, 32, 4, 5),
                             (64, 32, 32, 8, 3), (64, 64, 32, 8, 3), (64, 128, 32, 8, 3), (64, 64, 64, 8, 3)]
]
# The wide pass (KP = 256) is launched untuned: 32 x 64 x 64 tiles on 8 warps compile without spills
# on sm_90 (248 registers); on 4 warps they spilled 416 bytes a thread.
WIDE_PASS_TILE, WIDE_PASS_WARPS = dict(BLOCK_M=32, BLOCK_N=64, BLOCK_K=64), 8
_INTERPRETED_TILE = dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32)  # one small tile instead of every autotuning config
# Tuned per (d, KP), not per N: the best tile does not depend on N, and tuning at N = 10^6 would
# time every configuration on a multi-second search. Large problems are tuned on a sample first.
_screen_topk_tuned = triton.autotune(configs=_SCREEN_CONFIGS, key=["d", "KP"])(_screen_topk_kernel)
_TUNE_SAMPLE = 16384
_tuned_keys: set = set()


def screen_topk(q16: torch.Tensor, x16: torch.Tensor, qw: torch.Tensor, xw: torch.Tensor, xb: torch.Tensor,
                query_ids: torch.Tensor, m: int):
    """The m highest screened scores ``xb[j] + qw[i] * xw[j] * <q16[i], x16[j]>`` of each query row,
    for every layer at once, never pairing a query with the item whose index is ``query_ids[i]``.

    q16 [L, Nq, D], x16 [L, N, D]: fp16 (tensor-core inputs); qw [L, Nq], xw [L, N], xb [L, N]: fp32;
    query_ids [Nq] int32 (-1: exclude nothing). Returns (values [L, Nq, m] fp32 descending,
    indices [L, Nq, m] int64); slots beyond the number of valid items hold -inf and index -1.
    """
    n_layers, n_q, d = q16.shape
    n_x = x16.shape[1]
    kp = max(16, triton.next_power_of_2(m))
    q16, x16 = q16.contiguous(), x16.contiguous()
    qw, xw, xb = qw.contiguous(), xw.contiguous(), xb.contiguous()
    vals = torch.empty(n_layers, n_q, kp, dtype=torch.float32, device=x16.device)
    idx = torch.empty(n_layers, n_q, kp, dtype=torch.int32, device=x16.device)
    args = (q16, x16, qw, xw, xb, query_ids.to(torch.int32).contiguous(), vals, idx, n_q, n_x, d,
            q16.stride(0), q16.stride(1), x16.stride(0), x16.stride(1), qw.stride(0), xw.stride(0), vals.stride(0))
    if _INTERPRETED or kp > 128:  # the interpreter would run every autotuning config; wide KP: small tiles
        tile = _INTERPRETED_TILE if _INTERPRETED else WIDE_PASS_TILE
        grid = (triton.cdiv(n_q, tile["BLOCK_M"]), n_layers)
        _screen_topk_kernel[grid](*args, **tile, KP=kp, num_warps=WIDE_PASS_WARPS)
    else:
        if (d, kp) not in _tuned_keys and max(n_q, n_x) > _TUNE_SAMPLE:
            sub = min(_TUNE_SAMPLE, n_q, n_x)
            screen_topk(q16[:1, :sub], x16[:1, :sub], qw[:1, :sub], xw[:1, :sub], xb[:1, :sub], query_ids[:sub], m)
        _tuned_keys.add((d, kp))
        grid = lambda meta: (triton.cdiv(n_q, meta["BLOCK_M"]), n_layers)  # noqa: E731
        _screen_topk_tuned[grid](*args, KP=kp)
    top = torch.topk(vals, m, dim=2, largest=True, sorted=True)
    return top.values, torch.gather(idx, 2, top.indices).to(torch.int64)


@triton.jit
def _residual_kernel(x_ptr, inv_ptr, mean_ptr, w_ptr, rr_ptr, mr_ptr, r16_ptr, n, d,
                     stride_xl, stride_x, stride_vl, stride_ml, stride_rl, stride_r,
                     BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr, STORE: tl.constexpr):
    """One block of rows of one layer: r = x * inv - mean in fp64. STORE=False: the row sums
    rr = |r|^2 and mr = mean . r; STORE=True: the unit residual r / w as fp16 (through fp32)."""
    pid = tl.program_id(0)
    layer = tl.program_id(1).to(tl.int64)
    rows = pid * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = rows < n
    inv = tl.load(inv_ptr + layer * stride_vl + rows, mask=row_ok, other=0.0).to(tl.float64)
    if STORE:
        w = tl.load(w_ptr + layer * stride_vl + rows, mask=row_ok, other=1.0).to(tl.float64)
        w = tl.where(w > 0, w, 1.0)
    rr = tl.zeros((BLOCK_R,), tl.float64)
    mr = tl.zeros((BLOCK_R,), tl.float64)
    x_base = x_ptr + layer * stride_xl
    for start in range(0, d, BLOCK_D):
        ds = start + tl.arange(0, BLOCK_D)
        d_ok = ds < d
        ok = row_ok[:, None] & d_ok[None, :]
        xv = tl.load(x_base + rows[:, None].to(tl.int64) * stride_x + ds[None, :], mask=ok, other=0.0).to(tl.float64)
        m = tl.load(mean_ptr + layer * stride_ml + ds, mask=d_ok, other=0.0).to(tl.float64)
        r = tl.where(ok, xv * inv[:, None] - m[None, :], 0.0)
        if STORE:
            unit = (r / w[:, None]).to(tl.float32).to(tl.float16)
            tl.store(r16_ptr + layer * stride_rl + rows[:, None].to(tl.int64) * stride_r + ds[None, :], unit, mask=ok)
        else:
            rr += tl.sum(r * r, 1)
            mr += tl.sum(r * m[None, :], 1)
    if not STORE:
        tl.store(rr_ptr + layer * stride_vl + rows, rr, mask=row_ok)
        tl.store(mr_ptr + layer * stride_vl + rows, mr, mask=row_ok)


# Launch shapes of the memory-bound kernels, chosen from what ptxas reports for sm_90
# (`python -m vtalign.kernel_report`, bench/kernels/): without spills and at <= 128 registers a thread,
# so that an H100 SM keeps at least 16 warps of them in flight to hide the latency of their loads.
# Residual row sums at 16 x 128 with 4 warps took 250 registers (8 warps an SM); at 16 x 64 with 8
# warps 64. The rerank at 64 candidates x 64 columns with 4 warps took 248; at 64 x 32 with 8, 80.
# Chosen statically; their GPU time is measured by `python -m vtalign.bench`.
RESIDUAL_BLOCK_R, RESIDUAL_BLOCK_D, RESIDUAL_WARPS = 16, 64, 8
RERANK_VALUES_PER_STEP, RERANK_WARPS = 2048, 8


def residuals(x: torch.Tensor, inv_norm: torch.Tensor | None = None, mean: torch.Tensor | None = None,
              w: torch.Tensor | None = None):
    """Row sums of ``r = x * inv_norm - mean`` (every product and sum in fp64), or the fp16 unit residuals.

    x [L, N, D] (any float dtype, any strides with unit stride along D: a transposed [N, L, D] view
    is read in place); inv_norm [L, N] fp64 (default 1); mean [L, D] fp64 (default 0).
    Without ``w``: returns ``(|r|^2, mean . r)``, fp64 [L, N] each (with the defaults, the rows'
    squared norms). With ``w`` [L, N] fp64 (|r|): returns ``r / w`` (a zero w leaves r) rounded to
    fp16 through fp32, [L, N, D] contiguous.
    """
    n_layers, n, d = x.shape
    if x.stride(2) != 1:
        x = x.contiguous()
    dev = x.device
    if inv_norm is None:
        inv_norm = torch.ones(n_layers, n, dtype=torch.float64, device=dev)
    if mean is None:
        mean = torch.zeros(n_layers, d, dtype=torch.float64, device=dev)
    inv_norm, mean = inv_norm.contiguous(), mean.contiguous()
    store = w is not None
    rr = torch.empty(n_layers, n, dtype=torch.float64, device=dev)
    mr = torch.empty_like(rr)
    r16 = torch.empty(n_layers, n, d, dtype=SCREEN_DTYPE, device=dev) if store else rr
    w = w.contiguous() if store else rr
    block_d = 32 if _INTERPRETED else RESIDUAL_BLOCK_D
    _residual_kernel[(triton.cdiv(n, RESIDUAL_BLOCK_R), n_layers)](
        x, inv_norm, mean, w, rr, mr, r16, n, d, x.stride(0), x.stride(1), inv_norm.stride(0), mean.stride(0),
        r16.stride(0) if store else 0, r16.stride(1) if store else 0, BLOCK_R=RESIDUAL_BLOCK_R, BLOCK_D=block_d,
        STORE=store, num_warps=RESIDUAL_WARPS)
    return r16 if store else (rr, mr)


@triton.jit
def _rerank_kernel(q_ptr, x_ptr, qinv_ptr, xinv_ptr, cand_ptr, out_ptr, m, d,
                   stride_ql, stride_q, stride_xl, stride_x, stride_qil, stride_xil, stride_cl, stride_c,
                   BLOCK_C: tl.constexpr, BLOCK_D: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    layer = tl.program_id(1).to(tl.int64)
    cs = tl.arange(0, BLOCK_C)
    c_ok = cs < m
    cand = tl.load(cand_ptr + layer * stride_cl + row * stride_c + cs, mask=c_ok, other=0)
    c_ok = c_ok & (cand >= 0)
    cand = tl.where(c_ok, cand, 0)
    acc = tl.zeros((BLOCK_C,), tl.float64)
    q_base = q_ptr + layer * stride_ql + row * stride_q
    x_base = x_ptr + layer * stride_xl
    for kk in range(0, d, BLOCK_D):
        ds = kk + tl.arange(0, BLOCK_D)
        d_ok = ds < d
        qv = tl.load(q_base + ds, mask=d_ok, other=0.0).to(tl.float64)
        xv = tl.load(x_base + cand[:, None] * stride_x + ds[None, :], mask=c_ok[:, None] & d_ok[None, :],
                     other=0.0).to(tl.float64)
        acc += tl.sum(xv * qv[None, :], 1)
    qinv = tl.load(qinv_ptr + layer * stride_qil + row)
    xinv = tl.load(xinv_ptr + layer * stride_xil + cand, mask=c_ok, other=0.0)
    cos = (acc * qinv) * xinv
    tl.store(out_ptr + layer * stride_cl + row * stride_c + cs, tl.where(c_ok, cos, float("-inf")),
             mask=cs < m)


def rerank_block_d(block_c: int) -> int:
    """Columns of the input one rerank step loads for each of its ``block_c`` candidates
    (``RERANK_VALUES_PER_STEP`` values a step, 16 to 128 columns)."""
    return max(16, min(128, RERANK_VALUES_PER_STEP // block_c))


def rerank(q: torch.Tensor, x: torch.Tensor, q_inv_norm: torch.Tensor, x_inv_norm: torch.Tensor,
           candidates: torch.Tensor) -> torch.Tensor:
    """fp64 cosines of each query row with its candidates, every layer at once.

    q [L, Nq, D], x [L, N, D] (any float dtype; read as fp64), q_inv_norm [L, Nq], x_inv_norm [L, N]
    fp64 (1 / row norm; 0 for a zero row), candidates [L, Nq, m] int64 (-1: none).
    Returns [L, Nq, m] fp64 (-inf where there is no candidate).
    """
    n_layers, n_q, d = q.shape
    m = candidates.shape[2]
    q = q if q.stride(2) == 1 else q.contiguous()  # a transposed [N, L, D] view is read in place
    x = x if x.stride(2) == 1 else x.contiguous()
    candidates = candidates.contiguous()
    q_inv_norm, x_inv_norm = q_inv_norm.contiguous(), x_inv_norm.contiguous()
    out = torch.empty(n_layers, n_q, m, dtype=torch.float64, device=x.device)
    block_c = max(16, triton.next_power_of_2(m))
    block_d = rerank_block_d(block_c)
    _rerank_kernel[(n_q, n_layers)](q, x, q_inv_norm, x_inv_norm, candidates, out, m, d,
                                    q.stride(0), q.stride(1), x.stride(0), x.stride(1), q_inv_norm.stride(0),
                                    x_inv_norm.stride(0), candidates.stride(0), candidates.stride(1),
                                    BLOCK_C=block_c, BLOCK_D=block_d, num_warps=RERANK_WARPS)
    return out


@triton.jit
def _pair_overlap_kernel(nx_ptr, ny_ptr, out_ptr, n, ly, k,
                         BLOCK_I: tl.constexpr, KP: tl.constexpr):
    a = tl.program_id(0)
    b = tl.program_id(1)
    items = tl.program_id(2) * BLOCK_I + tl.arange(0, BLOCK_I)
    item_ok = items < n
    js = tl.arange(0, KP)
    j_ok = js < k
    base_x = (a * n + items) * k
    base_y = (b * n + items) * k
    x = tl.load(nx_ptr + base_x[:, None] + js[None, :], mask=item_ok[:, None] & j_ok[None, :], other=-1)
    count = tl.zeros((BLOCK_I,), tl.int32)
    for j in range(0, k):
        y = tl.load(ny_ptr + base_y + j, mask=item_ok, other=-2)
        count += tl.sum((x == y[:, None]).to(tl.int32), 1)
    tl.store(out_ptr + (a * ly + b) * n + items, count, mask=item_ok)


OVERLAP_BLOCK_I = 64  # items one overlap program counts


def pair_overlaps(nx: torch.Tensor, ny: torch.Tensor, block_i: int = OVERLAP_BLOCK_I) -> torch.Tensor:
    """Per-item overlap counts for all layer pairs in one launch: [Lx, N, k] x [Ly, N, k] -> [Lx, Ly, N] int32."""
    nx, ny = nx.contiguous().to(torch.int64), ny.contiguous().to(torch.int64)
    lx, n, k = nx.shape
    ly = ny.shape[0]
    out = torch.empty(lx, ly, n, dtype=torch.int32, device=nx.device)
    kp = max(16, triton.next_power_of_2(k))
    _pair_overlap_kernel[(lx, ly, triton.cdiv(n, block_i))](nx, ny, out, n, ly, k, BLOCK_I=block_i, KP=kp)
    return out
