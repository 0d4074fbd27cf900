"""The benchmark's reference algorithm and its report tables (timings themselves are not tested)."""
import numpy as np
import torch

import vtalign as va
from vtalign import bench
from vtalign.book import performance


def test_reference_sweep_equals_layer_sweep():
    g = torch.Generator().manual_seed(0)
    fx = torch.nn.functional.normalize(torch.randn(90, 3, 12, generator=g), dim=-1)
    fy = torch.nn.functional.normalize(torch.randn(90, 2, 7, generator=g), dim=-1)
    fy[:, 1] = torch.nn.functional.normalize(fx[:, 2, :7], dim=-1)
    ref = bench.reference_sweep(fx, fy, k=6)
    np.testing.assert_array_equal(ref, va.layer_sweep(fx, fy, k=6).scores)


def test_smoke_record_and_tables(tmp_path):
    record = bench.run_benchmark(smoke=True, knn_sizes=[200], knn_dim=16)
    assert record["sweep"]["identical_to_reference"] is True
    assert record["sweep"]["backends_identical"] is True
    assert record["mode"] == "smoke" and record["git_commit"]
    record["source"] = "test"
    sweeps = performance.sweep_table([record])
    assert set(sweeps.method) >= {"reference algorithm", "vtalign (torch)"}
    knn = performance.knn_table([record])
    assert (knn.seconds > 0).all() and (knn.n == 200).all()
    targets = performance.targets_table([record])
    # smoke records never count towards targets
    assert targets.measured.str.startswith("not measured").all()
    peers = performance.peers_table([record])
    assert {"fp32 (IEEE) matmul + topk", "fp16 matmul + topk"} <= set(peers.peer)
    check = [p for p in record["peers"] if p["peer"].startswith("check:")]
    assert check and check[0]["identical"] is True  # vtalign equals an fp64 brute force
    exact_rows = peers[peers.peer.str.startswith("vtalign")]
    assert (exact_rows.rows_with_other_order == 0).all()
    assert performance.stages_table([record]).empty  # the CPU path is not staged: nothing to show


def test_stage_table_rows_come_from_recorded_stages():
    record = _gpu_record({"triton": 0.04, "torch": 0.16}, 0.045, 0.03)
    record.update(device_name="GPU", matmul=dict(gflops=1.0))
    record["sweep"]["shape"] = bench.PAPER_SHAPE
    record["sweep"]["backends"]["triton"]["stages"] = dict(prepare=0.012, screen=0.004, decide=0.01, overlaps=0.001)
    record["knn"][0]["stages"] = dict(prepare=0.002, screen=0.03, decide=0.01, widen=0.001)
    t = performance.stages_table([record])
    assert list(t.work) == ["layer sweep N = 1024, 33x1280 vs 43x3584", "kNN N = 65,536, d = 1024"]
    assert list(t.backend) == ["triton", "triton"]
    assert t.profiled_total.round(6).tolist() == [0.027, 0.043]
    assert t.fallback.tolist() == [0.0, 0.0] and t.unprofiled_seconds.tolist() == [0.03, 0.04]


def _gpu_record(knn_seconds, peer_seconds, sweep_seconds, million=None):
    knn = [dict(n=65536, d=1024, k=10, backend=b, seconds=t, peak_bytes=2**30) for b, t in knn_seconds.items()]
    if million:
        knn.append(dict(n=1_000_000, d=1024, k=10, backend="triton", seconds=million[0], peak_bytes=million[1]))
    return dict(mode="full", device="cuda", knn=knn,
                peers=[dict(peer="fp16 matmul + topk", n=65536, d=1024, k=10, seconds=peer_seconds, peak_bytes=1,
                            rows_with_other_set=0.02, rows_with_other_order=0.1)],
                sweep=dict(backends={"triton": dict(seconds=sweep_seconds)}, backends_identical=True,
                           identical_to_fp64_reference=True))


def test_gpu_targets_each_check_their_own_number():
    met = performance.targets_table([_gpu_record({"triton": 0.04, "torch": 0.16}, 0.045, 0.004,
                                                 (14.0, 5 * 2**30))]).set_index("target").met
    assert met.loc["exact kNN at N = 65,536, d = 1024, k = 10 in <= 0.05 s"] is True
    assert met.loc["exact kNN at N = 65,536 faster than the inexact fp16 matmul + topk peer"] is True
    assert met.loc["triton is the fastest exact backend at N = 65,536"] is True
    assert met.loc["exact layer sweep at paper shape (1,419 pairs) in <= 5 ms"] is True
    assert met.loc["exact kNN at N = 1,000,000, d = 1024 in <= 20 s with peak GPU memory <= 16 GiB"] is True
    slow = performance.targets_table([_gpu_record({"triton": 0.08, "torch": 0.07}, 0.045, 0.03,
                                                  (14.0, 20 * 2**30))]).set_index("target").met
    assert not slow[slow.index.str.startswith("exact")].any()
    assert not slow.loc["triton is the fastest exact backend at N = 65,536"]


def test_targets_read_full_records():
    cpu = dict(mode="full", device="cpu", sweep=dict(backends={"torch": dict(seconds=1.0, speedup_vs_reference=40.0)},
                                                      identical_to_reference=True), knn=[])
    t = performance.targets_table([cpu]).set_index("device")
    assert t.loc["cpu", "met"] is True
    assert t.loc["cuda"].measured.str.startswith("not measured").all()
    cpu["sweep"]["backends"]["torch"]["speedup_vs_reference"] = 12.0
    assert not performance.targets_table([cpu]).iloc[0].met


def test_kernels_table_reads_the_committed_compile_reports():
    from vtalign.paths import bench_dir

    reports = performance.load_records(sorted(bench_dir("kernels").glob("*.json")))
    table = performance.kernels_table(reports)
    assert set(table.arch) == {"sm_80", "sm_90"}
    assert len(table) == sum(len(r["kernels"]) for r in reports)
    hopper = table[(table.arch == "sm_90") & (table.kernel == "screen_topk")]
    assert (hopper.tensor_cores != "none").all() and (hopper.warps_per_sm >= hopper.warps).all()
    assert table[table.kernel == "rerank"].KP.isna().all()  # only the screen has a top-m width
