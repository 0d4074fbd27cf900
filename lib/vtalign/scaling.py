"""Test-time scaling laws: Eq. 2 and the alternatives it is compared with.

Eq. 2 of the paper::

    score(n_f, n_c) = S_inf - (C_f * n_f**-alpha + C_c * n_c**-beta)

is fitted by bounded nonlinear least squares from several deterministic
starting points (the best residual sum of squares wins), with parameter
standard errors from the Jacobian covariance and, optionally, a case-resampling
bootstrap. The paper says it "tested several formulations"; :data:`FORMS`
holds Eq. 2 and four alternatives so the choice is shown with an information
criterion (:func:`compare_forms`), not asserted.
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

from .checks import InsufficientData
from .verdicts import Interval, percentile_interval, trend

__all__ = [
    "ScalingForm",
    "ScalingFit",
    "FORMS",
    "EQ2_PARAMS",
    "fit_scaling_law",
    "fit_grid",
    "compare_forms",
    "validate_grid",
    "fit_table",
    "fit_uncertainty",
    "caption_gain_pairs",
    "grid_draws",
    "grid_curves",
    "mean_gain",
    "relative_gain",
    "SLICE_FORMS",
    "fit_slice",
    "fit_slices",
    "compare_slice_forms",
    "slice_fit_table",
    "slice_curves",
]

EQ2_PARAMS = ("s_inf", "c_f", "alpha", "c_c", "beta")
GRID_COLUMNS = ("model", "n_frames", "n_captions", "score")


@dataclass(frozen=True)
class ScalingForm:
    """A parametric model score(n_f, n_c; params) with bounds and starting points."""

    name: str
    formula: str
    params: tuple[str, ...]
    func: Callable[..., np.ndarray]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    starts: tuple[tuple[float, ...], ...]


def _eq2(n, s_inf, c_f, alpha, c_c, beta):
    nf, nc = n
    return s_inf - (c_f * nf ** -alpha + c_c * nc ** -beta)


def _multiplicative(n, s_inf, c_f, alpha, c_c, beta):
    nf, nc = n
    return s_inf * (1 - c_f * nf ** -alpha) * (1 - c_c * nc ** -beta)


def _exponential(n, s_inf, c_f, alpha, c_c, beta):
    nf, nc = n  # shifted so that C_f, C_c are the gaps at one frame / one caption, as in Eq. 2
    return s_inf - (c_f * np.exp(-alpha * (nf - 1)) + c_c * np.exp(-beta * (nc - 1)))


def _product_power(n, s_inf, c, alpha, beta):
    nf, nc = n
    return s_inf - c * nf ** -alpha * nc ** -beta


def _log_linear(n, a, b_f, b_c):
    nf, nc = n
    return a + b_f * np.log(nf) + b_c * np.log(nc)


_EXP_STARTS = tuple(itertools.product((0.3, 0.6), (0.05, 0.2), (0.3, 1.5), (0.05, 0.2), (0.3, 1.5)))

FORMS: dict[str, ScalingForm] = {
    f.name: f
    for f in (
        ScalingForm(
            "eq2_additive_power",
            r"$S_\infty - (C_f n_f^{-\alpha} + C_c n_c^{-\beta})$",
            EQ2_PARAMS,
            _eq2,
            (0.0, 0.0, 0.0, 0.0, 0.0),
            (1.0, 1.0, 10.0, 1.0, 10.0),
            _EXP_STARTS,
        ),
        ScalingForm(
            "multiplicative_power",
            r"$S_\infty (1 - C_f n_f^{-\alpha})(1 - C_c n_c^{-\beta})$",
            EQ2_PARAMS,
            _multiplicative,
            (0.0, 0.0, 0.0, 0.0, 0.0),
            (1.0, 1.0, 10.0, 1.0, 10.0),
            tuple(itertools.product((0.3, 0.6), (0.2, 0.6), (0.3, 1.5), (0.2, 0.6), (0.3, 1.5))),
        ),
        ScalingForm(
            "exponential_saturation",
            r"$S_\infty - (C_f e^{-\alpha (n_f - 1)} + C_c e^{-\beta (n_c - 1)})$",
            EQ2_PARAMS,
            _exponential,
            (0.0, 0.0, 0.0, 0.0, 0.0),
            (1.0, 1.0, 10.0, 1.0, 10.0),
            _EXP_STARTS,
        ),
        ScalingForm(
            "product_power",
            r"$S_\infty - C\, n_f^{-\alpha} n_c^{-\beta}$",
            ("s_inf", "c", "alpha", "beta"),
            _product_power,
            (0.0, 0.0, 0.0, 0.0),
            (1.0, 1.0, 10.0, 10.0),
            tuple(itertools.product((0.3, 0.6), (0.05, 0.3), (0.3, 1.5), (0.3, 1.5))),
        ),
        ScalingForm(
            "log_linear",
            r"$a + b_f \ln n_f + b_c \ln n_c$",
            ("a", "b_f", "b_c"),
            _log_linear,
            (-np.inf, -np.inf, -np.inf),
            (np.inf, np.inf, np.inf),
            ((0.1, 0.01, 0.01),),
        ),
    )
}


@dataclass(frozen=True)
class ScalingFit:
    """A fitted scaling law.

    params / stderr : dicts keyed by parameter name (stderr from the Jacobian covariance,
        NaN where a parameter sits on a bound)
    r2, rss, n_points, aic, aicc, bic : goodness of fit (AIC = n ln(RSS/n) + 2p; AICc adds
        2p(p+1)/(n-p-1); BIC = n ln(RSS/n) + p ln n)
    bootstrap : DataFrame of parameter draws from case resampling (empty if not asked)
    """

    form: str
    params: dict[str, float]
    stderr: dict[str, float]
    r2: float
    rss: float
    n_points: int
    aic: float
    aicc: float
    bic: float
    bootstrap: pd.DataFrame = field(default_factory=pd.DataFrame)

    axis: str = ""  # a fit to a one-dimensional slice (:func:`fit_slice`): "frames" or "captions"

    def predict(self, n_frames=None, n_captions=None) -> np.ndarray:
        """Predicted score at the given frame and caption counts (broadcast together); a slice's fit
        reads only the count it grows along."""
        if self.axis:
            n = np.asarray(n_frames if self.axis == "frames" else n_captions, float)
            return SLICE_FORMS[self.axis][self.form].func(n, *self.params.values())
        nf, nc = np.broadcast_arrays(np.asarray(n_frames, float), np.asarray(n_captions, float))
        return FORMS[self.form].func((nf, nc), *self.params.values())

    def interval(self, name: str, confidence: float = 0.95) -> tuple[float, float]:
        """Percentile bootstrap interval of one parameter (needs ``n_bootstrap > 0``)."""
        if self.bootstrap.empty:
            raise ValueError("No bootstrap draws: fit with n_bootstrap > 0.")
        a = (1 - confidence) / 2
        lo, hi = np.nanquantile(self.bootstrap[name], [a, 1 - a])
        return float(lo), float(hi)


def _least_squares(form: ScalingForm, nf, nc, y, starts=None):
    """Best of the starting points (default: the form's grid); returns (params, covariance, rss)."""
    return _best_start(form, (nf, nc), y, starts)


def _best_start(form: ScalingForm, x, y, starts=None):
    """:func:`_least_squares` for any input ``x`` the form's function takes (a (n_f, n_c) pair, or the
    one count of a slice)."""
    best = None
    for p0 in form.starts if starts is None else starts:
        p0 = np.clip(p0, form.lower, form.upper)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                popt, pcov = curve_fit(
                    form.func, x, y, p0=p0, bounds=(form.lower, form.upper), maxfev=20000
                )
        except RuntimeError:  # this start did not converge; others may
            continue
        rss = float(np.sum((y - form.func(x, *popt)) ** 2))
        if best is None or rss < best[2] - 1e-15:
            best = (popt, pcov, rss)
    if best is None:
        raise RuntimeError(f"No starting point of {form.name!r} converged.")
    return best


def fit_scaling_law(n_frames, n_captions, score, form: str = "eq2_additive_power",
                    n_bootstrap: int = 0, seed: int = 0) -> ScalingFit:
    """Fit a test-time scaling law to scores measured on a (frames, captions) grid.

    Parameters
    ----------
    n_frames, n_captions, score : 1-D arrays of equal length (one entry per grid point)
    form : a key of :data:`FORMS`; the default is the paper's Eq. 2
    n_bootstrap : number of case-resampling refits for parameter intervals (0: none)
    seed : seed of the bootstrap

    Example
    -------
    >>> nf, nc = np.meshgrid([1, 2, 4, 8, 16], [1, 2, 4, 10]); nf, nc = nf.ravel(), nc.ravel()
    >>> y = 0.4 - (0.15 * nf ** -0.75 + 0.13 * nc ** -1.3)
    >>> fit = fit_scaling_law(nf, nc, y)
    >>> round(fit.params["s_inf"], 3), round(fit.r2, 6)
    (0.4, 1.0)
    """
    if form not in FORMS:
        raise ValueError(f"Unknown scaling form {form!r}; choose one of {sorted(FORMS)}.")
    f = FORMS[form]
    nf, nc, y = (np.asarray(a, dtype=float).ravel() for a in (n_frames, n_captions, score))
    if not (nf.size == nc.size == y.size):
        raise ValueError(f"n_frames, n_captions and score differ in length: {nf.size}, {nc.size}, {y.size}.")
    if nf.size <= len(f.params):
        raise InsufficientData(f"{form} has {len(f.params)} parameters; need more grid points than that, "
                               f"got {nf.size}.")
    if not np.all(np.isfinite(y)) or np.any(nf < 1) or np.any(nc < 1):
        raise ValueError("Scores must be finite and frame/caption counts >= 1.")
    popt, pcov, rss = _least_squares(f, nf, nc, y)
    n = y.size
    se, goodness = _goodness(f, popt, pcov, rss, y)
    boot = pd.DataFrame(columns=list(f.params))
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(n_bootstrap):
            idx = rng.integers(0, n, size=n)
            if np.unique(nf[idx]).size < 2 or np.unique(nc[idx]).size < 2:
                continue  # a resample that cannot identify both exponents
            try:
                # start from the full-data optimum: resamples are small perturbations of it
                draws.append(_least_squares(f, nf[idx], nc[idx], y[idx], starts=(popt,))[0])
            except RuntimeError:
                continue
        boot = pd.DataFrame(draws, columns=list(f.params))
    return ScalingFit(
        form=form,
        params=dict(zip(f.params, map(float, popt))),
        stderr=dict(zip(f.params, map(float, se))),
        bootstrap=boot,
        **goodness,
    )


def _goodness(f: ScalingForm, popt, pcov, rss: float, y) -> tuple[np.ndarray, dict]:
    """Standard errors (NaN on a bound) and the goodness-of-fit fields of a :class:`ScalingFit`."""
    n, p = y.size, len(f.params)
    tss = float(np.sum((y - y.mean()) ** 2))
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.diag(pcov))
    on_bound = np.isclose(popt, f.lower) | np.isclose(popt, f.upper)
    se = np.where(on_bound | ~np.isfinite(se), np.nan, se)
    log_term = n * np.log(max(rss, 1e-300) / n)
    aic = log_term + 2 * p
    aicc = aic + (2 * p * (p + 1) / (n - p - 1) if n - p - 1 > 0 else np.inf)
    return se, dict(r2=1 - rss / tss if tss > 0 else float("nan"), rss=rss, n_points=n, aic=float(aic),
                    aicc=float(aicc), bic=float(log_term + p * np.log(n)))


def validate_grid(grid: pd.DataFrame, for_fit: bool = True) -> pd.DataFrame:
    """Check a scaling grid (columns model, n_frames, n_captions, score) and return it cleaned.

    Raises ``ValueError`` naming the problem: missing columns, non-numeric or
    non-positive counts, non-finite scores, duplicated grid points; with ``for_fit``,
    :class:`vtalign.InsufficientData` for a model with too few points or with a single
    frame or caption count (a grid that can be shown but not fitted).
    """
    missing = [c for c in GRID_COLUMNS if c not in grid.columns]
    if missing:
        raise ValueError(
            f"Scaling grid is missing column(s) {missing}; expected columns {list(GRID_COLUMNS)}."
        )
    g = grid[list(GRID_COLUMNS)].copy()
    for c in ("n_frames", "n_captions", "score"):
        g[c] = pd.to_numeric(g[c], errors="coerce")
        if g[c].isna().any():
            rows = g.index[g[c].isna()].tolist()[:5]
            raise ValueError(f"Column {c!r} has missing or non-numeric values (rows {rows}).")
    if (g[["n_frames", "n_captions"]] < 1).any().any():
        raise ValueError("n_frames and n_captions must be >= 1.")
    if not np.isfinite(g["score"]).all():
        raise ValueError("score has non-finite values.")
    dup = g.duplicated(["model", "n_frames", "n_captions"], keep=False)
    if dup.any():
        raise ValueError(
            f"Duplicated (model, n_frames, n_captions) points: {g[dup].head().to_dict('records')}; "
            "average repeats before fitting."
        )
    for model, sub in g.groupby("model", sort=False) if for_fit else ():
        if sub["n_frames"].nunique() < 2 or sub["n_captions"].nunique() < 2:
            raise InsufficientData(
                f"Model {model!r}: a scaling law needs at least two frame counts and two caption counts."
            )
        if len(sub) <= len(EQ2_PARAMS):
            raise InsufficientData(f"Model {model!r}: {len(sub)} points cannot fit Eq. 2's 5 parameters.")
    return g


def fit_grid(grid: pd.DataFrame, form: str = "eq2_additive_power", n_bootstrap: int = 0,
             seed: int = 0) -> dict[str, ScalingFit]:
    """Fit one scaling law per model of a grid (see :func:`validate_grid`), keyed by model."""
    g = validate_grid(grid)
    return {
        model: fit_scaling_law(sub.n_frames, sub.n_captions, sub.score, form, n_bootstrap, seed)
        for model, sub in g.groupby("model", sort=False)
    }


def compare_forms(grid: pd.DataFrame, forms=None) -> pd.DataFrame:
    """Fit every form to every model; rank by AICc within each model.

    Returns one row per (model, form): n_params, r2, rss, aic, aicc, bic,
    delta_aicc (0 for the best form of that model) and akaike_weight.
    """
    g = validate_grid(grid)
    rows = []
    for model, sub in g.groupby("model", sort=False):
        for name in forms or FORMS:
            fit = fit_scaling_law(sub.n_frames, sub.n_captions, sub.score, name)
            rows.append(dict(model=model, form=name, n_params=len(fit.params), r2=fit.r2,
                             rss=fit.rss, aic=fit.aic, aicc=fit.aicc, bic=fit.bic))
    out = pd.DataFrame(rows)
    out["delta_aicc"] = out.aicc - out.groupby("model").aicc.transform("min")
    w = np.exp(-0.5 * out.delta_aicc)
    out["akaike_weight"] = w / w.groupby(out.model).transform("sum")
    return out.sort_values(["model", "delta_aicc"], kind="stable").reset_index(drop=True)


def lowest_aicc(comparison: pd.DataFrame, atol: float = 1e-9) -> dict[str, list[str]]:
    """Per model, the form(s) at the lowest AICc of :func:`compare_forms`: more than one when they tie
    (ΔAICc within ``atol`` of 0), so a tie is never reported as one form winning.

    >>> table = pd.DataFrame(dict(model=["m", "m", "m"], form=["a", "b", "c"], delta_aicc=[0.0, 0.0, 4.0]))
    >>> lowest_aicc(table)
    {'m': ['a', 'b']}
    """
    out = {}
    for model, sub in comparison.groupby("model", sort=False):
        out[model] = sub.form[np.isclose(sub.delta_aicc.astype(float), 0.0, rtol=0.0, atol=atol)].tolist()
    return out


def best_form_text(forms: list[str], code: bool = True) -> str:
    """``forms`` (from :func:`lowest_aicc`) as prose: one form, or a tie between several (names in
    Markdown code unless ``code=False``, for a table cell).

    >>> best_form_text(["eq2_additive_power"]), best_form_text(["a", "b"]), best_form_text(["a", "b", "c"], False)
    ('`eq2_additive_power`', 'a tie between `a` and `b`', 'a tie between a, b and c')
    """
    names = [f"`{f}`" if code else f for f in forms]
    return names[0] if len(names) == 1 else "a tie between " + ", ".join(names[:-1]) + " and " + names[-1]


def caption_gain_pairs(grid: pd.DataFrame, one: int = 1, many: int | None = None,
                       by=("model", "n_frames")) -> pd.DataFrame:
    """Pairs (score with ``one`` caption, score with ``many`` captions) at equal other settings.

    grid : columns including ``n_captions``, ``score`` and the ``by`` columns present.
    ``many`` defaults to the largest caption count in the grid.
    """
    by = [c for c in by if c in grid.columns]
    many = many or int(grid.n_captions.max())
    a = grid[grid.n_captions == one].set_index(by).score.rename("one_caption")
    b = grid[grid.n_captions == many].set_index(by).score.rename("all_captions")
    return pd.concat([a, b], axis=1, join="inner").reset_index()


def fit_table(fits: dict[str, ScalingFit]) -> pd.DataFrame:
    """One row per fitted model: ``model``, ``r2`` and the form's parameters (Table 1's layout).

    >>> grid = pd.DataFrame([dict(model="m", n_frames=f, n_captions=c, score=0.7 - 0.3 * f**-0.5 - 0.1 * c**-1.0)
    ...                      for f in (1, 2, 4, 8) for c in (1, 2, 5)])
    >>> fit_table(fit_grid(grid)).round(2).values.tolist()
    [['m', 1.0, 0.7, 0.3, 0.5, 0.1, 1.0]]
    """
    return pd.DataFrame([{"model": m, "r2": f.r2, **f.params} for m, f in fits.items()])


def fit_uncertainty(fits: dict[str, ScalingFit], confidence: float = 0.95) -> pd.DataFrame:
    """One row per (model, parameter): estimate, Jacobian standard error and, when the fits were
    bootstrapped, the percentile interval (``boot_low``, ``boot_high``; NaN otherwise)."""
    rows = []
    for m, f in fits.items():
        for p, value in f.params.items():
            lo, hi = f.interval(p, confidence) if len(f.bootstrap) else (np.nan, np.nan)
            rows.append(dict(model=m, parameter=p, estimate=value, stderr=f.stderr[p],
                             boot_low=lo, boot_high=hi, n_boot=len(f.bootstrap)))
    return pd.DataFrame(rows)


def grid_draws(per_item: np.ndarray, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Bootstrap means of every grid cell over one shared resample of items per draw.

    per_item : [cells, N] per-item scores (e.g. neighbour overlap / k at each cell's chosen layer pair),
        the same N items in every cell, so differences between cells are paired.
    Returns [n_boot, cells]; draw b averages the items ``rng.integers(0, N, N)`` of that draw in every cell.

    >>> grid_draws(np.array([[1.0, 1.0], [0.0, 2.0]]), n_boot=3).shape
    (3, 2)
    """
    per_item = np.asarray(per_item, dtype=float)
    if per_item.ndim != 2 or per_item.shape[1] < 2:
        raise ValueError(f"per_item must be [cells, N] with N >= 2, got shape {per_item.shape}.")
    rng = np.random.default_rng(seed)
    n = per_item.shape[1]
    return np.stack([per_item[:, rng.integers(0, n, size=n)].mean(axis=1) for _ in range(n_boot)])


def _interval(estimate: float, draws, margin: float, how: str) -> Interval:
    if draws is not None:
        return percentile_interval(draws, estimate, how=how)
    return Interval(float(estimate), float(estimate - margin), float(estimate + margin), how)


# axis -> (the count that grows along a curve, the count that is fixed on it)
_AXES = {"frames": ("n_frames", "n_captions"), "captions": ("n_captions", "n_frames")}


def _curves(grid: pd.DataFrame, axis: str):
    """``(model, at, along, curve)`` for every curve of ``grid`` (index 0..n-1) along ``axis`` with two
    points or more: ``curve`` holds its rows sorted by the growing count ``along``; ``at`` is the fixed count."""
    along, fixed = _AXES[axis]
    for model, sub in grid.groupby("model", sort=False):
        for at, curve in sub.groupby(fixed):
            if len(curve) >= 2:
                yield model, at, along, curve.sort_values(along)


def grid_curves(grid: pd.DataFrame, draws: np.ndarray | None = None, margin: float = 0.0) -> pd.DataFrame:
    """Figure 3's question for every curve of a grid: does alignment rise with frames (one curve per
    caption count) and with captions (one curve per frame count)?

    grid : columns model, n_frames, n_captions, score (one or more models).
    draws : [n_boot, len(grid)] bootstrap means of the cells in ``grid``'s row order (:func:`grid_draws`):
        intervals are their 95% percentiles (paired over items). Without draws, each value is taken
        to be within ``margin`` of the truth (a digitisation error), so a difference of two values is
        known to within ``2 * margin``.

    One row per curve: model, axis ("frames" or "captions"), at (the other count), levels, first, last,
    gain (last - first) with gain_low/gain_high, rising_steps / falling_steps / steps (steps whose
    interval lies above / below zero), and trend (:func:`vtalign.verdicts.trend`).
    """
    how = f"bootstrap over items, 95%, {len(draws)} draws" if draws is not None else f"values within ±{margin:g}"
    g = grid.reset_index(drop=True)
    if draws is not None and np.shape(draws)[1] != len(g):
        raise ValueError(f"draws has {np.shape(draws)[1]} cells; the grid has {len(g)} rows.")
    rows = []
    for model, sub in g.groupby("model", sort=False):
        for axis in _AXES:
            for _, at, along, curve in _curves(sub, axis):
                rows.append(dict(model=model, axis=axis, at=int(at),
                                 **_curve_trend(curve, along, draws, margin, how)))
    return pd.DataFrame(rows)


def _curve_trend(curve: pd.DataFrame, along: str, draws, margin: float, how: str) -> dict:
    """One curve's row of :func:`grid_curves` (``curve``: its rows sorted by ``along``, indexed into ``draws``)."""
    idx, y = curve.index.to_numpy(), curve.score.to_numpy(dtype=float)

    def diff(a, b):
        d = None if draws is None else draws[:, idx[b]] - draws[:, idx[a]]
        return _interval(y[b] - y[a], d, 2 * margin, how)

    steps = [diff(i, i + 1) for i in range(len(y) - 1)]
    overall = diff(0, len(y) - 1)
    return dict(levels=" ".join(str(int(v)) for v in curve[along]), first=y[0], last=y[-1], gain=overall.estimate,
                gain_low=overall.low, gain_high=overall.high, rising_steps=sum(s.low > 0 for s in steps),
                falling_steps=sum(s.high < 0 for s in steps), steps=len(steps), trend=trend(steps, overall),
                interval=how)


def mean_gain(grid: pd.DataFrame, draws: np.ndarray, axis: str) -> tuple[float, np.ndarray]:
    """The first-to-last gain along ``axis`` ("frames" or "captions") averaged over the grid's curves,
    and its bootstrap draws [n_boot] (``draws`` as in :func:`grid_curves`), to compare two worlds.

    >>> g = pd.DataFrame(dict(model="m", n_frames=[1, 1, 4, 4], n_captions=[1, 5, 1, 5], score=[.1, .2, .3, .4]))
    >>> est, d = mean_gain(g, np.array([[.1, .2, .3, .4]]), "frames"); round(est, 6), d.round(6).tolist()
    (0.2, [0.2])
    """
    g = grid.reset_index(drop=True)
    curves = sorted(_curves(g, axis), key=lambda c: (c[0], c[1]))  # by model, then fixed count
    ends = [(curve.index[0], curve.index[-1]) for *_, curve in curves]
    if not ends:
        raise InsufficientData(f"No curve along {axis} has two points.")
    gains = [g.score[last] - g.score[first] for first, last in ends]
    return float(np.mean(gains)), np.mean([draws[:, last] - draws[:, first] for first, last in ends], axis=0)


def relative_gain(grid: pd.DataFrame, draws: np.ndarray | None = None, margin: float = 0.0, one: int = 1,
                  many: int | None = None):
    """Figure 7's quantity: the mean over frame counts (and models) of score(``many`` captions) /
    score(``one`` caption) - 1, with its interval (:class:`vtalign.verdicts.Interval`).

    With ``draws`` (see :func:`grid_curves`) the interval is the bootstrap's 95%; without, the bounds
    put every value ``margin`` against the gain (worst case of a digitisation error).

    >>> g = pd.DataFrame(dict(model="m", n_frames=[1, 1], n_captions=[1, 10], score=[0.1, 0.16]))
    >>> round(relative_gain(g).estimate, 6)
    0.6
    """
    g = grid.reset_index(drop=True)
    many = many or int(g.n_captions.max())
    pairs = caption_gain_pairs(g, one, many, by=("model", "n_frames"))
    if pairs.empty:
        raise InsufficientData(f"No frame count has both {one} and {many} captions.")
    rows = caption_gain_pairs(g.assign(score=g.index), one, many, by=("model", "n_frames"))  # the same pairs' rows
    lo_idx, hi_idx = rows.one_caption.to_numpy(), rows.all_captions.to_numpy()
    estimate = float((pairs.all_captions / pairs.one_caption - 1).mean())
    if draws is not None:
        d = (draws[:, hi_idx] / draws[:, lo_idx] - 1).mean(axis=1)
        return percentile_interval(d, estimate, how=f"bootstrap over items, 95%, {len(d)} draws")
    low = float(((pairs.all_captions - margin) / (pairs.one_caption + margin) - 1).mean())
    high = float(((pairs.all_captions + margin) / (pairs.one_caption - margin) - 1).mean())
    return Interval(estimate, low, high, f"values within ±{margin:g}")


# --------------------------------------------------------------------------- #
# One-dimensional slices (Figure 8: frames at one caption count, captions at one frame count)
# --------------------------------------------------------------------------- #
def _power_term(n, offset, c, e):
    return offset - c * n ** -e


def _exponential_term(n, offset, c, e):
    return offset - c * np.exp(-e * (n - 1))


def _log_term(n, offset, b):
    return offset + b * np.log(n)


def _slice_forms(axis: str) -> dict[str, ScalingForm]:
    """The forms of :data:`FORMS` on a slice along ``axis``, where the other count is fixed: the other
    term becomes part of the offset, so Eq. 2, ``multiplicative_power`` and ``product_power`` all reduce
    to ``offset - C n^-e`` (one form, kept under Eq. 2's name), ``exponential_saturation`` to
    ``offset - C e^(-e (n - 1))`` and ``log_linear`` to ``offset + b ln n``. Parameters are named as
    Table 1 names Eq. 2's term along that axis (``c_f, alpha`` or ``c_c, beta``)."""
    c, e, b, n = ("c_f", "alpha", "b_f", "n_f") if axis == "frames" else ("c_c", "beta", "b_c", "n_c")
    starts = ((0.3, 0.1, 0.2), (0.3, 0.1, 1.0), (0.3, 0.1, 3.0))  # on Figure 8, 12 starts find the same optima
    return {
        "eq2_additive_power": ScalingForm("eq2_additive_power", rf"$a - C {n}^{{-e}}$ (Eq. 2's term)",
                                          ("offset", c, e), _power_term, (0.0, 0.0, 0.0), (1.0, 1.0, 10.0), starts),
        "exponential_saturation": ScalingForm("exponential_saturation", rf"$a - C e^{{-e ({n} - 1)}}$",
                                              ("offset", c, e), _exponential_term, (0.0, 0.0, 0.0),
                                              (1.0, 1.0, 10.0), starts),
        "log_linear": ScalingForm("log_linear", rf"$a + b \ln {n}$", ("offset", b), _log_term,
                                  (-np.inf, -np.inf), (np.inf, np.inf), ((0.1, 0.01),)),
    }


SLICE_FORMS: dict[str, dict[str, ScalingForm]] = {axis: _slice_forms(axis) for axis in _AXES}


def fit_slice(counts, score, axis: str, form: str = "eq2_additive_power") -> ScalingFit:
    """Fit one form of :data:`SLICE_FORMS` to a one-dimensional slice: ``score`` at ``counts`` frames
    (``axis="frames"``) or captions, the other count fixed (and possibly unknown, as in Figure 8).

    A slice identifies the term along its axis (``C`` and the exponent of Eq. 2) and an offset, which
    is Eq. 2's ``S_inf`` minus the other term at the fixed count: ``S_inf`` itself is not identified.

    >>> n = np.array([1, 2, 3, 4, 6, 8, 10.0]); fit = fit_slice(n, 0.3 - 0.1 * n ** -1.5, "captions")
    >>> {k: round(v, 4) for k, v in fit.params.items()}, round(fit.r2, 6)
    ({'offset': 0.3, 'c_c': 0.1, 'beta': 1.5}, 1.0)
    """
    if axis not in SLICE_FORMS:
        raise ValueError(f"axis must be one of {list(SLICE_FORMS)}, got {axis!r}.")
    if form not in SLICE_FORMS[axis]:
        raise ValueError(f"Unknown slice form {form!r}; choose one of {sorted(SLICE_FORMS[axis])}.")
    f = SLICE_FORMS[axis][form]
    n, y = (np.asarray(a, dtype=float).ravel() for a in (counts, score))
    if n.size != y.size:
        raise ValueError(f"counts and score differ in length: {n.size}, {y.size}.")
    if np.unique(n).size <= len(f.params):
        raise InsufficientData(f"{form} on a slice has {len(f.params)} parameters; need more distinct counts than "
                               f"that, got {np.unique(n).size}.")
    if not np.all(np.isfinite(y)) or np.any(n < 1):
        raise ValueError("Scores must be finite and counts >= 1.")
    popt, pcov, rss = _best_start(f, n, y)
    se, goodness = _goodness(f, popt, pcov, rss, y)
    return ScalingFit(form=form, params=dict(zip(f.params, map(float, popt))),
                      stderr=dict(zip(f.params, map(float, se))), axis=axis, **goodness)


def _slices(table: pd.DataFrame, axis: str):
    count = _AXES[axis][0]
    missing = [c for c in ("model", count, "score") if c not in table.columns]
    if missing:
        raise ValueError(f"A slice along {axis} needs columns model, {count}, score; missing {missing}.")
    for model, sub in table.dropna(subset=["score"]).groupby("model", sort=False):
        yield model, sub.sort_values(count)


def fit_slices(table: pd.DataFrame, axis: str) -> dict[str, dict[str, ScalingFit]]:
    """Every form of :data:`SLICE_FORMS` fitted to every model's slice (columns model, ``n_frames`` or
    ``n_captions``, score): ``{model: {form: fit}}``, for :func:`compare_slice_forms` and :func:`slice_fit_table`."""
    return {model: {name: fit_slice(sub[_AXES[axis][0]], sub.score, axis, name) for name in SLICE_FORMS[axis]}
            for model, sub in _slices(table, axis)}


def compare_slice_forms(table: pd.DataFrame, axis: str, fits: dict | None = None) -> pd.DataFrame:
    """:func:`compare_forms` for one-dimensional slices: every form of :data:`SLICE_FORMS` fitted to every
    model's slice (or taken from ``fits``, :func:`fit_slices`) and ranked by AICc within it. Adds
    ``rms_residual``, to set beside the error of the values."""
    fits = fits or fit_slices(table, axis)
    rows = [dict(model=model, axis=axis, form=name, n_params=len(fit.params), r2=fit.r2, rss=fit.rss,
                 rms_residual=float(np.sqrt(fit.rss / fit.n_points)), aic=fit.aic, aicc=fit.aicc, bic=fit.bic)
            for model, by_form in fits.items() for name, fit in by_form.items()]
    out = pd.DataFrame(rows)
    out["delta_aicc"] = out.aicc - out.groupby("model").aicc.transform("min")
    w = np.exp(-0.5 * out.delta_aicc)
    out["akaike_weight"] = w / w.groupby(out.model).transform("sum")
    return out.sort_values(["model", "delta_aicc"], kind="stable").reset_index(drop=True)


def slice_fit_table(table: pd.DataFrame, axis: str, confidence: float = 0.95, fits: dict | None = None) -> pd.DataFrame:
    """Eq. 2's term fitted to every model's slice (or taken from ``fits``, :func:`fit_slices`): one row per
    model with r2, the offset, ``C`` and the exponent, each with its interval from the fit's standard error
    (Student t with n - 3 degrees of freedom: the residual scatter, digitisation and misfit alike, sets the
    width)."""
    from scipy.stats import t
    rows = []
    for model, sub in _slices(table, axis):
        fit = (fits[model]["eq2_additive_power"] if fits else
               fit_slice(sub[_AXES[axis][0]], sub.score, axis))
        q = float(t.ppf(0.5 + confidence / 2, fit.n_points - len(fit.params)))
        row = dict(model=model, axis=axis, n_points=fit.n_points, r2=fit.r2)
        for name, value in fit.params.items():
            se = fit.stderr[name]
            row.update({name: value, f"{name}_low": value - q * se, f"{name}_high": value + q * se})
        rows.append(row)
    return pd.DataFrame(rows)


def slice_curves(table: pd.DataFrame, axis: str, margin: float) -> pd.DataFrame:
    """:func:`grid_curves` for one-dimensional slices whose fixed count is not known (Figure 8): the same
    trend rule, each value within ``margin`` of the truth; ``at`` is empty."""
    rows = []
    for model, sub in _slices(table, axis):
        rows.append(dict(model=model, axis=axis, at=pd.NA,
                         **_curve_trend(sub.reset_index(drop=True), _AXES[axis][0], None, margin,
                                        f"values within ±{margin:g}")))
    return pd.DataFrame(rows)
