"""Readouts that share per-fold work across label sets (vtalign.probes.linear_probes / knn_probes and the live
downstream chapter's planted + null readouts) give the numbers of one readout at a time, and the closed-form
ridge gives scikit-learn RidgeCV's predictions."""
import numpy as np
import pytest
from sklearn.linear_model import RidgeCV

from vtalign import probes
from vtalign.book import downstream
from vtalign.book.downstream import Representation, Variant

RNG = np.random.default_rng(7)


def _tasks(x):
    n = len(x)
    return [((x[:, 0] + 0.3 * RNG.normal(size=n) > 0).astype(int), "class"),
            (np.digitize(x[:, 1], [-0.5, 0, 0.5]).astype(str), "class"),
            (x[:, :3] > 0.2, "multilabel"),
            (x[:, 2] * 2 + RNG.normal(size=n), "regression"),
            (np.stack([x[:, 3], -x[:, 0]], 1), "regression")]


@pytest.mark.parametrize("width", [6, 90])   # fewer and more features than training items (both RidgeCV modes)
def test_closed_form_ridge_predicts_what_ridgecv_does(width):
    x = RNG.normal(size=(70, width))
    x[:, -1] = 3.0                                                   # a constant column
    targets = [RNG.normal(size=(50, 3)), RNG.normal(size=(50, 1)) + x[:50, :1]]
    ours = probes.ridge_loo_predict(x[:50], x[50:], targets)
    for y, got in zip(targets, ours):
        reference = RidgeCV(alphas=probes.RIDGE_ALPHAS).fit(x[:50], y).predict(x[50:]).reshape(20, -1)
        assert np.allclose(got, reference, atol=1e-9)


@pytest.mark.parametrize("width", [5, 120])
def test_shared_probes_equal_one_task_at_a_time(width):
    x = RNG.normal(size=(90, width))
    tasks = _tasks(x)
    for labels, kind in tasks:   # single-task calls against RidgeCV fitted per fold, the former implementation
        folds = probes.fold_assignment(90, 4, 3)
        y = np.asarray(labels).astype(float).reshape(90, -1) if kind == "regression" else np.asarray(labels)
        predicted = np.empty_like(y, dtype=float if kind == "regression" else y.dtype)
        for f in range(4):
            test = folds == f
            xtr, xte = probes._standardised(x[~test], x[test])
            target, read = probes._ridge_targets(y[~test], kind)
            predicted[test] = read(RidgeCV(alphas=probes.RIDGE_ALPHAS).fit(xtr, target).predict(xte)
                                   .reshape(test.sum(), -1))
        assert probes.linear_probe(x, labels, kind, 4, 3) == pytest.approx(probes.task_score(y, predicted, kind),
                                                                            abs=1e-12)
    assert probes.linear_probes(x, tasks, 4, 3) == [probes.linear_probe(x, y, k, 4, 3) for y, k in tasks]
    assert probes.knn_probes(x, tasks, 7, 0.1, 4, 3) == [probes.knn_probe(x, y, k, 7, 0.1, 4, 3) for y, k in tasks]
    with pytest.raises(ValueError, match="tasks is empty"):
        probes.linear_probes(x, [])


def test_planted_and_null_readouts_together_equal_two_calls():
    n = 40
    reps = {}
    for name, width in (("a", 6), ("b", 30)):
        v = Variant(name, "first")
        reps[v.name] = Representation(v.name, "video", RNG.normal(size=(n, 3, width)), [width, width, width],
                                      [f"i{j}" for j in range(n)], v)
    alignment = downstream.pd.DataFrame(dict(vision=list(reps) * 2, text=["t1", "t1", "t2", "t2"],
                                             layer_x=[0, 1, 0, 2]))
    labels = {"background": RNG.choice(list("wxyz"), n), "first_position": RNG.normal(size=(n, 2)),
              "colours_present": RNG.integers(0, 2, (n, 4))}
    null = {k: RNG.permutation(v) for k, v in labels.items()}
    kw = dict(tasks=list(labels), n_folds=3, knn_k=5)
    planted, in_null = downstream.downstream_scores_with_null(reps, alignment, labels, null, **kw)
    assert planted.equals(downstream.downstream_scores(reps, alignment, labels, **kw))
    assert in_null.equals(downstream.downstream_scores(reps, alignment, null, aligned_layers=False, **kw))
    assert set(in_null.layer_choice) == {"last"} and set(planted.layer_choice) == {"last", "aligned"}
