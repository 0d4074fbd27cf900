"""The benchmark's reference algorithm and its report tables (timings themselves are not tested)."""
import numpy as np
import pytest
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


def test_targets_read_full_records():
    cpu = dict(mode="full", device="cpu", sweep=dict(backends={"torch": dict(seconds=1.0, speedup_vs_reference=40.0)},
                                                      identical_to_reference=True), knn=[])
    t = performance.targets_table([cpu]).set_index("device")
    assert t.loc["cpu", "met"] is True
    assert t.loc["cuda"].measured.str.startswith("not measured").all()
    cpu["sweep"]["backends"]["torch"]["speedup_vs_reference"] = 12.0
    assert not performance.targets_table([cpu]).iloc[0].met
