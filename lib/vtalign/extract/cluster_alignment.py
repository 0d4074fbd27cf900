"""Alignment at scale on Ray: a plan of layer sweeps over cached features, and exact kNN with the
database sharded over workers.

Both follow the rule of the measurement core: per-representation work is done once and reused.

- :func:`sweep_plan`: every representation's neighbour lists per layer are one Ray task (on a GPU
  when the cluster has one), every pair's layer sweep another task that receives those lists;
  a full Figure 10 of R representations costs R searches and R (R - 1) / 2 overlap counts.
- :func:`sharded_knn`: the database is split into contiguous shards, each a Ray task that returns
  its exact top k with the fp64 cosines that decided them (:func:`vtalign.knn.shard_neighbours`);
  :func:`vtalign.knn.merge_neighbours` sorts the union by cosine, ties by lower index, so the answer
  equals the unsharded search on every row.

The features come from the cache (:mod:`vtalign.extract.store`), which every node must see; make
them first with :func:`vtalign.extract.cluster.run_plan` (the same requests).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..alignment import layer_neighbours, prepare_features, sweep_from_neighbours
from ..checks import as_features
from ..checks import check_k as check_k_of_features
from ..knn import resolve_backend, shard_neighbours, sharded_knn_search
from ..stats import chance_level
from .cache import load_request
from .cluster import connect, plan_workers
from .request import FeatureRequest
from .validation import check_k

__all__ = ["sweep_plan", "sharded_knn"]


def _gpus_for_tasks(ray, gpus: float | None) -> float:
    """GPU share a task asks for: the given one, else 1 when the cluster has GPUs, else 0. Asking for more
    than the cluster has is a :class:`~vtalign.extract.errors.RequestError` before any task starts (Ray
    would keep the tasks pending for GPUs that never come)."""
    if gpus is None:
        return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    if gpus:
        plan_workers(ray.cluster_resources(), 1, gpus, what="task")
    return gpus


def _neighbours_of(request: FeatureRequest, k: int, q: float, backend: str, cache_dir) -> tuple[list, np.ndarray]:
    """One representation's item ids and kNN sets per layer [L, N, k], after the reference preparation."""
    feats, meta = load_request(request, cache_dir)
    t = torch.from_numpy(feats)
    if torch.cuda.is_available():
        t = t.cuda()
    prepared = prepare_features(t, q=q, layer_dims=meta.get("layer_dims"))
    return list(meta["item_ids"]), layer_neighbours(prepared, k, backend, name=request.model)


def _sweep(nx: np.ndarray, ny: np.ndarray, backend: str) -> dict:
    result = sweep_from_neighbours(nx, ny, backend)
    i, j, score = result.best
    return dict(score=score, layer_x=i, layer_y=j, scores=result.scores)


def _label(r: FeatureRequest) -> str:
    return f"{r.model} (frames={r.frames}, captions={r.captions})"


def sweep_plan(requests: list[FeatureRequest], k: int = 10, pairs: str = "cross", cluster: str = "local",
               backend: str = "auto", q: float = 0.95, gpus_per_task: float | None = None,
               cache_dir=None) -> pd.DataFrame:
    """Best-layer-pair alignment of many pairs of cached representations, as Ray tasks.

    requests : the representations (cache entries; make them first with ``run_plan``)
    pairs : ``"cross"`` every video/image representation with every text one (Figures 2 and 3);
        ``"all"`` every two distinct representations (Figure 10)
    k, q, backend : as :func:`vtalign.layer_sweep` and :func:`vtalign.prepare_features`

    Returns one row per pair: x, y (labels), model_x, model_y, frames, captions, score, layer_x,
    layer_y, n_items, k, chance; and ``.attrs["scores"]`` maps each (x, y) to its [Lx, Ly] matrix.
    All representations must hold the same items in the same order (a sweep pairs rows by position).
    """
    if pairs not in ("cross", "all"):
        raise ValueError(f"pairs must be 'cross' or 'all', got {pairs!r}.")
    reps = list(dict.fromkeys(requests))
    for r in reps:
        check_k(k, len(r.data), f"dataset {r.dataset}")  # before any work
    if pairs == "cross":
        text = [r for r in reps if r.side == "text"]
        video = [r for r in reps if r not in text]
        todo = [(a, b) for a in video for b in text]
    else:
        todo = [(reps[a], reps[b]) for a in range(len(reps)) for b in range(a + 1, len(reps))]
    if not todo:
        raise ValueError(f"No pairs to sweep: {pairs!r} needs " + ("a video and a text representation."
                                                                    if pairs == "cross" else "two representations."))
    ray = connect(cluster)
    gpus = _gpus_for_tasks(ray, gpus_per_task)
    # two results per search: the item ids (small, fetched here) and the lists (left in Ray's object
    # store; each sweep task gets them from wherever the search ran)
    neighbours_task = ray.remote(num_gpus=gpus, max_retries=3, num_returns=2)(_neighbours_of)
    sweep_task = ray.remote(max_retries=3)(_sweep)
    found = {r: neighbours_task.remote(r, k, q, backend, cache_dir) for r in reps}
    ids = {r: ray.get(found[r][0]) for r in reps}
    first = reps[0]
    differ = [_label(r) for r in reps if ids[r] != ids[first]]
    if differ:
        raise ValueError(f"These representations hold other items (or another order) than {_label(first)}: "
                         f"{differ}. A sweep pairs items by position; re-extract them on the same items "
                         "(failures skipped on one side change the item set).")
    sweeps = [sweep_task.remote(found[a][1], found[b][1], backend) for a, b in todo]
    rows, matrices = [], {}
    n = len(ids[first])
    for (a, b), res in zip(todo, ray.get(sweeps)):
        rows.append(dict(x=_label(a), y=_label(b), model_x=a.model, model_y=b.model, frames=a.frames,
                         captions=b.captions, score=res["score"], layer_x=res["layer_x"], layer_y=res["layer_y"],
                         n_items=n, k=k, chance=chance_level(n, k)))
        matrices[(_label(a), _label(b))] = res["scores"]
    out = pd.DataFrame(rows)
    out.attrs["scores"] = matrices
    return out


def sharded_knn(x, k: int, n_shards: int, queries=None, backend: str = "auto", cluster: str = "local",
                gpus_per_shard: float | None = None) -> np.ndarray:
    """Exact kNN of every row of ``queries`` (default: of ``x``, excluding itself) with the database
    ``x`` [N, D] split into ``n_shards`` contiguous shards, each searched by a Ray task and merged.

    Identical to :func:`vtalign.knn_indices` (nearest first, ties -> lower index) on every input; each
    shard holds at least k + 1 rows. Returns int64 [Nq, k].
    """
    t = as_features(x, "x", 2)
    k = check_k_of_features(k, t.shape[0])
    qt = None if queries is None else as_features(queries, "queries", 2)
    resolve_backend(backend)
    ray = connect(cluster)
    gpus = _gpus_for_tasks(ray, gpus_per_shard)
    task = ray.remote(num_gpus=gpus, max_retries=3)(_shard_task)

    shared = ray.put(t if qt is None else qt)  # every shard searches the same queries: ship them once

    def run_on_ray(tasks):  # each task's args: (shard, queries, k, first, backend)
        return ray.get([task.remote(args[0], shared, *args[2:]) for _, args in tasks])

    return sharded_knn_search(t, qt, k, backend, n_shards, run_shards=run_on_ray).numpy()


def _shard_task(shard: torch.Tensor, queries: torch.Tensor, k: int, first: int, backend: str):
    """One shard on whatever device this worker has; the backend resolved here (``auto`` may differ
    between workers, and every backend gives the same answer)."""
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    s, q = shard.to(device), queries.to(device)
    values, indices = shard_neighbours(s, q, k, first, resolve_backend(backend, s.shape[0], device, s.shape[1]))
    return values.cpu(), indices.cpu()
