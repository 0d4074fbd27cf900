"""The claims table: one verdict per claim and kind of evidence, each from one function of vtalign.book.claims,
saved by the chapter that graded it and rendered from results/claims.csv. Every builder is tested on inputs that
make it come out each way."""
import pandas as pd
import pytest

from vtalign import verdicts as v
from vtalign.book import claims
from vtalign.correlation import Correlation
from vtalign.paths import claims_csv, verdicts_csv
from vtalign.stats import PairedDifference


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("VTALIGN_RESULTS_ROOT", str(tmp_path / "results"))
    return tmp_path / "results"


def test_nothing_run_means_not_testable_and_the_published_rows_stay(results, tmp_path):
    table = claims.claims_table()
    assert list(table.columns[:6]) == ["claim", "evidence", "status", "rule", "value", "control"]
    published = table[table.evidence == "published"]
    assert len(published) == len(claims.CLAIMS) and (published.status == v.AS_PUBLISHED).all()
    others = table[table.evidence != "published"]
    assert (others.status == v.NOT_TESTABLE).all()
    untested = {(c.key, e) for c in claims.CLAIMS for e, ch in zip(("re-analysis", "controlled world"), c.chapters)
                if not ch}
    says_why = [(r.claim, r.evidence) in untested for r in others.itertuples()]
    assert others[[not w for w in says_why]].rule.str.contains("did not run").all()
    assert (others[says_why].rule.str.len() > 20).all()  # no chapter tests it: the row says why
    page = claims.write_claims_page(tmp_path / "claims.md").read_text()
    assert claims_csv().is_file() and pd.read_csv(claims_csv()).shape[0] == len(table)
    for word in v.DEFINITIONS:
        assert f"**{word}**" in page
    assert page.count("| **Figure") + page.count("| **Eq. 2") == len(claims.CLAIMS)


def test_a_chapter_verdict_reaches_the_table_by_its_key(results):
    grid_verdict = claims.trend_verdict(pd.DataFrame([dict(axis="frames", trend="rises", steps=2, rising_steps=2,
                                                           falling_steps=0, gain=0.1, interval="x")]), "frames")
    claims.save_verdicts("test_time_scaling", [grid_verdict])
    row = claims.claims_table().query("claim == 'fig3_frames' and evidence == 're-analysis'").iloc[0]
    assert row.status == v.SUPPORTED and row.chapter == "test_time_scaling"
    claims.save_verdicts("test_time_scaling", [grid_verdict], graded=False)  # e.g. run on a user's grid
    row = claims.claims_table().query("claim == 'fig3_frames' and evidence == 're-analysis'").iloc[0]
    assert row.status == v.NOT_TESTABLE and "did not grade" in row.rule


def test_a_saved_row_with_an_unknown_status_is_refused(results):
    path = verdicts_csv("live_scaling")
    pd.DataFrame([dict(claim="fig3_frames", evidence="controlled world", status="reproduced", rule="", value="",
                       control="")]).to_csv(path, index=False)
    with pytest.raises(ValueError, match="status"):
        claims.claims_table()
    with pytest.raises(ValueError, match="Unknown claim"):
        claims.not_testable("fig99", "re-analysis", "")


def _curves(axis, trends, gains=(0.1,)):
    return pd.DataFrame([dict(axis=axis, at=i, trend=t, steps=2, rising_steps=2 * (t == "rises"),
                              falling_steps=2 * (t == "falls"), gain=g, gain_low=g - 0.01, gain_high=g + 0.01,
                              interval="x") for i, (t, g) in enumerate(zip(trends, gains * len(trends)))])


def test_trend_verdict_on_the_paper_grid_each_way():
    assert claims.trend_verdict(_curves("frames", ["rises", "rises"]), "frames").status == v.SUPPORTED
    assert claims.trend_verdict(_curves("frames", ["rises", "flat"]), "frames").status == v.UNRESOLVED
    assert claims.trend_verdict(_curves("frames", ["rises", "falls"]), "frames").status == v.CONTRADICTED


def test_live_trend_verdict_needs_the_null_silent_and_the_worlds_apart():
    planted, null = _curves("captions", ["rises"] * 3), _curves("captions", ["flat"] * 3, (0.0,))
    apart, together = v.Interval(0.1, 0.05, 0.15), v.Interval(0.01, -0.01, 0.03)
    assert claims.live_trend_verdict(planted, null, "captions", apart, 0.08).status == v.DETECTED
    assert claims.live_trend_verdict(planted, null, "captions", together, 0.08).status == v.NOT_DETECTED
    assert claims.live_trend_verdict(planted, planted, "captions", apart, 0.08).status == v.FIRES_ON_NULL
    weak = _curves("captions", ["flat"] * 3, (0.0,))
    assert claims.live_trend_verdict(weak, null, "captions", together, 0.005).status == v.NO_POWER
    assert claims.live_trend_verdict(planted, None, "captions", None, 0.08).status == v.NOT_TESTABLE


def _forms(eq2_delta, other_delta):
    return pd.DataFrame([dict(model="m", form="eq2_additive_power", delta_aicc=eq2_delta),
                         dict(model="m", form="multiplicative_power", delta_aicc=other_delta)])


def test_form_verdict_names_the_winner_and_the_margin():
    lost = claims.form_verdict(_forms(54.0, 0.0))
    assert lost.status == v.CONTRADICTED and "multiplicative_power" in lost.value and "54.0" in lost.value
    assert claims.form_verdict(_forms(0.0, 12.0)).status == v.SUPPORTED
    assert claims.form_verdict(_forms(0.0, 3.0)).status == v.UNRESOLVED


def test_caption_gain_verdict_is_an_equivalence_test_on_the_printed_precision():
    assert claims.caption_gain_verdict(v.Interval(.6, .57, .63), "grid", .6, .05).status == v.SUPPORTED
    # the interval crosses the band's lower edge (+55%): neither inside nor outside
    straddles = claims.caption_gain_verdict(v.Interval(.55, .52, .59), "grid", .6, .05, implied=0.52)
    assert straddles.status == v.UNRESOLVED and "a gain of +55%" in straddles.value
    assert "smaller than the stated +60%" in straddles.value and "+52%" in straddles.control
    assert "+55% to +65%" in straddles.rule
    outside = claims.caption_gain_verdict(v.Interval(.45, .42, .49), "grid", .6, .05)
    assert outside.status == v.CONTRADICTED
    # a wide interval that holds the published value does not support "about +60%"
    assert claims.caption_gain_verdict(v.Interval(.6, .3, .9), "grid", .6, .05).status == v.UNRESOLVED
    planted = claims.live_caption_gain_verdict(v.Interval(1.7, 1.5, 1.9), v.Interval(0.0, -0.05, 0.05), .6)
    assert planted.status == v.DETECTED and "larger" in planted.value
    fires = claims.live_caption_gain_verdict(v.Interval(1.7, 1.5, 1.9), v.Interval(.3, .1, .5), .6)
    assert fires.status == v.FIRES_ON_NULL


def _paired(d, lo, hi):
    return PairedDifference(13, 0.2, 0.2 - d, d, lo, hi, 0.01, -0.001, 0.001, 0.95)


def test_frame_averaging_verdict_widens_by_the_digitisation_margin():
    best = ("m", 0.2)
    assert claims.frame_averaging_verdict(_paired(0.013, 0.009, 0.017), 0.0002, best, best).status == v.SUPPORTED
    assert claims.frame_averaging_verdict(_paired(0.001, 0.0002, 0.002), 0.0002, best, best).status == v.UNRESOLVED
    assert claims.frame_averaging_verdict(_paired(-0.01, -0.02, -0.005), 0.0002, best, best).status == v.CONTRADICTED


def _corr(r, lo, hi, sp=0.5, p=0.05):
    return Correlation(8, r, p, sp, p, lo, hi, 0.95, 1000, p)


def test_downstream_verdict_counts_every_task_but_the_stated_exception():
    rows = [("ssv2", .88, .5, .97), ("kinetics", .92, .6, .98), ("re10k_camera_pose", -.83, -.95, -.4),
            ("perception_test_point_tracking", .4, -.45, .9)]
    c = pd.DataFrame([dict(task=t, pearson_r=r, ci_low=lo, ci_high=hi) for t, r, lo, hi in rows])
    verdict = claims.downstream_verdict(c, ["re10k_camera_pose"], ["ssv2", "kinetics"])
    assert verdict.status == v.SUPPORTED and "3 of 3" in verdict.value and "point_tracking" in verdict.value
    # without turning the sign of a lower-is-better task, its correlation reads as the opposite
    assert claims.downstream_verdict(c, [], ["ssv2", "kinetics"]).status == v.CONTRADICTED
    assert claims.downstream_verdict(c, ["re10k_camera_pose"], ["ssv2"], exceptions=()).status == v.UNRESOLVED


def test_reorder_and_most_aligned_verdicts():
    s = pd.DataFrame(dict(positive=[0.1, 0.2, 0.3], negative=[0.095, 0.19, 0.29]))
    assert claims.reorder_verdict(s, 0.0005).status == v.SUPPORTED
    s.loc[0, "negative"] = 0.1
    assert claims.reorder_verdict(s, 0.0005).status == v.UNRESOLVED
    s.loc[0, "negative"] = 0.11
    assert claims.reorder_verdict(s, 0.0005).status == v.CONTRADICTED
    absolute = _corr(0.9, 0.5, 0.99, sp=0.87, p=0.005)
    assert claims.most_aligned_verdict(absolute, _corr(0.54, -0.41, 0.97, sp=0.29, p=0.49)).status == v.UNRESOLVED
    assert claims.most_aligned_verdict(absolute, _corr(0.8, 0.3, 0.95)).status == v.SUPPORTED


def test_test_of_time_verdict_uses_the_printing_margin():
    scores = lambda values: pd.DataFrame(dict(k=3, alignment=values))
    assert claims.test_of_time_verdict(scores([1.0, 0.97, 0.9, 0.79]), 0.005).status == v.UNRESOLVED  # 2 of 4
    assert claims.test_of_time_verdict(scores([1.0, 0.97, 0.95, 0.79]), 0.005).status == v.SUPPORTED
    assert claims.test_of_time_verdict(scores([0.5, 0.6, 0.95]), 0.005).status == v.CONTRADICTED


def _order(share, low, high):
    return pd.Series(dict(same_order=share, same_order_low=low, same_order_high=high))


def test_live_order_verdict():
    planted, null = _order(1.0, 0.98, 1.0), _order(0.3, 0.23, 0.37)
    assert claims.live_order_verdict(planted, null).status == v.DETECTED
    assert claims.live_order_verdict(planted, planted).status == v.FIRES_ON_NULL
    assert claims.live_order_verdict(null, null).status == v.NOT_DETECTED
    assert claims.live_order_verdict(planted, None).status == v.NOT_TESTABLE


def _negatives(aware_d, aware_p, blind_p=0.5, half=0.002):
    return pd.DataFrame([dict(vision="m | segments:4", text=t, difference=aware_d, p_value=aware_p,
                              null_low=-half, null_high=half) for t in ("a", "b")]
                        + [dict(vision="m | mean:16", text=t, difference=0.001, p_value=blind_p, null_low=-half,
                                null_high=half) for t in ("a", "b")])


def test_live_reorder_verdict_never_counts_the_control_and_states_its_power():
    args = ("segments:4", "mean:16", [0.0, 0.009])
    assert claims.live_reorder_verdict(_negatives(0.02, 0.001), _negatives(0.0, 0.6), *args).status == v.DETECTED
    fired = claims.live_reorder_verdict(_negatives(0.02, 0.001, blind_p=0.001), _negatives(0.0, 0.6), *args)
    assert fired.status == v.FIRES_ON_NULL  # the order-blind control cannot prefer an order
    assert claims.live_reorder_verdict(_negatives(0.0, 0.6), _negatives(0.0, 0.6), *args).status == v.NOT_DETECTED
    blind_null = _negatives(0.0, 0.6, half=0.01)
    assert claims.live_reorder_verdict(_negatives(0.0, 0.6), blind_null, *args).status == v.NO_POWER
    # two text models at p = 0.04 each: significant alone, not after Holm's correction over both
    assert claims.live_reorder_verdict(_negatives(0.02, 0.04), _negatives(0.0, 0.6), *args).status == v.NOT_DETECTED


def test_readouts_above_chance_and_the_downstream_check():
    scores = pd.DataFrame([dict(vision=f"v{i}", task="bg", semantic=True, kind="class", probe="linear",
                                layer_choice="last", score=s, chance=0.2) for i, s in enumerate((0.5, 0.6, 0.9))]
                          + [dict(vision=f"v{i}", task="motion", semantic=False, kind="class", probe="linear",
                                  layer_choice="last", score=s, chance=0.5) for i, s in enumerate((0.49, 0.52, 0.574))])
    above = claims.readouts_above_chance(scores, n_items=256).set_index("task")
    # best of 3 variants: z = 2.394 (Bonferroni), so motion needs more than 0.5 + 2.394 * sqrt(.25 / 256) = 0.5748
    assert above.loc["bg", "above"] and above.loc["motion", "margin"] == pytest.approx(0.07481, abs=1e-4)
    assert not above.loc["motion", "above"]
    above_now = claims.readouts_above_chance(scores.replace(0.574, 0.576), n_items=256).set_index("task")
    assert above_now.loc["motion", "above"]
    corr = pd.DataFrame([dict(task="bg", pearson_r=0.9, permutation_p=0.001),
                         dict(task="motion", pearson_r=0.95, permutation_p=0.001)])
    none = pd.DataFrame([dict(task="bg", pearson_r=0.1, permutation_p=0.6)])
    verdict = claims.live_downstream_verdict(corr, above.reset_index(), none, above.reset_index())
    assert verdict.status == v.DETECTED and "at chance: motion" in verdict.value
    motion_only = corr[corr.task == "motion"]  # correlates strongly, but its readout is at chance: not entered
    assert claims.live_downstream_verdict(motion_only, above.reset_index(), none,
                                          above.reset_index()).status == v.NOT_DETECTED
    assert claims.live_downstream_verdict(corr, above.reset_index(), corr,
                                          above.reset_index()).status == v.FIRES_ON_NULL


# --------------------------------------------------------------------------- #
# Figure 8 (PVD) re-analysed: each rule made to come out each way
# --------------------------------------------------------------------------- #
def _slices(rows, column):
    return pd.DataFrame([dict(model=m, **{column: n}, score=s) for m, points in rows.items() for n, s in points])


def test_pvd_frames_verdict_needs_every_curve_up_and_video_models_gaining_more():
    from vtalign.scaling import slice_curves
    up = lambda gain: [(1, 0.2), (4, 0.2 + gain / 2), (16, 0.2 + gain)]
    curves = slice_curves(_slices({"img": up(0.01), "vid": up(0.08)}, "n_frames"), "frames", 0.0005)
    assert claims.pvd_frames_verdict(curves, ["vid"], 0.0005).status == v.SUPPORTED
    # image and video models gain alike: the second part is not resolved
    alike = slice_curves(_slices({"img": up(0.05), "vid": up(0.0505)}, "n_frames"), "frames", 0.0005)
    assert claims.pvd_frames_verdict(alike, ["vid"], 0.0005).status == v.UNRESOLVED
    # the image model gains more: contradicted
    assert claims.pvd_frames_verdict(curves, ["img"], 0.0005).status == v.CONTRADICTED
    # a step that falls beyond the margin makes the curve flat, and the claim unresolved
    dip = slice_curves(_slices({"img": up(0.01), "vid": [(1, 0.2), (4, 0.29), (16, 0.28)]}, "n_frames"), "frames",
                       0.0005)
    verdict = claims.pvd_frames_verdict(dip, ["vid"], 0.0005)
    assert verdict.status == v.UNRESOLVED and "1 fall beyond it (in vid)" in verdict.value


def test_pvd_beats_original_verdict_reads_every_count_from_three():
    counts = (1, 2, 3, 4, 6)
    captions = _slices({"a": [(n, 0.2 + 0.02 * n) for n in counts], "b": [(n, 0.1 + 0.02 * n) for n in counts]},
                       "n_captions")
    original = lambda a, b: pd.DataFrame(dict(model=["a", "b"], score=[a, b]))
    assert claims.pvd_beats_original_verdict(captions, original(0.25, 0.15), 0.0005, 0.0002).status == v.SUPPORTED
    # b's three captions (0.16) tie its original within the margins: not resolved
    assert claims.pvd_beats_original_verdict(captions, original(0.25, 0.1595), 0.0005, 0.0002).status == v.UNRESOLVED
    beaten = claims.pvd_beats_original_verdict(captions, original(0.25, 0.18), 0.0005, 0.0002)
    assert beaten.status == v.CONTRADICTED and "smallest lead -0.0200 (b, 3 captions)" in beaten.value


def test_pvd_saturation_verdict_counts_models_still_rising_after_six():
    flat = [(1, 0.1), (4, 0.2), (6, 0.25), (8, 0.2504), (10, 0.249)]
    rising = [(1, 0.1), (4, 0.2), (6, 0.25), (8, 0.26), (10, 0.27)]
    most = claims.pvd_saturation_verdict(_slices({"a": flat, "b": flat, "c": rising}, "n_captions"), 0.0005)
    assert most.status == v.SUPPORTED and "2 of 3 models saturated at 6" in most.value
    rises = claims.pvd_saturation_verdict(_slices({"a": flat, "b": rising}, "n_captions"), 0.0005)
    assert rises.status == v.CONTRADICTED


def test_slice_form_verdict_per_model_and_panel():
    forms = lambda eq2, other: pd.DataFrame([dict(model="m", axis="captions", form="eq2_additive_power",
                                                  delta_aicc=eq2),
                                             dict(model="m", axis="captions", form="exponential_saturation",
                                                  delta_aicc=other)])
    assert claims.slice_form_verdict(forms(0.0, 12.0)).status == v.SUPPORTED
    assert claims.slice_form_verdict(forms(0.0, 4.0)).status == v.UNRESOLVED
    lost = claims.slice_form_verdict(forms(10.4, 0.0))
    assert lost.status == v.CONTRADICTED and "m (captions): `exponential_saturation` better by ΔAICc 10.4" in lost.value
