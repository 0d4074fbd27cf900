"""Input validation shared by the measurement modules (alignment, stats, temporal).

Every public function checks its arguments here once and raises ``ValueError`` naming the
problem and what to do: wrong type or shape, NaN or infinite values, k out of range, spaces
of different N.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = ["as_features", "check_k", "check_same_n", "InsufficientData"]


class InsufficientData(ValueError):
    """The input is valid but too small for this analysis (too few points for a fit, a constant
    variable for a correlation). Chapters catch it, show what else they computed and say which
    parameters would enable the analysis; other ``ValueError`` s are real errors."""


def as_features(x, name: str, ndim: int | Sequence[int]) -> torch.Tensor:
    """Convert ``x`` to a float torch tensor on CPU-or-its-device, checking shape and values."""
    ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"{name} must be numeric, got dtype {x.dtype}.")
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        raise ValueError(
            f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}."
        )
    if t.ndim not in ndims:
        shapes = " or ".join({2: "[N, D]", 3: "[N, L, D]"}[d] for d in ndims)
        raise ValueError(f"{name} must have shape {shapes}, got shape {tuple(t.shape)}.")
    if t.is_complex():
        raise ValueError(f"{name} must be real-valued, got dtype {t.dtype}.")
    if t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    # a finite sum proves every value finite (inf or NaN would propagate); only an
    # overflowing sum of large finite values needs the element-wise check
    if not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s); clean or drop those "
            "items (in both spaces, keeping them paired) before measuring alignment."
        )
    if t.shape[-1] == 0:
        raise ValueError(f"{name} has feature dimension 0.")
    return t


def check_k(k, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer, got {k!r}.")
    k = int(k)
    if not 1 <= k < n:
        raise ValueError(
            f"k must satisfy 1 <= k < N (an item has N-1 other items), got k={k} with N={n}."
        )
    return k


def check_same_n(nx: int, ny: int) -> None:
    if nx != ny:
        raise ValueError(
            f"The two spaces must hold the same N paired items, got N={nx} and N={ny}."
        )
