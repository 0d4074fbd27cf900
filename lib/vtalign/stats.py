"""What a mutual k-NN score means: chance level, permutation null, bootstrap interval.

All three work from neighbour lists computed once (:mod:`vtalign.alignment`):
shuffling the pairing relabels the text side's lists instead of searching
again, and a bootstrap resamples per-item overlaps. When the reported score is
the best over layer pairs, the null and the bootstrap take the same maximum in
every draw, so the selection is part of the statistic being tested.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .alignment import (
    SweepResult,
    _layer_neighbours,
    resolve_backend,
    sweep_from_neighbours,
    sweep_overlaps,
)
from .checks import InsufficientData, as_features, check_k, check_same_n

__all__ = [
    "PairedDifference",
    "paired_difference",
    "chance_level",
    "versus_chance",
    "permutation_test",
    "bootstrap_ci",
    "PermutationResult",
    "BootstrapResult",
    "relabel_neighbours",
]


def chance_level(n: int, k: int) -> float:
    """Expected mutual k-NN score of two independent spaces: ``k / (N - 1)``.

    Each of an item's k neighbours in one space is, by chance, among its k
    neighbours in the other with probability k / (N - 1).

    >>> round(chance_level(1024, 10), 5)
    0.00978
    """
    k = check_k(k, n)
    return k / (n - 1)


def versus_chance(scores, n_items, score: str = "alignment"):
    """``scores`` (a DataFrame with a ``k`` column and a ``score`` column) with ``chance`` =
    k / (N - 1) and ``times_chance`` = score / chance added. ``n_items``: N, or the name of a
    column holding each row's N.

    >>> import pandas as pd
    >>> versus_chance(pd.DataFrame(dict(k=[1, 3], alignment=[0.5, 0.6])), 181).round(3).values.tolist()
    [[1.0, 0.5, 0.006, 90.0], [3.0, 0.6, 0.017, 36.0]]
    """
    n = scores[n_items] if isinstance(n_items, str) else [n_items] * len(scores)
    chance = [chance_level(int(ni), int(k)) for ni, k in zip(n, scores.k)]
    out = scores.assign(chance=chance)
    return out.assign(times_chance=out[score] / out.chance)


def relabel_neighbours(neighbours: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Neighbour lists of ``f[perm]`` from those of ``f``, without a new search.

    neighbours : [..., N, k] lists of ``f``; perm : [N] permutation.
    Row i of ``f[perm]`` is old item ``perm[i]``; old index j is new index ``inv[j]``.
    Identical to searching ``f[perm]`` again except where several items tie
    at the k-th place (the lower-index rule then sees the new indices).
    """
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size)
    return inv[neighbours[..., perm, :]]


def _as_sweep(x, y, k: int, backend: str) -> SweepResult:
    """Neighbour lists and overlaps for [N, D] pairs (one layer) or [N, L, D] sweeps."""
    tx, ty = as_features(x, "x", (2, 3)), as_features(y, "y", (2, 3))
    if tx.ndim != ty.ndim:
        raise ValueError(
            f"x and y must both be [N, D] or both [N, L, D], got shapes {tuple(tx.shape)} and {tuple(ty.shape)}."
        )
    check_same_n(tx.shape[0], ty.shape[0])
    k = check_k(k, tx.shape[0])
    if tx.ndim == 2:
        tx, ty = tx[:, None, :], ty[:, None, :]
    bx = resolve_backend(backend, tx.shape[0], tx.device, tx.shape[2])  # chosen once per space
    by = resolve_backend(backend, ty.shape[0], ty.device, ty.shape[2])
    return sweep_from_neighbours(_layer_neighbours(tx, k, bx), _layer_neighbours(ty, k, by), bx)


@dataclass(frozen=True)
class PermutationResult:
    """observed: the score (best over layer pairs for sweeps); null: the same statistic
    for each shuffled pairing; p_value: (1 + #null >= observed) / (1 + n_permutations);
    chance: k / (N - 1)."""

    observed: float
    null: np.ndarray
    p_value: float
    chance: float

    @property
    def null_mean(self) -> float:
        return float(self.null.mean())


def permutation_test(x, y, k: int = 10, n_permutations: int = 1000, seed: int = 0,
                     backend: str = "auto", sweep: SweepResult | None = None) -> PermutationResult:
    """Permutation null of mutual k-NN alignment: shuffle which y goes with which x.

    x, y : [N, D] single layers, or [N, L, D] for a layer sweep, whose statistic
        is the maximum over all layer pairs, in the observed data and in every
        shuffle alike.
    sweep : optionally a :class:`SweepResult` already computed for (x, y); then
        x and y are not searched again (pass ``None`` for both).

    >>> rng = np.random.default_rng(0)
    >>> r = permutation_test(rng.normal(size=(60, 5)), rng.normal(size=(60, 5)), k=5, n_permutations=200)
    >>> r.p_value > 0.05
    True
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}.")
    s = sweep if sweep is not None else _as_sweep(x, y, k, backend)
    n = s.n_items
    rng = np.random.default_rng(seed)
    null = np.empty(n_permutations)
    for p in range(n_permutations):
        perm = rng.permutation(n)
        overlaps = sweep_overlaps(s.neighbours_x, relabel_neighbours(s.neighbours_y, perm))
        null[p] = (overlaps.mean(axis=2) / s.k).max()
    observed = s.best[2]
    p_value = (1 + int((null >= observed).sum())) / (1 + n_permutations)
    return PermutationResult(observed, null, p_value, s.k / (n - 1))


@dataclass(frozen=True)
class BootstrapResult:
    """estimate: the score on all items; low/high: percentile interval; samples: every draw."""

    estimate: float
    low: float
    high: float
    confidence: float
    samples: np.ndarray


def bootstrap_ci(x, y, k: int = 10, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0,
                 backend: str = "auto", sweep: SweepResult | None = None,
                 reselect: bool = False) -> BootstrapResult:
    """Bootstrap interval of the alignment score over items.

    Items are resampled with replacement and the score is the mean of their
    per-item overlaps / k. Neighbour lists stay those of the full set:
    re-searching a resample would make each duplicated item its own nearest
    neighbour. The interval therefore reflects which items were sampled, given
    their neighbourhoods.

    For sweeps the score is that of the best layer pair chosen on all items
    (``reselect=False``, the default). ``reselect=True`` re-chooses the best
    pair in every draw; the maximum of noisy means is biased upwards, so that
    interval can lie entirely above the estimate (on 1024 random items and
    33 x 43 layers it does).
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    s = sweep if sweep is not None else _as_sweep(x, y, k, backend)
    n = s.n_items
    rng = np.random.default_rng(seed)
    per_item = s.overlaps.reshape(-1, n).astype(np.float64) / s.k  # [pairs, N]
    if not reselect:
        i, j, _ = s.best
        per_item = per_item[i * s.overlaps.shape[1] + j][None]
    samples = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, size=n)
        samples[b] = per_item[:, idx].mean(axis=1).max()
    alpha = (1 - confidence) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha])
    return BootstrapResult(s.best[2], float(low), float(high), confidence, samples)


@dataclass(frozen=True)
class PairedDifference:
    """mean of a - b over paired items, its bootstrap interval (ci_low, ci_high) at ``confidence``,
    and the two-sided sign-flip permutation p-value (1 + #|null| >= |mean|) / (1 + n_permutations)."""

    n: int
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    null_low: float
    null_high: float
    confidence: float

    def as_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def paired_difference(a, b, n_boot: int = 10000, n_permutations: int = 10000, confidence: float = 0.95,
                      seed: int = 0) -> PairedDifference:
    """Is the mean of ``a`` different from that of ``b``, item by item?

    a, b : [N] paired per-item scores (e.g. overlaps with positive and with negative captions).
    The interval resamples items with replacement; the null swaps a and b within each item with
    probability 1/2 (sign flips of the differences), which is exact when neither is preferred.
    ``null_low`` / ``null_high`` bound the central ``confidence`` share of that null.

    >>> r = paired_difference([3, 4, 5, 6], [3, 4, 5, 6], n_boot=100, n_permutations=100)
    >>> r.difference, r.p_value
    (0.0, 1.0)
    """
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a.size != b.size:
        raise ValueError(f"a and b must be paired (same length), got {a.size} and {b.size}.")
    if a.size < 2:
        raise InsufficientData(f"A paired difference needs at least 2 items, got {a.size}.")
    d = a - b
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    null = (d * rng.choice((-1.0, 1.0), size=(n_permutations, d.size))).mean(axis=1)
    q = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [q, 1 - q])
    null_lo, null_hi = np.quantile(null, [q, 1 - q])
    p = (1 + int((np.abs(null) >= abs(d.mean()) - 1e-12).sum())) / (1 + n_permutations)
    return PairedDifference(int(d.size), float(a.mean()), float(b.mean()), float(d.mean()), float(lo), float(hi),
                            float(p), float(null_lo), float(null_hi), confidence)
