"""Pooling per-frame features over time: the "image model on video" variants of Figure 2.

Per-frame features ``[N, F, L, D]`` (one vector per item, frame and layer; layers zero-padded to
the widest, true widths in ``layer_dims``) become one vector per item and layer:

- ``"first"``: the first frame only (the paper's image model on *image*);
- ``"mean:n"``: the mean over ``n`` of the F frames, chosen by uniform interpolation over the
  F positions (:func:`vtalign.extract.sampling.frame_indices` rule; ``n = F`` is every frame):
  the image model on *video*, blind to order by construction;
- ``"segments:s"``: the F frames cut into ``s`` consecutive equal segments, each averaged, the
  ``s`` means concatenated: an order-aware pooling (swapping two segments changes the vector).

Computed once from cached per-frame features, so every pooling and frame count reuses one
extraction.

Example
-------
>>> f = np.arange(2 * 4 * 1 * 2, dtype=np.float32).reshape(2, 4, 1, 2)   # N=2, F=4, L=1, D=2
>>> pool_frames(f, [2], "mean:2")[0][0, 0].tolist()        # frames 0 and 3 of item 0
[3.0, 4.0]
>>> x, dims = pool_frames(f, [2], "segments:2"); dims, x[0, 0].tolist()
([4], [1.0, 2.0, 5.0, 6.0])
"""
from __future__ import annotations

import numpy as np

__all__ = ["POOLINGS", "parse_pooling", "pool_frames", "frame_positions"]

POOLINGS = ("first", "mean:<n>", "segments:<s>")


def parse_pooling(pooling: str) -> tuple[str, int]:
    """``"mean:4"`` -> ``("mean", 4)``; ``"first"`` -> ``("first", 1)``; a clear error otherwise."""
    name, _, arg = str(pooling).partition(":")
    if name == "first" and not arg:
        return "first", 1
    if name in ("mean", "segments") and arg.isdigit() and int(arg) >= 1:
        return name, int(arg)
    raise ValueError(f"Unknown pooling {pooling!r}; use one of {POOLINGS} (e.g. 'mean:16', 'segments:4').")


def frame_positions(n_cached: int, n: int) -> np.ndarray:
    """Positions of ``n`` frames among ``n_cached`` cached ones: uniform interpolation, halves
    rounded up (the rule of :func:`vtalign.extract.sampling.frame_indices`).

    >>> frame_positions(16, 4).tolist()
    [0, 5, 10, 15]
    """
    if not 1 <= n <= n_cached:
        raise ValueError(f"Cannot take {n} frames from {n_cached} cached frames; cache at least {n} "
                         f"(extract with mode='frames', frames >= {n}).")
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    j = np.arange(n, dtype=np.int64)
    return (2 * j * (n_cached - 1) + (n - 1)) // (2 * (n - 1))


def pool_frames(per_frame: np.ndarray, layer_dims, pooling: str) -> tuple[np.ndarray, list[int]]:
    """Pool per-frame features [N, F, L, D] over time -> ``(features [N, L, D'], layer_dims')``.

    ``layer_dims`` are the true widths of the L layers (``None``: all D). ``"segments:s"`` needs F
    divisible by s and concatenates each layer's real entries segment by segment, so the new widths
    are ``s * layer_dims`` (re-padded to the widest); the other poolings keep the widths.
    """
    x = np.asarray(per_frame)
    if x.ndim != 4:
        raise ValueError(f"per-frame features must be [N, F, L, D], got shape {x.shape}.")
    n, f, n_layers, d = x.shape
    dims = list(layer_dims) if layer_dims is not None else [d] * n_layers
    if len(dims) != n_layers or max(dims) > d:
        raise ValueError(f"layer_dims {dims} does not fit per-frame features of shape {x.shape}.")
    name, arg = parse_pooling(pooling)
    if name == "first":
        return x[:, 0].astype(np.float32), dims
    if name == "mean":
        return x[:, frame_positions(f, arg)].mean(axis=1, dtype=np.float64).astype(np.float32), dims
    if f % arg:
        raise ValueError(f"segments:{arg} needs the number of cached frames ({f}) to be a multiple of {arg}.")
    means = x.reshape(n, arg, f // arg, n_layers, d).mean(axis=2, dtype=np.float64)  # [N, s, L, D]
    new_dims = [arg * w for w in dims]
    out = np.zeros((n, n_layers, max(new_dims)), dtype=np.float32)
    for layer, w in enumerate(dims):
        out[:, layer, :arg * w] = means[:, :, layer, :w].reshape(n, arg * w)
    return out, new_dims
