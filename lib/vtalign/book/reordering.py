"""Figure 6 measured live: temporal-reorder negatives on the synthetic world, and on real paragraphs.

The paper's Section 8 protocol (:func:`vtalign.negative_caption_overlaps`): each clip's caption
narrates its events in order; its negative tells the same events in a seeded other order. The
positive score is Eq. 1 between video and positive captions; for the negative score, clip i's
text neighbours are the positive captions of *other* clips nearest to its negative. Here both
are kept per item, so their difference gets a bootstrap interval over items and a sign-flip
permutation p-value (:func:`vtalign.paired_difference`).

The layer pair is the one that maximises the *mean* of the positive and negative scores: choosing
it on the positives alone would favour them (the maximum of noisy scores is biased upwards) and
make even an order-blind model look order-sensitive.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..alignment import knn_indices, layer_neighbours, prepare_features, sweep_overlaps
from ..extract.cache import common_items
from ..extract.datasets import load_dataset
from ..extract.features import extract_features
from ..pooling import pool_frames
from ..stats import paired_difference

__all__ = ["negative_neighbours", "negative_table", "probe_ranks", "reorder_distances"]


def negative_neighbours(positive: np.ndarray, negative: np.ndarray, k: int, backend: str = "auto") -> np.ndarray:
    """Per layer, each item's k nearest *positive* captions of other items to its negative caption:
    prepared [N, L, D] x [N, L, D] -> int64 [L, N, k]."""
    return np.stack([knn_indices(positive[:, layer], k, backend, queries=negative[:, layer])
                     for layer in range(positive.shape[1])])


def negative_table(dataset_options: dict | None, vision_model: str, poolings, text_models, cached_frames: int = 16,
                   k: int = 5, reorder_seed: int = 0, caption_seed: int = 0, n_boot: int = 10000,
                   n_permutations: int = 10000, seed: int = 0, per_layer: bool | None = None,
                   backend: str = "auto", progress: bool = True) -> pd.DataFrame:
    """Figure 6 on the synthetic world: for each (pooling of ``vision_model``, text model), the alignment
    with narrated captions and with their reordered negatives, at the layer pair maximising their mean.

    Columns: vision, text, layer_x, layer_y, positive, negative, difference, ci_low, ci_high, p_value,
    null_low, null_high, within_null (the difference inside the central 95% of its permutation null),
    n_items, k.
    """
    base = {**(dataset_options or {}), "caption_style": "narrated"}
    positives = load_dataset("synthetic_world", **base)
    negatives = load_dataset("synthetic_world", **base, reorder_seed=reorder_seed)
    per_frame, meta = extract_features(positives, vision_model, frames=cached_frames, mode="frames", progress=progress)
    sides = {}
    for text in text_models:
        pos = extract_features(positives, text, captions=1, seed=caption_seed, progress=progress)
        neg = extract_features(negatives, text, captions=1, seed=caption_seed, progress=progress)
        (_, m), pos, neg = common_items([(per_frame, meta), pos, neg])
        if len(m["item_ids"]) != len(meta["item_ids"]):
            raise ValueError(f"{text}: positives and negatives cover different clips; re-extract both.")
        prep = [prepare_features(f, layer_dims=mm.get("layer_dims"), per_layer=per_layer) for f, mm in (pos, neg)]
        sides[text] = (layer_neighbours(prep[0], k, backend), negative_neighbours(*prep, k, backend))
    rows = []
    for pooling in poolings:
        pooled, dims = pool_frames(per_frame, meta["layer_dims"], pooling)
        video = layer_neighbours(prepare_features(pooled, layer_dims=dims, per_layer=per_layer), k, backend)
        for text, (pos_nb, neg_nb) in sides.items():
            pos_ov, neg_ov = sweep_overlaps(video, pos_nb, backend), sweep_overlaps(video, neg_nb, backend)
            mean_score = (pos_ov.mean(axis=2) + neg_ov.mean(axis=2)) / 2
            i, j = np.unravel_index(np.argmax(mean_score), mean_score.shape)  # first maximum: lowest layers
            d = paired_difference(pos_ov[i, j] / k, neg_ov[i, j] / k, n_boot=n_boot, n_permutations=n_permutations,
                                  seed=seed)
            rows.append(dict(vision=f"{vision_model} | {pooling}", text=text, layer_x=int(i), layer_y=int(j),
                             positive=d.mean_a, negative=d.mean_b, difference=d.difference, ci_low=d.ci_low,
                             ci_high=d.ci_high, p_value=d.p_value, null_low=d.null_low, null_high=d.null_high,
                             within_null=bool(d.null_low <= d.difference <= d.null_high), n_items=d.n, k=k))
    return pd.DataFrame(rows)


def probe_ranks(anchors: np.ndarray, probes: np.ndarray, groups=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each probe text (a counterfactual, a shuffled control, a paraphrase) ranks among the other anchors
    as a neighbour of its own anchor (a caption).

    anchors, probes : [N, D] unit rows (prepared features of one layer), probe i paired with anchor i.
    groups : optional [N] labels; anchors sharing anchor i's label (e.g. the same caption text twice) are not
        "other" anchors for i. Default: every anchor its own group.

    With s_i = a_i . p_i (cosine, computed in float64), the rank of probe i is
    ``1 + #{j : group_j != group_i, a_i . a_j >= s_i}``: 1 when the probe is nearer to its anchor than every
    other anchor; a tie counts against the probe. Returns (rank int64 [N], probe distance 1 - s_i [N],
    distance to the nearest other anchor [N]; +inf where there is none).

    >>> anchors = np.array([[1.0, 0], [0.8, 0.6], [0, 1.0]])
    >>> probes = np.array([[0.6, 0.8], [0.8, 0.6], [0.8, 0.6]])   # probe 0: anchor 1 is nearer to anchor 0
    >>> rank, d, nearest = probe_ranks(anchors, probes)         # probe 2 ties with anchor 1: counted against it
    >>> rank.tolist(), np.round(d, 2).tolist(), np.round(nearest, 2).tolist()
    ([2, 1, 2], [0.4, 0.0, 0.4], [0.2, 0.2, 0.4])
    >>> probe_ranks(anchors, probes, groups=[0, 0, 1])[0].tolist()   # anchors 0 and 1 one group: not "other"
    [1, 1, 2]
    """
    a, p = np.asarray(anchors, dtype=np.float64), np.asarray(probes, dtype=np.float64)
    if a.ndim != 2 or a.shape != p.shape:
        raise ValueError(f"anchors and probes must be paired [N, D] arrays, got {a.shape} and {p.shape}.")
    groups = np.arange(len(a)) if groups is None else np.asarray(groups)
    if groups.shape != (len(a),):
        raise ValueError(f"groups must have one label per anchor ({len(a)}), got shape {groups.shape}.")
    own = (a * p).sum(1)
    sim = a @ a.T
    sim[groups[:, None] == groups[None, :]] = -np.inf
    rank = 1 + (sim >= own[:, None]).sum(1)
    nearest = 1 - sim.max(1) if len(a) > 1 else np.full(len(a), np.inf)
    return rank.astype(np.int64), 1 - own, nearest


def reorder_distances(source: str, text_models, n_items: int | None = 128, reorder_seed: int = 0,
                      sample_seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """How far a text model moves a real paragraph (ActivityNet / YouCook2 events, VideoComp-style) when
    its events are reordered, against how far the nearest *other* paragraph is, per layer.

    Distances are 1 - cosine of prepared features. Columns: source, model, layer, median_reorder,
    median_nearest_other, median_ratio (per paragraph: reorder / nearest-other), share_closer (share of
    paragraphs whose reordering stays closer than any other paragraph), n_items.
    """
    options = dict(source=source, n_items=n_items, sample_seed=sample_seed, seed=reorder_seed)
    pos_ds, neg_ds = (load_dataset("videocomp", **options, text=t) for t in ("positive", "negative"))
    rows = []
    for model in text_models:
        (fp, mp), (fn, mn) = common_items([extract_features(ds, model, captions=1, progress=progress)
                                           for ds in (pos_ds, neg_ds)])
        p = prepare_features(fp, layer_dims=mp.get("layer_dims")).astype(np.float64)
        n = prepare_features(fn, layer_dims=mn.get("layer_dims")).astype(np.float64)
        for layer in range(p.shape[1]):
            rank, reorder, nearest = probe_ranks(p[:, layer], n[:, layer])
            ratio = reorder / np.maximum(nearest, 1e-12)
            rows.append(dict(source=source, model=model, layer=layer, median_reorder=float(np.median(reorder)),
                             median_nearest_other=float(np.median(nearest)), median_ratio=float(np.median(ratio)),
                             share_closer=float((rank == 1).mean()), n_items=len(rank)))
    return pd.DataFrame(rows)
