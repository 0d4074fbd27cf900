"""Frozen-feature readouts: how well a representation solves a downstream task.

Two readouts, as in the paper's references (NPID, DINO) and its downstream decoders:

- :func:`linear_probe`: ridge regression on the features, regularisation chosen by efficient
  leave-one-out cross-validation on the training items (``sklearn.linear_model.RidgeCV``).
  Classes are one-hot (+1 / -1) targets, predicted by the largest output; multi-label tasks
  predict each label by the sign of its output; regression targets are predicted directly.
  A least-squares classifier, not a max-margin one: on classes that are linearly separable but
  many (argmax of several linear functions) it can stay below 1 (tests: about 0.9 with 4 classes);
  it was chosen because it is fast and deterministic for hundreds of probes per chapter.
- :func:`knn_probe`: weighted k-NN on cosine similarity, each of the ``k`` nearest training items
  voting with weight ``exp(s / temperature)`` (k = 20, temperature = 0.07 by default).

Both are scored by cross-fitting on fixed folds (:func:`fold_assignment`): each item is
predicted once, by a readout trained on the other folds, so every item counts and no item
is scored by a readout that saw it. Scores (:func:`task_score`): accuracy (``"class"``), mean
per-label accuracy (``"multilabel"``), R^2 averaged over outputs (``"regression"``).

Example
-------
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(200, 16))
>>> labels = (x[:, 0] > 0).astype(int)          # a linear function of the features
>>> linear_probe(x, labels, "class") >= 0.9
True
>>> round(linear_probe(x, x @ rng.normal(size=16), "regression"), 3)   # a linear target: R^2 = 1
1.0
>>> linear_probe(x, rng.permutation(labels), "class") < 0.6   # shuffled labels: chance
True
"""
from __future__ import annotations

import numpy as np

__all__ = ["TASK_KINDS", "fold_assignment", "task_score", "linear_probe", "knn_probe", "chance_score"]

TASK_KINDS = ("class", "multilabel", "regression")
RIDGE_ALPHAS = np.logspace(-4, 4, 17)


def _check(features, labels, kind: str) -> tuple[np.ndarray, np.ndarray]:
    if kind not in TASK_KINDS:
        raise ValueError(f"kind must be one of {TASK_KINDS}, got {kind!r}.")
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2:
        raise ValueError(f"features must be [N, D], got shape {x.shape}.")
    if len(y) != len(x):
        raise ValueError(f"features and labels must describe the same N items, got {len(x)} and {len(y)}.")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values; drop those items first.")
    if kind == "multilabel" and (y.ndim != 2 or not np.isin(y, (0, 1)).all()):
        raise ValueError(f"multilabel labels must be a 0/1 array [N, n_labels], got shape {y.shape}.")
    if kind == "regression":
        y = y.astype(np.float64).reshape(len(y), -1)
    return x, y


def fold_assignment(n: int, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold of each of ``n`` items: a seeded permutation cut into ``n_folds`` near-equal folds.

    >>> np.bincount(fold_assignment(10, 5)).tolist()
    [2, 2, 2, 2, 2]
    """
    if not 2 <= n_folds <= n:
        raise ValueError(f"n_folds must be in 2..N={n}, got {n_folds}.")
    folds = np.empty(n, dtype=np.int64)
    folds[np.random.default_rng(seed).permutation(n)] = np.arange(n) % n_folds
    return folds


def task_score(truth, predicted, kind: str) -> float:
    """Accuracy (``class``), mean per-label accuracy (``multilabel``) or mean R^2 over outputs
    (``regression``: 1 - SSE / SST per column, so predicting the mean scores 0).

    >>> task_score([0, 1, 1, 2], [0, 1, 2, 2], "class")
    0.75
    """
    t, p = np.asarray(truth), np.asarray(predicted)
    if kind == "class":
        return float((t == p).mean())
    if kind == "multilabel":
        return float((t == p).mean())
    t, p = t.reshape(len(t), -1).astype(float), p.reshape(len(p), -1).astype(float)
    sst = ((t - t.mean(0)) ** 2).sum(0)
    return float(np.mean(1 - ((t - p) ** 2).sum(0) / np.where(sst > 0, sst, np.nan)))


def chance_score(labels, kind: str) -> float:
    """What a readout that ignores the features reaches: the majority class's share (``class``),
    the mean over labels of the majority value's share (``multilabel``), 0 (``regression``)."""
    y = np.asarray(labels)
    if kind == "class":
        return float(np.unique(y, return_counts=True)[1].max() / len(y))
    if kind == "multilabel":
        return float(np.maximum(y.mean(0), 1 - y.mean(0)).mean())
    return 0.0


def _cross_fit(x, y, kind, n_folds, seed, fit_predict) -> float:
    folds = fold_assignment(len(x), n_folds, seed)
    predicted = np.empty_like(y, dtype=np.float64 if kind == "regression" else y.dtype)
    for f in range(n_folds):
        test = folds == f
        predicted[test] = fit_predict(x[~test], y[~test], x[test])
    return task_score(y, predicted, kind)


def linear_probe(features, labels, kind: str = "class", n_folds: int = 5, seed: int = 0,
                 alphas=RIDGE_ALPHAS) -> float:
    """Cross-fitted score of a ridge readout (see the module docstring).

    features : [N, D]; labels : [N] classes (``class``), 0/1 [N, n_labels] (``multilabel``) or
    [N] / [N, n_outputs] numbers (``regression``). Features are standardised with the training
    items' mean and standard deviation inside each fold; columns whose standard deviation is below
    1e-6 of the largest are left out (constant up to rounding).
    """
    from sklearn.linear_model import RidgeCV

    x, y = _check(features, labels, kind)

    def fit_predict(xtr, ytr, xte):
        mu, sd = xtr.mean(0), xtr.std(0)
        # Columns (near-)constant on the training items carry no signal; standardising them would blow
        # their rounding noise up to unit scale on the test items, so they are left out.
        keep = sd > 1e-6 * sd.max() if sd.max() > 0 else np.zeros_like(sd, dtype=bool)
        if not keep.any():
            xtr, xte = np.zeros((len(xtr), 1)), np.zeros((len(xte), 1))
        else:
            xtr, xte = (xtr[:, keep] - mu[keep]) / sd[keep], (xte[:, keep] - mu[keep]) / sd[keep]
        if kind == "class":
            classes = np.unique(ytr)
            target = np.where(ytr[:, None] == classes[None, :], 1.0, -1.0)
            out = RidgeCV(alphas=alphas).fit(xtr, target).predict(xte).reshape(len(xte), -1)
            return classes[np.argmax(out, axis=1)]  # argmax: ties go to the lower class
        if kind == "multilabel":
            out = RidgeCV(alphas=alphas).fit(xtr, 2.0 * ytr - 1).predict(xte).reshape(len(xte), -1)
            return (out > 0).astype(ytr.dtype)
        return RidgeCV(alphas=alphas).fit(xtr, ytr).predict(xte).reshape(len(xte), -1)

    return _cross_fit(x, y, kind, n_folds, seed, fit_predict)


def knn_probe(features, labels, kind: str = "class", k: int = 20, temperature: float = 0.07, n_folds: int = 5,
              seed: int = 0) -> float:
    """Cross-fitted score of a weighted k-NN readout on cosine similarity (see the module docstring).

    Each test item takes the ``k`` most similar training items (ties: the lower training index) with
    weights ``exp(cos / temperature)``: the class with the largest summed weight (ties: the lower
    class), each label whose weighted share exceeds 1/2, or the weighted mean of the targets.
    """
    x, y = _check(features, labels, kind)
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1)

    def fit_predict(xtr, ytr, xte):
        kk = min(k, len(xtr))
        sim = xte @ xtr.T
        order = np.argsort(-sim, axis=1, kind="stable")[:, :kk]  # stable: equal similarity -> lower index
        s = np.take_along_axis(sim, order, axis=1)
        w = np.exp((s - s[:, :1]) / temperature)  # shifted by the row maximum: same ratios, no overflow
        if kind == "class":
            classes = np.unique(ytr)
            votes = np.zeros((len(xte), len(classes)))
            np.add.at(votes, (np.arange(len(xte))[:, None], np.searchsorted(classes, ytr[order])), w)
            return classes[np.argmax(votes, axis=1)]
        share = np.einsum("nk,nkl->nl", w, ytr[order].astype(float)) / w.sum(1, keepdims=True)
        if kind == "multilabel":
            return (share > 0.5).astype(ytr.dtype)
        return share

    return _cross_fit(x, y, kind, n_folds, seed, fit_predict)
