"""Exact k-nearest-neighbour search: several backends, one answer, and every backend decision.

Every backend returns the same neighbours for the same data, because no backend decides a
close call on its own low-precision arithmetic. Two exact paths share one rule (a candidate
search, then fp64 for everything the candidate precision cannot decide):

**CPU** (torch, faiss):

1. The backend (torch matmul + top-k, or faiss exact inner-product search) proposes each row's
   k + 1 most similar other items on rows normalised in fp32, or in fp64 for torch with
   d >= 1024 (:func:`candidate_dtype`).
2. A row is *decided* when its k-th and (k+1)-th similarities differ by more than twice the
   worst-case error of a dot product of unit vectors in that precision, ``eps(d) = 2 (d + 2) u``:
   then the exact top-k set is unambiguous and every backend finds it.
3. Every other row (exact ties included: duplicated items, constant rows) is recomputed against
   all items in fp64, where the tie rule applies: equal similarity -> lower index first.
4. With ``ordered=True`` the k members are sorted by fp64 similarity, ties by lower index.

**GPU** (triton, torch on a CUDA device; triton under ``TRITON_INTERPRET=1`` on a CPU too):
certified fp16 screening on tensor cores (:func:`screened_search`): screen the top k + margin
candidates of the residuals from the mean row with a proven error bound (:func:`fp16_screen_bound`),
decide in fp64 only where screened values are closer than the bound allows, certify that no
other item can reach the k-th place, widen the screen for the rows that are not certified, and
search exhaustively in fp64 only as the last resort. All layers of a space go through in one
batched call (:func:`layer_search`), with one host synchronisation.

**Exact near ties** (every path): fp64 cosines ``(x_i . x_j) / (|x_i| |x_j|)`` of the input values
are each within ``e = fp64_cosine_bound(d)`` of the exact cosine. Wherever two candidates' fp64
values lie within ``2 e`` of each other between *different* vectors, at the k-th place (who is in)
or, for ordered results, between members (who comes first), :func:`settle_near_ties` decides the
comparison in exact rational arithmetic on the input floats: every finite float is a dyadic
rational, so ``(x_i . x_j) |x_i . x_j| / |x_j|^2`` is compared exactly, in Python integers
(:func:`exact_keys`). Equal in exact arithmetic means the lower index wins. Identical items get
bitwise identical fp64 values on every path, so the sort already puts them in index order. So
every backend, on every device, returns the answer of exact arithmetic: positive multiples
(``x_j = 3 x_i``) tie exactly, whatever fp64 makes of them. Such decisions are rare on real
features (none at the paper's shape with random features); :func:`profile` counts them.

**Scale**: a cosine does not depend on a row's scale, and neither does any answer here. Norms are
never clamped (an all-zero row stays zero and has cosine 0 with everything); fp32 rows are safe in
the fp64 sums, fp64 rows too large or small for them are rescaled by a power of two, which is exact
(:func:`safe_rows`), and rows whose fp32 candidate norm would under- or overflow are normalised
from such a multiple (:func:`_unit_rows`).

**Backends** are objects (:class:`Backend`: :class:`TorchBackend`, :class:`FaissBackend`,
:class:`TorchGPUBackend`, :class:`TritonBackend`), each giving the operations a search uses: its device,
inverse norms, preparation, screening (CPU candidates or the fp16 screen), fp64 re-ranking and pair
overlaps. :func:`resolve_backend` turns a name (``"auto"``, ``"torch"``, ``"faiss"``, ``"triton"``) into
one, once; every entry point takes the object or a name. A new backend is one class in the last
section of this module. **What a search did** (stage timings, exact decisions, screen reports) goes to
the :class:`SearchProfile` of the caller's ``with profile() as p`` block; the module keeps no state.
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import os
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import ClassVar

import numpy as np
import torch

__all__ = ["BACKENDS", "available_backends", "resolve_backend", "knn_search", "layer_search", "count_overlaps",
           "topk_lowest_index", "screened_search", "fp16_screen_bound", "rows_per_chunk", "exact_cosines", "inv_norms",
           "shard_neighbours", "merge_neighbours", "shard_bounds", "sharded_knn_search", "profile", "profile_stages",
           "SearchProfile", "Backend", "TorchBackend", "FaissBackend", "TorchGPUBackend", "TritonBackend"]

# Rows of the similarity matrix the CPU path computes at once: bounds working memory to chunk x N.
ROW_CHUNK = 2048


def triton_interpreted() -> bool:
    """True when Triton kernels run in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def kernel_device(t: torch.Tensor) -> torch.device:
    """Where a Triton kernel runs: the tensor's GPU, the first GPU, or the CPU when interpreted."""
    if t.is_cuda or triton_interpreted():
        return t.device
    return torch.device("cuda")


# --------------------------------------------------------------------------- #
# Where the time goes: stage timings of the GPU path, on request
# --------------------------------------------------------------------------- #
STAGES = ("prepare", "screen", "decide", "widen", "fallback", "overlaps")  # what profile_stages() times, in order


@dataclass
class SearchProfile:
    """What the searches and overlap counts run inside :func:`profile` did; the caller owns it.

    stages : stage -> seconds summed over calls (``STAGES``), filled only with ``time_stages``
    exact_rows : rows whose top k had a near tie between different vectors (fp64 values closer than
        their proven error), decided in exact rational arithmetic (:func:`settle_near_ties`)
    exact_cosines : exact rational cosine keys those rows took (one per distinct vector)
    screens : one report per screened search (the GPU path), in the order they ran: ``rows`` searched,
        ``certified_first_pass``, ``certified_widened`` (by a wider pass), ``fallback_rows`` (searched
        exhaustively in fp64), ``first_pass_m`` (candidates of the first pass) and ``reranked_pairs``
        ((row, candidate) pairs given fp64 values); the benchmark records them
    """
    time_stages: bool = False
    stages: dict = field(default_factory=dict)
    exact_rows: int = 0
    exact_cosines: int = 0
    screens: list = field(default_factory=list)


# The profile of the innermost active ``profile()`` block of this thread or task (None: no block). A
# context variable, so concurrent searches in other threads never write into it.
_PROFILE: contextvars.ContextVar = contextvars.ContextVar("vtalign_knn_profile", default=None)


@contextlib.contextmanager
def profile(time_stages: bool = False):
    """Collect a :class:`SearchProfile` of every search run inside the block (and yield it).

    >>> with profile() as p:
    ...     _ = knn_search(torch.tensor([[1.0, 1], [2, 2], [1, 0]]), None, 1, "torch")
    >>> p.exact_rows   # row 2: items 0 and 1 point the same way, fp64 may round them apart
    1
    >>> with profile() as p:
    ...     _ = screened_search(torch.tensor([[[1.0, 0], [2, 1], [0, 1]]]), None, 1, "torch")
    >>> p.screens[0]["rows"], p.screens[0]["certified_first_pass"]
    (3, 3)
    """
    token = _PROFILE.set(SearchProfile(time_stages))
    try:
        yield _PROFILE.get()
    finally:
        _PROFILE.reset(token)


@contextlib.contextmanager
def profile_stages():
    """Time the stages of every screened search and overlap count run inside the block.

    Yields a dict ``stage -> seconds`` (summed over calls) that fills as they run. Stages (``STAGES``): ``prepare``
    (normalisation, residuals, error bounds), ``screen`` (the first fp16 pass), ``decide`` (fp64
    re-ranking and certification), ``widen`` (wider passes), ``fallback`` (exhaustive fp64 rows) and
    ``overlaps``. Every stage boundary synchronises the device, which a normal run never does, so use
    the stages for where the time goes and an unprofiled timing for how long it takes.

    >>> with profile_stages() as stages:
    ...     lists = torch.zeros(1, 4, 1, dtype=torch.int64)
    ...     _ = count_overlaps(lists, lists, "torch")
    >>> sorted(stages)
    ['overlaps']
    """
    with profile(time_stages=True) as p:
        yield p.stages


def _record(**counts: int) -> None:
    """Add counts to the active profile, if any."""
    p = _PROFILE.get()
    if p is not None:
        for name, n in counts.items():
            setattr(p, name, getattr(p, name) + n)


def _screen_report() -> dict:
    """A new screened search's report, filled as the search runs; kept by the active profile, if any."""
    report = {"reranked_pairs": 0}
    p = _PROFILE.get()
    if p is not None:
        p.screens.append(report)
    return report


@contextlib.contextmanager
def _stage(name: str, device: torch.device):
    p = _PROFILE.get()
    if p is None or not p.time_stages:
        yield
        return
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda *a: None)
    sync(device)
    start = time.perf_counter()
    try:
        yield
    finally:
        sync(device)
        p.stages[name] = p.stages.get(name, 0.0) + time.perf_counter() - start


# --------------------------------------------------------------------------- #
# Scale: rows far from 1 are rescaled by a power of two (exact) before any norm
# --------------------------------------------------------------------------- #
# Rows whose norm lies in [2^-SAFE_EXP, 2^SAFE_EXP] are used as given: their fp64 sums of squares and
# products neither overflow nor lose more than 2^-1074 d of a value at least 2^-800 (fp32: 2^-80).
SAFE_EXP64, SAFE_EXP32 = 400, 40


def _unsafe_rows(t: torch.Tensor, norm: torch.Tensor, exp: int) -> torch.Tensor:
    """Rows [..., N] whose ``norm`` (computed in t's dtype) is outside [2^-exp, 2^exp] or not finite, or 0
    for a row that is not all zero (its squares underflowed)."""
    out = ~torch.isfinite(norm) | (norm > 2.0**exp) | ((norm < 2.0**-exp) & (norm > 0))
    zero = norm == 0
    if bool(zero.any()):
        out |= zero & (t != 0).any(dim=-1)
    return out


def pow2_scaled(t: torch.Tensor, target_exp: int = 0) -> torch.Tensor:
    """Each row of t [..., D] times the power of two that brings its largest |entry| into
    [2^(target_exp-1), 2^target_exp): a positive multiple, so every cosine is unchanged, and exact
    (a power-of-two scale only moves exponents) unless it scales down entries into fp64's subnormal
    range: with ``target_exp`` = 400 that takes a row spanning more than 2^1470 from largest to smallest
    entry. All-zero rows stay zero. Returns fp64.

    >>> pow2_scaled(torch.tensor([[3e-300, -1e-300], [0.0, 0.0]], dtype=torch.float64)).tolist()[1]
    [0.0, 0.0]
    """
    t64 = t.to(torch.float64, copy=True)
    e = torch.frexp(t64.abs().amax(dim=-1, keepdim=True)).exponent.long()  # max = m 2^e, m in [0.5, 1)
    shift = target_exp - e
    half = torch.div(shift, 2, rounding_mode="floor")  # two steps: 2^shift alone can overflow fp64
    return torch.ldexp(torch.ldexp(t64, half), shift - half)


def safe_rows(t: torch.Tensor) -> torch.Tensor:
    """t itself when every fp64 product and sum of squares of its rows is safe (fp32 rows always are:
    their squares lie within fp64's range); else an fp64 copy in which the rows outside that range are
    :func:`pow2_scaled` (to a largest entry near 1, or near 2^400 when scaling down)."""
    if t.dtype != torch.float64:
        return t
    bad = _unsafe_rows(t, t.norm(dim=-1), SAFE_EXP64)
    if not bool(bad.any()):
        return t
    big = t.abs().amax(dim=-1, keepdim=True) > 1.0
    scaled = torch.where(big, pow2_scaled(t, SAFE_EXP64), pow2_scaled(t))
    return torch.where(bad[..., None], scaled, t)


def _inverse(norm: torch.Tensor) -> torch.Tensor:
    """1 / norm, and 0 for a zero row (which then stays zero: its cosine with everything is 0)."""
    return torch.where(norm > 0, 1.0 / norm, torch.zeros((), dtype=norm.dtype, device=norm.device))


# --------------------------------------------------------------------------- #
# Exact decisions of near ties
# --------------------------------------------------------------------------- #
def integer_rows(rows: np.ndarray) -> np.ndarray:
    """Rows of floats [R, D] as Python integers [R, D] (dtype object): row r equals ``n_r * 2^E_r``, one
    power of two per row, so cosines of the integer rows are exactly those of the floats (every finite
    float is a dyadic rational; a positive multiple has the same cosines).

    >>> integer_rows(np.array([[0.75, -2.0, 0.0]])).tolist()
    [[3, -8, 0]]
    """
    m, e = np.frexp(np.asarray(rows, dtype=np.float64))
    mant = (m * 2.0**53).astype(np.int64)            # exact: |m| < 1
    nonzero = mant != 0
    low = np.where(nonzero, e, np.iinfo(np.int32).max).min(axis=-1, keepdims=True)
    # drop the row's common factor of two (fp32 mantissas end in 29 zero bits): smaller integers
    lowest_bit = np.abs(mant) & -np.abs(mant)
    twos = np.where(nonzero, np.log2(np.where(nonzero, lowest_bit, 1)).astype(np.int64), 62).min(axis=-1, keepdims=True)
    return (mant >> np.where(nonzero, twos, 0)).astype(object) << np.where(nonzero, e - low, 0).astype(object)


def exact_keys(q: np.ndarray, items: np.ndarray) -> list:
    """Rational sort keys of the cosines of one query row with item rows (integer rows, see
    :func:`integer_rows`): ``(q . x_j) |q . x_j| / |x_j|^2``, which orders the items as their exact
    cosines do (|q| is common to the row; t -> t |t| is increasing). A zero item's key is 0.

    >>> [str(v) for v in exact_keys(np.array([1, 1], dtype=object), np.array([[1, 0], [2, 2], [0, 0]], dtype=object))]
    ['1', '2', '0']
    """
    dots = items.dot(q)
    squares = (items * items).sum(axis=1)
    return [Fraction(int(t) * abs(int(t)), int(s)) if s else Fraction(0) for t, s in zip(dots, squares)]


def _near_tie_rows(keys: torch.Tensor, idx: torch.Tensor, x: torch.Tensor, k: int, ordered: bool,
                   tol: float) -> torch.Tensor:
    """Rows [L, R] whose top k an fp64 comparison cannot decide: two *different* item vectors whose
    values ``keys`` [L, R, m] (sorted descending, ties by index) lie within ``tol`` of each other where
    it matters. For sets: both within ``tol`` of the k-th value while the (k+1)-th is too (who is in).
    For ordered results also two adjacent members within ``tol`` (who comes first). Identical vectors
    get bitwise identical fp64 values on every path, so the sort already put them in index order.
    x [L, N, D]: the items; idx [L, R, m] int64 (-1: none, at -inf)."""
    n_layers, n_rows, m = keys.shape
    link = (keys[..., :-1] - keys[..., 1:]) <= tol                  # adjacent values within tol (-inf: never)
    pos = torch.arange(m - 1, device=keys.device)
    relevant = link & (pos < k - 1) if ordered else torch.zeros_like(link)
    if m > k:
        window = (keys - keys[..., k - 1 : k]).abs() <= tol
        boundary = link[..., k - 1 : k]
        relevant |= boundary & link & window[..., :-1] & window[..., 1:]
    if not bool(relevant.any()):
        return relevant.any(dim=-1)
    layer, row, p = relevant.nonzero().unbind(1)
    a, b = idx[layer, row, p], idx[layer, row, p + 1]
    differ = torch.zeros(n_layers * n_rows, dtype=torch.int32, device=keys.device)
    differ.index_add_(0, layer * n_rows + row, (x[layer, a] != x[layer, b]).any(dim=-1).to(torch.int32))
    return (differ > 0).view(n_layers, n_rows)


def _settle_row(v: np.ndarray, ids: np.ndarray, k: int, ordered: bool, tol: float, keys_of) -> tuple[list, int]:
    """One row's exact top k from values ``v`` (sorted descending, ties by index, -inf padded) within
    ``tol`` of exact comparisons, deciding every comparison they cannot decide by ``keys_of(ids)``
    (exact keys). Returns (the k indices, nearest first if ``ordered``; exact keys computed).

    In: every item whose value exceeds the k-th by more than ``tol``. Out: every item more than ``tol``
    below it. The others (within ``tol`` of the k-th value) fill the remaining places by exact key,
    ties -> lower index. Then members are sorted by value and each run of adjacent values within
    ``tol`` is sorted by exact key.
    """
    n_exact = 0
    chosen = [int(j) for j in ids[:k]]
    value = dict(zip(ids.tolist(), v.tolist()))
    if len(v) > k and v[k - 1] - v[k] <= tol:
        kth = v[k - 1]
        sure = [int(j) for j in ids[v > kth + tol]]
        window = ids[(np.abs(v - kth) <= tol) & (ids >= 0)]
        keys, n = keys_of(window)
        n_exact += n
        ranked = sorted(zip(window.tolist(), keys), key=lambda t: (-t[1], t[0]))
        chosen = sure + [j for j, _ in ranked[: k - len(sure)]]
    if not ordered:
        return chosen, n_exact
    chosen.sort(key=lambda j: (-value[j], j))
    out, start = [], 0
    for end in range(1, k + 1):
        if end == k or value[chosen[end - 1]] - value[chosen[end]] > tol:
            run = np.array(chosen[start:end])
            if len(run) > 1:
                keys, n = keys_of(run)
                n_exact += n
                run = [j for j, _ in sorted(zip(run.tolist(), keys), key=lambda t: (-t[1], t[0]))]
            out += list(run)
            start = end
    return out, n_exact


def settle_near_ties(keys: torch.Tensor, idx: torch.Tensor, x: torch.Tensor, q: torch.Tensor, k: int,
                     ordered: bool, tol: float) -> torch.Tensor:
    """The exact top k [L, R, k] of candidates whose fp64 values ``keys`` [L, R, m] (sorted descending,
    ties by lower index, each within ``tol / 2`` of its exact cosine) are given with their items ``idx``
    [L, R, m]; x [L, N, D] the items, q [L, R, D] the query rows.

    Comparisons the values decide (more than ``tol`` apart) are taken from them; the others, between
    different vectors, are decided in exact rational arithmetic on the input floats
    (:func:`exact_keys`), ties -> lower index. Without ``ordered`` only who is in is decided.
    The caller guarantees that every item not among the candidates is below the k-th exactly, and
    that every candidate within ``tol`` of the k-th value is among them. Rows that need exact
    decisions are counted in the active :class:`SearchProfile`.
    """
    top = idx[..., :k]
    flagged = _near_tie_rows(keys, idx, x, k, ordered, tol)
    if not bool(flagged.any()):
        return top
    top = top.clone()
    rows = flagged.nonzero()
    keys_c, idx_c = keys[rows[:, 0], rows[:, 1]].cpu().numpy(), idx[rows[:, 0], rows[:, 1]].cpu().numpy()
    q_c = q[rows[:, 0], rows[:, 1]].cpu().numpy()
    settled, n_exact = [], 0
    for (layer, _), v, ids, q_row in zip(rows.tolist(), keys_c, idx_c, q_c):
        settled_row, n = _settle_row(v, ids, k, ordered, tol, _keys_for(q_row, x[layer]))
        settled.append(settled_row)
        n_exact += n
    top[rows[:, 0], rows[:, 1]] = torch.tensor(settled, dtype=top.dtype, device=top.device)
    _record(exact_rows=rows.shape[0], exact_cosines=n_exact)
    return top


def _keys_for(q_row: np.ndarray, x: torch.Tensor):
    """``keys_of(ids) -> (exact keys, how many were computed)`` for one query row against items of x
    [N, D]: one key per distinct vector (identical items share it), all 0 for a zero query row."""
    if not q_row.any():
        return lambda ids: ([0] * len(ids), 0)
    q_int = integer_rows(q_row[None])[0]

    def keys_of(ids):
        rows = x[torch.as_tensor(ids, device=x.device)].cpu().numpy()
        distinct, inverse = np.unique(rows, axis=0, return_inverse=True)
        keys = exact_keys(q_int, integer_rows(distinct))
        return [keys[i] for i in inverse.reshape(-1)], len(distinct)
    return keys_of


# --------------------------------------------------------------------------- #
# CPU path: fp32 / fp64 candidates, fp64 decisions
# --------------------------------------------------------------------------- #
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


def candidate_dtype(backend: str | Backend, device: torch.device, d: int) -> torch.dtype:
    """Precision the CPU path proposes candidates in: fp64 for torch on a CPU when d >=
    ``FP64_CANDIDATES_MIN_D`` (the fp64 matmul costs about twice the fp32 one, but its error bound is
    2^29 times smaller, so almost no row needs the exact fallback), else fp32
    (:meth:`Backend.candidate_dtype`)."""
    return _as_backend(backend, device).candidate_dtype(torch.device(device), d)


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


def _exclude_items(sim: torch.Tensor, excluded: torch.Tensor) -> None:
    """Set ``sim[i, excluded[i]] = -inf`` wherever ``excluded[i] >= 0`` (the item row i never pairs with)."""
    keep = excluded >= 0
    sim[torch.arange(excluded.numel(), device=sim.device)[keep], excluded[keep]] = -torch.inf


def _candidates_torch(xn: torch.Tensor, qn: torch.Tensor, m: int, exclude: torch.Tensor):
    if qn is xn and xn.shape[0] <= SYMMETRIC_MAX_N:
        sim = _symmetric_similarities(xn)
        _exclude_items(sim, exclude)
        return torch.topk(sim, m, dim=1, largest=True, sorted=True)
    sims = torch.empty(qn.shape[0], m, dtype=qn.dtype, device=xn.device)
    idx = torch.empty(qn.shape[0], m, dtype=torch.int64, device=xn.device)
    for start in range(0, qn.shape[0], ROW_CHUNK):
        stop = min(start + ROW_CHUNK, qn.shape[0])
        sim = qn[start:stop] @ xn.T
        _exclude_items(sim, exclude[start:stop])
        sims[start:stop], idx[start:stop] = torch.topk(sim, m, dim=1, largest=True, sorted=True)
    return sims, idx


def _candidates_faiss(xn: torch.Tensor, qn: torch.Tensor, m: int, exclude: torch.Tensor):
    import faiss

    x = np.ascontiguousarray(xn.cpu().numpy(), dtype=np.float32)
    q = np.ascontiguousarray(qn.cpu().numpy(), dtype=np.float32)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    dist, ids = index.search(q, min(m + 1, x.shape[0]))
    # move each row's excluded item to the end (wherever faiss put it), keep the first m; when a row
    # has fewer than m other items, its excluded item stays, at -inf, as the torch path gives it
    is_excluded = ids == exclude.cpu().numpy()[:, None]
    keep = np.argsort(is_excluded, axis=1, kind="stable")[:, :m]
    dist = np.where(np.take_along_axis(is_excluded, keep, 1), -np.inf, np.take_along_axis(dist, keep, 1))
    ids = np.take_along_axis(ids, keep, 1)
    return torch.from_numpy(dist).to(xn.device), torch.from_numpy(ids.astype(np.int64)).to(xn.device)


def _canonical_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """fp64 dot products of paired rows, ``(a * b).sum(-1)``: each value depends only on its own
    two vectors (a matrix product does not promise that: BLAS can round identical columns
    differently depending on where they sit), so identical items tie exactly."""
    return (a.double() * b.double()).sum(-1)


def _exact_rows(x: torch.Tensor, q: torch.Tensor, rows: torch.Tensor, k: int,
                exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Top-k sets of the given rows of ``q`` against all rows of ``x`` (row i never pairing with item
    ``exclude[i]``, default i), decided exactly with the tie rule.

    Cosines come from one fp64 matrix product of the raw rows times the inverse row norms (cheaper
    than normalising x first), each within ``e = fp64_cosine_bound(d)`` of the exact value. That
    decides every row whose k-th and (k+1)-th values differ by more than 2e. In the other rows,
    entries within 4e of the k-th value are recomputed with :func:`_canonical_dot` on fp64-normalised
    rows (so identical items get identical values), and :func:`settle_near_ties` decides the rest
    exactly. Rows go through in chunks sized from the free memory of x's device (an fp64 row of
    similarities is 8 N bytes).
    """
    n, d = x.shape
    tol = 2 * fp64_cosine_bound(d)
    x64 = x.double()
    x_inv = _inverse(x64.norm(dim=1))
    out = torch.empty(rows.numel(), k, dtype=torch.int64, device=x.device)
    chunk = ROW_CHUNK if x.device.type == "cpu" else rows_per_chunk(x.device, 24 * n, cap=ROW_CHUNK)
    for start in range(0, rows.numel(), chunk):
        r = rows[start : start + chunk]
        q64 = q[r].double()
        sim = (q64 @ x64.T).mul_(_inverse(q64.norm(dim=1))[:, None] * x_inv[None, :])
        _exclude_items(sim, r if exclude is None else exclude[r])  # never near: |-inf| > tol
        top = torch.topk(sim, min(k + 1, n), dim=1)
        chunk_out = top.indices[:, :k].clone()
        if k < n:
            close = (top.values[:, k - 1] - top.values[:, k]) <= tol
            if bool(close.any()):
                c = close.nonzero()[:, 0]
                s = sim[c]
                # recomputed values move by at most tol: everything within tol of the new k-th value is recomputed
                near = ((s - top.values[c, k - 1 : k]).abs() <= 2 * tol).nonzero()
                s[near[:, 0], near[:, 1]] = _canonical_dot(_unit64(q[r[c[near[:, 0]]]]), _unit64(x[near[:, 1]]))
                kth = torch.topk(s, k, dim=1).values[:, k - 1 : k]
                # each row's candidates: everything within tol below its k-th value, and one more; rows
                # go in groups of similar width (a zero query row ties with all N items, the others with few)
                width = ((s >= kth - tol).sum(dim=1) + 1).clamp_max(n)
                group = torch.ceil(torch.log2(width.double())).long()
                for g in torch.unique(group).tolist():
                    in_g = (group == g).nonzero()[:, 0]
                    vals, idx = torch.topk(s[in_g], int(width[in_g].max()), dim=1)
                    order = _lexsort(vals, idx)
                    vals, idx = torch.gather(vals, 1, order), torch.gather(idx, 1, order)
                    chunk_out[c[in_g]] = settle_near_ties(vals[None], idx[None], x[None], q[r[c[in_g]]][None], k,
                                                          False, tol)[0]
        out[start : start + r.numel()] = chunk_out
    return out


def _canonical_cosines(x64: torch.Tensor, q64: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """:func:`_canonical_dot` of unit fp64 query rows with their items ``idx`` [Nq, m]: fp64 [Nq, m]."""
    out = torch.empty(idx.shape, dtype=torch.float64, device=idx.device)
    chunk = max(1, 2**22 // max(1, idx.shape[1] * x64.shape[1]))
    for start in range(0, idx.shape[0], chunk):
        rows = slice(start, start + chunk)
        out[rows] = _canonical_dot(q64[rows, None, :], x64[idx[rows]])
    return out


def _order_exactly(x: torch.Tensor, q: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Sort each row's members [Nq, k] by exact cosine (descending), ties -> lower index: by fp64 value,
    and where two values are too close for fp64 to decide, exactly (:func:`settle_near_ties`)."""
    idx = torch.sort(idx, dim=1).values
    x64 = _unit64(x)
    vals = _canonical_cosines(x64, x64 if q is x else _unit64(q), idx)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    vals, idx = torch.gather(vals, 1, order), torch.gather(idx, 1, order)
    return settle_near_ties(vals[None], idx[None], x[None], q[None], idx.shape[1], True,
                            2 * fp64_cosine_bound(x.shape[1]))[0]


def _unit_rows(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Rows divided by their L2 norm (a zero row stays zero), as a new ``dtype`` tensor. Normalised in
    place in its one new buffer: at the paper's scale, fresh allocations (page faults) cost more than
    the arithmetic. A row whose norm would under- or overflow in ``dtype`` (or that rounds to zero
    in it) is normalised from its :func:`pow2_scaled` fp64 copy instead: the unit row of any
    positive multiple is the same."""
    out = t.to(dtype, copy=True)
    norm = out.norm(dim=1, keepdim=True)
    bad = _unsafe_rows(t, norm[:, 0], SAFE_EXP32 if dtype == torch.float32 else SAFE_EXP64)
    if bool(bad.any()):
        fixed = pow2_scaled(t[bad])                   # largest entry in [1/2, 1): a safe norm
        out[bad] = fixed.div_(fixed.norm(dim=1, keepdim=True)).to(dtype)
        norm[bad] = 1.0
    return out.div_(torch.where(norm > 0, norm, 1.0))


def _unit64(t: torch.Tensor) -> torch.Tensor:
    return _unit_rows(t, torch.float64)


def _cpu_search(x: torch.Tensor, q: torch.Tensor | None, k: int, backend: Backend, ordered: bool,
                exclude: torch.Tensor | None = None) -> torch.Tensor:
    """The CPU path (see the module's docstring) with a backend whose ``candidates`` propose them."""
    n, d = x.shape
    dtype = backend.candidate_dtype(x.device, d)
    xn = _unit_rows(x, dtype)
    qn = xn if q is None else _unit_rows(q, dtype)
    own = _exclusions(exclude, qn.shape[0], x.device)
    # the (k+1)-th candidate bounds everything outside the top k; an excluded item comes last, at -inf
    m = min(k + 1, n)
    sims, idx = backend.candidates(xn, qn, m, own)
    out = idx[:, :k]
    if m > k:
        uncertain = (sims[:, k - 1] - sims[:, k]) <= 2 * error_bound(d, dtype)
        if bool(uncertain.any()):
            rows = uncertain.nonzero()[:, 0]
            out = out.clone()
            out[rows] = _exact_rows(x, x if q is None else q, rows, k, own)
    if not ordered:
        return out
    return _order_exactly(x, x if q is None else q, out)


# --------------------------------------------------------------------------- #
# Entry points
# --------------------------------------------------------------------------- #
def _exclusions(exclude: torch.Tensor | None, n_q: int, device: torch.device) -> torch.Tensor:
    """The item each query row never pairs with, int64 [Nq] (-1: none); default row i excludes item i."""
    if exclude is None:
        return torch.arange(n_q, device=device)
    return torch.as_tensor(exclude, device=device).long()


def knn_search(x: torch.Tensor, q: torch.Tensor | None, k: int, backend: str | Backend,
               ordered: bool = True, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """k nearest neighbours by cosine similarity of each row of ``q`` (default ``x``) among the rows
    of ``x``; returns int64 [Nq, k] on x's device.

    Row i never pairs with item ``exclude[i]`` (int [Nq], -1: none; default: item i, the row itself).
    Every row must keep at least k items. ``x`` and ``q`` are checked, finite float tensors;
    ``backend`` is a :class:`Backend` from :func:`resolve_backend` or a name it accepts. fp64 rows too
    large or small for fp64 sums of squares are rescaled by powers of two first (:func:`safe_rows`).
    """
    backend = _as_backend(backend, x.device)
    x, q = safe_rows(x), None if q is None else safe_rows(q)
    if backend.screened:
        home = x.device
        dev = backend.device(x)
        out = screened_search(x.to(dev)[None], None if q is None else q.to(dev)[None], k, backend, ordered,
                              exclude=None if exclude is None else torch.as_tensor(exclude).to(dev))
        return out[0].to(home)
    return _cpu_search(x, q, k, backend, ordered, exclude)


def exact_cosines(x: torch.Tensor, q: torch.Tensor | None, idx: torch.Tensor, backend: str | Backend) -> torch.Tensor:
    """fp64 cosines [Nq, m] of each row of ``q`` (default ``x``) with the items ``idx`` [Nq, m], computed
    as the search that uses ``backend`` on x's device orders its neighbours (so sorting by them, ties ->
    lower index, reproduces that order; :meth:`Backend.cosines`). Merges of shard results compare these values."""
    backend = _as_backend(backend, x.device)
    x = safe_rows(x)
    return backend.cosines(x, x if q is None else safe_rows(q), idx)


def shard_neighbours(shard: torch.Tensor, queries: torch.Tensor, k: int, first: int, backend: str | Backend,
                     exclude: torch.Tensor | None = None):
    """One shard's part of an exact kNN search whose database is split into contiguous row ranges.

    shard : [Ns, D], rows ``first .. first + Ns - 1`` of the whole database
    queries : [Nq, D]; query i never pairs with global item ``exclude[i]`` (default i: a self-search)

    Returns ``(cosines fp64 [Nq, k], global indices int64 [Nq, k])``: the shard's exact top k under the
    one order every path uses (cosine descending, ties -> lower index), with the values that decided it.
    The global top k of a row is among the union of the shards' top k under that same order, so
    :func:`merge_neighbours` recovers it exactly.
    """
    n_s = shard.shape[0]
    if n_s <= k:
        raise ValueError(f"A shard of {n_s} rows cannot give k={k} neighbours to a query whose own item it holds; "
                         f"use fewer shards (each needs at least k + 1 = {k + 1} rows).")
    own = _exclusions(exclude, queries.shape[0], shard.device)
    local = torch.where((own >= first) & (own < first + n_s), own - first, -1)
    backend = _as_backend(backend, shard.device)
    idx = knn_search(shard, queries, k, backend, ordered=True, exclude=local)
    return exact_cosines(shard, queries, idx, backend), idx + first


def merge_neighbours(values, indices, k: int, x: torch.Tensor | None = None,
                     q: torch.Tensor | None = None) -> torch.Tensor:
    """Merge shards' :func:`shard_neighbours` into the global top k: [Nq, k] int64, nearest first.

    values, indices : sequences of [Nq, k_s] fp64 cosines and global indices (one pair per shard).
    The union is sorted by cosine (descending), ties by lower index, and cut at k. With the whole
    database ``x`` [N, D] (and the queries ``q``, default x), comparisons the fp64 values cannot
    decide are decided exactly (:func:`settle_near_ties`), as the unsharded search decides them.

    >>> merge_neighbours([torch.tensor([[0.9, 0.5]])], [torch.tensor([[4, 1]])], 1).tolist()
    [[4]]
    """
    v = torch.cat([torch.as_tensor(t) for t in values], dim=1).double()
    i = torch.cat([torch.as_tensor(t) for t in indices], dim=1).long()
    order = _lexsort(v, i)
    if x is None:
        return torch.gather(i, 1, order[:, :k])
    v, i = torch.gather(v, 1, order), torch.gather(i, 1, order)
    x = safe_rows(x).to(i.device)
    q = x if q is None else safe_rows(q).to(i.device)
    return settle_near_ties(v[None], i[None], x[None], q[None], k, True, 2 * fp64_cosine_bound(x.shape[1]))[0]


def shard_bounds(n: int, n_shards: int) -> list[tuple[int, int]]:
    """``n_shards`` contiguous row ranges ``(start, stop)`` covering ``range(n)``, sizes differing by at most one."""
    if not 1 <= n_shards <= n:
        raise ValueError(f"n_shards must be between 1 and the number of items ({n}), got {n_shards}.")
    edges = [round(i * n / n_shards) for i in range(n_shards + 1)]
    return list(zip(edges[:-1], edges[1:]))


def sharded_knn_search(x: torch.Tensor, q: torch.Tensor | None, k: int, backend: str | Backend, n_shards: int,
                       run_shards=None) -> torch.Tensor:
    """:func:`knn_search` (ordered, self-exclusion by row index) with the database split into ``n_shards``
    contiguous shards, each searched on its own and merged: the answer is identical to the unsharded one.

    run_shards : ``f(tasks) -> results``, where each task is a ``(shard_neighbours, args)`` pair to call;
    default: one after another in this process (:func:`vtalign.extract.cluster.sharded_knn` runs them as
    Ray tasks).
    """
    queries = x if q is None else q
    tasks = [(shard_neighbours, (x[a:b], queries, k, a, backend)) for a, b in shard_bounds(x.shape[0], n_shards)]
    results = run_shards(tasks) if run_shards is not None else [f(*args) for f, args in tasks]
    return merge_neighbours([r[0] for r in results], [r[1] for r in results], k, x, queries)


def layer_search(t: torch.Tensor, k: int, backend: str | Backend) -> torch.Tensor:
    """Neighbour sets of every layer of a checked [N, L, D] tensor: int64 [L, N, k] (each row in no
    particular order). On the GPU path all layers go through one batched screening call; the
    result stays on the device it was computed on."""
    backend = _as_backend(backend, t.device)
    t = safe_rows(t)
    if backend.screened:
        return screened_search(t.to(backend.device(t)).transpose(0, 1), None, k, backend, ordered=False)
    return torch.stack([_cpu_search(t[:, layer, :], None, k, backend, ordered=False) for layer in range(t.shape[1])])


# Elements of the boolean neighbour mask that count_overlaps builds at once (~16 MB).
MASK_ELEMENTS = 2**24


def count_overlaps(nx: torch.Tensor, ny: torch.Tensor, backend: str | Backend) -> torch.Tensor:
    """Per-item overlaps for every layer pair: [Lx, N, k] x [Ly, N, k] int64 -> [Lx, Ly, N] int32
    (:meth:`Backend.overlaps`).

    triton: one kernel launch for all pairs, on the lists' GPU (or interpreted). Otherwise, on the
    lists' device: for each x-layer the neighbour sets are written into a boolean row mask once and
    every y-layer's lists are looked up in it, so a pair costs N*k lookups instead of N*k^2 comparisons.
    """
    backend = _as_backend(backend, nx.device)
    with _stage("overlaps", backend.device(nx)):
        return backend.overlaps(nx, ny)


def _overlaps_torch(nx: torch.Tensor, ny: torch.Tensor) -> torch.Tensor:
    """:func:`count_overlaps` by boolean row masks, on the lists' device."""
    lx, n, k = nx.shape
    ly = ny.shape[0]
    dev = nx.device
    ny = ny.to(dev)
    out = torch.empty(lx, ly, n, dtype=torch.int32, device=dev)
    rows_per_block = max(1, min(n, MASK_ELEMENTS // max(n, 1)))
    for start in range(0, n, rows_per_block):
        stop = min(start + rows_per_block, n)
        r = torch.arange(stop - start, device=dev)
        for a in range(lx):
            mask = torch.zeros(stop - start, n, dtype=torch.bool, device=dev)
            mask[r[:, None], nx[a, start:stop]] = True
            hits = mask[r[None, :, None], ny[:, start:stop]]  # [Ly, rows, k]
            out[a, :, start:stop] = hits.sum(dim=2, dtype=torch.int32)
    return out


# --------------------------------------------------------------------------- #
# GPU path: certified fp16 screening of residuals, exact decisions in fp64
# --------------------------------------------------------------------------- #
U16, U32, U64 = 2.0**-11, 2.0**-24, 2.0**-53   # unit roundoffs of fp16, fp32, fp64
SCREEN_MARGIN = 32         # candidates the first screening pass keeps beyond k
SCREEN_WIDEN = 4           # each further pass keeps this many times more
SCREEN_MAX_M = 256         # the widest pass; rows still uncertified are searched exhaustively in fp64
ACCUMULATION_SAFETY = 2.0  # tensor cores need not round to nearest in fp32 (Fasi et al., 2021): a margin

def fp16_screen_bound(d: int) -> float:
    """Worst-case |screened - exact| dot product of two unit vectors of dimension d whose entries are
    rounded to fp16, then multiplied and summed with fp32 accumulation.

    Rounding a unit vector a to fp16 moves each entry by at most u16 |a_t| (normal range, u16 = 2^-11)
    or 2^-25 + 2^-38 (subnormal range: half the spacing, plus the fp32 step below), so
    ``|fl(a) - a| <= e = u16 + (2^-25 + 2^-38) sqrt(d)`` and, by Cauchy-Schwarz,
    ``|fl(a).fl(b) - a.b| <= 2e + e^2``. Both preparations round fp64 -> fp32 -> fp16 (torch converts
    so; the kernel does it explicitly). That double rounding differs from rounding once only where the
    fp32 value lands on an fp16 midpoint; midpoints lie at least 2^-11 (relative) above a power of two,
    so in the normal range the error stays within ``u16 |a_t|``, and in the subnormal range it exceeds
    2^-25 by at most the fp32 step there, 2^-14 u32 = 2^-38. Products of fp16 values are exact in fp32;
    summing d of them errs by at most ``gamma_d |fl(a)| |fl(b)|``, ``gamma_d = d u / (1 - d u)``, with
    u = 2^-23 (truncation instead of round-to-nearest) and that term doubled (``ACCUMULATION_SAFETY``).

    >>> round(fp16_screen_bound(1024), 6)
    0.001223
    """
    e = U16 + (2.0**-25 + 2.0**-38) * d**0.5
    u = 2.0 * U32
    gamma = d * u / (1 - d * u)
    return 2 * e + e * e + ACCUMULATION_SAFETY * gamma * (1 + e) ** 2


def fp64_cosine_bound(d: int) -> float:
    """A generous bound on the error of an fp64 cosine (and of fp64 row offsets) in dimension d."""
    return 16.0 * (d + 2) * U64


def _free_bytes(device: torch.device) -> int:
    """Bytes a new allocation can take on ``device`` now: free GPU memory plus what torch's caching
    allocator holds unused; on a CPU, the available system memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    import psutil

    return int(psutil.virtual_memory().available)


# Working memory one chunk of a search may take: a quarter of what is free, and at most this much
# (so that a search at N = 1,000,000 stays well inside 16 GiB beside its inputs).
WORKSPACE_BYTES = 2**32


def rows_per_chunk(device: torch.device, bytes_per_row: int, fraction: float = 0.25, cap: int = 1 << 20) -> int:
    """How many rows of ``bytes_per_row`` working memory fit in ``fraction`` of the device's free memory
    now (and in ``WORKSPACE_BYTES``), at least one and at most ``cap``."""
    budget = min(fraction * _free_bytes(device), WORKSPACE_BYTES)
    return int(max(1, min(cap, budget // max(1, bytes_per_row))))


def inv_norms(x: torch.Tensor, backend: str | Backend) -> torch.Tensor:
    """fp64 ``1 / |x_i|`` of every row of x [..., N, D] (0 for a zero row, which stays zero), computed
    as the GPU path of ``backend`` computes them (:meth:`Backend.inv_norms`), so re-ranked cosines are
    the same values everywhere (identical rows get identical values: each row's sum runs in the same
    order). Rows of fp32 inputs never under- or overflow in these fp64 sums; fp64 inputs come through
    :func:`safe_rows`."""
    return _as_backend(backend, x.device).inv_norms(x)


def _inv_norms_fused(x: torch.Tensor) -> torch.Tensor:
    """:func:`inv_norms` by the residual kernel's first pass (triton)."""
    from .triton_kernels import residuals

    x3 = x if x.ndim == 3 else x[None]
    sq = residuals(x3)[0]
    return _inverse(sq.sqrt_()).view(x.shape[:-1])


class _Screenable:
    """One space, every layer, ready to screen. For unit rows ``u_i = m + r_i`` the cosine is
    ``|m|^2 + m.r_i + m.r_j + r_i.r_j`` for *any* vector m; with m the database's mean unit row the
    residuals r are small, and only ``r_i.r_j`` is screened, from fp16 unit residuals ``r16`` [L, N, D]
    scaled by ``w = |r|`` [L, N]. ``b = m.r`` [L, N], ``inv_norm`` [L, N] and ``mean`` [L, D] are fp64;
    ``offset = |m|^2 + m.r_i`` is a query row's constant. Made by a backend's ``prepare``
    (:func:`_prepare_torch`, :func:`_prepare_fused`).
    """

    def __init__(self, inv_norm: torch.Tensor, mean: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                 r16: torch.Tensor):
        self.inv_norm, self.mean, self.w, self.b, self.r16 = inv_norm, mean, w, b, r16
        self.offset = (self.mean * self.mean).sum(dim=1)[:, None] + self.b  # |m|^2 + m.r_i: a query row's constant

    def rows(self, layer: int, rows: torch.Tensor) -> "_Screenable":
        """The given rows of one layer, as a one-layer space (for a wider second screening pass)."""
        sub = object.__new__(_Screenable)
        sub.mean = self.mean[layer : layer + 1]
        for name in ("inv_norm", "w", "b", "offset", "r16"):
            setattr(sub, name, getattr(self, name)[layer : layer + 1, rows])
        return sub

    def layer(self, layer: int) -> "_Screenable":
        return self.rows(layer, slice(None))


def _prepare_fused(x: torch.Tensor, mean: torch.Tensor | None = None) -> _Screenable:
    """triton's preparation of x [L, N, D]: three passes of one kernel
    (:func:`vtalign.triton_kernels.residuals`) that read the input in place and keep every fp64 value in
    registers; the mean comes from one fp32 batched product (any m is exact, see :class:`_Screenable`)."""
    from .triton_kernels import residuals

    inv_norm = _inv_norms_fused(x)
    if mean is None:
        mean = torch.bmm(inv_norm.to(x.dtype)[:, None, :], x)[:, 0].double() / x.shape[1]
        # a row near fp32's smallest values has 1 / |x| beyond fp32: any finite m keeps the answer exact
        mean = torch.where(torch.isfinite(mean), mean, 0.0)
    rr, b = residuals(x, inv_norm, mean)
    w = rr.sqrt()
    r16 = residuals(x, inv_norm, mean, w)
    return _Screenable(inv_norm, mean, w, b, r16)


def _prepare_torch(x: torch.Tensor, mean: torch.Tensor | None = None) -> _Screenable:
    """torch's preparation of x [L, N, D]: fp64 copies of the rows, in chunks sized from the free memory;
    ``mean`` (default: the mean unit row of x) is the point the residuals are taken from."""
    n_layers, n, d = x.shape
    dev = x.device
    inv_norm = torch.empty(n_layers, n, dtype=torch.float64, device=dev)

    def unit(start: int, stop: int) -> torch.Tensor:
        x64 = x[:, start:stop].to(torch.float64, copy=True)  # a copy: the input is never written to
        norm = x64.norm(dim=2)
        inv_norm[:, start:stop] = _inverse(norm)
        return x64.div_(torch.where(norm > 0, norm, 1.0)[:, :, None])  # a zero row stays zero

    chunk = rows_per_chunk(dev, 3 * 8 * d * n_layers)  # fp64 unit rows and two temporaries
    units = None
    if mean is None:  # the database: its mean unit row
        mean = torch.zeros(n_layers, d, dtype=torch.float64, device=dev)
        for s in range(0, n, chunk):
            units = unit(s, s + chunk)
            mean += units.sum(dim=1)
        mean /= n
    r16 = torch.empty(n_layers, n, d, dtype=torch.float16, device=dev)
    w_all = torch.empty(n_layers, n, dtype=torch.float64, device=dev)
    b = torch.empty(n_layers, n, dtype=torch.float64, device=dev)
    for s in range(0, n, chunk):
        # one chunk holds every row: reuse the unit rows of the first pass
        r = (units if chunk >= n and units is not None else unit(s, s + chunk)).sub_(mean[:, None, :])
        w = r.norm(dim=2)
        w_all[:, s : s + chunk] = w
        b[:, s : s + chunk] = torch.bmm(r, mean[:, :, None])[..., 0]
        # fp64 -> fp16 goes through fp32 (torch converts so); fp16_screen_bound covers the double rounding
        r16[:, s : s + chunk] = r.div_(torch.where(w > 0, w, 1.0)[:, :, None])
    return _Screenable(inv_norm, mean, w_all, b, r16)


def _screen_fused(q: _Screenable, x: _Screenable, query_ids: torch.Tensor, m: int):
    """:func:`_screen_torch` by the Triton kernel (:func:`vtalign.triton_kernels.screen_topk`)."""
    from .triton_kernels import screen_topk

    return screen_topk(q.r16, x.r16, q.w.float(), x.w.float(), x.b.float(), query_ids, m)


def _screen_torch(q: _Screenable, x: _Screenable, query_ids: torch.Tensor, m: int):
    """Top-m screened scores ``m.r_j + |r_i| |r_j| <r16_i, r16_j>`` per query row, [L, Nq, m] (fp32,
    descending) and their item indices (int64); item ``query_ids[i]`` never pairs with row i."""
    n_layers, n_q, _ = q.r16.shape
    dev = x.r16.device
    vals = torch.empty(n_layers, n_q, m, dtype=torch.float32, device=dev)
    idx = torch.empty(n_layers, n_q, m, dtype=torch.int64, device=dev)
    xw, xb, qw = x.w.float(), x.b.float(), q.w.float()
    chunk = rows_per_chunk(dev, 16 * x.r16.shape[1], cap=16384)
    own = query_ids.long()
    for layer in range(n_layers):
        for s in range(0, n_q, chunk):
            sim = (q.r16[layer, s : s + chunk] @ x.r16[layer].T).float()  # fp16 tensor cores, fp32 accumulation
            sim.mul_(qw[layer, s : s + chunk, None] * xw[layer][None, :]).add_(xb[layer][None, :])
            _exclude_items(sim, own[s : s + chunk])
            vals[layer, s : s + chunk], idx[layer, s : s + chunk] = torch.topk(sim, m, dim=1)
    return vals, idx


def _rerank_torch(q: torch.Tensor, x: torch.Tensor, q_inv: torch.Tensor, x_inv: torch.Tensor,
                  cand: torch.Tensor) -> torch.Tensor:
    """fp64 cosines ``(q_i . x_j) / (|q_i| |x_j|)`` of every candidate j >= 0 of each row: [L, Nq, m]
    (-inf where ``cand`` is -1). q [L, Nq, D], x [L, N, D]: the input rows."""
    out = torch.full(cand.shape, -torch.inf, dtype=torch.float64, device=cand.device)
    where = (cand >= 0).nonzero()
    chunk = rows_per_chunk(cand.device, 24 * q.shape[2], cap=1 << 16)
    for s in range(0, where.shape[0], chunk):
        layer, i, c = where[s : s + chunk].unbind(1)
        j = cand[layer, i, c]
        dots = (q[layer, i].double() * x[layer, j].double()).sum(dim=1)
        out[layer, i, c] = dots * q_inv[layer, i] * x_inv[layer, j]
    return out


def _lexsort(value: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Per row, the permutation that sorts by value (descending), then index (ascending)."""
    order = torch.sort(idx, dim=-1, stable=True).indices
    return torch.gather(order, -1, torch.sort(torch.gather(value, -1, order), dim=-1, descending=True,
                                              stable=True).indices)


@dataclass
class _Search:
    """One screened search (:func:`screened_search`): what its passes share.

    backend : the screening backend; x [L, N, D] the items; q [L, Nq, D] the query rows (x itself for a
    self-search); xs, qs their prepared spaces (:class:`_Screenable`; qs is xs for a self-search);
    err [L, Nq] each row's screen error bound; own [Nq] int64 the item each row never pairs with
    (-1: none), ids the same as int32 (for the kernels); n_cand the items a row may pair with;
    report the search's screen report (see :class:`SearchProfile`), shared by its parts.
    """
    backend: Backend
    x: torch.Tensor
    q: torch.Tensor
    xs: _Screenable
    qs: _Screenable
    err: torch.Tensor
    own: torch.Tensor
    ids: torch.Tensor
    k: int
    ordered: bool
    n_cand: int
    report: dict

    @property
    def d(self) -> int:
        return self.x.shape[2]

    def part(self, layer: int, rows: torch.Tensor) -> "_Search":
        """The given query rows of one layer, as a one-layer search against all of that layer's items."""
        return replace(self, x=self.x[layer : layer + 1], q=self.q[layer : layer + 1, rows], xs=self.xs.layer(layer),
                       qs=self.qs.rows(layer, rows), err=self.err[layer : layer + 1, rows], own=self.own[rows],
                       ids=self.ids[rows])

    def screen(self, m: int):
        """Every query row's top-m screened candidates: ``(values [L, Nq, m] fp32, items [L, Nq, m] int64)``."""
        return self.backend.screen(self.qs, self.xs, self.ids, m)


def _decide(s: _Search, vals, idx, all_candidates: bool):
    """Exact top-k from the screened candidates where the screen allows it: ``(top [L, R, k], certified [L, R])``.

    ``vals`` [L, R, m] are screened values (descending): cosines minus the row's ``offset`` [L, R], each
    within ``err`` [L, R] (plus fp64 slack ``e64``). *Contenders* are the first k ranks and every candidate within
    ``2 err + 2 e64`` below the k-th screened value: every other candidate is below all of the first k
    ranks for sure, so the top k lies among the contenders, and their fp64 cosines decide (ties ->
    lower index; where two fp64 values are too close to decide, exact arithmetic does,
    :func:`settle_near_ties`). Items that were not screened in lie below the m-th candidate: the row is certified
    when that candidate is no contender, or when the k-th exact value exceeds its screened value by
    more than ``err + e64``. ``all_candidates``: every item a row may pair with was screened in.

    Without ``ordered`` (sets, as overlaps need), a candidate among the first k ranks whose screened
    value exceeds the (k+1)-th by more than the window is *in* for sure: it beats every item from rank
    k + 1 on, screened in or not. Only the other contenders get fp64 values, and they fill the places
    the sure ones leave. A row whose k-th and (k+1)-th values are that far apart needs none.
    """
    k, err = s.k, s.err
    e64 = fp64_cosine_bound(s.d)
    sv = vals.double()
    m = sv.shape[-1]
    ranks = torch.arange(m, device=sv.device)
    gap = 2 * err + 2 * e64
    contender = (ranks < k) | (sv >= sv[..., k - 1 : k] - gap[..., None])
    sure_in = (ranks < k) & (sv > sv[..., k : k + 1] + gap[..., None]) if m > k else (ranks < k).expand_as(sv)
    needed = contender & (torch.as_tensor(s.ordered, device=sv.device) | ~sure_in)
    exact = torch.full_like(sv, -torch.inf)
    n_needed = int(needed.sum())
    if n_needed:
        exact = s.backend.rerank(s.q, s.x, s.qs.inv_norm, s.xs.inv_norm, torch.where(needed, idx, -1))
    s.report["reranked_pairs"] += n_needed
    # sure members first (in screened order), then the other contenders by exact value, then the rest;
    # without ordered a contender that needs no fp64 value is a sure member
    key = torch.where(needed, exact, torch.where(contender, sv + 10.0, sv - 10.0))  # |cosine| <= 1, |s| <= 3
    order = _lexsort(key, idx)
    # fp64 values closer than their error (2 e64 apart) between different vectors: decided exactly
    top = settle_near_ties(torch.gather(key, -1, order), torch.gather(idx, -1, order), s.x, s.q, k, s.ordered,
                           2 * e64)
    # A non-contender is below all of the first k ranks for sure, so the top k lies among the contenders;
    # the items not screened in (below the m-th candidate) are then excluded unless the m-th candidate
    # itself is a contender, when the k-th exact value must clear it by the bound.
    kth_exact = torch.gather(key, -1, order[..., k - 1 : k])[..., 0]
    certified = ~contender[..., m - 1] | (kth_exact > sv[..., m - 1] + s.qs.offset + err + e64)
    if all_candidates:  # every item was screened in: the contenders' fp64 order is the whole answer
        certified = torch.ones_like(certified)
    return top, certified


def screened_search(x: torch.Tensor, q: torch.Tensor | None, k: int, backend: str | Backend, ordered: bool = True,
                    margin: int = SCREEN_MARGIN, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Exact kNN of every layer at once by certified screening: x [L, N, D], q [L, Nq, D] or None
    (self-search); row i of q never matches item ``exclude[i]`` (default i; -1: none).
    Returns int64 [L, Nq, k] on x's device. ``backend``: triton's kernels, or torch's screening for any
    other backend (on any device); its report goes to the active :func:`profile`.

    1. Every row is normalised in fp64 and split as ``u_i = m + r_i`` (m: the mean unit row of x), so
       ``u_i . u_j = |m|^2 + m.r_i + m.r_j + r_i.r_j``. Only ``r_i . r_j`` is screened, in fp16 on unit
       residuals scaled by ``|r_i| |r_j|``, so the error bound shrinks with the spread of the data:
       anisotropic features, whose cosines all sit near 1, defeat plain fp16 screening.
    2. The top k + ``margin`` screened candidates of each row are decided by :func:`_decide`.
    3. Rows that are not certified are screened again with ``SCREEN_WIDEN`` times more candidates,
       up to ``SCREEN_MAX_M``; only rows still uncertified are searched exhaustively in fp64, in
       chunks sized from the free memory.
    """
    backend = _as_backend(backend, x.device)
    if not backend.screened:
        backend = TorchGPUBackend()
    n_layers, n, d = x.shape
    q_rows = x if q is None else q
    n_q = q_rows.shape[1]
    report = _screen_report()  # this search's report (_decide adds its re-ranked pairs as it goes)
    with _stage("prepare", x.device):
        xs = backend.prepare(x)
        qs = xs if q is None else backend.prepare(q, xs.mean)
        scale = qs.w * xs.w.amax(dim=1, keepdim=True)                      # |r_i| max_j |r_j|
        err = scale * fp16_screen_bound(d) + 8 * U32 * (xs.b.abs().amax(dim=1, keepdim=True) + 2 * scale)
        own = _exclusions(exclude, n_q, x.device)
        ids = own.to(torch.int32)
        # every item a row may pair with: n - 1 when each row excludes one of the n items, else n (a row
        # that excludes one then sees it last, at -inf)
        n_cand = n - 1 if bool(((own >= 0) & (own < n)).all()) else n
    s = _Search(backend, x, q_rows, xs, qs, err, own, ids, k, ordered, n_cand, report)
    m = min(k + margin, n_cand)
    with _stage("screen", x.device):
        vals, idx = s.screen(m)
    with _stage("decide", x.device):
        out, certified = _decide(s, vals, idx, m == n_cand)
        first = int(certified.sum())  # the one host synchronisation of a batch that needs nothing more
    report.update(rows=certified.numel(), certified_first_pass=first, certified_widened=0, fallback_rows=0,
                  first_pass_m=m)
    if first == certified.numel():
        return out
    for layer in torch.unique(torch.nonzero(~certified)[:, 0]).tolist():
        rows = torch.nonzero(~certified[layer])[:, 0]
        with _stage("widen", x.device):
            rows = _widen(s, layer, rows, out, m)
        if rows.numel():
            with _stage("fallback", x.device):
                _fallback(s, layer, rows, out)
    return out


def _widen(s: _Search, layer: int, rows: torch.Tensor, out: torch.Tensor, m: int) -> torch.Tensor:
    """Screen the given uncertified rows of one layer again, each pass ``SCREEN_WIDEN`` times wider than
    the last (the first pass kept m); write the rows it certifies into ``out`` and return the rows still
    uncertified."""
    wide = m
    while rows.numel() and wide < min(SCREEN_MAX_M, s.n_cand):
        wide = min(SCREEN_WIDEN * wide, SCREEN_MAX_M, s.n_cand)
        part = s.part(layer, rows)
        v, i = part.screen(wide)
        top, ok = _decide(part, v, i, wide == s.n_cand)
        out[layer, rows[ok[0]]] = top[0, ok[0]]
        s.report["certified_widened"] += int(ok.sum())
        rows = rows[~ok[0]]
    return rows


def _fallback(s: _Search, layer: int, rows: torch.Tensor, out: torch.Tensor) -> None:
    """The last resort for rows no screen certified: every item, in fp64; written into ``out``."""
    s.report["fallback_rows"] += rows.numel()
    top = _exact_rows(s.x[layer], s.q[layer], rows, s.k, s.own)
    if s.ordered:
        exact = s.backend.rerank(s.q[layer : layer + 1, rows], s.x[layer : layer + 1],
                                 s.qs.inv_norm[layer : layer + 1, rows], s.xs.inv_norm[layer : layer + 1], top[None])
        order = _lexsort(exact[0], top)
        top = settle_near_ties(torch.gather(exact[0], -1, order)[None], torch.gather(top, -1, order)[None],
                               s.x[layer : layer + 1], s.q[layer : layer + 1, rows], s.k, True,
                               2 * fp64_cosine_bound(s.d))[0]
    out[layer, rows] = top


# --------------------------------------------------------------------------- #
# Backends: one object each. A new backend is one class here and its entry in _BACKEND_TYPES.
# --------------------------------------------------------------------------- #
class Backend:
    """What a search needs from a backend, chosen once by :func:`resolve_backend` and passed down.

    ``name`` is what callers ask for (``"torch"``, ``"faiss"``, ``"triton"``); ``screened`` says which
    path a search takes: the CPU path (:meth:`candidate_dtype`, :meth:`candidates`) or the GPU path of
    certified fp16 screening (:meth:`prepare`, :meth:`screen`, :meth:`rerank`). Every backend gives
    :meth:`device`, :meth:`inv_norms`, :meth:`cosines` and :meth:`overlaps`. Backends hold no state:
    two objects of one class are equal, and they pickle (Ray tasks take them).

    >>> resolve_backend("torch"), resolve_backend("torch", device="cuda")
    (TorchBackend(), TorchGPUBackend())
    >>> resolve_backend("auto", n=100).name
    'torch'
    """
    __slots__ = ()
    name: ClassVar[str] = ""
    screened: ClassVar[bool] = False

    @classmethod
    def available(cls) -> bool:
        """Usable in this environment."""
        return True

    @classmethod
    def runs_on(cls, device: torch.device) -> bool:
        """Serves tensors on ``device`` (torch takes one class per kind of device)."""
        return True

    def on(self, device: torch.device | str | None) -> "Backend":
        """This backend for tensors on ``device``: itself, or its namesake for that kind of device."""
        if device is None or self.runs_on(torch.device(device)):
            return self
        return _backend_named(self.name, torch.device(device))

    def device(self, t: torch.Tensor) -> torch.device:
        """Where the search of tensor t runs."""
        return t.device

    def inv_norms(self, x: torch.Tensor) -> torch.Tensor:
        """fp64 ``1 / |x_i|`` of every row of x [..., N, D], 0 for a zero row (see :func:`inv_norms`)."""
        return _inverse(x.double().norm(dim=-1))

    def candidate_dtype(self, device: torch.device, d: int) -> torch.dtype:
        """Precision the CPU path proposes candidates in (see :func:`candidate_dtype`)."""
        return torch.float32

    def cosines(self, x: torch.Tensor, q: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """fp64 cosines [Nq, m] of rows of q [Nq, D] with their items ``idx`` [Nq, m] of x [N, D], the
        values this backend's search orders neighbours by (see :func:`exact_cosines`)."""
        raise NotImplementedError

    def overlaps(self, nx: torch.Tensor, ny: torch.Tensor) -> torch.Tensor:
        """Per-item overlaps of every layer pair, [Lx, Ly, N] int32 (see :func:`count_overlaps`)."""
        return _overlaps_torch(nx, ny)

    def __eq__(self, other) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self).__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _CPUPath(Backend):
    """The CPU path: the backend proposes each row's k + 1 candidates, fp64 and exact arithmetic decide."""
    __slots__ = ()

    def candidates(self, xn: torch.Tensor, qn: torch.Tensor, m: int, exclude: torch.Tensor):
        """Each row of qn's top m among the rows of xn (unit rows of one dtype), item ``exclude[i]`` of row i
        last: ``(similarities [Nq, m], indices [Nq, m] int64)``, descending."""
        raise NotImplementedError

    def cosines(self, x, q, idx):
        return _canonical_cosines(_unit64(x), _unit64(q), idx)


class _ScreenedPath(Backend):
    """The GPU path: certified fp16 screening (:func:`screened_search`), here with torch's operations."""
    __slots__ = ()
    screened: ClassVar[bool] = True

    def prepare(self, x: torch.Tensor, mean: torch.Tensor | None = None) -> _Screenable:
        """x [L, N, D] as a :class:`_Screenable` (residuals from ``mean``, default x's mean unit row)."""
        return _prepare_torch(x, mean)

    def screen(self, q: _Screenable, x: _Screenable, query_ids: torch.Tensor, m: int):
        """Top-m screened candidates of every query row (see :func:`_screen_torch`)."""
        return _screen_torch(q, x, query_ids, m)

    def rerank(self, q: torch.Tensor, x: torch.Tensor, q_inv: torch.Tensor, x_inv: torch.Tensor,
               cand: torch.Tensor) -> torch.Tensor:
        """fp64 cosines of the candidates ``cand`` [L, Nq, m] (-1: none, -inf) (see :func:`_rerank_torch`)."""
        return _rerank_torch(q, x, q_inv, x_inv, cand)

    def cosines(self, x, q, idx):
        dev = self.device(x)
        xd, qd = x.to(dev), q.to(dev)
        return self.rerank(qd[None], xd[None], self.inv_norms(qd)[None], self.inv_norms(xd)[None],
                           idx.to(dev)[None])[0].to(x.device)


class TorchBackend(_CPUPath):
    """torch on a CPU (any device but CUDA): matmul + top-k candidates, in fp32, or in fp64 from
    d = ``FP64_CANDIDATES_MIN_D`` on."""
    __slots__ = ()
    name: ClassVar[str] = "torch"

    @classmethod
    def runs_on(cls, device):
        return device.type != "cuda"

    def candidate_dtype(self, device, d):
        return torch.float64 if device.type == "cpu" and d >= FP64_CANDIDATES_MIN_D else torch.float32

    def candidates(self, xn, qn, m, exclude):
        return _candidates_torch(xn, qn, m, exclude)


class FaissBackend(_CPUPath):
    """faiss-cpu's exact inner-product search proposes the candidates (fp32), for tensors on any device."""
    __slots__ = ()
    name: ClassVar[str] = "faiss"

    @classmethod
    def available(cls):
        return importlib.util.find_spec("faiss") is not None

    def candidates(self, xn, qn, m, exclude):
        return _candidates_faiss(xn, qn, m, exclude)


class TorchGPUBackend(_ScreenedPath):
    """torch on a CUDA device: the GPU path with torch's fp16 matmul screen and fp64 re-ranking."""
    __slots__ = ()
    name: ClassVar[str] = "torch"

    @classmethod
    def runs_on(cls, device):
        return device.type == "cuda"


class TritonBackend(_ScreenedPath):
    """The GPU path in Triton kernels (:mod:`vtalign.triton_kernels`): fused preparation, screening with a
    top-m merge, re-ranking and pair overlaps; on the tensor's GPU, the first GPU, or interpreted on the CPU."""
    __slots__ = ()
    name: ClassVar[str] = "triton"

    @classmethod
    def available(cls):
        return importlib.util.find_spec("triton") is not None and (torch.cuda.is_available() or triton_interpreted())

    def device(self, t):
        return kernel_device(t)

    def inv_norms(self, x):
        return _inv_norms_fused(x)

    def prepare(self, x, mean=None):
        return _prepare_fused(x, mean)

    def screen(self, q, x, query_ids, m):
        return _screen_fused(q, x, query_ids, m)

    def rerank(self, q, x, q_inv, x_inv, cand):
        from .triton_kernels import rerank

        return rerank(q, x, q_inv, x_inv, cand)

    def overlaps(self, nx, ny):
        from .triton_kernels import pair_overlaps

        dev = kernel_device(nx)
        return pair_overlaps(nx.to(dev), ny.to(dev))


# Every backend class; a name may have one class per kind of device (runs_on), the first that serves it wins.
_BACKEND_TYPES = (TorchBackend, FaissBackend, TorchGPUBackend, TritonBackend)
BACKENDS = ("auto", *dict.fromkeys(c.name for c in _BACKEND_TYPES))  # the names callers may pass


def available_backends() -> list[str]:
    """Concrete backends usable in this environment (triton: with a CUDA GPU, or interpreted)."""
    return list(dict.fromkeys(c.name for c in _BACKEND_TYPES if c.available()))


def _backend_named(name: str, device: torch.device) -> Backend:
    for cls in _BACKEND_TYPES:
        if cls.name == name and cls.runs_on(device):
            return cls()
    raise ValueError(f"No {name!r} backend serves tensors on {device}.")


# From N on, ``auto`` uses faiss-cpu for CPU tensors. A first measurement on a 2-core CPU
# (k=10, random features): N=2000, d=256: torch 0.056 s, faiss 0.074 s; N=10000, d=256:
# torch 0.72 s, faiss 0.51 s; N=20000, d=512: torch 4.5 s, faiss 3.6 s.
AUTO_FAISS_MIN_N = 4096


def resolve_backend(backend: str | Backend, n: int | None = None, device: torch.device | str | None = None,
                    d: int | None = None) -> Backend:
    """The :class:`Backend` for a name (checked) and for tensors on ``device`` (default: the CPU); a
    :class:`Backend` is returned as it is (for another kind of device: its namesake there), so a
    choice made once travels down as an object.

    ``auto`` on a CUDA device: triton when it is installed (the fastest exact path measured on an
    H100, see ``bench/records/``), else torch. On a CPU: torch for N < ``AUTO_FAISS_MIN_N`` and for
    d >= ``FP64_CANDIDATES_MIN_D``, faiss (when installed) for the other problems; interpreted
    triton is a test tool and never chosen. All backends return identical neighbours.
    """
    if not isinstance(backend, str):
        return backend.on(device)
    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; choose one of {BACKENDS}.")
    dev = torch.device("cpu") if device is None else torch.device(device)
    if backend == "auto":
        if dev.type == "cuda":
            name = "triton" if "triton" in available_backends() else "torch"
        else:
            big = n is not None and n >= AUTO_FAISS_MIN_N
            low_d = d is None or d < FP64_CANDIDATES_MIN_D  # above it, torch's fp64 path avoids faiss's fallbacks
            name = "faiss" if big and low_d and "faiss" in available_backends() else "torch"
        return _backend_named(name, dev)
    if backend not in available_backends():
        hint = (" (triton needs a CUDA GPU, or TRITON_INTERPRET=1 set before vtalign is imported"
                " to run its kernels slowly on the CPU)" if backend == "triton" else "")
        raise ValueError(f"Backend {backend!r} is not available here{hint}; available: {available_backends()}.")
    return _backend_named(backend, dev)


def _as_backend(backend: str | Backend, device: torch.device) -> Backend:
    """What the entry points take: a :class:`Backend` or a name, for tensors on ``device``."""
    return resolve_backend(backend, device=device)
