"""Frozen-feature readouts: how well a representation solves a downstream task.

Two readouts, as in the paper's references (NPID, DINO) and its downstream decoders:

- :func:`linear_probe`: ridge regression on the features, regularisation chosen by efficient
  leave-one-out cross-validation on the training items, as ``sklearn.linear_model.RidgeCV`` chooses it
  (computed here in closed form: :func:`ridge_loo_predict`).
  Classes are one-hot (+1 / -1) targets, predicted by the largest output; multi-label tasks
  predict each label by the sign of its output; regression targets are predicted directly.
  A least-squares classifier, not a max-margin one: on classes that are linearly separable but
  many (argmax of several linear functions) it can stay below 1 (tests: about 0.9 with 4 classes);
  it was chosen because it is fast and deterministic for hundreds of probes per chapter.
- :func:`knn_probe`: weighted k-NN on cosine similarity, each of the ``k`` nearest training items
  voting with weight ``exp(s / temperature)`` (k = 20, temperature = 0.07 by default).
- :func:`retrieval_accuracy`: the paper's retrieval metric (Sec. 5), the same weighted vote with k = 8,
  leave-one-out over one labelled set (temperature 0.07, DINO's: the paper does not state its own).

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

from .checks import InsufficientData

__all__ = ["TASK_KINDS", "fold_assignment", "task_score", "linear_probe", "linear_probes", "ridge_loo_predict",
           "knn_probe", "knn_probes", "chance_score",
           "retrieval_accuracy", "retrieval_accuracies", "RETRIEVAL_K", "RETRIEVAL_TEMPERATURE"]

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


def _cross_fit(x, tasks, n_folds, seed, fit_predict) -> list[float]:
    """Cross-fitted scores of several tasks on the same features: each fold's ``fit_predict(xtr, xte, train, test)``
    returns one prediction per task (it may share per-fold work, e.g. a decomposition or neighbours, across them).
    tasks : checked ``(labels, kind)`` pairs."""
    folds = fold_assignment(len(x), n_folds, seed)
    predicted = [np.empty_like(y, dtype=np.float64 if kind == "regression" else y.dtype) for y, kind in tasks]
    for f in range(n_folds):
        test = folds == f
        for p, out in zip(predicted, fit_predict(x[~test], x[test], ~test, test)):
            p[test] = out
    return [task_score(y, p, kind) for p, (y, kind) in zip(predicted, tasks)]


def _check_tasks(features, tasks) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """:func:`_check` of each ``(labels, kind)`` of ``tasks`` on the same features (converted once)."""
    tasks = list(tasks)
    if not tasks:
        raise ValueError("tasks is empty: give at least one (labels, kind) pair.")
    x = np.asarray(features, dtype=np.float64)
    checked = [_check(x, labels, kind) for labels, kind in tasks]
    return checked[0][0], [(y, kind) for (_, y), (_, kind) in zip(checked, tasks)]


def _standardised(xtr: np.ndarray, xte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training and test features standardised with the training items' mean and standard deviation."""
    mu, sd = xtr.mean(0), xtr.std(0)
    # Columns (near-)constant on the training items carry no signal; standardising them would blow
    # their rounding noise up to unit scale on the test items, so they are left out.
    keep = sd > 1e-6 * sd.max() if sd.max() > 0 else np.zeros_like(sd, dtype=bool)
    if not keep.any():
        return np.zeros((len(xtr), 1)), np.zeros((len(xte), 1))
    return (xtr[:, keep] - mu[keep]) / sd[keep], (xte[:, keep] - mu[keep]) / sd[keep]


def _small_blas(n_items: int, most: int = 2048):
    """One BLAS thread for the probes of at most ``most`` items: their matrices ([N, N] Gram matrices and
    eigendecompositions) are so small that starting and synchronising threads costs more than it saves
    (one 204 x 204 eigendecomposition on a busy 2-core machine: 46 ms with 2 threads, 7 ms with 1)."""
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas") if n_items <= most else nullcontext()


def _ridge_targets(ytr: np.ndarray, kind: str) -> tuple[np.ndarray, object]:
    """The ridge targets [n, T] of one task's training labels and how to read predictions [m, T] back."""
    if kind == "class":
        classes = np.unique(ytr)
        return (np.where(ytr[:, None] == classes[None, :], 1.0, -1.0),
                lambda out: classes[np.argmax(out, axis=1)])  # argmax: ties go to the lower class
    if kind == "multilabel":
        return 2.0 * ytr - 1, lambda out: (out > 0).astype(ytr.dtype)
    return ytr.astype(np.float64), lambda out: out


def ridge_loo_predict(xtr, xte, targets, alphas=RIDGE_ALPHAS) -> list[np.ndarray]:
    """Ridge predictions for several target blocks on one training set, each block with the penalty that
    minimises its own efficient leave-one-out squared error: what ``sklearn.linear_model.RidgeCV(alphas)``
    (intercept fitted and not penalised, ``gcv_mode`` "gram") predicts, fitted once per block, computed from
    one eigendecomposition of the centred Gram matrix ``K = Xc Xc^T = Q diag(e) Q^T`` shared by every block.

    For penalty a: ``c = Q diag(1/(e+a)) Q^T yc`` (yc: centred targets), the leave-one-out residuals
    ``c_i / d_i`` with ``d = diag(G^-1) - (G^-1 1)_i / n`` (the intercept's share removed), the penalty kept
    is the first with the smallest mean squared residual over the block's items and columns, and the
    prediction is ``(x - mean) Xc^T c + mean(y)``.

    xtr : [n, D]; xte : [m, D]; targets : list of [n, T_b] arrays. Returns one [m, T_b] array per block.

    >>> rng = np.random.default_rng(0)
    >>> x, w = rng.normal(size=(30, 4)), rng.normal(size=(4, 1))
    >>> out = ridge_loo_predict(x[:20], x[20:], [x[:20] @ w, x[:20] @ -w])
    >>> bool(np.allclose(out[0], x[20:] @ w, atol=1e-3)), bool(np.allclose(out[1], -out[0]))
    (True, True)
    """
    xtr, xte = np.asarray(xtr, dtype=np.float64), np.asarray(xte, dtype=np.float64)
    offset = xtr.mean(0)
    xc = xtr - offset
    eigvals, q = np.linalg.eigh(xc @ xc.T)
    n = len(xtr)
    kernel_test = (xte - offset) @ xc.T
    q_ones = q.T @ np.ones(n)
    blocks = [np.asarray(t, dtype=np.float64).reshape(n, -1) for t in targets]
    means = [b.mean(0) for b in blocks]
    qt_y = [q.T @ (b - m) for b, m in zip(blocks, means)]  # per block: its numbers do not depend on the others
    best_score = [None] * len(blocks)
    best_c: list[np.ndarray | None] = [None] * len(blocks)
    for alpha in map(float, np.atleast_1d(alphas)):
        inverse = 1.0 / (eigvals + alpha)
        d = (inverse * q ** 2).sum(1) - (q @ (inverse * q_ones)) / n
        for b in range(len(blocks)):
            c = q @ (inverse[:, None] * qt_y[b])
            score = -((c / d[:, None]) ** 2).mean()
            if best_score[b] is None or score > best_score[b]:  # strict: the first of equal penalties
                best_score[b], best_c[b] = score, c
    return [kernel_test @ c + m for c, m in zip(best_c, means)]


def linear_probes(features, tasks, n_folds: int = 5, seed: int = 0, alphas=RIDGE_ALPHAS) -> list[float]:
    """:func:`linear_probe` of the same features for each ``(labels, kind)`` of ``tasks`` (several tasks, or
    the same tasks with permuted labels for a null): the folds, the standardisation and the Gram matrix's
    eigendecomposition do not depend on the labels, so each fold computes them once
    (:func:`ridge_loo_predict`); every task keeps its own penalty.

    >>> x = np.random.default_rng(0).normal(size=(60, 3))
    >>> linear_probes(x, [(x[:, 0] > 0, "class"), (x[:, :2], "regression")], n_folds=3)  # doctest: +ELLIPSIS
    [0.9..., 0.99...]
    """
    x, checked = _check_tasks(features, tasks)

    def fit_predict(xtr, xte, train, test):
        xtr, xte = _standardised(xtr, xte)
        targets, readers = zip(*(_ridge_targets(y[train], kind) for y, kind in checked))
        return [read(out) for read, out in zip(readers, ridge_loo_predict(xtr, xte, targets, alphas))]

    with _small_blas(len(x)):
        return _cross_fit(x, checked, n_folds, seed, fit_predict)


def linear_probe(features, labels, kind: str = "class", n_folds: int = 5, seed: int = 0,
                 alphas=RIDGE_ALPHAS) -> float:
    """Cross-fitted score of a ridge readout (see the module docstring).

    features : [N, D]; labels : [N] classes (``class``), 0/1 [N, n_labels] (``multilabel``) or
    [N] / [N, n_outputs] numbers (``regression``). Features are standardised with the training
    items' mean and standard deviation inside each fold; columns whose standard deviation is below
    1e-6 of the largest are left out (constant up to rounding). The penalty is chosen among ``alphas``
    by efficient leave-one-out on the training items, as ``sklearn.linear_model.RidgeCV`` does
    (:func:`ridge_loo_predict`; tests compare the two).
    """
    return linear_probes(features, [(labels, kind)], n_folds, seed, alphas)[0]


def _top_k(sim: np.ndarray, k: int, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Each query's ``min(k, M)`` most similar memory items [Q, k'] (ties: the lower memory index) and their
    weights ``exp(s / temperature)``, computed as ``exp((s - s_max) / temperature)`` (the same ratios, no overflow).
    sim : [Q, M] similarities; ``-inf`` marks an item a query may not use."""
    kk = min(k, sim.shape[1])
    order = np.argsort(-sim, axis=1, kind="stable")[:, :kk]  # stable: equal similarity -> lower index
    s = np.take_along_axis(sim, order, axis=1)
    return order, np.exp((s - s[:, :1]) / temperature)


def _vote(order: np.ndarray, w: np.ndarray, ytr: np.ndarray, kind: str = "class") -> np.ndarray:
    """The weighted vote of the neighbours ``order`` [Q, k] with weights ``w`` (:func:`_top_k`), shared by
    :func:`knn_probes` and :func:`retrieval_accuracy`: the class with the largest summed weight (ties: the lower
    class), each label whose weighted share exceeds 1/2 (``multilabel``), or the weighted mean of the targets
    (``regression``).

    >>> _vote(*_top_k(np.array([[0.9, 0.8, 0.1]]), 2, 0.07), np.array([1, 0, 0])).tolist()
    [1]
    >>> _vote(*_top_k(np.array([[0.9, 0.8, 0.8]]), 3, 1.0), np.array([1, 0, 0])).tolist()  # 2 weak beat 1
    [0]
    """
    if kind == "class":
        classes = np.unique(ytr)
        votes = np.zeros((len(order), len(classes)))
        np.add.at(votes, (np.arange(len(order))[:, None], np.searchsorted(classes, ytr[order])), w)
        return classes[np.argmax(votes, axis=1)]
    share = np.einsum("nk,nkl->nl", w, ytr[order].astype(float)) / w.sum(1, keepdims=True)
    if kind == "multilabel":
        return (share > 0.5).astype(ytr.dtype)
    return share


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1)


def knn_probes(features, tasks, k: int = 20, temperature: float = 0.07, n_folds: int = 5,
               seed: int = 0) -> list[float]:
    """:func:`knn_probe` of the same features for each ``(labels, kind)`` of ``tasks``: each fold's similarities,
    neighbours and weights do not depend on the labels, so they are found once and every task votes with them.

    >>> x = np.random.default_rng(0).normal(size=(60, 3))
    >>> knn_probes(x, [(x[:, 0] > 0, "class"), (x[:, 1] > 0, "class")], k=5, n_folds=3)
    [0.95, 0.8833333333333333]
    """
    x, checked = _check_tasks(features, tasks)
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    x = _unit_rows(x)

    def fit_predict(xtr, xte, train, test):
        order, w = _top_k(xte @ xtr.T, k, temperature)
        return [_vote(order, w, y[train], kind) for y, kind in checked]

    with _small_blas(len(x)):
        return _cross_fit(x, checked, n_folds, seed, fit_predict)


def knn_probe(features, labels, kind: str = "class", k: int = 20, temperature: float = 0.07, n_folds: int = 5,
              seed: int = 0) -> float:
    """Cross-fitted score of a weighted k-NN readout on cosine similarity (see the module docstring).

    Each test item takes the ``k`` most similar training items (ties: the lower training index) with
    weights ``exp(cos / temperature)``: the class with the largest summed weight (ties: the lower
    class), each label whose weighted share exceeds 1/2, or the weighted mean of the targets.
    """
    return knn_probes(features, [(labels, kind)], k, temperature, n_folds, seed)[0]


# DINO's k-NN evaluation temperature (Caron et al. 2021, eval_knn.py: T = 0.07, as NPID's); the paper does not
# state the temperature of its retrieval metric, so this is an assumption, said wherever its numbers appear.
RETRIEVAL_TEMPERATURE = 0.07
RETRIEVAL_K = 8  # the paper, Sec. 5: "we sweep over the number of nearest neighbours and find 8 to give good results"


def retrieval_accuracy(features, labels, k: int = RETRIEVAL_K, temperature: float = RETRIEVAL_TEMPERATURE,
                       block: int = 1024) -> float:
    """The paper's retrieval metric (Sec. 5): weighted k-NN accuracy on one labelled set, leave-one-out.

    features : [N, D]; labels : [N] classes. Protocol: NPID (Wu et al. 2018) and DINO (Caron et al. 2021)
    use a train set as the memory bank and the val set as queries; the paper names one labelled *test* subset
    (10,000 Kinetics-400 / SSv2 test videos), so here every video is a query against all the *others*
    (leave-one-out: the query itself is removed from the memory bank). Weights and votes are
    :func:`knn_probe`'s (:func:`_top_k`, :func:`_vote`): cosine similarity, the ``k`` nearest (ties: the lower
    index), each voting ``exp(cos / temperature)`` for its class (vote ties: the lower class). A query whose
    class has no other member cannot be answered right by any representation; such queries are left out of the
    accuracy (they stay in the memory bank), and a set where no class has two members raises
    :class:`vtalign.InsufficientData`. The score is the share of the remaining queries whose vote is their own
    class. Similarities are computed in blocks of ``block`` queries ([block, N] at a time).

    >>> x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.7, 0.7]])
    >>> retrieval_accuracy(x, ["a", "a", "b", "b", "b"], k=1)  # item 4 ties items 1 and 3: the lower, an a
    0.8
    """
    return retrieval_accuracies(features, [labels], k, temperature, block)[0]


def retrieval_accuracies(features, label_sets, k: int = RETRIEVAL_K, temperature: float = RETRIEVAL_TEMPERATURE,
                         block: int = 1024) -> list[float]:
    """:func:`retrieval_accuracy` of the same features for each of several label sets (e.g. several tasks, or
    permuted labels for a null): the neighbours and their weights do not depend on the labels, so they are
    found once.

    >>> x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    >>> retrieval_accuracies(x, [[0, 0, 1, 1], [0, 1, 0, 1]], k=1)
    [1.0, 0.0]
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    if block < 1:
        raise ValueError(f"block must be positive, got {block}.")
    features = np.asarray(features, dtype=np.float64)  # converted once, not once per label set
    checked = [_check(features, labels, "class") for labels in label_sets]
    if not checked:
        return []
    x = _unit_rows(checked[0][0])
    ys = []
    for _, y in checked:
        if y.ndim != 1:
            raise ValueError(f"labels must be [N] classes, got shape {y.shape}.")
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        if counts.max() < 2:
            raise InsufficientData(f"No class has two items ({len(y)} items, {len(classes)} classes): leave-one-out "
                                   "retrieval has nothing to find.")
        ys.append((y, counts[inverse] > 1))
    correct, asked = np.zeros(len(ys)), np.zeros(len(ys))
    kk = min(k, len(x) - 1)
    for start in range(0, len(x), block):
        q = np.arange(start, min(start + block, len(x)))
        sim = x[q] @ x.T
        sim[np.arange(len(q)), q] = -np.inf  # leave one out: a query never retrieves itself
        order, w = _top_k(sim, kk, temperature)
        for i, (y, answerable) in enumerate(ys):
            keep = answerable[q]
            correct[i] += int((_vote(order[keep], w[keep], y) == y[q][keep]).sum())
            asked[i] += keep.sum()
    return [float(c / a) for c, a in zip(correct, asked)]
