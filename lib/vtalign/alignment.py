"""Mutual k-nearest-neighbour alignment (Eq. 1 of the paper) and the layer-pair sweep.

Conventions shared by every function here:

* Features are ``[N, D]`` (one layer) or ``[N, L, D]`` (every layer), as numpy
  arrays or torch tensors of any float dtype; fp16/bf16 are upcast to fp32.
* Similarity is cosine similarity (a zero row stays zero, so it is equally
  similar to everything). Backends propose candidates in lower precision
  (fp32 on a CPU, a certified fp16 screen on a GPU); every close call is
  decided in fp64 on the input values, and in exact arithmetic where fp64
  cannot decide (:mod:`vtalign.knn`), so all backends return identical
  neighbours.
* Item ``i`` is never its own neighbour. Its k nearest neighbours are the k
  other items of highest similarity, ordered nearest first; **ties are broken
  by lower index**, so results depend on nothing but the data and this rule.
  A tie is an exactly equal cosine in exact arithmetic on the input values
  (every float is a rational): identical vectors, positive multiples of one
  vector, and different vectors whose cosines happen to be equal. Where fp64
  cannot tell two cosines apart, exact rational arithmetic decides, so every
  backend and device returns the same, exact answer (:mod:`vtalign.knn`).
  No answer depends on the scale of a row.
* The neighbour lists of a layer are computed once and reused for every layer
  pair, for permutation nulls and for bootstraps (see :mod:`vtalign.stats`).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from .checks import as_features, check_k, check_same_n
from .knn import BACKENDS, count_overlaps, knn_search, layer_search, pow2_scaled, resolve_backend

__all__ = [
    "knn_indices",
    "mutual_knn",
    "neighbour_overlap",
    "layer_sweep",
    "layer_neighbours",
    "sweep_overlaps",
    "SweepResult",
    "prepare_features",
    "cross_model_matrix",
    "BACKENDS",
]

# --------------------------------------------------------------------------- #
# Feature preparation
# --------------------------------------------------------------------------- #
def prepare_features(x, q: float | None = 0.95, clamp: bool = True, normalize: bool = True, layer_dims=None,
                     per_layer: bool | None = None):
    """Clamp outliers and L2-normalise, as the Platonic Representation reference code does.

    Step 1 (``clamp``): ``t = sorted(|x|)[floor(q * x.size)]`` over *all* values
    of ``x`` (every item, every layer), then ``x <- clip(x, -t, t)``.
    Step 2 (``normalize``): each feature vector (last axis) divided by its L2 norm.

    Parameters
    ----------
    x : array or tensor, shape [N, D] or [N, L, D]
    q : float in (0, 1], the quantile of ``|x|`` to clamp at; ``q=1`` or ``None``
        skips clamping. Any other value (0, negative, above 1, NaN) is a ``ValueError``.
    layer_dims : for [N, L, D] features zero-padded to the widest layer (CNN blocks; see
        ``meta["layer_dims"]`` of :func:`vtalign.extract_features`), the true width of each
        layer: the quantile is then taken over the real entries only, and padding stays zero.
    per_layer : one clamp threshold per layer (each over that layer's real entries) instead of one
        over all layers. ``None`` (default): per layer exactly when ``layer_dims`` gives layers of
        different widths. That is what the reference code does in both cases: it stacks equal-width
        layers (transformers) into one array and clamps them together, and it cannot stack layers of
        different widths (CNN blocks), so it prepares each on its own. The two rules differ most on
        CNNs, whose blocks' thresholds span 30x; the live scaling chapter shows how much.

    Returns the same kind (numpy or torch) and shape as ``x``, as float32.

    Example
    -------
    >>> x = np.array([[1.0, 100.0], [2.0, 3.0]])
    >>> prepare_features(x, q=0.5, normalize=False)   # t = sorted |x| [2] = 3
    array([[1., 3.],
           [2., 3.]], dtype=float32)
    """
    if q is not None and not 0 < q <= 1:  # written so that NaN fails too
        raise ValueError(f"q must be in (0, 1] (or None: no clamping), got {q}.")
    is_numpy = isinstance(x, np.ndarray)
    t = as_features(x, "x", (2, 3)).to(torch.float32)
    if clamp and q is not None and q < 1:
        if layer_dims is not None and (t.ndim != 3 or len(layer_dims) != t.shape[1] or max(layer_dims) > t.shape[2]):
            raise ValueError(f"layer_dims {list(layer_dims)} does not fit features of shape {tuple(t.shape)}.")
        if per_layer is None:
            per_layer = layer_dims is not None and len(set(layer_dims)) > 1
        if per_layer and t.ndim != 3:
            raise ValueError(f"per_layer needs features [N, L, D], got shape {tuple(t.shape)}.")
        dims = list(layer_dims) if layer_dims is not None else [t.shape[-1]] * (t.shape[1] if t.ndim == 3 else 1)
        if per_layer:
            thresholds = torch.stack([_quantile_of_abs(t[:, i, :w], q) for i, w in enumerate(dims)])
            t = torch.maximum(torch.minimum(t, thresholds.view(1, -1, 1)), -thresholds.view(1, -1, 1))
        else:
            real = t.abs() if layer_dims is None else t.abs()[:, torch.arange(t.shape[2]).unsqueeze(0) <
                                                                   torch.as_tensor(dims).unsqueeze(1)]
            threshold = _quantile_of_abs(real, q)
            t = t.clamp(-threshold, threshold)
    if normalize:
        t = _normalize(t)
    return t.numpy() if is_numpy else t


def _normalize(t: torch.Tensor) -> torch.Tensor:
    """Unit rows (last axis) of fp32 features, as ``F.normalize`` makes them (the reference code's
    rounding), except rows whose fp32 norm under- or overflows (entries below about 1e-19 or above
    1e19, or a norm below F.normalize's floor of 1e-12): those are normalised from a power-of-two
    multiple (:func:`vtalign.knn.pow2_scaled`), so a row's direction never depends on its scale.
    All-zero rows stay zero.

    >>> _normalize(torch.tensor([[3e-30, 4e-30], [0.0, 0.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    out = torch.nn.functional.normalize(t, p=2, dim=-1)
    norm = t.norm(dim=-1)
    bad = ~torch.isfinite(norm) | ((norm < 1e-12) & (t != 0).any(dim=-1))
    if bool(bad.any()):
        scaled = pow2_scaled(t[bad])
        out[bad] = scaled.div_(scaled.norm(dim=-1, keepdim=True)).to(out.dtype)
    return out


def _quantile_of_abs(values: torch.Tensor, q: float) -> torch.Tensor:
    """``sorted(|values|)[floor(q * size)]`` (the last value when that index runs past the end)."""
    flat = values.abs().flatten()
    index = min(int(q * flat.numel()), flat.numel() - 1)
    return torch.kthvalue(flat, index + 1).values


# --------------------------------------------------------------------------- #
# k nearest neighbours
# --------------------------------------------------------------------------- #
def _warn_zero_rows(t: torch.Tensor, name: str) -> None:
    """A UserWarning naming how many rows are all zero: their cosine with every item is 0, so their
    neighbours (and the items that have them as neighbours) are decided by the tie rule alone."""
    zero = int((t == 0).all(dim=1).sum())
    if zero:
        warnings.warn(f"{name} has {zero} all-zero row(s) of {t.shape[0]}: each has cosine 0 with every item, so "
                      "its neighbours are decided by the tie rule (lower index) alone. Drop those items from both "
                      "spaces, or check how the features were made.", UserWarning, stacklevel=3)


def _knn(t: torch.Tensor, k: int, backend: str, queries: torch.Tensor | None = None,
         ordered: bool = True) -> np.ndarray:
    """kNN of a checked [N, D] tensor through :func:`vtalign.knn.knn_search`."""
    concrete = resolve_backend(backend, t.shape[0], t.device, t.shape[1])
    return knn_search(t, queries, k, concrete, ordered).cpu().numpy()


def knn_indices(x, k: int, backend: str = "auto", queries=None) -> np.ndarray:
    """Indices of each item's k nearest neighbours by cosine similarity.

    ``out[i]`` lists the k items ``j != i`` most similar to item ``i``, nearest
    first, ties broken by lower index.

    A tie is an exactly equal cosine in exact arithmetic on the input floats: identical rows and
    positive multiples (``x_j = 3 x_i``: the same direction) tie with each other for every other row,
    so the lower index comes first. Comparisons that fp64 cannot decide are decided exactly, on every
    backend. Rows are never clamped, so scale does not matter: ``x * c`` for any c > 0 gets the exact
    answer of its (rounded) values, the same as ``x`` when c is a power of two. All-zero rows
    have cosine 0 with everything (a :class:`UserWarning` says how many there are).

    Parameters
    ----------
    x : array or tensor [N, D]
    k : int, 1 <= k < N
    backend : "auto" | "torch" | "faiss" | "triton" (all give identical results; see :mod:`vtalign.knn`)
    queries : optional [N, D] array: search the neighbours of ``queries[i]``
        among the rows of ``x``, still excluding row ``i`` (used for
        VideoComp-style negatives: a negative caption's neighbours among the
        *other* videos' positive captions).

    Returns
    -------
    np.ndarray of int64, shape [N, k]

    Example
    -------
    >>> knn_indices(np.array([[1.0, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]]), k=1).ravel()
    array([1, 0, 3, 2])
    """
    resolve_backend(backend)
    t = as_features(x, "x", 2)
    k = check_k(k, t.shape[0])
    _warn_zero_rows(t, "x")
    qt = None
    if queries is not None:
        qt = as_features(queries, "queries", 2)
        check_same_n(t.shape[0], qt.shape[0])
        if qt.shape[1] != t.shape[1]:
            raise ValueError(
                f"queries must have the same feature dimension as x, got {qt.shape[1]} and {t.shape[1]}."
            )
    return _knn(t, k, backend, qt)


def neighbour_overlap(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """Per item, how many of its neighbours two neighbour lists share.

    ``overlap[i] = |ix[i] ∩ iy[i]|``, so Eq. 1 is ``overlap.mean() / k``.

    ix, iy : int arrays [N, k] (each row without repeats, as knn_indices gives)
    Returns int64 array [N].

    >>> neighbour_overlap(np.array([[1, 2], [0, 2]]), np.array([[2, 3], [3, 1]]))
    array([1, 0])
    """
    ix, iy = np.asarray(ix), np.asarray(iy)
    if ix.shape != iy.shape or ix.ndim != 2:
        raise ValueError(f"Neighbour lists must both be [N, k], got {ix.shape} and {iy.shape}.")
    return (ix[:, :, None] == iy[:, None, :]).any(axis=2).sum(axis=1).astype(np.int64)


def mutual_knn(x, y, k: int = 10, backend: str = "auto") -> float:
    """Mutual k-NN alignment of two paired feature sets (Eq. 1).

    .. math:: A(X, Y) = \\frac{1}{kN} \\sum_i |\\mathrm{kNN}_X(i) \\cap \\mathrm{kNN}_Y(i)|

    Parameters
    ----------
    x : [N, p] features of the N items in one space (e.g. video)
    y : [N, q] features of the same N items, same order, in another space (text)
    k : neighbours per item, 1 <= k < N (the paper: k=10 for N=1024)

    Returns a float in [0, 1]; two independent spaces score about k / (N - 1).
    Cosine similarity is used as is: clamp and normalise first with
    :func:`prepare_features` to follow the reference pipeline.

    >>> x = np.random.default_rng(0).normal(size=(50, 8))
    >>> mutual_knn(x, 3 * x @ np.linalg.qr(np.random.default_rng(1).normal(size=(8, 8)))[0], k=5)
    1.0
    """
    tx, ty = as_features(x, "x", 2), as_features(y, "y", 2)
    check_same_n(tx.shape[0], ty.shape[0])
    k = check_k(k, tx.shape[0])
    _warn_zero_rows(tx, "x")
    _warn_zero_rows(ty, "y")
    ix = _knn(tx, k, backend, ordered=False)  # overlaps need sets, not their order
    iy = _knn(ty, k, backend, ordered=False)
    return float(neighbour_overlap(ix, iy).mean() / k)


# --------------------------------------------------------------------------- #
# Layer-pair sweep
# --------------------------------------------------------------------------- #
def layer_neighbours(f, k: int, backend: str = "auto", name: str = "features") -> np.ndarray:
    """kNN sets of every layer of ``f`` [N, L, D] -> int64 array [L, N, k], one search per layer.

    Each row holds the right k neighbours in no particular order (overlaps need only the sets).
    """
    t = as_features(f, name, 3)
    k = check_k(k, t.shape[0])
    resolve_backend(backend)
    return _layer_neighbours(t, k, backend).cpu().numpy()


def _layer_neighbours(t: torch.Tensor, k: int, backend: str) -> torch.Tensor:
    """:func:`layer_neighbours` of an already checked [N, L, D] tensor, as a tensor on the device the
    search ran on (a GPU sweep keeps its neighbour lists there for the overlap counts)."""
    return layer_search(t, k, resolve_backend(backend, t.shape[0], t.device, t.shape[2]))


def sweep_overlaps(nx, ny, backend: str = "auto") -> np.ndarray:
    """Per-item overlaps for every layer pair: [Lx, N, k] x [Ly, N, k] -> [Lx, Ly, N] int32.

    ``out[a, b, i] = |nx[a, i] ∩ ny[b, i]|`` (rows without repeated indices, as the kNN functions
    return); numpy arrays or tensors. How they are counted (one Triton launch for all pairs, or
    boolean row masks on the lists' device) is :func:`vtalign.knn.count_overlaps`'s choice.
    """
    return _overlaps(nx, ny, backend).cpu().numpy()


def _overlaps(nx, ny, backend: str) -> torch.Tensor:
    tx, ty = torch.as_tensor(nx), torch.as_tensor(ny)
    if tx.ndim != 3 or ty.ndim != 3 or tx.shape[1:] != ty.shape[1:]:
        raise ValueError(
            f"Neighbour lists must be [Lx, N, k] and [Ly, N, k], got {tuple(tx.shape)} and {tuple(ty.shape)}."
        )
    concrete = resolve_backend(backend, tx.shape[1], tx.device)
    return count_overlaps(tx.long(), ty.long(), concrete)


class SweepResult:
    """Alignment of every (x-layer, y-layer) pair.

    scores : [Lx, Ly] float array, Eq. 1 for each pair
    best : (i, j, score) of the highest score; ties -> lowest i, then lowest j
    k : the k used
    neighbours_x, neighbours_y : [Lx, N, k] and [Ly, N, k] int64 neighbour sets (each row
        in no particular order), kept so nulls and bootstraps reuse them without new searches
    overlaps : [Lx, Ly, N] int32 per-item overlap counts

    A sweep run on a GPU keeps its neighbour lists and overlaps there; each becomes a numpy array
    the first time it is read (copying them costs more than the rest of the sweep).
    """

    def __init__(self, scores: np.ndarray, best: tuple[int, int, float], k: int, neighbours_x, neighbours_y, overlaps):
        self.scores, self.best, self.k = scores, best, k
        self._arrays = {"neighbours_x": neighbours_x, "neighbours_y": neighbours_y, "overlaps": overlaps}

    def _array(self, name: str) -> np.ndarray:
        a = self._arrays[name]
        if isinstance(a, torch.Tensor):
            a = a.cpu().numpy()
            self._arrays[name] = a
        return a

    neighbours_x = property(lambda self: self._array("neighbours_x"))
    neighbours_y = property(lambda self: self._array("neighbours_y"))
    overlaps = property(lambda self: self._array("overlaps"))

    @property
    def n_items(self) -> int:
        return int(self._arrays["neighbours_x"].shape[1])

    def __repr__(self) -> str:
        return f"SweepResult(best={self.best}, k={self.k}, layers={tuple(self.scores.shape)}, n_items={self.n_items})"


def best_pair(scores: np.ndarray) -> tuple[int, int, float]:
    """(i, j, score) of the maximum of a [Lx, Ly] score matrix; ties -> first in row-major order."""
    flat = int(np.argmax(scores))  # argmax returns the first maximum
    i, j = divmod(flat, scores.shape[1])
    return int(i), int(j), float(scores[i, j])


def sweep_from_neighbours(nx, ny, backend: str = "auto") -> SweepResult:
    """Build a :class:`SweepResult` from per-layer neighbour lists ([Lx, N, k] and [Ly, N, k], numpy
    arrays or tensors on any device; the overlaps are counted where the lists are).

    Scores are means of integer counts, summed exactly on the lists' device and divided on the CPU,
    so every device gives the same scores.
    """
    overlaps = _overlaps(nx, ny, backend)
    k = int(torch.as_tensor(nx).shape[2])
    # integer sums are exact on any device; the division happens here on the CPU (CUDA divides by a
    # scalar through its reciprocal, which can differ in the last bit)
    scores = overlaps.sum(dim=2, dtype=torch.int64).cpu().numpy() / overlaps.shape[2] / k
    return SweepResult(scores, best_pair(scores), k, torch.as_tensor(nx).long(), torch.as_tensor(ny).long(), overlaps)


def layer_sweep(fx, fy, k: int = 10, backend: str = "auto") -> SweepResult:
    """Mutual k-NN alignment for every pair of layers, and the best pair.

    Parameters
    ----------
    fx : [N, Lx, D] features of every layer of one encoder
    fy : [N, Ly, D'] features of every layer of the other encoder, same items
    k : neighbours per item

    Each layer's neighbour lists are computed once (Lx + Ly searches), not once
    per pair. The paper reports ``result.best`` (the maximum over pairs); compare
    it with a null that takes the same maximum (:func:`vtalign.permutation_test`).

    >>> rng = np.random.default_rng(0)
    >>> fx = rng.normal(size=(40, 2, 6)); fy = np.concatenate([rng.normal(size=(40, 1, 6)), fx[:, 1:]], 1)
    >>> layer_sweep(fx, fy, k=4).best
    (1, 1, 1.0)
    """
    tx, ty = as_features(fx, "fx", 3), as_features(fy, "fy", 3)
    check_same_n(tx.shape[0], ty.shape[0])
    k = check_k(k, tx.shape[0])
    # the backend is chosen once per space (``auto`` weighs its shape) and travels down as an object
    bx = resolve_backend(backend, tx.shape[0], tx.device, tx.shape[2])
    by = resolve_backend(backend, ty.shape[0], ty.device, ty.shape[2])
    return sweep_from_neighbours(layer_search(tx, k, bx), layer_search(ty, k, by), bx)


def cross_model_matrix(neighbours: dict, backend: str = "auto"):
    """Figure 10: best-layer-pair alignment between every two representations (a symmetric pandas DataFrame;
    1 on the diagonal). Rows and columns in the order of ``neighbours`` (name -> [L, N, k] kNN lists of the
    same items). Here, below both ``book.downstream`` and ``extract.paper_run``, which use it."""
    import pandas as pd

    names = list(neighbours)
    m = np.eye(len(names))
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            m[a, b] = m[b, a] = sweep_from_neighbours(neighbours[names[a]], neighbours[names[b]], backend).best[2]
    return pd.DataFrame(m, index=names, columns=names)
