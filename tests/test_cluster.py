"""Extraction and alignment on a local Ray runtime with 2 workers: complete after a worker is killed in the
middle of a plan (bitwise the single-process entry), a corrupt video reported once (not retried); sweeps
and sharded kNN equal to their single-process answers. A plan on several nodes, bitwise one process and
resumed from the cache on a re-run, is in tests/test_cluster_nodes.py."""
import shutil
import time

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")

import vtalign as va  # noqa: E402
from naive_reference import tie_heavy  # noqa: E402
from vtalign import paths  # noqa: E402
from vtalign.extract import ExtractionError, extract, extract_features  # noqa: E402
from vtalign.extract.cluster import load_plan, plan_requests, run_plan  # noqa: E402
from vtalign.extract.cluster_alignment import sharded_knn, sweep_plan  # noqa: E402
from vtalign.extract.datasets import load_dataset  # noqa: E402

OPTS = {"n_clips": 96, "size": 32, "n_frames": 8}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def _single(request, cache):
    ds = load_dataset(request.dataset, **request.options)
    return extract_features(ds, request.model, **request.arguments(), device="cpu", cache_dir=cache, progress=False)


def test_a_killed_worker_costs_only_its_part(tmp_path):
    requests = plan_requests("synthetic_world", ["efficientnet-lite0"], frames=[2], options={**OPTS, "n_clips": 128})
    killed = []

    def kill_one_when_a_part_exists(pools):
        deadline = time.time() + 120
        while not list((tmp_path / "ray").rglob("part-*.npz")) and time.time() < deadline:
            time.sleep(0.1)
        ray.kill(pools["efficientnet-lite0"][0], no_restart=False)   # the process dies; Ray restarts the actor
        killed.append(True)

    summary = run_plan(requests, "local", workers=2, device="cpu", cache_dir=tmp_path / "ray", progress=False,
                       on_submitted=kill_one_when_a_part_exists)
    assert killed and list(summary.status) == ["computed"]
    a, _ = _single(requests[0], tmp_path / "ray")
    b, _ = _single(requests[0], tmp_path / "single")
    assert a.tobytes() == b.tobytes()
    assert not list((tmp_path / "ray").rglob("*.claim"))


def test_plan_file(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[[grid]]\ndataset = "synthetic_world"\noptions = { n_clips = 40, size = 32, n_frames = 8 }\n'
                    'models = ["tiny-vit", "tiny-bert"]\nframes = [1, 2]\ncaptions = [1]\n')
    requests = load_plan(plan)
    assert [(r.model, r.frames) for r in requests] == [("tiny-vit", 1), ("tiny-vit", 2), ("tiny-bert", 1)]
    plan.write_text("[[grid]]\nmodels = ['tiny-vit']\n")
    with pytest.raises(ValueError, match="lacks"):
        load_plan(plan)


@pytest.mark.skipif(not paths.data_mirror_dirs(), reason="no local data mirror (../shared/data)")
def test_a_corrupt_video_is_reported_once_not_retried(tmp_path):
    ids = load_dataset("vatex", n_items=4).ids
    clips = [it.video.path for it in load_dataset("clips").items if str(it.video.path).endswith(".mp4")]
    root = tmp_path / "videos"
    root.mkdir()
    for vid, clip in zip(ids[:3], clips):
        shutil.copy(clip, root / f"{vid}.mp4")
    (root / f"{ids[3]}.mp4").write_bytes(b"this is not a video" * 100)        # fails the same way every time
    options = {"n_items": 4, "video_root": str(root)}
    requests = plan_requests("vatex", ["tiny-vit"], frames=[2], options=options)
    summary = run_plan(requests, "local", workers=2, device="cpu", cache_dir=tmp_path / "ray", progress=False)
    row = summary.iloc[0]
    assert row.status == "failed" and row.parts_made == 1 and row.parts_made_by_driver == 0   # made once
    with pytest.raises(ExtractionError) as single:                          # the list one process reports
        extract_features("vatex", "tiny-vit", frames=2, dataset_options=options, device="cpu",
                         cache_dir=tmp_path / "single", progress=False)
    same_cache = str(single.value).replace(str(tmp_path / "single"), str(tmp_path / "ray"))
    assert row.error == f"ExtractionError: {same_cache}"                   # the same list, reported once
    assert [f["item"] for f in single.value.failures] == [ids[3]]
    kept = run_plan(requests, "local", workers=2, device="cpu", cache_dir=tmp_path / "ray", progress=False,
                    skip_failures=True)
    assert list(kept.status) == ["computed"] and kept.parts_made.iloc[0] == 0   # the part was not made again
    feats, meta = extract_features("vatex", "tiny-vit", frames=2, dataset_options=options, device="cpu",
                                   cache_dir=tmp_path / "ray", progress=False, skip_failures=True)
    assert meta["item_ids"] == ids[:3] and [f["item"] for f in meta["failures"]] == [ids[3]]


def test_sweep_plan_equals_single_process_sweeps(tmp_path):
    opts = {**OPTS, "n_clips": 48}
    requests = plan_requests("synthetic_world", ["tiny-vit", "efficientnet-lite0", "tiny-bert"], frames=[2],
                             captions=[1], options=opts)
    run_plan(requests, "local", workers=2, device="cpu", cache_dir=tmp_path, progress=False)
    table = sweep_plan(requests, k=5, pairs="all", cluster="local", cache_dir=tmp_path)
    assert len(table) == 3
    prepared = {}
    for r in requests:
        f, meta = _single(r, tmp_path)
        prepared[r.model] = va.prepare_features(f, layer_dims=meta.get("layer_dims"))
    for row in table.itertuples():
        want = va.layer_sweep(prepared[row.model_x], prepared[row.model_y], k=5)
        assert (row.layer_x, row.layer_y, row.score) == want.best
        np.testing.assert_array_equal(table.attrs["scores"][(row.x, row.y)], want.scores)
    cross = sweep_plan(requests, k=5, pairs="cross", cluster="local", cache_dir=tmp_path)
    assert sorted(zip(cross.model_x, cross.model_y)) == [("efficientnet-lite0", "tiny-bert"), ("tiny-vit", "tiny-bert")]
    from vtalign.extract.cli import main as extract_main  # the same plan from the command line

    out = tmp_path / "sweeps.csv"
    args = ["--dataset", "synthetic_world", "--model", "tiny-vit", "--model", "efficientnet-lite0", "--model",
            "tiny-bert", "--frames", "2", "--cache", str(tmp_path), "--no-progress", "--cluster", "local",
            "--sweeps", str(out), "--k", "5", "--pairs", "all"]
    args += [a for key, value in opts.items() for a in ("--option", f"{key}={value}")]
    assert extract_main(args) == 0
    written = pd.read_csv(out)
    assert written[["x", "y", "layer_x", "layer_y"]].equals(table[["x", "y", "layer_x", "layer_y"]])
    assert np.allclose(written.score, table.score, rtol=0, atol=1e-15)


def test_sharded_knn_on_ray_equals_knn_indices():
    x = tie_heavy(np.random.default_rng(2), 3000, 12)
    np.testing.assert_array_equal(sharded_knn(x, 10, 4, cluster="local"), va.knn_indices(x, 10))
    q = np.random.default_rng(3).normal(size=(3000, 12)).astype(np.float32)
    np.testing.assert_array_equal(sharded_knn(x, 5, 3, queries=q, cluster="local"), va.knn_indices(x, 5, queries=q))


def test_use_cluster_sends_extract_features_parts_to_ray(tmp_path):
    from vtalign.extract import use_cluster

    opts = {**OPTS, "n_clips": 64}
    use_cluster("local")
    try:
        a, meta, run = extract("synthetic_world", "tiny-vit", frames=2, dataset_options=opts, device="cpu",
                               cache_dir=tmp_path / "ray", progress=False)
        assert run.computed == [] and len(run.read) == 2      # both parts made on Ray, read here
    finally:
        use_cluster(None)
    b, _, run = extract("synthetic_world", "tiny-vit", frames=2, dataset_options=opts, device="cpu",
                        cache_dir=tmp_path / "single", progress=False)
    assert run.computed != [] and a.tobytes() == b.tobytes()
    with pytest.raises(ValueError, match="cluster must be None"):
        use_cluster("yarn")
