"""Benchmark records (``bench/records/*.json``, written by ``python -m vtalign.bench``) as the
Performance chapter's tables: the sweep against the reference, kNN scaling, and each target
checked against the newest full record of its kind of device.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from ..knn import STAGES

__all__ = ["load_records", "sweep_table", "knn_table", "peers_table", "certification_table", "stages_table",
           "kernels_table", "Target", "TARGETS",
           "targets_table", "scaleout_table", "projection_tables"]


def load_records(paths) -> list[dict]:
    """Benchmark records from JSON files, each tagged with its file name as ``source``."""
    records = []
    for p in sorted(Path(p) for p in paths):
        r = json.loads(p.read_text())
        r["source"] = p.name
        records.append(r)
    return records


def _label(r: dict) -> str:
    return f"{r['device_name']} ({r['device']}, {r['mode']})"


def sweep_table(records) -> pd.DataFrame:
    """One row per (record, method): seconds for the whole sweep, speed-up over the reference, and
    whether the scores equal the exact ones (the reference's; on a GPU, the reference run in fp64)."""
    rows = []
    for r in records:
        s = r["sweep"]
        shape = s["shape"]
        common = dict(machine=_label(r), n=shape["n"], pairs=s["pairs"],
                      layers=f"{shape['lx']}x{shape['dx']} vs {shape['ly']}x{shape['dy']}")
        if "reference" in s:
            rows.append(dict(common, method="reference algorithm", seconds=s["reference"]["seconds"],
                             speedup_vs_reference=1.0, identical_scores=True))
        # on a GPU the fp32 reference is itself inexact: there the check is against its fp64 run
        identical = s.get("identical_to_fp64_reference", s.get("identical_to_reference"))
        for b, v in s["backends"].items():
            rows.append(dict(common, method=f"vtalign ({b})", seconds=v["seconds"],
                             speedup_vs_reference=v.get("speedup_vs_reference"),
                             identical_scores=identical if "reference" in s else None))
        ref_seconds = s.get("reference", {}).get("seconds")
        for name, v in s.get("peers", {}).items():  # not exact: compared with vtalign's scores, not the reference's
            rows.append(dict(common, method=f"peer: {name} (not exact)", seconds=v["seconds"],
                             speedup_vs_reference=ref_seconds / v["seconds"] if ref_seconds else None,
                             identical_scores=v["identical_scores"]))
    return pd.DataFrame(rows)


def knn_table(records) -> pd.DataFrame:
    """One row per (record, N, backend): seconds, peak memory (MiB), GFLOP/s of the similarity
    part, and that rate as a fraction of the record's own matmul rate."""
    rows = []
    for r in records:
        for row in r["knn"]:
            if "error" in row:
                continue
            rows.append(dict(machine=_label(r), backend=row["backend"], n=row["n"], d=row["d"], k=row["k"],
                             seconds=row["seconds"], peak_mib=row["peak_bytes"] / 2**20, gflops=row["gflops"],
                             fraction_of_matmul=row["gflops"] / r["matmul"]["gflops"]))
    return pd.DataFrame(rows)


def peers_table(records) -> pd.DataFrame:
    """The peers timed beside vtalign (matmul + topk in several precisions, faiss-gpu): seconds, peak
    memory (MiB) and the share of rows whose neighbours differ from the exact answer, as a set and in order."""
    rows = []
    for r in records:
        for p in r.get("peers", []):
            if p["peer"].startswith("check:"):
                rows.append(dict(machine=_label(r), peer=p["peer"], n=p["n"], d=p["d"], k=p["k"],
                                 note=f"identical on all {p['sampled_rows']} sampled rows: {p['identical']}"))
                continue
            if "error" in p:
                rows.append(dict(machine=_label(r), peer=p["peer"], n=p["n"], seconds=None, note=p["error"]))
                continue
            rows.append(dict(machine=_label(r), peer=p["peer"], n=p["n"], d=p["d"], k=p["k"], seconds=p["seconds"],
                             peak_mib=None if p["peak_bytes"] is None else p["peak_bytes"] / 2**20,
                             rows_with_other_set=p["rows_with_other_set"],
                             rows_with_other_order=p["rows_with_other_order"]))
        peer_n = {p["n"] for p in r.get("peers", [])}
        exact = [row for row in r["knn"] if row.get("n") in peer_n and "seconds" in row]
        for row in exact:
            rows.append(dict(machine=_label(r), peer=f"vtalign ({row['backend']}), exact", n=row["n"], d=row["d"],
                             k=row["k"], seconds=row["seconds"], peak_mib=row["peak_bytes"] / 2**20,
                             rows_with_other_set=0.0, rows_with_other_order=0.0))
    return pd.DataFrame(rows)


def certification_table(records) -> pd.DataFrame:
    """How the fp16 screen decided rows on features whose items share a direction (mean cosine c):
    shares certified by the first pass, by a wider pass, and left to the exhaustive fp64 search, and
    the (row, candidate) pairs re-ranked in fp64 per row."""
    rows = []
    for r in records:
        for c in r.get("certification", []):
            rows.append(dict(machine=_label(r), mean_cosine=c["mean_cosine"], n=c["n"], d=c["d"], k=c["k"],
                             backend=c["backend"], seconds=c["seconds"],
                             certified_first_pass=c["certified_first_pass"] / c["rows"],
                             certified_widened=c["certified_widened"] / c["rows"],
                             exhaustive_fp64=c["fallback_rows"] / c["rows"],
                             # older records did not count the fp64 re-ranking
                             reranked_per_row=c["reranked_pairs"] / c["rows"] if "reranked_pairs" in c else None))
    return pd.DataFrame(rows)


def stages_table(records) -> pd.DataFrame:
    """Where the GPU path's time goes: one row per (record, work, backend) that has stage timings
    (:func:`vtalign.knn.profile_stages`), seconds per stage and the profiled total. Empty when no record
    has them (records written before the benchmark took them)."""
    rows = []
    for r in records:
        shape = r["sweep"]["shape"]
        sweep = f"layer sweep N = {shape['n']}, {shape['lx']}x{shape['dx']} vs {shape['ly']}x{shape['dy']}"
        works = [(sweep, b, v) for b, v in r["sweep"]["backends"].items()]
        works += [(f"kNN N = {row['n']:,}, d = {row['d']}", row["backend"], row) for row in r["knn"]]
        for work, backend, v in works:
            if not v.get("stages"):
                continue
            stages = {name: v["stages"].get(name, 0.0) for name in STAGES}
            rows.append(dict(machine=_label(r), work=work, backend=backend, **stages,
                             profiled_total=sum(v["stages"].values()), unprofiled_seconds=v.get("seconds")))
    return pd.DataFrame(rows)


def kernels_table(reports) -> pd.DataFrame:
    """Static compile reports (``bench/kernels/sm_*.json``, :mod:`vtalign.kernel_report`): one row per
    (architecture, kernel specialisation: its tile, the ``BLOCK_*`` sizes in the kernel's order, e.g.
    M x N x K for the screen) with its registers per thread, spills, shared memory and
    tensor-core instructions, and how many warps of it an SM's 65,536 registers hold (an upper bound:
    allocation granularity and shared memory can lower it; 64 at most)."""
    rows = []
    for r in reports:
        for k in r["kernels"]:
            c = k["constants"]
            tile = "x".join(str(v) for name, v in c.items() if name.startswith("BLOCK_"))  # as the kernel names them
            programs = 65536 // (k["registers"] * 32 * k["num_warps"])
            rows.append(dict(arch=f"sm_{r['arch']}", kernel=k["kernel"], tile=tile, KP=c.get("KP"),
                             warps=k["num_warps"], stages=k["num_stages"], registers=k["registers"],
                             spill_bytes=k["spill_stores"], shared_kib=k["shared_bytes"] / 1024,
                             tensor_cores=k["tensor_cores"], warps_per_sm=min(64, programs * k["num_warps"])))
    out = pd.DataFrame(rows)
    if not out.empty:
        out["KP"] = out.KP.astype("Int64")
    return out


# --------------------------------------------------------------------------- #
# Targets: each one a device kind, its wording, and its own check of a record
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class Target:
    """A performance target: ``check(record) -> (what was measured, met)`` on the newest full
    record of ``device`` ("cpu" or "cuda")."""

    device: str
    text: str
    check: Callable[[dict], tuple[str, bool]]


def _cpu_sweep_speedup(r: dict) -> tuple[str, bool]:
    s = r["sweep"]
    best = max(s["backends"].items(), key=lambda kv: kv[1].get("speedup_vs_reference", 0))
    speedup = best[1].get("speedup_vs_reference")
    measured = (f"{best[0]}: {speedup:.1f}x, identical scores: {s.get('identical_to_reference')}"
                if speedup else "reference not run")
    return measured, bool(speedup and speedup >= 30 and s.get("identical_to_reference"))


def _exact_knn_seconds(r: dict, n: int) -> dict:
    return {row["backend"]: row["seconds"] for row in r["knn"] if row.get("n") == n and "seconds" in row}


def _gpu_sweep_time(r: dict) -> tuple[str, bool]:
    times = {b: v["seconds"] for b, v in r["sweep"]["backends"].items()}
    fastest = min(times, key=times.get)
    exact = r["sweep"].get("backends_identical", False) and r["sweep"].get("identical_to_fp64_reference", True)
    return (f"{fastest} {times[fastest] * 1e3:.1f} ms (exact scores: {exact})",
            times[fastest] <= 0.005 and bool(exact))


def _knn_65536_time(r: dict) -> tuple[str, bool]:
    at = _exact_knn_seconds(r, 65536)
    if not at:
        return "N = 65,536 not in the record", False
    fastest = min(at, key=at.get)
    return f"{fastest} {at[fastest]:.4f} s", at[fastest] <= 0.05


def _knn_beats_fp16_peer(r: dict) -> tuple[str, bool]:
    at = _exact_knn_seconds(r, 65536)
    peer = [p for p in r.get("peers", []) if p.get("peer") == "fp16 matmul + topk" and "seconds" in p]
    if not at or not peer:
        return "needs vtalign and the fp16 peer at N = 65,536 in one record", False
    fastest = min(at, key=at.get)
    ratio = peer[0]["seconds"] / at[fastest]
    return (f"{fastest} {at[fastest]:.4f} s vs fp16 peer {peer[0]['seconds']:.4f} s ({ratio:.2f}x; the peer "
            f"differs from the exact answer in {peer[0]['rows_with_other_order']:.1%} of rows)", ratio >= 1)


def _triton_fastest_at_65536(r: dict) -> tuple[str, bool]:
    at = _exact_knn_seconds(r, 65536)
    measured = ", ".join(f"{b} {t:.3f} s" for b, t in at.items()) or "N = 65,536 not in the record"
    return measured, "triton" in at and all(at["triton"] <= t for t in at.values())


def _million_items(r: dict) -> tuple[str, bool]:
    at = [row for row in r["knn"] if row.get("n") == 1_000_000 and "seconds" in row]
    if not at:
        return "N = 1,000,000 not in the record", False
    best = min(at, key=lambda row: row["seconds"])
    measured = ", ".join(f"{row['backend']} {row['seconds']:.1f} s, peak {row['peak_bytes'] / 2**30:.1f} GiB"
                         for row in at)
    return measured, best["seconds"] <= 20 and best["peak_bytes"] <= 16 * 2**30


TARGETS: tuple[Target, ...] = (
    Target("cpu", "sweep at paper scale >= 30x faster than the reference, identical scores", _cpu_sweep_speedup),
    Target("cuda", "exact kNN at N = 65,536, d = 1024, k = 10 in <= 0.05 s", _knn_65536_time),
    Target("cuda", "exact kNN at N = 65,536 faster than the inexact fp16 matmul + topk peer", _knn_beats_fp16_peer),
    Target("cuda", "triton is the fastest exact backend at N = 65,536", _triton_fastest_at_65536),
    Target("cuda", "exact layer sweep at paper shape (1,419 pairs) in <= 5 ms", _gpu_sweep_time),
    Target("cuda", "exact kNN at N = 1,000,000, d = 1024 in <= 20 s with peak GPU memory <= 16 GiB", _million_items),
)


def targets_table(records, targets=TARGETS) -> pd.DataFrame:
    """Each target with what the newest full-mode record of its device kind says about it."""
    full = [r for r in records if r["mode"] == "full"]
    rows = []
    for t in targets:
        mine = [r for r in full if r["device"] == t.device]
        if not mine:
            rows.append(dict(target=t.text, device=t.device,
                             measured="not measured: no full record from this kind of device", met=None))
            continue
        measured, met = t.check(mine[-1])
        rows.append(dict(target=t.text, device=t.device, measured=measured, met=met))
    return pd.DataFrame(rows)


def scaleout_table(record: dict) -> pd.DataFrame:
    """A scale-out record (``bench/scaleout/*.json``, :func:`vtalign.extract.cluster.scaleout_benchmark`):
    one row per setting, with items/s, the speed-up over one process and Ray's overhead per part."""
    df = pd.DataFrame(record["runs"])
    single = df.loc[df.setting == "one process", "seconds"].iloc[0]
    df["speedup_vs_one_process"] = single / df.seconds
    df.insert(0, "machine", f"{record['machine']['cores']} cores, {record['machine']['processor']}")
    return df


def projection_tables(record: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A projection record (:func:`vtalign.extract.projection.projection_record`): the offline models
    measured here (FLOPs and seconds per item, efficiency against this machine's matmul rate), and the
    full plan's estimate beside its lower bound (GPU hours, cache size, wall hours on N GPUs)."""
    measured = pd.DataFrame(record["measured"])
    rows = []
    for name, p in (("estimate", record["estimate"]), ("lower bound (100% of the matmul rate)", record["lower_bound"])):
        row = dict(projection=name, representations=p["representations"], sweeps=p["sweeps"],
                   extraction_pflop=p["extraction_flops"] / 1e15, extraction_gpu_hours=p["extraction_gpu_hours"],
                   sweep_gpu_hours=p["sweep_gpu_hours"], total_gpu_hours=p["total_gpu_hours"],
                   cache_gib=p["cache_bytes"] / 2**30)
        row.update({f"wall_hours_on_{g}_gpus": h for g, h in p["wall_hours"].items()})
        rows.append(row)
    return measured, pd.DataFrame(rows)
