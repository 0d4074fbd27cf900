"""What the Triton kernels compile to for a GPU, without a GPU.

    python -m vtalign.kernel_report [--arch 90] [--out FILE]

Triton compiles ahead of time for a named target: its NVIDIA backend ships ``ptxas``, so this module
compiles every kernel of :mod:`vtalign.triton_kernels`, in the specialisations the search launches,
to a cubin for compute capability ``arch`` (90: Hopper, H100/H200; 80: A100) on any machine with
Triton installed, and reads what ``ptxas -v`` reports: registers per thread, spill stores and loads,
and the shared memory Triton asked for. It also says whether the screen's ``tl.dot`` became
tensor-core instructions (``wgmma`` on Hopper, ``mma`` before it).

This is a static check: it proves the kernels compile for that GPU and shows their resource use,
which bounds occupancy (an H100 SM has 65,536 registers, so 255 registers per thread leave room for
two 4-warp programs per SM, 128 for four). It measures no time; ``python -m vtalign.bench`` on a
GPU does that. The record goes to ``bench/kernels/sm_<arch>.json`` and the Performance chapter shows it.

The kernels must be importable as compilable functions, so ``TRITON_INTERPRET`` must not be set to 1
in the process that runs this (the tests run it in a subprocess).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["kernel_specialisations", "compile_kernel", "kernel_report", "main"]

_I32 = "i32"


def kernel_specialisations() -> list[dict]:
    """The kernels as the search launches them: name, argument types, compile-time constants, launch
    options. Screen: every autotuning configuration at d = 1024, k + margin = 42 (KP = 64), and the
    wide pass (KP = 256); residuals: both passes; rerank at m = 42; overlap counts at k = 10."""
    from . import triton_kernels as tk

    screen_sig = {"q_ptr": "*fp16", "x_ptr": "*fp16", "qw_ptr": "*fp32", "xw_ptr": "*fp32", "xb_ptr": "*fp32",
                  "qid_ptr": "*i32", "vals_ptr": "*fp32", "idx_ptr": "*i32", "n_q": _I32, "n_x": _I32, "d": _I32,
                  **{s: _I32 for s in ("stride_ql", "stride_q", "stride_xl", "stride_x", "stride_qwl", "stride_xwl",
                                       "stride_vl")}}
    out = []
    for cfg in tk._SCREEN_CONFIGS:
        out.append(dict(kernel="screen_topk", fn=tk._screen_topk_kernel, signature=screen_sig,
                        constants=dict(cfg.kwargs, KP=64), num_warps=cfg.num_warps, num_stages=cfg.num_stages))
    out.append(dict(kernel="screen_topk (wide pass)", fn=tk._screen_topk_kernel, signature=screen_sig,
                    constants=dict(tk.WIDE_PASS_TILE, KP=256), num_warps=tk.WIDE_PASS_WARPS,
                    num_stages=3))
    residual_sig = {"x_ptr": "*fp32", "inv_ptr": "*fp64", "mean_ptr": "*fp64", "w_ptr": "*fp64", "rr_ptr": "*fp64",
                    "mr_ptr": "*fp64", "r16_ptr": "*fp16", "n": _I32, "d": _I32,
                    **{s: _I32 for s in ("stride_xl", "stride_x", "stride_vl", "stride_ml", "stride_rl", "stride_r")}}
    for store in (False, True):
        out.append(dict(kernel=f"residuals ({'unit residuals' if store else 'row sums'})", fn=tk._residual_kernel,
                        signature=residual_sig, constants=dict(BLOCK_R=tk.RESIDUAL_BLOCK_R, BLOCK_D=tk.RESIDUAL_BLOCK_D,
                                                               STORE=store), num_warps=tk.RESIDUAL_WARPS, num_stages=3))
    rerank_sig = {"q_ptr": "*fp32", "x_ptr": "*fp32", "qinv_ptr": "*fp64", "xinv_ptr": "*fp64", "cand_ptr": "*i64",
                  "out_ptr": "*fp64", "m": _I32, "d": _I32,
                  **{s: _I32 for s in ("stride_ql", "stride_q", "stride_xl", "stride_x", "stride_qil", "stride_xil",
                                       "stride_cl", "stride_c")}}
    block_c = 64  # m = 42 candidates, rounded up to a power of two as rerank() does
    out.append(dict(kernel="rerank", fn=tk._rerank_kernel, signature=rerank_sig,
                    constants=dict(BLOCK_C=block_c, BLOCK_D=tk.rerank_block_d(block_c)), num_warps=tk.RERANK_WARPS,
                    num_stages=3))
    overlap_sig = {"nx_ptr": "*i64", "ny_ptr": "*i64", "out_ptr": "*i32", "n": _I32, "ly": _I32, "k": _I32}
    out.append(dict(kernel="pair_overlaps", fn=tk._pair_overlap_kernel, signature=overlap_sig,
                    constants=dict(BLOCK_I=tk.OVERLAP_BLOCK_I, KP=16), num_warps=4, num_stages=3))
    return out


def _ptxas() -> str:
    import triton

    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    if not path.is_file():
        raise FileNotFoundError(f"Triton's NVIDIA backend has no ptxas at {path}: install a triton wheel with it.")
    return str(path)


def compile_kernel(spec: dict, arch: int = 90) -> dict:
    """Compile one specialisation for compute capability ``arch``; return its resource use:
    registers per thread, spill stores/loads (bytes), shared memory (bytes), tensor-core instructions."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    constants = dict(spec["constants"])
    signature = dict(spec["signature"], **{name: "constexpr" for name in constants})
    compiled = triton.compile(ASTSource(fn=spec["fn"], signature=signature, constexprs=constants),
                              target=GPUTarget("cuda", arch, 32),
                              options=dict(num_warps=spec["num_warps"], num_stages=spec["num_stages"]))
    ptx = compiled.asm["ptx"]
    sm = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kernel.ptx"
        src.write_text(ptx)
        info = subprocess.run([_ptxas(), f"-arch={sm}", "-v", str(src), "-o", str(Path(tmp) / "kernel.cubin")],
                              capture_output=True, text=True, check=True).stderr
    number = lambda pattern: int(m.group(1)) if (m := re.search(pattern, info)) else None  # noqa: E731
    tensor_cores = "wgmma" if "wgmma" in ptx else ("mma" if re.search(r"\bmma\.sync", ptx) else "none")
    return dict(kernel=spec["kernel"], constants=constants, num_warps=spec["num_warps"],
                num_stages=spec["num_stages"], registers=number(r"Used (\d+) registers"),
                spill_stores=number(r"(\d+) bytes spill stores"), spill_loads=number(r"(\d+) bytes spill loads"),
                shared_bytes=int(compiled.metadata.shared), tensor_cores=tensor_cores,
                cubin_bytes=len(compiled.asm["cubin"]))


def kernel_report(arch: int = 90) -> dict:
    """Every specialisation of :func:`kernel_specialisations`, compiled for ``arch``, as one record."""
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise RuntimeError("TRITON_INTERPRET=1 is set: the kernels are interpreted, not compiled. "
                           "Run `python -m vtalign.kernel_report` in a process without it.")
    import torch
    import triton

    from ._version import git
    from .bench import source_digest

    rows = [compile_kernel(spec, arch) for spec in kernel_specialisations()]
    return dict(kind="kernel_report", arch=arch, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                git_commit=git("rev-parse", "HEAD"), source_digest=source_digest(), triton=triton.__version__,
                torch=torch.__version__, kernels=rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vtalign.kernel_report", description=__doc__.split("\n")[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability x 10 (90: H100/H200, 80: A100)")
    parser.add_argument("--out", type=Path, help="JSON file to write (default: bench/kernels/sm_<arch>.json)")
    args = parser.parse_args(argv)
    record = kernel_report(args.arch)
    from .paths import bench_dir

    out = args.out or bench_dir("kernels") / f"sm_{args.arch}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    for r in record["kernels"]:
        print(f"{r['kernel']:32s} {json.dumps(r['constants']):60s} warps {r['num_warps']} stages {r['num_stages']}: "
              f"{r['registers']} regs, spills {r['spill_stores']}/{r['spill_loads']} B, smem {r['shared_bytes']} B, "
              f"tensor cores: {r['tensor_cores']}")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
