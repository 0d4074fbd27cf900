"""Live measurements: features from :func:`vtalign.extract.extract_features` scored with the alignment core.

Each function extracts (or finds cached) the features it needs, prepares them as the
reference pipeline does (clamp at the 0.95 quantile, L2-normalise; padding of narrower
layers excluded), computes every setting's per-layer neighbour lists once and scores all
layer pairs, reporting the best pair as the paper does.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..alignment import layer_neighbours, prepare_features, sweep_from_neighbours
from ..extract.cache import common_items, pair_features
from ..extract.datasets import load_dataset
from ..extract.encoders import encoder_identity
from ..extract.features import extract_features
from ..extract.sampling import frame_indices
from ..extract.synthetic import test_of_time_events
from ..pooling import frame_positions, pool_frames
from ..stats import chance_level, permutation_test

__all__ = ["prepared", "common_items", "video_features", "scaling_grid", "cache_size", "shuffled_floor", "tot_events",
           "order_sensitivity", "temporal_probe", "near_perfect_pairs"]


def prepared(features: np.ndarray, meta: dict, q: float = 0.95, per_layer: bool | None = None) -> np.ndarray:
    """Reference-pipeline preparation of extracted features [N, L, D] (see :func:`prepare_features`)."""
    return prepare_features(features, q=q, layer_dims=meta.get("layer_dims"), per_layer=per_layer)


def video_features(ds, model: str, n_frames: int, mode: str = "video", cached_frames: int | None = 16,
                   progress: bool = True) -> tuple[np.ndarray, dict]:
    """``(features [N, L, D], meta)`` of ``model`` on ``n_frames`` frames, as ``extract_features`` gives them.

    An image model averaging frames (``mode="video"``) is pooled from its per-frame entry of
    ``cached_frames`` frames (``mode="frames"``, made once and shared by every frame count and pooling)
    when that entry holds exactly the frames the sampling rule picks for ``n_frames`` on every item
    (for the synthetic world's 32 frames and 16 cached: 1, 2, 4 and 16 frames); otherwise, or with
    ``cached_frames=None``, the ``n_frames`` frames are extracted directly.
    """
    if mode == "video" and cached_frames and n_frames <= cached_frames and encoder_identity(model)[0] == "image":
        positions = frame_positions(cached_frames, n_frames)
        try:
            lengths = {it.video.num_frames() for it in ds.items if it.video is not None}
        except Exception:  # an unreadable video: the direct extraction reports it with the others
            lengths = set()
        if lengths and all(np.array_equal(frame_indices(t, cached_frames)[positions], frame_indices(t, n_frames))
                           for t in lengths):
            per_frame, meta = extract_features(ds, model, frames=cached_frames, mode="frames", progress=progress)
            pooled, dims = pool_frames(per_frame, meta["layer_dims"], f"mean:{n_frames}")
            request = {**meta["request"], "mode": "video", "frames": n_frames, "pooled_from_frames": cached_frames}
            return pooled, {**meta, "request": request, "layer_dims": dims, "shape": list(pooled.shape)}
    return extract_features(ds, model, frames=n_frames, mode=mode, progress=progress)


def scaling_grid(dataset: str, vision_model: str, text_model: str, frames, captions, k: int = 10,
                 mode: str = "video", seed: int = 0, dataset_options: dict | None = None,
                 backend: str = "auto", label: str | None = None, progress: bool = True,
                 per_layer: bool | None = None, cached_frames: int | None = 16, return_items: bool = False):
    """Best-layer-pair alignment for every (n_frames, n_captions): the live Figure 3 grid.

    ``per_layer``: the clamp rule of :func:`vtalign.prepare_features` (default: per layer for CNNs).
    ``cached_frames``: frame counts that the per-frame entry covers are pooled from it (see
    :func:`video_features`); the entry holds ``min(cached_frames, max(frames))`` frames, never more than
    the grid asks for; ``None`` extracts every frame count directly.

    Returns one row per cell: model, n_frames, n_captions, score, layer_x, layer_y, n_items, k. With
    ``return_items``, also each cell's per-item scores (overlap / k at its chosen layer pair) as a
    [cells, N] array in the rows' order, the same items in every cell (for paired intervals,
    :func:`vtalign.scaling.grid_draws`).
    """
    ds = load_dataset(dataset, **(dataset_options or {}))
    cached = cache_size(frames, cached_frames)
    video = {nf: video_features(ds, vision_model, nf, mode, cached, progress) for nf in frames}
    text = {nc: extract_features(ds, text_model, captions=nc, seed=seed, progress=progress) for nc in captions}
    keys = [("v", nf) for nf in frames] + [("t", nc) for nc in captions]
    aligned = dict(zip(keys, common_items([video[nf] for nf in frames] + [text[nc] for nc in captions])))
    neighbours = {key: layer_neighbours(prepared(*aligned[key], per_layer=per_layer), k, backend) for key in keys}
    rows, items = [], []
    for nf in frames:
        for nc in captions:
            sweep = sweep_from_neighbours(neighbours[("v", nf)], neighbours[("t", nc)], backend)
            i, j, score = sweep.best
            items.append(sweep.overlaps[i, j] / sweep.k)
            rows.append(dict(model=label or f"{vision_model} x {text_model}", n_frames=nf, n_captions=nc,
                             score=score, layer_x=i, layer_y=j,
                             n_items=len(aligned[("v", nf)][1]["item_ids"]), k=k))
    return (pd.DataFrame(rows), np.stack(items)) if return_items else pd.DataFrame(rows)


def near_perfect_pairs(scores: pd.DataFrame, k: int = 3, threshold: float = 0.9) -> tuple[int, int]:
    """Figure 5's "most pairs near-perfect": of the frame-averaged video rows at ``k`` of
    :func:`temporal_probe`'s scores, how many reach ``threshold`` alignment, and how many there are."""
    at = scores[(scores["mode"] == "video") & (scores.k == k)]
    return int((at.alignment >= threshold).sum()), len(at)


def cache_size(frames, cached_frames: int | None = 16) -> int | None:
    """How many frames a grid's per-frame entry holds: no more than the largest count asked for, so frames
    [1, 2, 4] read one 4-frame entry (``None``: no entry, every count extracted directly). A null at one cell of
    the grid passes it on, so it reads the grid's entry instead of making another.

    >>> cache_size([1, 2, 4]), cache_size([1, 32]), cache_size([4], None)
    (4, 16, None)
    """
    return min(cached_frames, max(frames)) if cached_frames else None


def shuffled_floor(dataset: str, vision_model: str, text_model: str, frames: int, captions: int, k: int = 10,
                   n_permutations: int = 200, mode: str = "video", seed: int = 0,
                   dataset_options: dict | None = None, cached_frames: int | None = 16):
    """Permutation null (shuffled video-caption pairing, max over layer pairs) at one grid cell; pass the grid's
    :func:`cache_size` as ``cached_frames`` to read the grid's per-frame entry."""
    ds = load_dataset(dataset, **(dataset_options or {}))
    fv, mv = video_features(ds, vision_model, frames, mode, cached_frames)
    ft, mt = extract_features(ds, text_model, captions=captions, seed=seed, progress=True)
    fv, ft, _ = pair_features(fv, mv, ft, mt)
    return permutation_test(prepared(fv, mv), prepared(ft, mt), k=k, n_permutations=n_permutations, seed=seed)


def tot_events(item_ids) -> tuple[list[frozenset], list[tuple[str, str]]]:
    """Colour pairs and event orders (first colour, second colour) of Test of Time item ids."""
    pairs, events = zip(*map(test_of_time_events, item_ids)) if len(item_ids) else ((), ())
    return list(pairs), list(events)


def _wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (NaNs when n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def order_sensitivity(neighbours: np.ndarray, item_ids) -> dict:
    """How a representation's nearest neighbours treat event order on Test of Time.

    ``neighbours`` [N, >=1]: each item's nearest neighbour first. Returns the fraction of items whose
    nearest neighbour has the same colour pair (``same_pair``) and, among those, the fraction showing
    the same order of events (``same_order``, with its 95% Wilson interval ``same_order_low`` /
    ``same_order_high`` over those ``n_same_pair`` items). Each item has 3 same-pair items: 1 with
    the same order and 2 with the opposite, so an order-blind representation gives ``same_order``
    near 1/3 and an order-aware one near 1.

    Which of the three it picks, as shares of the same-pair nearest neighbours: ``both_swapped``
    ("c2 after c1" for "c1 before c2": the same event in other words), ``preposition_swap`` ("c1 after
    c2": the reverse event, one word changed) and ``colour_swap`` ("c2 before c1": the reverse event
    with exactly the same words, which a bag of words cannot tell apart).
    """
    pairs, events = tot_events(item_ids)
    words = [tuple(str(i).split("-")[1:]) for i in item_ids]  # (c1, preposition, c2)
    nn = np.asarray(neighbours)[:, 0]
    same_pair = np.array([pairs[i] == pairs[j] for i, j in enumerate(nn)])
    same_order = np.array([events[i] == events[j] for i, j in enumerate(nn)])
    kinds = {"both_swapped": lambda a, b: a[0] == b[2] and a[1] != b[1],
             "preposition_swap": lambda a, b: a[0] == b[0] and a[1] != b[1],
             "colour_swap": lambda a, b: a[0] == b[2] and a[1] == b[1]}
    chosen = [(words[i], words[j]) for i, j in enumerate(nn) if same_pair[i]]
    n_pair = int(same_pair.sum())
    low, high = _wilson(int(same_order[same_pair].sum()), n_pair)
    return {"same_pair": float(same_pair.mean()),
            "same_order": float(same_order[same_pair].mean()) if n_pair else float("nan"),
            "same_order_low": low, "same_order_high": high, "n_same_pair": n_pair,
            **{kind: (sum(rule(a, b) for a, b in chosen) / n_pair if n_pair else float("nan"))
               for kind, rule in kinds.items()}}


def temporal_probe(vision_model: str, text_model: str, frames: int = 8, ks=(1, 2, 3), mode: str = "video",
                   dataset_options: dict | None = None, backend: str = "auto",
                   neighbour_cache: dict | None = None,
                   pooling: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test of Time, regenerated: Figure 5's alignment at each k, and each side's order sensitivity.

    Returns ``(scores, order)``. ``scores``: per k, the best-layer-pair alignment (``aligned``), the
    chance level and the layers. ``order``: :func:`order_sensitivity` of the video and the text
    representation, at the layer the k = min(ks) alignment chose and at the layer most sensitive
    to order (highest ``same_order`` among layers whose nearest neighbour mostly shares the pair).
    ``pooling``: instead of ``mode``, pool ``frames`` per-frame features over time
    (:func:`vtalign.pool_frames`, e.g. ``"segments:2"``, an order-aware pooling); the rows then say
    ``mode="pooled:<pooling>"``.
    ``neighbour_cache``: a dict shared by calls (one per chapter), so each side's per-layer kNN sets
    are searched once, not once per pair. That matters for the first-frame control: its 180 identical
    black frames tie everywhere, and ties are the slow, exact path of the search.
    """
    cache = {} if neighbour_cache is None else neighbour_cache
    ds = load_dataset("test_of_time", **{**(dataset_options or {}), "caption": "true"})
    if pooling:
        per_frame, mv = extract_features(ds, vision_model, frames=frames, mode="frames", progress=True)
        pooled, dims = pool_frames(per_frame, mv["layer_dims"], pooling)
        fv, mode = pooled, f"pooled:{pooling}"
        mv = {**mv, "layer_dims": dims, "request": {**mv["request"], "mode": "video"}}
    else:  # a frame average of an image model is pooled from the per-frame entry the order check also reads
        fv, mv = video_features(ds, vision_model, frames, mode, cached_frames=frames)
    ft, mt = extract_features(ds, text_model, captions=1, progress=True)
    (fv, mv), (ft, mt) = common_items([(fv, mv), (ft, mt)])
    pv, pt = prepared(fv, mv), prepared(ft, mt)
    ids = mv["item_ids"]
    n_frames = mv["request"]["frames"]  # the request builder's rule: an image model in image mode sees 1
    # One search per (side, k); k = 1 also gives each item's nearest neighbour for order_sensitivity.
    options = json.dumps(dataset_options or {}, sort_keys=True)

    def searched(side_key, prepared_features, k):
        key = (*side_key, options, tuple(ids), k, backend)  # the same rows: items common to both sides
        if key not in cache:
            cache[key] = layer_neighbours(prepared_features, k, backend)
        return cache[key]

    neighbours = {k: (searched((vision_model, mode, n_frames), pv, k), searched((text_model, "text"), pt, k))
                  for k in {*ks, 1}}
    rows, chosen = [], None
    for k in sorted(ks):
        i, j, score = sweep_from_neighbours(*neighbours[k], backend).best
        chosen = chosen or (i, j)
        rows.append(dict(vision=vision_model, frames=n_frames, mode=mode, text=text_model, k=k,
                         aligned=score, chance=chance_level(len(pv), k), layer_x=i, layer_y=j, n_items=len(pv)))
    order = []
    video_side = f"video ({n_frames} frames, {mode})"
    for model, side, nearest, layer in ((vision_model, video_side, neighbours[1][0], chosen[0]),
                                        (text_model, "text", neighbours[1][1], chosen[1])):
        per_layer = [order_sensitivity(nb, ids) for nb in nearest]
        candidates = [l for l, r in enumerate(per_layer) if r["same_pair"] >= 0.5] or list(range(len(per_layer)))
        most = max(candidates, key=lambda l: (per_layer[l]["same_order"], -l))
        for which, l in (("aligned layer", layer), ("most order-aware layer", most)):
            order.append(dict(model=model, side=side, which=which, layer=l, **per_layer[l]))
    return pd.DataFrame(rows), pd.DataFrame(order)
