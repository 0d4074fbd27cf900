"""Eq. 2 fits: known answers, the digitised Figure 3 grid, alternative forms, bad grids."""
import numpy as np
import pandas as pd
import pytest

import vtalign as va
from vtalign.book.paper import load_published

NF, NC = (a.ravel().astype(float) for a in np.meshgrid([1, 2, 4, 8, 12, 16, 32, 48], [1, 2, 4, 10]))


def eq2(nf, nc, s, cf, a, cc, b):
    return s - (cf * nf ** -a + cc * nc ** -b)


def test_recovers_known_parameters_exactly():
    truth = dict(s_inf=0.41, c_f=0.15, alpha=0.75, c_c=0.13, beta=1.3)
    fit = va.fit_scaling_law(NF, NC, eq2(NF, NC, *truth.values()))
    for name, value in truth.items():
        assert fit.params[name] == pytest.approx(value, abs=1e-6)
    assert fit.r2 == pytest.approx(1.0, abs=1e-10)
    np.testing.assert_allclose(fit.predict(NF, NC), eq2(NF, NC, *truth.values()), atol=1e-8)


def test_recovers_parameters_under_noise_with_honest_intervals():
    rng = np.random.default_rng(0)
    y = eq2(NF, NC, 0.37, 0.05, 1.7, 0.13, 1.4) + rng.normal(0, 0.002, NF.size)
    fit = va.fit_scaling_law(NF, NC, y, n_bootstrap=100, seed=1)
    assert fit.params["s_inf"] == pytest.approx(0.37, abs=0.005)
    assert fit.params["c_c"] == pytest.approx(0.13, abs=0.01)
    lo, hi = fit.interval("beta")
    assert lo < fit.params["beta"] < hi
    assert len(fit.bootstrap) > 90


def test_digitised_figure3_reproduces_table1():
    """The reference README: fitting the digitised grid gives videomaev2_huge S .410, C_f .145,
    alpha .749, C_c .133, beta 1.343, R^2 .979 (Table 1: .410, .146, .748, .128, 1.302, .979)."""
    fits = va.fit_grid(load_published("fig3_vatex_scaling_frames_digitized"))
    v = fits["videomaev2_huge"]
    assert v.params["s_inf"] == pytest.approx(0.410, abs=0.001)
    assert v.params["c_f"] == pytest.approx(0.145, abs=0.001)
    assert v.params["alpha"] == pytest.approx(0.749, abs=0.002)
    assert v.params["c_c"] == pytest.approx(0.133, abs=0.001)
    assert v.params["beta"] == pytest.approx(1.343, abs=0.005)
    assert v.r2 == pytest.approx(0.979, abs=0.001)
    table1 = load_published("table1_scaling_law_params").set_index(["model", "dataset"])
    d = fits["dinov2_giant"]
    assert d.r2 == pytest.approx(table1.loc[("dinov2_giant", "vatex"), "r2"], abs=0.001)
    assert d.params["s_inf"] == pytest.approx(table1.loc[("dinov2_giant", "vatex"), "s_inf"], abs=0.005)


def test_compare_forms_picks_the_generating_form():
    rng = np.random.default_rng(3)
    y = eq2(NF, NC, 0.4, 0.15, 0.75, 0.13, 1.3) + rng.normal(0, 0.001, NF.size)
    grid = pd.DataFrame(dict(model="m", n_frames=NF, n_captions=NC, score=y))
    table = va.compare_forms(grid)
    assert set(table.form) == set(va.FORMS)
    assert table.iloc[0].form == "eq2_additive_power"
    assert table.akaike_weight.sum() == pytest.approx(1.0)
    log_lin = table[table.form == "log_linear"].iloc[0]
    assert log_lin.delta_aicc > 10


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda g: g.drop(columns="score"), "missing column"),
        (lambda g: g.assign(n_frames=0), ">= 1"),
        (lambda g: g.assign(score=np.where(g.index == 3, np.nan, g.score)), "non-numeric"),
        (lambda g: pd.concat([g, g.iloc[:1]]), "Duplicated"),
        (lambda g: g[g.n_captions == 1], "two caption counts"),
        (lambda g: g.iloc[:4], "two caption counts|cannot fit"),
    ],
)
def test_bad_grids_raise(mutate, match):
    grid = pd.DataFrame(dict(model="m", n_frames=NF, n_captions=NC, score=eq2(NF, NC, 0.4, 0.1, 1, 0.1, 1)))
    with pytest.raises(ValueError, match=match):
        va.fit_grid(mutate(grid))


def test_unknown_form():
    with pytest.raises(ValueError, match="Unknown scaling form"):
        va.fit_scaling_law(NF, NC, NF * 0.0, form="quadratic")


def test_forms_that_tie_at_the_lowest_aicc_are_reported_as_a_tie():
    """Two forms with identical fits (ΔAICc 0) are a tie, in the helper and in the verdict's wording."""
    from vtalign.book.claims import form_verdict
    from vtalign.scaling import lowest_aicc

    table = pd.DataFrame(dict(model=["m"] * 3, form=["exponential_saturation", "eq2_additive_power", "log_linear"],
                              delta_aicc=[0.0, 0.0, 15.0]))
    assert lowest_aicc(table) == {"m": ["exponential_saturation", "eq2_additive_power"]}
    v = form_verdict(table)
    assert "a tie between `exponential_saturation` and `eq2_additive_power`" in v.value
    assert v.status == "not resolved"  # a tie is not "best by a significant margin"
    clear = table.assign(delta_aicc=[12.0, 0.0, 15.0])
    assert lowest_aicc(clear) == {"m": ["eq2_additive_power"]}
    assert form_verdict(clear).status == "supported"


def test_a_slice_fits_eq2_s_term_and_tells_the_forms_apart():
    """Figure 8's panels are slices (one count fixed, its value not printed): the term along the slice and an
    offset are identified, S_inf is not; an exponential slice is told from a power-law one by AICc."""
    n = np.array([1, 2, 3, 4, 6, 8, 10.0])
    fit = va.scaling.fit_slice(n, 0.35 - 0.12 * n ** -1.8, "captions")
    assert (fit.params["c_c"], fit.params["beta"], fit.params["offset"]) == pytest.approx((0.12, 1.8, 0.35), abs=1e-5)
    np.testing.assert_allclose(fit.predict(n_captions=n), 0.35 - 0.12 * n ** -1.8, atol=1e-8)
    table = pd.DataFrame(dict(model="m", n_frames=n, score=0.3 - 0.08 * np.exp(-0.7 * (n - 1))))
    forms = va.scaling.compare_slice_forms(table, "frames").set_index("form")
    assert forms.delta_aicc["exponential_saturation"] == 0 and forms.delta_aicc["eq2_additive_power"] > 10
    params = va.scaling.slice_fit_table(table, "frames").iloc[0]
    assert params.alpha_low < params.alpha < params.alpha_high
    with pytest.raises(va.InsufficientData):
        va.scaling.fit_slice([1, 2, 4], [0.1, 0.2, 0.25], "frames")


def test_slice_curves_apply_the_grid_rule():
    table = pd.DataFrame(dict(model=["up"] * 3 + ["dip"] * 3, n_captions=[1, 2, 4] * 2,
                              score=[0.1, 0.2, 0.25, 0.1, 0.2, 0.19]))
    curves = va.scaling.slice_curves(table, "captions", 0.0005).set_index("model")
    assert curves.trend["up"] == "rises" and curves.trend["dip"] == "flat" and curves.falling_steps["dip"] == 1
