"""Scale-out beyond one raylet (issue 21): a simulated cluster (``ray.cluster_utils.Cluster``: a head and
worker nodes, each its own raylet on this machine) runs the extraction plan, the sweep plan and the sharded
kNN bitwise as one process does, spreads parts over nodes, survives a node lost mid-plan (its claims are
taken over once their heartbeat is stale: another node's process cannot be asked), places GPU-asking
workers only on nodes that declare a GPU, and refuses a plan the cluster cannot hold before anything
starts, instead of waiting forever."""
import json
import os
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

import vtalign as va  # noqa: E402
from naive_reference import tie_heavy  # noqa: E402
from vtalign.extract import RequestError, extract_features  # noqa: E402
from vtalign.extract.cluster import plan_requests, run_plan  # noqa: E402
from vtalign.extract.cluster_alignment import sharded_knn, sweep_plan  # noqa: E402

OPTS = {"n_clips": 96, "size": 32, "n_frames": 8}
STALE_S = 3  # a lost node's claims are taken over after this long (inherited by every node's workers)


@pytest.fixture(scope="module")
def nodes():
    """A head that runs no work (0 CPUs) and two worker nodes of one CPU each; connected."""
    if ray.is_initialized():
        ray.shutdown()
    saved = os.environ.get("VTALIGN_CLAIM_STALE_S")
    os.environ["VTALIGN_CLAIM_STALE_S"] = str(STALE_S)   # before the nodes start: their workers inherit it
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args=dict(num_cpus=0))
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
    try:
        yield cluster, workers
    finally:
        ray.shutdown()
        cluster.shutdown()
        if saved is None:
            os.environ.pop("VTALIGN_CLAIM_STALE_S", None)
        else:
            os.environ["VTALIGN_CLAIM_STALE_S"] = saved


def _single(request, cache):
    return extract_features(request.data, request.model, **request.arguments(), device="cpu", cache_dir=cache,
                            progress=False)


def test_a_plan_on_two_worker_nodes_is_bitwise_one_process_and_spreads_over_them(nodes, tmp_path):
    cluster, _ = nodes
    requests = plan_requests("synthetic_world", ["tiny-vit", "tiny-bert"], frames=[2], captions=[1, 3], options=OPTS)
    assert [(r.model, r.frames, r.captions) for r in requests] == [("tiny-vit", 2, 1), ("tiny-bert", 2, 1),
                                                                   ("tiny-bert", 2, 3)]   # one per distinct entry
    summary = run_plan(requests, cluster.address, device="cpu", cache_dir=tmp_path / "ray", progress=False)
    assert list(summary.status) == ["computed"] * 3
    assert (summary.parts_made == summary.parts_total).all() and (summary.parts_made_by_driver == 0).all()
    assert (summary.nodes == 2).all()                        # 3 parts each, on both one-CPU nodes
    assert (summary.workers_used == 2).all() and (summary.encoder_loads == 2).all()    # one load per worker
    assert (summary.parts_taken_over == 0).all()             # nothing encoded twice without a failure
    for r in requests:
        a, meta_a = _single(r, tmp_path / "ray")
        b, meta_b = _single(r, tmp_path / "single")
        assert a.tobytes() == b.tobytes() and meta_a["item_ids"] == meta_b["item_ids"]
    again = run_plan(requests, cluster.address, device="cpu", cache_dir=tmp_path / "ray", progress=False)
    assert list(again.status) == ["reused"] * 3                      # a re-run resumes from the cache

    table = sweep_plan(requests, k=5, cluster=cluster.address, cache_dir=tmp_path / "ray")
    fv, mv = _single(requests[0], tmp_path / "single")
    ft, mt = _single(requests[1], tmp_path / "single")
    want = va.layer_sweep(va.prepare_features(fv, layer_dims=mv["layer_dims"]),
                          va.prepare_features(ft, layer_dims=mt["layer_dims"]), k=5)
    assert (table.layer_x.iloc[0], table.layer_y.iloc[0], table.score.iloc[0]) == want.best

    x = tie_heavy(np.random.default_rng(2), 2000, 12)
    np.testing.assert_array_equal(sharded_knn(x, 10, 4, cluster=cluster.address), va.knn_indices(x, 10))


def test_a_node_lost_mid_plan_costs_only_its_part_taken_over_after_its_heartbeat(nodes, tmp_path):
    """A worker node is removed while it holds a claimed part; a replacement node joins (as a preempted
    machine is replaced). The lost worker's claim names another node, so it is taken over only when its
    heartbeat is STALE_S old; the entry is bitwise one process's, every part made once."""
    cluster, workers = nodes
    requests = plan_requests("synthetic_world", ["efficientnet-lite0"], frames=[2], options=OPTS)
    lost_node = workers[0].node_id
    seen = {}

    def remove_a_node_holding_a_claim(pools):
        deadline = time.time() + 120
        while time.time() < deadline:
            for claim in (tmp_path / "ray").rglob("part-*.claim"):
                try:
                    owner = json.loads(claim.read_text())
                except (OSError, ValueError):
                    continue
                if owner.get("node") == lost_node and not claim.with_suffix(".npz").exists():
                    seen.update(owner, part=claim.name)
                    cluster.remove_node(workers[0], allow_graceful=False)    # killed: as a lost machine
                    workers[0] = cluster.add_node(num_cpus=1)    # the replacement
                    return
            time.sleep(0.02)

    summary = run_plan(requests, cluster.address, workers=2, device="cpu", cache_dir=tmp_path / "ray",
                       progress=False, on_submitted=remove_a_node_holding_a_claim)
    row = summary.iloc[0]
    assert seen and seen["host"] and seen["pid"], "no claim of the node to remove was seen"
    assert row.status == "computed" and row.parts_taken_over == 1, summary.to_dict("records")   # the lost one
    assert row.parts_resubmitted >= 1 and row.parts_made_by_driver == 0 and not row.error
    assert row.parts_made == row.parts_total                                # each part made once in the end
    a, meta = _single(requests[0], tmp_path / "ray")
    b, _ = _single(requests[0], tmp_path / "single")
    assert a.tobytes() == b.tobytes() and len(set(meta["item_ids"])) == len(meta["item_ids"]) == 96
    assert not list((tmp_path / "ray").rglob("parts"))                      # no claim or part left behind


def test_gpu_workers_go_only_to_gpu_nodes_and_count_gpus(nodes, tmp_path):
    """A node that declares one GPU (the scheduling path runs without a physical GPU): workers asking for a
    GPU are placed there only, one per GPU (not one per CPU), each loading its model once."""
    cluster, _ = nodes
    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    try:
        requests = plan_requests("synthetic_world", ["tiny-vit"], frames=[2], options=OPTS)
        placed = []

        def where(pools):
            placed.extend(ray.get([actor.node.remote() for actor in pools["tiny-vit"]]))

        summary = run_plan(requests, cluster.address, device="cpu", gpus_per_worker=1, cache_dir=tmp_path,
                           progress=False, on_submitted=where)
        row = summary.iloc[0]
        assert placed == [gpu_node.node_id]                      # 3 CPUs in the cluster, 1 GPU: one worker
        assert row.parts_made == row.parts_total and row.nodes == 1 and row.encoder_loads == 1
        with pytest.raises(RequestError, match="2 workers with 1 GPU each need 2 GPUs"):
            run_plan(requests, cluster.address, workers=2, device="cpu", gpus_per_worker=1, cache_dir=tmp_path,
                     progress=False, force=True)
    finally:
        cluster.remove_node(gpu_node)


def test_a_plan_the_cluster_cannot_hold_is_refused_before_anything_starts(nodes, tmp_path):
    cluster, _ = nodes
    requests = plan_requests("synthetic_world", ["tiny-vit"], frames=[2], options=OPTS)
    with pytest.raises(RequestError, match="asks for 1 GPU, but the cluster has no GPU"):
        run_plan(requests, cluster.address, device="cpu", gpus_per_worker=1, cache_dir=tmp_path, progress=False)
    with pytest.raises(RequestError, match="5 workers with one CPU each need 5 CPUs"):
        run_plan(requests, cluster.address, workers=5, device="cpu", cache_dir=tmp_path, progress=False)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())             # no entry, no parts: nothing began
    with pytest.raises(RequestError, match="asks for 1 GPU"):
        sharded_knn(np.eye(8, dtype=np.float32), 2, 2, cluster=cluster.address, gpus_per_shard=1)
