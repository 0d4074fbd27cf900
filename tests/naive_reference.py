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
