"""Sharded exact kNN: each shard's exact top k under the one order (cosine descending, ties -> lower
index), merged, equals the unsharded search on every row, on every backend; and the per-row item
exclusion it rests on."""
import numpy as np
import pytest
import torch

import vtalign as va
from naive_reference import tie_heavy
from vtalign import knn

BACKENDS = [b for b in ("torch", "faiss", "triton") if b in knn.available_backends()]


def naive_excluding(x, q, k, exclude):
    """fp64 cosines, a full sort per row (similarity descending, index ascending), item exclude[i] left out."""
    unit = lambda a: np.divide(a, n := np.linalg.norm(a, axis=1, keepdims=True), out=np.zeros_like(a), where=n > 0)  # noqa: E731
    xn, qn = unit(np.asarray(x, np.float64)), unit(np.asarray(q, np.float64))
    out = []
    for i in range(len(qn)):
        cand = sorted((-float(qn[i] @ xn[j]), j) for j in range(len(xn)) if j != exclude[i])
        out.append([j for _, j in cand[:k]])
    return np.array(out, dtype=np.int64)


def cases(rng):
    yield "random", rng.normal(size=(150, 12)).astype(np.float32)
    yield "tie_heavy", tie_heavy(rng, 160, 6)
    yield "duplicated_block", np.repeat(rng.normal(size=(12, 5)).astype(np.float32), 10, axis=0)
    yield "clustered", (np.repeat(rng.normal(size=(6, 16)), 25, axis=0)
                        + 1e-4 * rng.normal(size=(150, 16))).astype(np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_exclusion_of_any_item_or_none(backend):
    rng = np.random.default_rng(3)
    x = tie_heavy(rng, 90, 6)
    q = np.concatenate([x[:40], rng.normal(size=(50, 6)).astype(np.float32)])
    exclude = rng.integers(-1, 90, size=90)       # -1: nothing excluded (a row may then find its own copy)
    got = knn.knn_search(torch.from_numpy(x), torch.from_numpy(q), 7, backend, exclude=torch.from_numpy(exclude))
    np.testing.assert_array_equal(got.numpy(), naive_excluding(x, q, 7, exclude))


# interpreted Triton is slow on a CPU: one shard count for it
SHARDINGS = [(b, s) for b in BACKENDS for s in ((3,) if b == "triton" and not torch.cuda.is_available() else (2, 3, 5))]


@pytest.mark.parametrize("backend,n_shards", SHARDINGS)
def test_sharded_search_equals_the_unsharded_one(backend, n_shards):
    rng = np.random.default_rng(11)
    # interpreted triton (slow on a CPU): the cases whose rows tie or repeat, where a merge could go wrong
    slow = backend == "triton" and not torch.cuda.is_available()
    for name, x in cases(rng):
        if slow and name not in ("tie_heavy", "duplicated_block", "constant"):
            continue
        t = torch.from_numpy(x)
        want = va.knn_indices(x, 9, backend=backend)
        got = knn.sharded_knn_search(t, None, 9, backend, n_shards).numpy()
        np.testing.assert_array_equal(got, want, err_msg=f"{name}, {n_shards} shards")
    # separate queries; interpreted triton: 100 rows (2 query tiles, shards of 33 or 34 items: the same
    # kernel paths as 150 rows, traced, at half the cost)
    n = 100 if slow else 150
    q = rng.normal(size=(n, 12)).astype(np.float32)
    x = rng.normal(size=(n, 12)).astype(np.float32)
    got = knn.sharded_knn_search(torch.from_numpy(x), torch.from_numpy(q), 4, backend, n_shards).numpy()
    np.testing.assert_array_equal(got, va.knn_indices(x, 4, backend=backend, queries=q))


def test_twenty_thousand_items_over_four_shards_tie_heavy():
    rng = np.random.default_rng(5)
    x = tie_heavy(rng, 20_000, 16)                  # ~3,300 distinct rows, each repeated about six times
    want = va.knn_indices(x, 10)
    got = knn.sharded_knn_search(torch.from_numpy(x), None, 10, "torch", 4).numpy()
    assert (got == want).all(axis=1).all(), f"{int((got != want).any(axis=1).sum())} rows differ"


def test_shards_merge_by_value_then_lower_index():
    # two shards hold copies of the same item: the tie goes to the lower global index
    vals = [torch.tensor([[0.9, 0.5]], dtype=torch.float64), torch.tensor([[0.9, 0.7]], dtype=torch.float64)]
    idx = [torch.tensor([[4, 1]]), torch.tensor([[2, 8]])]
    assert knn.merge_neighbours(vals, idx, 3).tolist() == [[2, 4, 8]]


def test_bad_shard_counts_are_clear_errors():
    x = torch.randn(20, 4)
    with pytest.raises(ValueError, match="at least k \\+ 1"):
        knn.sharded_knn_search(x, None, 5, "torch", 4)             # shards of 5 rows, k = 5
    with pytest.raises(ValueError, match="n_shards must be between 1 and"):
        knn.shard_bounds(20, 0)
    assert knn.shard_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
