"""The Triton kernels compile for real GPUs (sm_90 and sm_80) on this machine, with Triton's own ptxas:
a GPU-only compile error (an unsupported cast, a bad layout) fails here, without a GPU."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vtalign.paths import project_root

triton_spec = importlib.util.find_spec("triton")
ptxas = triton_spec and Path(triton_spec.origin).parent / "backends" / "nvidia" / "bin" / "ptxas"
pytestmark = pytest.mark.skipif(not (ptxas and ptxas.is_file()),
                                reason="Triton's NVIDIA backend (ptxas) is not installed")


@pytest.fixture(scope="module", params=[90, 80])
def report(request, tmp_path_factory):
    """`python -m vtalign.kernel_report` in a process of its own: this one interprets the kernels."""
    out = tmp_path_factory.mktemp("kernels") / f"sm_{request.param}.json"
    env = dict(os.environ, TRITON_INTERPRET="0", PYTHONPATH=str(project_root() / "lib"))
    subprocess.run([sys.executable, "-m", "vtalign.kernel_report", "--arch", str(request.param), "--out", str(out)],
                   check=True, env=env, capture_output=True, text=True, timeout=900)
    return json.loads(out.read_text())


def test_every_kernel_compiles_and_the_screen_runs_on_tensor_cores(report):
    kinds = {r["kernel"] for r in report["kernels"]}
    assert kinds == {"screen_topk", "screen_topk (wide pass)", "residuals (row sums)", "residuals (unit residuals)",
                     "rerank", "pair_overlaps"}
    assert all(r["cubin_bytes"] > 0 and r["registers"] for r in report["kernels"])
    screens = [r for r in report["kernels"] if r["kernel"].startswith("screen_topk")]
    # Hopper: warp-group MMA wherever a tile has 64 rows; Ampere: mma.sync
    expected = {90: {"wgmma", "mma"}, 80: {"mma"}}[report["arch"]]
    assert {r["tensor_cores"] for r in screens} <= expected and all(r["tensor_cores"] != "none" for r in screens)


def test_memory_bound_kernels_keep_their_launch_shapes_spill_free(report):
    """The residual and rerank launch shapes were chosen for no spills at <= 128 registers on sm_90."""
    if report["arch"] != 90:
        pytest.skip("the shapes were chosen for sm_90")
    for r in report["kernels"]:
        if r["kernel"].startswith(("residuals", "rerank")):
            assert r["spill_stores"] == 0 and r["registers"] <= 128, r


def test_the_committed_record_names_the_launched_shapes(report):
    """bench/kernels/sm_<arch>.json, which the Performance chapter shows, lists what the search launches now."""
    committed = json.loads((project_root() / "bench" / "kernels" / f"sm_{report['arch']}.json").read_text())
    shape = lambda rows: [(r["kernel"], r["constants"], r["num_warps"], r["num_stages"]) for r in rows]  # noqa: E731
    assert shape(committed["kernels"]) == shape(report["kernels"])
