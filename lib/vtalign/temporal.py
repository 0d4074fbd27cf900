"""Temporal probes: alignment against temporally reordered captions (VideoComp, Figure 6)."""
from __future__ import annotations

import numpy as np

from .alignment import knn_indices, neighbour_overlap
from .checks import as_features, check_k, check_same_n

__all__ = ["negative_caption_alignment", "negative_caption_overlaps"]


def negative_caption_alignment(video, positive, negative, k: int = 5,
                               backend: str = "auto") -> tuple[float, float]:
    """Alignment with positive captions, and with temporally reordered negatives (section 8).

    video : [N, p] video features; positive : [N, q] features of each video's caption;
    negative : [N, q] features of the same events described in another order.

    positive score: Eq. 1 between ``video`` and ``positive``.
    negative score: the text-side neighbours of item i become the k positive
    captions of *other* videos nearest to the negative caption of video i
    (``knn_indices(positive, k, queries=negative)``); the video side is unchanged.
    A representation blind to event order scores the same on both.

    Returns (positive_score, negative_score).

    >>> rng = np.random.default_rng(0); v = rng.normal(size=(30, 4))
    >>> negative_caption_alignment(v, 2 * v, 2 * v, k=3)   # order-blind text: no drop
    (1.0, 1.0)
    """
    pos, neg = negative_caption_overlaps(video, positive, negative, k, backend)
    return float(pos.mean() / k), float(neg.mean() / k)


def negative_caption_overlaps(video, positive, negative, k: int = 5,
                              backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Per item, the neighbours the video side shares with the positive and with the negative text side:
    int arrays [N] in 0..k (see :func:`negative_caption_alignment`, whose scores are their means / k).

    >>> v = np.eye(4)[[0, 0, 1, 1, 2, 2, 3, 3]] + 0.01 * np.arange(8)[:, None]
    >>> negative_caption_overlaps(v, v, v[::-1], k=1)[0].tolist()
    [1, 1, 1, 1, 1, 1, 1, 1]
    """
    tv, tp, tn = (as_features(a, name, 2) for a, name in
                  ((video, "video"), (positive, "positive"), (negative, "negative")))
    check_same_n(tv.shape[0], tp.shape[0])
    check_same_n(tv.shape[0], tn.shape[0])
    k = check_k(k, tv.shape[0])
    iv = knn_indices(tv, k, backend)
    ipos = knn_indices(tp, k, backend)
    ineg = knn_indices(tp, k, backend, queries=tn)
    return neighbour_overlap(iv, ipos), neighbour_overlap(iv, ineg)
