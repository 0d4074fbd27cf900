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

__all__ = ["load_records", "sweep_table", "knn_table", "Target", "TARGETS", "targets_table"]


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
    """One row per (record, method): seconds for the whole sweep, speed-up over the reference,
    and whether the scores equal the reference's."""
    rows = []
    for r in records:
        s = r["sweep"]
        shape = s["shape"]
        common = dict(machine=_label(r), n=shape["n"], pairs=s["pairs"],
                      layers=f"{shape['lx']}x{shape['dx']} vs {shape['ly']}x{shape['dy']}")
        if "reference" in s:
            rows.append(dict(common, method="reference algorithm", seconds=s["reference"]["seconds"],
                             speedup_vs_reference=1.0, identical_scores=True))
        for b, v in s["backends"].items():
            rows.append(dict(common, method=f"vtalign ({b})", seconds=v["seconds"],
                             speedup_vs_reference=v.get("speedup_vs_reference"),
                             identical_scores=s.get("identical_to_reference") if "reference" in s else None))
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


def _gpu_sweep_time(r: dict) -> tuple[str, bool]:
    fastest = min(v["seconds"] for v in r["sweep"]["backends"].values())
    return f"{fastest * 1e3:.1f} ms", fastest < 0.010


def _triton_fastest_at_65536(r: dict) -> tuple[str, bool]:
    at = {row["backend"]: row["seconds"] for row in r["knn"] if row.get("n") == 65536 and "seconds" in row}
    measured = ", ".join(f"{b} {t:.3f} s" for b, t in at.items()) or "N = 65,536 not in the record"
    return measured, "triton" in at and all(at["triton"] <= t for t in at.values())


def _million_items(r: dict) -> tuple[str, bool]:
    at = [row for row in r["knn"] if row.get("n") == 1_000_000 and "seconds" in row]
    measured = ", ".join(f"{row['backend']} {row['seconds']:.1f} s, peak {row['peak_bytes'] / 2**30:.1f} GiB"
                         for row in at) or "N = 1,000,000 not in the record"
    return measured, bool(at)  # an N x N fp32 matrix alone would be 4 TB: having run at all is the test


TARGETS: tuple[Target, ...] = (
    Target("cpu", "sweep at paper scale >= 30x faster than the reference, identical scores", _cpu_sweep_speedup),
    Target("cuda", "full sweep at paper scale under 10 ms", _gpu_sweep_time),
    Target("cuda", "triton kNN at N = 65,536, d = 1024 at least as fast as torch matmul+topk and faiss-gpu",
           _triton_fastest_at_65536),
    Target("cuda", "exact kNN at N = 1,000,000, d = 1024 on one GPU without N^2 memory", _million_items),
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
