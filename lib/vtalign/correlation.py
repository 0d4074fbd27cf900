"""Correlating alignment with other measurements (Figures 2, 4 and 7).

With about ten models per plot, a correlation coefficient alone says little:
every function here reports Pearson and Spearman with their p-values and a
seeded percentile bootstrap interval for Pearson's r.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .checks import InsufficientData

__all__ = ["Correlation", "correlate", "correlation_table", "LinearFit", "linear_fit", "figure2_regressions"]


@dataclass(frozen=True)
class Correlation:
    """n, pearson_r, pearson_p, spearman_r, spearman_p, and the bootstrap interval
    (ci_low, ci_high) of Pearson's r at ``confidence``; n_boot_valid counts the draws
    that were not constant in x or y; permutation_p: two-sided permutation p-value of
    Pearson's r, (1 + #|r_perm| >= |r|) / (1 + n_permutations) (None when not asked for)."""

    n: int
    pearson_r: float
    pearson_p: float
    spearman_r: float
    spearman_p: float
    ci_low: float
    ci_high: float
    confidence: float
    n_boot_valid: int
    permutation_p: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _paired(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.size != y.size:
        raise ValueError(f"x and y must be paired (same length), got {x.size} and {y.size}.")
    if x.size < 3:
        raise InsufficientData(f"A correlation needs at least 3 points, got {x.size}.")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite; drop models with missing values first.")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise InsufficientData("x or y is constant: the correlation is undefined.")
    return x, y


def correlate(x, y, n_boot: int = 10000, confidence: float = 0.95, seed: int = 0,
              n_permutations: int = 0) -> Correlation:
    """Pearson and Spearman correlation of paired values, with a bootstrap CI for Pearson's r.

    The interval resamples the (x, y) pairs with replacement ``n_boot`` times
    (seeded) and takes percentiles of r; draws constant in x or y are skipped.
    With ``n_permutations`` > 0, also a permutation p-value: y shuffled against x
    (seeded), which needs no normality assumption (Pearson's p does).

    >>> c = correlate([1, 2, 3, 4, 5], [2.1, 3.9, 6.2, 7.8, 10.1], n_boot=200)
    >>> round(c.pearson_r, 3), round(c.spearman_r, 3)
    (0.999, 1.0)
    """
    x, y = _paired(x, y)
    pr, pp = stats.pearsonr(x, y)
    sr, sp = stats.spearmanr(x, y)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    bx, by = x[idx], y[idx]
    bx_c = bx - bx.mean(axis=1, keepdims=True)
    by_c = by - by.mean(axis=1, keepdims=True)
    denom = np.sqrt((bx_c ** 2).sum(1) * (by_c ** 2).sum(1))
    valid = denom > 0
    r = (bx_c * by_c).sum(1)[valid] / denom[valid]
    a = (1 - confidence) / 2
    lo, hi = np.quantile(r, [a, 1 - a]) if r.size else (np.nan, np.nan)
    perm_p = None
    if n_permutations > 0:
        shuffled = np.stack([y[rng.permutation(y.size)] for _ in range(n_permutations)])
        yc, xc = shuffled - y.mean(), x - x.mean()
        r_null = (yc @ xc) / np.sqrt((xc ** 2).sum() * (yc ** 2).sum(1))
        perm_p = (1 + int((np.abs(r_null) >= abs(pr) - 1e-12).sum())) / (1 + n_permutations)  # 1e-12: ties count
    return Correlation(x.size, float(pr), float(pp), float(sr), float(sp), float(lo), float(hi),
                       confidence, int(valid.sum()), perm_p)


def correlation_table(df: pd.DataFrame, x: str, columns, n_boot: int = 10000,
                      confidence: float = 0.95, seed: int = 0, n_permutations: int = 0) -> pd.DataFrame:
    """:func:`correlate` ``df[x]`` with each of ``columns``; one row per column, named ``task``."""
    missing = [c for c in [x, *columns] if c not in df.columns]
    if missing:
        raise ValueError(f"Columns {missing} not in the table (it has {list(df.columns)}).")
    rows = []
    for c in columns:
        sub = df[[x, c]].dropna()
        if len(sub) < len(df):
            raise ValueError(f"Column {c!r} has {len(df) - len(sub)} missing value(s); fill or drop those rows.")
        rows.append({"task": c, **correlate(sub[x], sub[c], n_boot, confidence, seed, n_permutations).as_dict()})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class LinearFit:
    """y = slope * x + intercept by ordinary least squares, with Pearson r and its p-value."""

    slope: float
    intercept: float
    r: float
    p_value: float
    slope_stderr: float
    intercept_stderr: float
    n: int

    def predict(self, x) -> np.ndarray:
        return self.slope * np.asarray(x, dtype=float) + self.intercept


def linear_fit(x, y) -> LinearFit:
    """Least-squares line through paired points (Figure 2's regression lines, Figure 7's fit).

    >>> f = linear_fit([0.1, 0.2, 0.3], [0.142, 0.302, 0.462])
    >>> round(f.slope, 3), round(f.intercept, 3)
    (1.6, -0.018)
    """
    x, y = _paired(x, y)
    res = stats.linregress(x, y)
    return LinearFit(float(res.slope), float(res.intercept), float(res.rvalue), float(res.pvalue),
                     float(res.stderr), float(res.intercept_stderr), int(x.size))


def figure2_regressions(points: pd.DataFrame, n_boot: int = 10000, seed: int = 0) -> pd.DataFrame:
    """Per panel, the least-squares line of alignment on retrieval accuracy over all plotted models.

    points : columns model, model_type, panel, retrieval_accuracy, and an alignment column
        (the last column), one row per (model, model_type, panel)
    Returns panel, n, slope, intercept, pearson_r, pearson_p, spearman_r, ci_low, ci_high.
    """
    score = points.columns[-1]
    rows = []
    for panel, sub in points.groupby("panel", sort=False):
        fit = linear_fit(sub.retrieval_accuracy, sub[score])
        c = correlate(sub.retrieval_accuracy, sub[score], n_boot=n_boot, seed=seed)
        rows.append(dict(panel=panel, n=fit.n, slope=fit.slope, intercept=fit.intercept,
                         pearson_r=c.pearson_r, pearson_p=c.pearson_p, spearman_r=c.spearman_r,
                         ci_low=c.ci_low, ci_high=c.ci_high))
    return pd.DataFrame(rows)
