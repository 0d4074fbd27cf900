"""Extraction on a local Ray runtime with 2 workers: bitwise the single-process entries, resumed from the
cache, and complete after a worker is killed in the middle of a plan."""
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from vtalign.extract.cache import extract_features  # noqa: E402
from vtalign.extract.cluster import load_plan, plan_requests, run_plan  # noqa: E402
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


def test_plan_on_two_workers_equals_single_process_bitwise(tmp_path):
    requests = plan_requests("synthetic_world", ["tiny-vit", "tiny-bert"], frames=[2], captions=[1, 3], options=OPTS)
    requests += plan_requests("synthetic_world", ["efficientnet-lite0"], frames=[1], options={**OPTS, "n_clips": 64})
    assert [(r.model, r.frames, r.captions) for r in requests] == [("tiny-vit", 2, 1), ("tiny-bert", 2, 1),
                                                                   ("tiny-bert", 2, 3), ("efficientnet-lite0", 1, 1)]
    summary = run_plan(requests, "local", workers=2, device="cpu", cache_dir=tmp_path / "ray", progress=False)
    assert list(summary.status) == ["computed"] * 4 and list(summary.parts_made) == [3, 3, 3, 2]
    assert (summary.parts_made_by_driver == 0).all()
    for r in requests:
        a, meta_a = _single(r, tmp_path / "ray")                     # read back from the plan's entries
        b, meta_b = _single(r, tmp_path / "single")                  # made by one process
        assert a.tobytes() == b.tobytes() and meta_a["item_ids"] == meta_b["item_ids"]
    again = run_plan(requests, "local", workers=2, device="cpu", cache_dir=tmp_path / "ray", progress=False)
    assert list(again.status) == ["reused"] * 4                      # a re-run resumes from the cache


def test_a_killed_worker_costs_only_its_part(tmp_path):
    requests = plan_requests("synthetic_world", ["efficientnet-lite0"], frames=[2], options={**OPTS, "n_clips": 192})
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
