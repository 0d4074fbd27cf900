"""Benchmarks: this project's layer sweep and kNN backends against the reference algorithm.

    python -m vtalign.bench [--smoke] [--out FILE] [--skip-reference]

writes one JSON record (machine, device, git commit, every measurement) that the
Performance chapter plots. Three parts, all measured side by side in one run:

1. ``sweep``: a layer-pair sweep at the paper's scale and shape (N = 1024;
   33 layers x 1280 dims vs 43 layers x 3584 dims, random features), this
   project's :func:`vtalign.layer_sweep` per backend against the reference
   algorithm of the Platonic Representation code (for every layer pair:
   similarity matrices of both layers, full argsort, dense N x N masks), with
   a check that the two score matrices are identical.
2. ``knn``: time and peak memory of one exact kNN search per backend as N grows.
3. ``roofline``: achieved GFLOP/s of the similarity part of a kNN search
   against the machine's matmul rate measured in the same run.

On the GPU path every sweep and kNN search is run once more under
:func:`vtalign.knn.profile_stages`, and its seconds per stage (prepare, screen,
decide, widen, fallback, overlaps) are recorded beside the plain timing.

Peak memory of a search: on a CPU, the largest growth of the resident set of a
fresh subprocess while the search runs (sampled every 2 ms, so short spikes can
be missed); on a GPU, ``torch.cuda.max_memory_allocated`` minus the input.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ._version import git

__all__ = ["reference_prepare", "reference_knn", "reference_sweep", "run_benchmark", "bench_matmul", "best_time",
           "profiled_stages", "PAPER_SHAPE", "main"]

# N, (Lx, Dx), (Ly, Dy): VideoMAEv2-H (33 x 1280) vs Gemma-2-9B (43 x 3584), N = 1024, k = 10.
PAPER_SHAPE = dict(n=1024, lx=33, dx=1280, ly=43, dy=3584, k=10)
SMOKE_SHAPE = dict(n=128, lx=3, dx=32, ly=4, dy=48, k=5)


def reference_prepare(f, q: float = 0.95, layer_dims=None, precise: bool = True) -> torch.Tensor:
    """The reference code's preparation, written here: clamp at a threshold t, then divide each layer's rows
    by their fp32 L2 norm (floor 1e-12, as ``F.normalize``). ``q = 1``: no clamp.

    ``precise=True`` (its ``--precise`` mode): ``t = sorted(|x|)[floor(q * size)]`` over every item and layer.
    ``precise=False`` (its default): each item's q-quantile of ``|x|`` over its layers and dimensions,
    interpolated linearly between order statistics (position ``q (m - 1)`` of the m sorted values), and ``t``
    the mean of those over items. Either way each layer on its own, over its real entries, when
    ``layer_dims`` gives layers of different widths (the reference cannot stack those).

    f [N, L, D] (zero-padded past ``layer_dims``) -> float32 tensor [N, L, D], padding left zero.

    >>> reference_prepare(torch.tensor([[[3.0, 4.0]], [[0.5, 0.0]]]), q=0.5)  # sorted |x|: 0, .5, 3, 4 -> t = 3
    tensor([[[0.7071, 0.7071]],
    <BLANKLINE>
            [[1.0000, 0.0000]]])
    >>> reference_prepare(torch.tensor([[[3.0, 4.0]], [[0.5, 0.0]]]), q=0.5, precise=False)  # t = (3.5 + .25) / 2
    tensor([[[0.7071, 0.7071]],
    <BLANKLINE>
            [[1.0000, 0.0000]]])
    """
    f = torch.as_tensor(f, dtype=torch.float32)
    dims = list(layer_dims) if layer_dims is not None else [f.shape[2]] * f.shape[1]
    groups = [list(range(f.shape[1]))] if len(set(dims)) == 1 else [[layer] for layer in range(f.shape[1])]
    out = torch.zeros_like(f)
    for group in groups:
        block = f[:, group, : dims[group[0]]]
        if q >= 1:
            t = block.abs().max()
        elif precise:  # the element at position floor(q * size) of the sorted |values| (kthvalue counts from 1)
            t = block.abs().flatten().kthvalue(int(q * block.numel()) + 1).values
        else:
            ordered = block.abs().flatten(start_dim=1).sort(dim=1).values  # [N, m] per item
            position = torch.tensor(q, dtype=torch.float32) * (ordered.shape[1] - 1)  # in fp32, as the input
            low = int(position)
            high = min(low + 1, ordered.shape[1] - 1)
            t = torch.lerp(ordered[:, low], ordered[:, high], position - low).mean()
        out[:, group, : dims[group[0]]] = torch.nn.functional.normalize(block.clamp(-t, t), dim=-1)
    return out


def reference_knn(f: torch.Tensor, k: int) -> torch.Tensor:
    """The reference code's kNN of one layer f [N, D] (L2-normalised fp32) -> [N, k]: the fp32 similarity
    matrix, its diagonal set to -1e8, a full descending argsort per row (order of equal values
    unspecified), the first k columns."""
    return (f @ f.T).fill_diagonal_(-1e8).argsort(dim=1, descending=True)[:, :k]


def reference_sweep(fx: torch.Tensor, fy: torch.Tensor, k: int) -> np.ndarray:
    """The reference algorithm, as in the Platonic Representation code: for every layer pair,
    recompute both layers' kNN (:func:`reference_knn`) and compare dense N x N indicator masks.
    fx [N, Lx, D], fy [N, Ly, D'], L2-normalised fp32."""
    n, lx, ly = fx.shape[0], fx.shape[1], fy.shape[1]
    scores = np.empty((lx, ly))
    rows = torch.arange(n, device=fx.device)[:, None]
    for a in range(lx):
        for b in range(ly):
            masks = []
            for f in (fx[:, a], fy[:, b]):
                knn = reference_knn(f, k)
                m = torch.zeros(n, n, device=fx.device)
                m[rows, knn] = 1.0
                masks.append(m)
            # overlap counts are integers: average them in fp64, as layer_sweep does
            scores[a, b] = float((masks[0] * masks[1]).sum(dim=1).double().mean()) / k
    return scores


def _device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return platform.processor() or platform.machine()


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def best_time(fn, device: str, repeat: int = 1) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls (one warm-up call first on GPU)."""
    if device == "cuda":
        fn()
    best, out = float("inf"), None
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best, out


def profiled_stages(fn, backend: str, device: str) -> dict | None:
    """Seconds per stage of one more call of ``fn`` on the GPU path (:func:`vtalign.knn.profile_stages`):
    where the time goes. None where ``backend`` does not use the GPU path on ``device``."""
    from . import knn

    if not knn.resolve_backend(backend, device=device).screened:
        return None
    with knn.profile_stages() as stages:
        fn()
    return dict(stages)


def _features(n: int, layers: int, dim: int, seed: int, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(n, layers, dim, generator=g)
    return torch.nn.functional.normalize(f, dim=-1).to(device)


def bench_sweep(shape: dict, backends, device: str, reference: bool) -> dict:
    """Part 1: this project's sweep per backend vs the reference algorithm, same features; with the
    rows per sweep whose near ties were decided in exact arithmetic (:func:`vtalign.knn.profile`)."""
    from . import knn
    from .alignment import layer_sweep

    fx = _features(shape["n"], shape["lx"], shape["dx"], 0, device)
    fy = _features(shape["n"], shape["ly"], shape["dy"], 1, device)
    out = dict(shape=shape, pairs=shape["lx"] * shape["ly"], backends={}, repeats=dict(vtalign=2, reference=1))
    results = {}
    for b in backends:
        # best of 2: the first call also pays for first-touch page faults of its large buffers;
        # the reference (1,419 pair iterations in one call) amortises those within its single run
        sweep = lambda: layer_sweep(fx, fy, shape["k"], backend=b)  # noqa: E731
        repeat = 2 if device == "cpu" else 5
        with knn.profile() as counts:
            seconds, res = best_time(sweep, device, repeat=repeat)
        calls = repeat + (device == "cuda")  # best_time warms up once on a GPU
        results[b] = res
        # near ties between different vectors that fp64 could not decide, decided exactly (per sweep)
        out["backends"][b] = dict(seconds=seconds, best=list(res.best), exact_rows=counts.exact_rows // calls,
                                  exact_cosines=counts.exact_cosines // calls)
        stages = profiled_stages(sweep, b, device)
        if stages:
            out["backends"][b]["stages"] = stages
    first = next(iter(results.values()))
    out["backends_identical"] = all(np.array_equal(r.scores, first.scores) for r in results.values())
    if device == "cuda":  # what a user writes by hand: all layers batched, not exact
        out["peers"] = {}
        for name, dtype in (("bmm fp32 + topk", torch.float32), ("bmm fp16 + topk", torch.float16)):
            seconds, scores = best_time(lambda: peer_sweep(fx, fy, shape["k"], dtype), device, repeat=3)
            out["peers"][name] = dict(seconds=seconds, identical_scores=bool(np.array_equal(scores, first.scores)),
                                      max_abs_difference=float(np.abs(scores - first.scores).max()))
    if reference:
        seconds, ref = best_time(lambda: reference_sweep(fx, fy, shape["k"]), device)
        out["reference"] = dict(seconds=seconds, best=float(ref.max()))
        out["identical_to_reference"] = bool(np.array_equal(ref, first.scores))
        out["max_abs_difference"] = float(np.abs(ref - first.scores).max())
        if device == "cuda":  # the fp32 reference is not exact on a GPU (rounding, argsort's ties): check in fp64 too
            ref64 = reference_sweep(fx.double(), fy.double(), shape["k"])
            out["identical_to_fp64_reference"] = bool(np.array_equal(ref64, first.scores))
        for b in out["backends"]:
            out["backends"][b]["speedup_vs_reference"] = seconds / out["backends"][b]["seconds"]
    return out


class _RssSampler:
    """Peak growth of this process's resident memory while the block runs (sampled every 2 ms)."""

    def __enter__(self):
        import threading

        import psutil

        self._proc = psutil.Process()
        self._base = self._peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, self._proc.memory_info().rss)
            self._stop.wait(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._proc.memory_info().rss)
        self.peak_growth = self._peak - self._base
        return False


def _knn_worker(conn, n: int, d: int, k: int, backend: str, device: str) -> None:
    """One kNN search in a fresh process, so its peak memory is its own."""
    from .alignment import knn_indices

    x = _features(n, 1, d, 2, device)[:, 0].contiguous()
    search = lambda: knn_indices(x, k, backend=backend)  # noqa: E731
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        seconds, _ = best_time(search, device)
        peak = torch.cuda.max_memory_allocated() - x.numel() * x.element_size()
    else:
        with _RssSampler() as rss:
            seconds, _ = best_time(search, device)
        peak = rss.peak_growth
    row = dict(n=n, d=d, k=k, backend=backend, seconds=seconds, peak_bytes=int(peak),
               similarity_gflop=2 * n * n * d / 1e9)
    stages = profiled_stages(search, backend, device)
    if stages:
        row["stages"] = stages
    conn.send(row)
    conn.close()


def bench_knn(sizes, d: int, k: int, backends, device: str) -> list[dict]:
    """Part 2: one search per (N, backend), each in its own process."""
    ctx = mp.get_context("spawn")
    rows = []
    for n in sizes:
        for b in backends:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_knn_worker, args=(child, n, d, k, b, device))
            p.start()
            row = parent.recv() if parent.poll(3600) else None
            p.join()
            if row is None or p.exitcode != 0:
                row = dict(n=n, d=d, k=k, backend=b, error=f"worker exited with code {p.exitcode}")
            else:
                row["gflops"] = row["similarity_gflop"] / row["seconds"]
            rows.append(row)
            print(f"  knn N={n} {b}: {row.get('seconds', float('nan')):.3f} s", flush=True)
    return rows


def bench_matmul(n: int, d: int, device: str) -> dict:
    """Part 3's yardstick: the machine's fp32 matmul rate on an [n, d] x [d, n] product."""
    a = torch.randn(n, d, device=device)
    seconds, _ = best_time(lambda: a @ a.T, device, repeat=3)
    return dict(n=n, d=d, seconds=seconds, gflops=2 * n * n * d / seconds / 1e9)


# --------------------------------------------------------------------------- #
# Peers: what a user would otherwise run (not exact), timed beside vtalign in the same run
# --------------------------------------------------------------------------- #
def peer_knn(x: torch.Tensor, k: int, dtype: torch.dtype, row_block: int = 8192) -> torch.Tensor:
    """Brute-force kNN as a flat inner-product index does it: normalise, matmul in ``dtype`` (fp32
    IEEE, or fp16/bf16 on tensor cores) over row blocks, ``torch.topk``; self excluded. Not exact:
    rounding and ``topk``'s unspecified tie order decide close calls."""
    xn = torch.nn.functional.normalize(x.float(), dim=1).to(dtype)
    out = torch.empty(x.shape[0], k, dtype=torch.int64, device=x.device)
    for s in range(0, x.shape[0], row_block):
        sim = xn[s : s + row_block] @ xn.T
        rows = torch.arange(sim.shape[0], device=x.device)
        sim[rows, rows + s] = -torch.inf
        out[s : s + row_block] = torch.topk(sim, k, dim=1).indices
    return out


def peer_faiss_gpu(x: torch.Tensor, k: int):
    """faiss-gpu's exact flat inner-product index (fp32), when faiss was built with GPU support."""
    import faiss

    if not hasattr(faiss, "StandardGpuResources"):
        return None
    res = faiss.StandardGpuResources()
    xn = torch.nn.functional.normalize(x.float(), dim=1).cpu().numpy()
    index = faiss.GpuIndexFlatIP(res, xn.shape[1])
    index.add(xn)
    _, ids = index.search(xn, k + 1)
    ids = torch.from_numpy(ids)
    is_self = ids == torch.arange(len(ids))[:, None]
    keep = torch.sort(is_self.to(torch.int8), dim=1, stable=True).indices[:, :k]
    return torch.gather(ids, 1, keep)


def rows_differing(got: torch.Tensor, exact: torch.Tensor) -> dict:
    """Share of rows whose neighbour list differs from the exact one: as a set, and in order."""
    got, exact = got.cpu(), exact.cpu()
    same_order = (got == exact).all(dim=1)
    same_set = (torch.sort(got, dim=1).values == torch.sort(exact, dim=1).values).all(dim=1)
    return dict(rows_with_other_set=float(1 - same_set.double().mean()),
                rows_with_other_order=float(1 - same_order.double().mean()))


def bench_peers(n: int, d: int, k: int, device: str, repeat: int = 3) -> list[dict]:
    """Part 4 (GPU): fp32 / TF32 / fp16 / bf16 matmul + topk and faiss-gpu against vtalign's exact
    answer on the same features: seconds, peak memory, and rows that differ from the exact answer."""
    from .alignment import knn_indices

    x = _features(n, 1, d, 2, device)[:, 0].contiguous()
    exact = torch.from_numpy(knn_indices(x, k))
    # vtalign's answer against an fp64 brute force (tie rule: lower index) on every 64th row
    from .knn import topk_lowest_index

    sample = torch.arange(0, n, 64, device=x.device)
    x64 = torch.nn.functional.normalize(x.double(), dim=1)
    sim = x64[sample] @ x64.T
    sim[torch.arange(len(sample), device=x.device), sample] = -torch.inf
    brute = topk_lowest_index(sim, k).cpu()
    del x64, sim
    rows = [dict(peer="check: vtalign (auto) vs fp64 brute force", n=n, d=d, k=k, sampled_rows=len(sample),
                 identical=bool(torch.equal(brute, exact[sample.cpu()])))]
    peers = [("fp32 (IEEE) matmul + topk", lambda: peer_knn(x, k, torch.float32)),
             ("fp16 matmul + topk", lambda: peer_knn(x, k, torch.float16)),
             ("bf16 matmul + topk", lambda: peer_knn(x, k, torch.bfloat16))]
    if device == "cuda":
        def tf32():
            old = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = True
            try:
                return peer_knn(x, k, torch.float32)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = old
        peers.insert(1, ("TF32 matmul + topk", tf32))
        if importlib.util.find_spec("faiss") is not None:
            peers.append(("faiss-gpu flat IP", lambda: peer_faiss_gpu(x, k)))
    for name, fn in peers:
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        seconds, got = best_time(fn, device, repeat=repeat)
        if got is None:
            rows.append(dict(peer=name, n=n, d=d, k=k, error="not available here"))
            continue
        peak = torch.cuda.max_memory_allocated() - x.numel() * 4 if device == "cuda" else None
        rows.append(dict(peer=name, n=n, d=d, k=k, seconds=seconds, peak_bytes=peak, **rows_differing(got, exact)))
        print(f"  peer {name} N={n}: {seconds:.4f} s, {rows[-1]['rows_with_other_order']:.2%} rows differ", flush=True)
    return rows


def peer_sweep(fx: torch.Tensor, fy: torch.Tensor, k: int, dtype: torch.dtype) -> np.ndarray:
    """All layers batched: ``bmm`` similarities in ``dtype``, ``topk``, overlaps by sorted-set
    comparison; the sweep a user writes by hand. Not exact (rounding and ties)."""
    def neighbours(f):
        t = torch.nn.functional.normalize(f.float(), dim=-1).transpose(0, 1).to(dtype)  # [L, N, D]
        sim = torch.bmm(t, t.transpose(1, 2))
        sim.diagonal(dim1=1, dim2=2).fill_(-torch.inf)
        return torch.topk(sim, k, dim=2).indices
    nx, ny = neighbours(fx), neighbours(fy)
    hits = (nx[:, None, :, :, None] == ny[None, :, :, None, :]).any(-1).sum(-1)  # [Lx, Ly, N]
    return (hits.double().mean(-1) / k).cpu().numpy()


def screen_certification(n: int, d: int, k: int, device: str, mean_cosines=(0.0, 0.5, 0.99, 0.9999, 0.999999),
                         backend: str = "triton") -> list[dict]:
    """Part 5: how many rows the fp16 screen certifies at once, after widening, and by fallback, on
    features whose items share a common direction (mean cosine c between different items), as real
    encoder layers do. Each row of the result also says whether the answer equals the torch backend's."""
    from . import knn
    from .alignment import knn_indices

    rows = []
    g = torch.Generator().manual_seed(5)
    common = torch.nn.functional.normalize(torch.randn(d, generator=g), dim=0)
    for c in mean_cosines:
        spread = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
        x = ((c**0.5) * common + ((1 - c) ** 0.5) * spread).to(device)
        with knn.profile() as searches:
            seconds, got = best_time(lambda: knn_indices(x, k, backend=backend), device, repeat=1)
        report = dict(searches.screens[-1])  # the timed search's (on a GPU, best_time warms up first)
        rows.append(dict(mean_cosine=c, n=n, d=d, k=k, backend=backend, seconds=seconds, **report))
        print(f"  screen c={c}: {report}", flush=True)
    return rows


def source_digest() -> str:
    """blake2b of every ``.py`` file of the installed vtalign package (paths and contents, sorted): names
    the code measured even where git metadata is missing or stale (a copied tree on a GPU machine)."""
    import hashlib

    root = Path(__file__).resolve().parent
    h = hashlib.blake2b(digest_size=16)
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def run_benchmark(smoke: bool = False, device: str | None = None, reference: bool = True,
                  knn_sizes=None, knn_dim: int | None = None) -> dict:
    """Run all three parts and return the record (see the module docstring)."""
    from .knn import available_backends

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    backends = [b for b in available_backends()
                if not (b == "triton" and device == "cpu")  # interpreted Triton is a test tool, not a contender
                and not (b == "faiss" and device == "cuda")]
    shape = SMOKE_SHAPE if smoke else PAPER_SHAPE
    if knn_sizes is None:
        knn_sizes = [1000] if smoke else ([1000, 3000, 10000, 30000, 100000] if device == "cpu"
                                               else [1000, 10000, 65536, 262144, 1000000])
    knn_dim = knn_dim or (32 if smoke else (128 if device == "cpu" else 1024))
    record = dict(
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        git_commit=git("rev-parse", "HEAD"), source_digest=source_digest(), mode="smoke" if smoke else "full",
        device=device,
        device_name=_device_name(device), cpu_count=os.cpu_count(), platform=platform.platform(),
        torch=torch.__version__, torch_threads=torch.get_num_threads(), backends=backends,
    )
    print("sweep ...", flush=True)
    record["sweep"] = bench_sweep(shape, backends, device, reference)
    print("knn scaling ...", flush=True)
    record["knn"] = bench_knn(knn_sizes, knn_dim, shape["k"], backends, device)
    print("matmul rate ...", flush=True)
    record["matmul"] = bench_matmul(2048 if smoke else 8192, knn_dim, device)
    if device == "cuda" or smoke:
        peer_n = 2048 if smoke else 65536
        print("peers ...", flush=True)
        record["peers"] = bench_peers(peer_n, knn_dim, shape["k"], device)
    if "triton" in backends or smoke and "triton" in available_backends():
        print("screen certification ...", flush=True)
        record["certification"] = (screen_certification(96, 16, shape["k"], device, (0.0, 0.99)) if smoke else
                                   screen_certification(65536, 1024, shape["k"], device))
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vtalign.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code path, measures nothing")
    parser.add_argument("--out", type=Path, help="JSON file to write (default: bench/records/<device>.json)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    parser.add_argument("--skip-reference", action="store_true", help="do not run the (slow) reference sweep")
    args = parser.parse_args(argv)
    record = run_benchmark(args.smoke, args.device, not args.skip_reference)
    from .paths import bench_dir

    slug = "".join(c if c.isalnum() else "-" for c in record["device_name"].lower()).strip("-")
    out = args.out or bench_dir("records") / f"{record['device']}-{slug or 'unknown'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(out)  # atomic: an interrupted run never leaves half a record
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
