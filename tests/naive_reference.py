"""Reference implementations and data for the tests (no library code used)."""
import numpy as np


# --------------------------------------------------------------------------- #
# A deliberately naive O(N^2) implementation of Eq. 1, written from the paper's
# text and sharing no code with the library: float64 cosine similarities, a
# full lexicographic sort per row (similarity descending, then index
# ascending), dense N x N indicator matrices and their Hadamard product.
# --------------------------------------------------------------------------- #
def naive_knn(x, k):
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    xn = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    n = len(x)
    out = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        candidates = [(-float(xn[i] @ xn[j]), j) for j in range(n) if j != i]
        candidates.sort()
        out[i] = [j for _, j in candidates[:k]]
    return out


def naive_mutual_knn(x, y, k):
    n = len(x)
    mx, my = np.zeros((n, n)), np.zeros((n, n))
    for i, (a, b) in enumerate(zip(naive_knn(x, k), naive_knn(y, k))):
        mx[i, a] = 1
        my[i, b] = 1
    return float((mx * my).sum() / (k * n))


def tie_heavy(rng, n, d):
    """Many exact ties: few distinct rows (each repeated many times, with repeated values
    inside rows), constant rows and zero rows. Ties between *different* vectors whose
    cosines agree only in exact arithmetic are not used: floating point may round those apart."""
    protos = rng.normal(size=(max(2, n // 6), d)).astype(np.float32)
    protos[:, 1] = protos[:, 0]  # repeated values within a row
    x = protos[rng.integers(0, len(protos), size=n - 5)]
    x = np.concatenate([x, np.full((3, d), 0.5, np.float32), np.zeros((2, d), np.float32)])
    return x[rng.permutation(n)]


# --------------------------------------------------------------------------- #
# The exact answer, in rational arithmetic: every finite float is a rational, so
# cos(i, j) = (x_i . x_j) / (|x_i| |x_j|) is compared across j through
# sign(x_i . x_j) (x_i . x_j)^2 / |x_j|^2 (the same order: |x_i| is common to a
# row, and t -> sign(t) t^2 is increasing), with Python Fractions. A zero row has
# cosine 0 with everything. Ties -> lower index. Slow: for small N only.
# --------------------------------------------------------------------------- #
def rational_knn(x, k, queries=None):
    from fractions import Fraction

    rows = [[Fraction(float(v)) for v in r] for r in np.asarray(x)]
    qrows = rows if queries is None else [[Fraction(float(v)) for v in r] for r in np.asarray(queries)]
    sq = [sum(v * v for v in r) for r in rows]
    out = np.empty((len(qrows), k), dtype=np.int64)
    for i, q in enumerate(qrows):
        keys = []
        for j, r in enumerate(rows):
            if j == i:
                continue
            dot = sum(a * b for a, b in zip(q, r))
            keys.append((-(dot * abs(dot) / sq[j]) if sq[j] else Fraction(0), j))
        keys.sort()
        out[i] = [j for _, j in keys[:k]]
    return out


def integer_ties(n=131, d=4, seed=3):
    """Issue 22's case: entries in {1, 2, 3}, so many different rows have cosines equal in exact
    arithmetic (positive multiples, permutations of the same entries against a symmetric query)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 3, size=(n, d)).astype(np.float32) + 1
