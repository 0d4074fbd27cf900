"""Exact k-nearest-neighbour search: several backends, one answer.

Every backend returns the same neighbours for the same data, because no
backend decides a close call on its own fp32 arithmetic:

1. The backend (torch matmul + top-k, faiss exact inner-product search, or
   the fused Triton kernel of :mod:`vtalign.triton_kernels`) proposes each
   row's k + 1 most similar other items, on rows normalised in the backend's
   precision: fp32, or fp64 for torch on a CPU with d >= 1024 (:func:`candidate_dtype`).
2. A row is *decided* when its k-th and (k+1)-th similarities differ by
   more than twice the worst-case error of a dot product of unit vectors in
   that precision, ``eps(d) = 2 (d + 2) u`` (u = 2^-24 for fp32, 2^-53 for
   fp64): then the exact top-k set is unambiguous and every backend finds it.
3. Every other row (exact ties included: duplicated items, constant rows) is
   recomputed against all items in fp64 (on rows normalised in fp64 from the
   input, so the answer is that of the input values, not of their fp32
   rounding), where the tie rule applies: equal
   similarity -> lower index first. Values near the k-th are recomputed one
   pair at a time, so identical items get bitwise identical similarities.
4. When the order within the k matters (``ordered=True``), the k members are
   sorted by their fp64 similarity, ties by lower index.

A backend that computes in lower precision than fp32 (TF32 tensor cores)
would need a larger bound; none here does.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import torch

__all__ = ["BACKENDS", "available_backends", "resolve_backend", "knn_search", "topk_lowest_index"]

BACKENDS = ("auto", "torch", "faiss", "triton")

# Rows of the similarity matrix computed at once: bounds working memory to chunk x N.
ROW_CHUNK = 2048


def triton_interpreted() -> bool:
    """True when Triton kernels run in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def available_backends() -> list[str]:
    """Concrete backends usable in this environment (triton: with a CUDA GPU, or interpreted)."""
    out = ["torch"]
    if importlib.util.find_spec("faiss") is not None:
        out.append("faiss")
    if importlib.util.find_spec("triton") is not None and (torch.cuda.is_available() or triton_interpreted()):
        out.append("triton")
    return out


# From N on, ``auto`` uses faiss-cpu for CPU tensors. A first measurement on a 2-core CPU
# (k=10, random features): N=2000, d=256: torch 0.056 s, faiss 0.074 s; N=10000, d=256:
# torch 0.72 s, faiss 0.51 s; N=20000, d=512: torch 4.5 s, faiss 3.6 s.
AUTO_FAISS_MIN_N = 4096


def resolve_backend(backend: str, n: int | None = None, device: torch.device | None = None,
                    d: int | None = None) -> str:
    """Validate a backend name and turn ``"auto"`` into a concrete one.

    ``auto``: torch for tensors on a GPU, for N < ``AUTO_FAISS_MIN_N`` and for
    d >= ``FP64_CANDIDATES_MIN_D``; faiss (when installed) for the other CPU problems.
    ``auto`` never picks triton until a GPU benchmark shows it faster
    (``python -m vtalign.bench`` records that). All backends return identical neighbours.
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; choose one of {BACKENDS}.")
    if backend == "auto":
        on_cpu = device is None or torch.device(device).type == "cpu"
        big = n is not None and n >= AUTO_FAISS_MIN_N
        low_d = d is None or d < FP64_CANDIDATES_MIN_D  # above it, torch's fp64 path avoids faiss's fallbacks
        return "faiss" if on_cpu and big and low_d and "faiss" in available_backends() else "torch"
    if backend not in available_backends():
        hint = (" (triton needs a CUDA GPU, or TRITON_INTERPRET=1 set before vtalign is imported"
                " to run its kernels slowly on the CPU)" if backend == "triton" else "")
        raise ValueError(f"Backend {backend!r} is not available here{hint}; available: {available_backends()}.")
    return backend


def fp32_error_bound(d: int) -> float:
    """Worst-case |fp32 cosine - exact cosine| for unit vectors of dimension d (normalisation included)."""
    return 2.0 * (d + 2) * 2.0**-24


def error_bound(d: int, dtype: torch.dtype) -> float:
    """Worst-case cosine error for unit vectors of dimension d computed in ``dtype`` (fp32 or fp64)."""
    return fp32_error_bound(d) if dtype == torch.float32 else 2.0 * (d + 2) * 2.0**-53


# From this dimension on, the torch backend on a CPU proposes candidates in fp64. With random
# features, N = 1024, k = 10 (2-core CPU), the fp32 bound leaves a growing share of rows to the
# exact fp64 fallback: d = 768: 13% of rows, fp32 path 0.017 s vs fp64 path 0.020 s;
# d = 1280: 24%, 0.044 vs 0.037 s; d = 2048: 44%, 0.055 vs 0.046 s; d = 3584: 72%, 0.14 vs 0.093 s.
FP64_CANDIDATES_MIN_D = 1024


def candidate_dtype(backend: str, device: torch.device, d: int) -> torch.dtype:
    """Precision the backend proposes candidates in: fp64 for torch on a CPU when
    d >= ``FP64_CANDIDATES_MIN_D`` (the fp64 matmul costs about twice the fp32 one, but its
    error bound is 2^29 times smaller, so almost no row needs the exact fallback), else fp32."""
    cpu_torch = backend == "torch" and device.type == "cpu"
    return torch.float64 if cpu_torch and d >= FP64_CANDIDATES_MIN_D else torch.float32


def topk_lowest_index(sim: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest entries per row, nearest first, ties -> lower index.

    ``torch.topk`` does not say which of several equal values it returns, so it
    only finds each row's k-th largest value; the set is everything above that
    value plus the lowest-index entries equal to it, ordered by a stable sort.
    """
    kth = torch.topk(sim, k, dim=1, largest=True, sorted=True).values[:, k - 1 : k]
    above = sim > kth
    at = sim == kth
    missing = k - above.sum(dim=1, keepdim=True)
    chosen = above | (at & (torch.cumsum(at, dim=1) <= missing))
    idx = chosen.nonzero()[:, 1].view(sim.shape[0], k)  # row-major: ascending within a row
    order = torch.sort(torch.gather(sim, 1, idx), dim=1, descending=True, stable=True).indices
    return torch.gather(idx, 1, order)


# --------------------------------------------------------------------------- #
# Candidate proposals: [Nq, m] fp32 similarities (descending) and indices, self excluded
# --------------------------------------------------------------------------- #
# A self-search of up to this many items builds the whole similarity matrix from its upper
# block triangle (the matrix is symmetric): 10 of 16 block products for N = 1024.
SYMMETRIC_MAX_N = 4096
_SYMMETRIC_BLOCK = 256


def _symmetric_similarities(xn: torch.Tensor) -> torch.Tensor:
    """``xn @ xn.T`` from the block products on and above the diagonal, mirrored below it."""
    n = xn.shape[0]
    sim = torch.empty(n, n, dtype=xn.dtype, device=xn.device)
    starts = range(0, n, _SYMMETRIC_BLOCK)
    for i in starts:
        a = xn[i : i + _SYMMETRIC_BLOCK]
        block_row = a @ xn[i:].T
        sim[i : i + a.shape[0], i:] = block_row
        sim[i + a.shape[0] :, i : i + a.shape[0]] = block_row[:, a.shape[0] :].T
    return sim


def _candidates_torch(xn: torch.Tensor, qn: torch.Tensor, m: int):
    if qn is xn and xn.shape[0] <= SYMMETRIC_MAX_N:
        sim = _symmetric_similarities(xn)
        sim.fill_diagonal_(-torch.inf)  # item i never neighbours itself
        return torch.topk(sim, m, dim=1, largest=True, sorted=True)
    sims = torch.empty(qn.shape[0], m, dtype=qn.dtype, device=xn.device)
    idx = torch.empty(qn.shape[0], m, dtype=torch.int64, device=xn.device)
    for start in range(0, qn.shape[0], ROW_CHUNK):
        stop = min(start + ROW_CHUNK, qn.shape[0])
        sim = qn[start:stop] @ xn.T
        rows = torch.arange(stop - start, device=xn.device)
        sim[rows, rows + start] = -torch.inf  # item i never neighbours itself
        sims[start:stop], idx[start:stop] = torch.topk(sim, m, dim=1, largest=True, sorted=True)
    return sims, idx


def _candidates_faiss(xn: torch.Tensor, qn: torch.Tensor, m: int):
    import faiss

    x = np.ascontiguousarray(xn.cpu().numpy(), dtype=np.float32)
    q = np.ascontiguousarray(qn.cpu().numpy(), dtype=np.float32)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    dist, ids = index.search(q, min(m + 1, x.shape[0]))
    # drop each row's own index (wherever faiss put it), else the last candidate
    is_self = ids == np.arange(len(q))[:, None]
    keep = np.argsort(is_self, axis=1, kind="stable")[:, :m]
    dist, ids = np.take_along_axis(dist, keep, 1), np.take_along_axis(ids, keep, 1)
    return torch.from_numpy(dist).to(xn.device), torch.from_numpy(ids.astype(np.int64)).to(xn.device)


def _kernel_device(t: torch.Tensor) -> torch.device:
    """Where a Triton kernel runs: the tensor's GPU, the first GPU, or the CPU when interpreted."""
    if t.is_cuda or triton_interpreted():
        return t.device
    return torch.device("cuda")


def _candidates_triton(xn: torch.Tensor, qn: torch.Tensor, m: int):
    from .triton_kernels import fused_topk  # imported late: TRITON_INTERPRET is read at import

    dev = _kernel_device(xn)
    sims, idx = fused_topk(xn.to(dev), qn.to(dev), m, exclude_self=True)
    return sims.to(xn.device), idx.to(xn.device)


_CANDIDATES = {"torch": _candidates_torch, "faiss": _candidates_faiss, "triton": _candidates_triton}


# --------------------------------------------------------------------------- #
# Exact fp64 decisions
# --------------------------------------------------------------------------- #
def _canonical_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """fp64 dot products of paired rows, ``(a * b).sum(-1)``: each value depends only on its own
    two vectors (a matrix product does not promise that: BLAS can round identical columns
    differently depending on where they sit), so identical items tie exactly."""
    return (a.double() * b.double()).sum(-1)


def _exact_rows(x: torch.Tensor, q: torch.Tensor, rows: torch.Tensor, k: int) -> torch.Tensor:
    """Top-k of the given rows of ``q`` against all rows of ``x``, decided in fp64 with the tie rule.

    Cosines come from one fp64 matrix product of the raw rows divided by the row norms
    (cheaper than normalising x first). That decides every row whose k-th and (k+1)-th values
    differ by more than the fp64 error bound; in the other rows, entries within the bound of the
    k-th value are recomputed with :func:`_canonical_dot` on fp64-normalised rows, so identical
    items tie exactly and the lower index wins.
    """
    n = x.shape[0]
    tol = 4.0 * (x.shape[1] + 2) * 2.0**-53
    x64 = x.double()
    x_norm = x64.norm(dim=1).clamp_min(1e-12)  # as F.normalize: a zero row stays zero
    out = torch.empty(rows.numel(), k, dtype=torch.int64, device=x.device)
    for start in range(0, rows.numel(), ROW_CHUNK):
        r = rows[start : start + ROW_CHUNK]
        q64 = q[r].double()
        sim = (q64 @ x64.T) / (q64.norm(dim=1).clamp_min(1e-12)[:, None] * x_norm[None, :])
        sim[torch.arange(r.numel(), device=x.device), r] = -torch.inf  # never near: |-inf| > tol
        top = torch.topk(sim, min(k + 1, n - 1), dim=1)
        chunk_out = top.indices[:, :k].clone()
        if k < n - 1:
            close = (top.values[:, k - 1] - top.values[:, k]) <= tol
            if bool(close.any()):
                c = close.nonzero()[:, 0]
                s = sim[c]
                near = ((s - top.values[c, k - 1 : k]).abs() <= tol).nonzero()
                s[near[:, 0], near[:, 1]] = _canonical_dot(_unit64(q[r[c[near[:, 0]]]]), _unit64(x[near[:, 1]]))
                chunk_out[c] = topk_lowest_index(s, k)
        out[start : start + r.numel()] = chunk_out
    return out


def _order_exactly(x64: torch.Tensor, q64: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Sort each row's members by fp64 similarity (descending), ties -> lower index."""
    idx = torch.sort(idx, dim=1).values
    out = torch.empty_like(idx)
    chunk = max(1, 2**22 // max(1, idx.shape[1] * x64.shape[1]))
    for start in range(0, idx.shape[0], chunk):
        i = idx[start : start + chunk]
        sims = _canonical_dot(q64[start : start + chunk, None, :], x64[i])
        order = torch.sort(sims, dim=1, descending=True, stable=True).indices
        out[start : start + chunk] = torch.gather(i, 1, order)
    return out


def _unit_rows(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Rows divided by their L2 norm (clamped at 1e-12, as ``F.normalize``), as a new ``dtype``
    tensor. Normalised in place in its one new buffer: at the paper's scale, fresh allocations
    (page faults) cost more than the arithmetic."""
    out = t.to(dtype, copy=True)
    return out.div_(out.norm(dim=1, keepdim=True).clamp_min_(1e-12))


def _unit64(t: torch.Tensor) -> torch.Tensor:
    return _unit_rows(t, torch.float64)


def knn_search(x: torch.Tensor, q: torch.Tensor | None, k: int, backend: str,
               ordered: bool = True) -> torch.Tensor:
    """k nearest neighbours by cosine similarity of each row of ``q`` (default ``x``) among the rows
    of ``x``, excluding the row with the same index; returns int64 [Nq, k].

    ``x`` and ``q`` are checked, finite float tensors. Candidates come from the backend on
    fp32-normalised rows; every close call is decided on fp64-normalised rows of the input.
    """
    n, d = x.shape
    dtype = candidate_dtype(backend, x.device, d)
    xn = _unit_rows(x, dtype)
    qn = xn if q is None else _unit_rows(q, dtype)
    m = min(k + 1, n - 1)  # the (k+1)-th candidate bounds everything outside the top k
    sims, idx = _CANDIDATES[backend](xn, qn, m)
    out = idx[:, :k]
    if m > k:
        uncertain = (sims[:, k - 1] - sims[:, k]) <= 2 * error_bound(d, dtype)
        if bool(uncertain.any()):
            rows = uncertain.nonzero()[:, 0]
            out = out.clone()
            out[rows] = _exact_rows(x, x if q is None else q, rows, k)
    if not ordered:
        return out
    x64 = _unit64(x)
    return _order_exactly(x64, x64 if q is None else _unit64(q), out)
