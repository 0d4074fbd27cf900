"""Triton kernels: fused similarity + running top-k, and layer-pair overlap counts.

On a GPU these compile as usual. On a CPU-only machine Triton runs them only
in its interpreter, which must be switched on *before* this module is
imported: ``TRITON_INTERPRET=1`` in the environment (slow, but exact; the
tests use it with small N).

``fused_topk`` never materialises the N x N similarity matrix: each program
takes a block of query rows, walks the database in tiles, computes the tile's
cosine similarities with ``tl.dot`` in IEEE fp32 (no TF32, so the error bound
used by :mod:`vtalign.knn` holds) and merges them into the rows' running top-k
held in registers. Memory is O(N * k) for the output plus one tile per program.
Exact ties between candidates are left to :mod:`vtalign.knn`, which re-decides
every row whose k-th and (k+1)-th values are close in fp64 with the lower-index rule.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["fused_topk", "pair_overlaps"]


@triton.jit
def _fused_topk_kernel(q_ptr, x_ptr, vals_ptr, idx_ptr, n_q, n_x, d,
                       stride_q, stride_x, exclude_self: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                       KP: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_q
    slots = tl.arange(0, KP)
    top_v = tl.full((BLOCK_M, KP), float("-inf"), tl.float32)
    top_i = tl.full((BLOCK_M, KP), -1, tl.int64)
    for start in range(0, n_x, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        col_ok = cols < n_x
        acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
        for kk in range(0, d, BLOCK_K):
            ks = kk + tl.arange(0, BLOCK_K)
            k_ok = ks < d
            a = tl.load(q_ptr + rows[:, None] * stride_q + ks[None, :],
                        mask=row_ok[:, None] & k_ok[None, :], other=0.0)
            b = tl.load(x_ptr + cols[:, None] * stride_x + ks[None, :],
                        mask=col_ok[:, None] & k_ok[None, :], other=0.0)
            acc += tl.dot(a, tl.trans(b), input_precision="ieee")
        invalid = ~col_ok[None, :]
        if exclude_self:
            invalid = invalid | (rows[:, None] == cols[None, :])
        s = tl.where(invalid, float("-inf"), acc)
        # Merge: move the tile's best entries into the running top-k, one per row per step.
        # KP steps always suffice; a row whose tile maximum is no better than its current
        # k-th value is left unchanged by that step.
        for _ in range(KP):
            t_max = tl.max(s, 1)
            t_arg = tl.argmax(s, 1, tie_break_left=True)
            cur_min = tl.min(top_v, 1)
            cur_arg = tl.argmin(top_v, 1, tie_break_left=True)
            better = t_max > cur_min
            replace = (slots[None, :] == cur_arg[:, None]) & better[:, None]
            top_v = tl.where(replace, t_max[:, None], top_v)
            top_i = tl.where(replace, (start + t_arg).to(tl.int64)[:, None], top_i)
            s = tl.where(tl.arange(0, BLOCK_N)[None, :] == t_arg[:, None], float("-inf"), s)
    out = rows[:, None] * KP + slots[None, :]
    tl.store(vals_ptr + out, top_v, mask=row_ok[:, None])
    tl.store(idx_ptr + out, top_i, mask=row_ok[:, None])


def fused_topk(xn: torch.Tensor, qn: torch.Tensor, m: int, exclude_self: bool = True,
               block_m: int = 32, block_n: int = 64, block_k: int = 32):
    """The m largest cosine similarities of each row of ``qn`` against the rows of ``xn``.

    xn [N, D], qn [Nq, D]: L2-normalised fp32, contiguous, on one device.
    exclude_self : row i of ``qn`` never matches row i of ``xn``.
    Returns (values [Nq, m] fp32 descending, indices [Nq, m] int64).
    """
    if xn.dtype != torch.float32 or qn.dtype != torch.float32:
        raise ValueError("fused_topk expects fp32 inputs (normalise and upcast first).")
    xn, qn = xn.contiguous(), qn.contiguous()
    kp = max(16, triton.next_power_of_2(m))
    vals = torch.empty(qn.shape[0], kp, dtype=torch.float32, device=xn.device)
    idx = torch.empty(qn.shape[0], kp, dtype=torch.int64, device=xn.device)
    grid = (triton.cdiv(qn.shape[0], block_m),)
    _fused_topk_kernel[grid](qn, xn, vals, idx, qn.shape[0], xn.shape[0], xn.shape[1],
                             qn.stride(0), xn.stride(0), exclude_self,
                             BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, KP=kp)
    top = torch.topk(vals, m, dim=1, largest=True, sorted=True)
    return top.values, torch.gather(idx, 1, top.indices)


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


def pair_overlaps(nx: torch.Tensor, ny: torch.Tensor, block_i: int = 64) -> torch.Tensor:
    """Per-item overlap counts for all layer pairs in one launch: [Lx, N, k] x [Ly, N, k] -> [Lx, Ly, N] int32."""
    nx, ny = nx.contiguous().to(torch.int64), ny.contiguous().to(torch.int64)
    lx, n, k = nx.shape
    ly = ny.shape[0]
    out = torch.empty(lx, ly, n, dtype=torch.int32, device=nx.device)
    kp = max(16, triton.next_power_of_2(k))
    _pair_overlap_kernel[(lx, ly, triton.cdiv(n, block_i))](nx, ny, out, n, ly, k, BLOCK_I=block_i, KP=kp)
    return out
