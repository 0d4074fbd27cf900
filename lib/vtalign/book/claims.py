"""Every claim of the paper, graded separately for each kind of evidence: the one home of every status.

A claim has a stable key (:data:`CLAIMS`). Each chapter that tests it calls one function of this module,
which applies a rule of :mod:`vtalign.verdicts` to the chapter's numbers and returns a
:class:`~vtalign.verdicts.Verdict`; the chapter prints it (:func:`show`) and saves it
(:func:`save_verdicts`, ``results/<chapter>/verdicts.csv``). Nothing is parsed back from labels:
:func:`claims_table` concatenates the saved verdicts with the published rows into
``results/claims.csv``, and :func:`write_claims_page` renders the landing page's table from that file.

Kinds of evidence (:data:`vtalign.verdicts.EVIDENCE`):

- *published*: the paper's number or sentence, quoted (status "as published");
- *re-analysis*: the paper's own published data, re-analysed here with the rule and noise margin named;
- *real data*: real captions or paragraphs measured with the offline language models;
- *controlled world*: generated clips with the effect planted, beside a null world without it. Its
  status is a **method check** (does the measurement find what is planted and stay silent on the null?),
  never evidence about the paper's models.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..paths import book_dir, claims_csv, verdicts_csv
from ..scaling import best_form_text, lowest_aicc
from ..verdicts import (
    AS_PUBLISHED,
    CONTRADICTED,
    DEFINITIONS,
    EVIDENCE,
    NOT_TESTABLE,
    SUPPORTED,
    UNRESOLVED,
    Interval,
    Verdict,
    about_status,
    claim_status,
    critical_pearson_r,
    direction,
    form_status,
    holm,
    method_check,
    sign_status,
    versus_published,
)
from .tables import markdown_cell, p_phrase, plural
from .worlds import label as world_label

__all__ = ["Claim", "CLAIMS", "claim", "published_verdicts", "save_verdicts", "show", "claims_table",
           "write_claims_page", "trend_verdict", "form_verdict", "caption_gain_verdict", "frame_averaging_verdict",
           "strength_verdict", "downstream_verdict", "detections", "downstream_detections", "reorder_detections",
           "test_of_time_verdict", "reorder_verdict",
           "most_aligned_verdict", "live_trend_verdict", "live_caption_gain_verdict", "live_frame_averaging_verdict",
           "live_strength_verdict", "live_downstream_verdict", "live_order_verdict", "live_reorder_verdict",
           "not_testable", "readouts_above_chance", "pvd_frames_verdict", "pvd_beats_original_verdict",
           "pvd_saturation_verdict", "slice_form_verdict", "bag_of_words_verdict", "bag_of_words_over_margins"]


@dataclass(frozen=True)
class Claim:
    """One finding of the paper: stable ``key``, where it is stated (``figure``), the ``statement`` and the
    chapters that test it (re-analysis, live; ``""`` where no chapter does, ``untested`` saying why). What the
    paper prints for it is :func:`published_verdicts`."""
    key: str
    figure: str
    statement: str
    chapters: tuple[str, str]
    untested: str = ""
    real: tuple[str, ...] = ()  # chapters grading it on *real data* (real captions, offline language models)
    real_scope: str = ""  # what the real-data row measures when it is not the claim itself (its landing cell says it)


# caption_scaling aligns two disjoint caption sets of each video, not captions with video features
_TEXT_ONLY = "text-only analogue"

_NO_PVD_WORLD = ("no generated world is built for Figure 8: it is about PVD's videos and their synthesised "
                 "captions, which the controlled worlds do not imitate")

CLAIMS: tuple[Claim, ...] = (
    Claim("fig2_strength", "Figure 2", "Alignment with text grows with the vision model's strength "
          "(regression of alignment on retrieval accuracy over models)", ("alignment_vs_retrieval", "live_downstream")),
    Claim("fig2_frame_averaging", "Figure 2", "Averaging an image model's features over frames beats its "
          "first frame alone", ("alignment_vs_retrieval", "live_scaling")),
    Claim("fig3_frames", "Figure 3", "Alignment grows with the number of frames given at test time",
          ("test_time_scaling", "live_scaling")),
    Claim("fig3_captions", "Figure 3", "Alignment grows with the number of captions given at test time",
          ("test_time_scaling", "live_scaling"), real=("caption_scaling",), real_scope=_TEXT_ONLY),
    Claim("eq2_best_form", "Eq. 2, Table 1", "The saturating additive power law (Eq. 2) fits test-time scaling "
          "best, \"by a significant margin\"", ("test_time_scaling", "live_scaling")),
    Claim("fig7_caption_gain", "Figure 7", "Going from one caption to all raises alignment by about +60%",
          ("test_time_scaling", "live_scaling")),
    Claim("fig4_downstream", "Figure 4, Sec. 7", "Alignment of self-supervised video models correlates with "
          "downstream performance, semantic and non-semantic tasks alike (point tracking the stated exception)",
          ("downstream_correlation", "live_downstream")),
    Claim("fig5_order", "Figure 5, Sec. 8", "Test of Time: alignment is high at k = 3, but the order of events is "
          "only weakly encoded", ("test_of_time", "live_temporal")),
    Claim("fig6_reorder", "Figure 6", "Temporally reordered captions lower alignment slightly, not significantly",
          ("videocomp_negatives", "live_videocomp")),
    Claim("fig6_most_aligned", "Figure 6", "The most aligned models drop the most on reordered captions",
          ("videocomp_negatives", "live_videocomp")),
    Claim("fig8_frames", "Figure 8 (left), Sec. A.3", "On PVD, more frames raise alignment, far more for video "
          "models than for image models, which plateau quickly", ("test_time_scaling", ""), _NO_PVD_WORLD),
    Claim("fig8_captions", "Figure 8 (right), Sec. 6", "On PVD, alignment grows with the number of synthesised "
          "captions", ("test_time_scaling", ""), _NO_PVD_WORLD, real=("caption_scaling",),
          real_scope=_TEXT_ONLY),
    Claim("fig8_beats_original", "Figure 8 (right), Sec. A.3", "Three or more synthesised captions beat the original "
          "detailed caption, for every model", ("test_time_scaling", ""), _NO_PVD_WORLD, real=("caption_scaling",),
          real_scope=_TEXT_ONLY),
    Claim("fig8_saturation", "Figure 8 (right), Sec. A.3", "The gain from synthesised captions saturates around 6 "
          "captions for most models", ("test_time_scaling", ""), _NO_PVD_WORLD),
    Claim("fig8_eq2_form", "Figure 8, Table 1 (PVD)", "Eq. 2 fits test-time scaling on PVD best (Table 1 gives its "
          "PVD fits)", ("test_time_scaling", ""), _NO_PVD_WORLD, real=("caption_scaling",), real_scope=_TEXT_ONLY),
    Claim("fig5_bag_of_words", "Figure 5, Sec. 8", "Language models measure closeness more like a bag of words than "
          "by temporal order: a caption's nearest neighbour is the same words in another order, at least at the "
          "shallower layers", ("", ""), "the paper publishes no text features to re-analyse, and a generated world "
          "cannot speak for real language models: the text side is measured on real captions (real data)",
          real=("text_order",)),
)
_BY_KEY = {c.key: c for c in CLAIMS}


def claim(key: str) -> Claim:
    """The claim with this stable key; a clear error lists the keys."""
    if key not in _BY_KEY:
        raise ValueError(f"Unknown claim {key!r}; claims are {list(_BY_KEY)}.")
    return _BY_KEY[key]


def _verdict(key: str, evidence: str, status: str, rule: str, value: str, control: str = "") -> Verdict:
    claim(key)
    return Verdict(key, evidence, status, rule, value, control)


def not_testable(key: str, evidence: str, reason: str, value: str = "") -> Verdict:
    """A verdict that says why no test here can speak to the claim."""
    return _verdict(key, evidence, NOT_TESTABLE, reason, value)


def _pct(x: float) -> str:
    return f"{x:+.0%}"


# --------------------------------------------------------------------------- #
# Published: the paper's own numbers, quoted
# --------------------------------------------------------------------------- #
def published_verdicts() -> list[Verdict]:
    """One *published* row per claim: what the paper prints for it, read from ``data_manifest/paper``."""
    from .paper import load_published, printed
    legend = load_published("fig2_printed_legend_r")
    table1 = load_published("table1_scaling_law_params")
    fig4 = load_published("fig4_printed_pearson").set_index("task")
    fig5 = load_published("fig5_test_of_time_printed")
    fig6 = load_published("fig6_videocomp_printed").assign(drop=lambda d: d.positive - d.negative)
    fig7 = load_published("fig7_fit_printed").iloc[0]
    at3 = fig5[fig5.k == 3]
    pvd = table1[table1.dataset == "pvd"]
    values = {
        "fig2_strength": f"r = {legend.r.min():.2f} to {legend.r.max():.2f} over {len(legend)} lines",
        "fig2_frame_averaging": f"Δ = {printed('fig2_frame_averaging_delta'):+.3f} (Figure 2 annotation)",
        "fig3_frames": "every curve rises (Figure 3)",
        "fig3_captions": "every curve rises (Figure 3)",
        "eq2_best_form": f"Eq. 2 R² {table1.r2.min():.3f} to {table1.r2.max():.3f} ({len(table1)} fits); best of "
                         "\"several formulations\", which are not listed",
        "fig7_caption_gain": f"{_pct(printed('fig7_caption_gain'))} (text); all = {fig7.slope:g} x one "
                             f"{'+' if fig7.intercept >= 0 else '-'} {abs(fig7.intercept):g}, r = {fig7.r:g}",
        "fig4_downstream": ", ".join(f"{t} {r:+.3f}" for t, r in fig4.pearson_r.items()),
        "fig5_order": f"{int((at3.alignment >= 0.9).sum())} of {len(at3)} models ≥ 0.9 at k = 3",
        "fig6_reorder": f"drops {fig6['drop'].min():.3f} to {fig6['drop'].max():.3f} over {len(fig6)} models; "
                        "\"lower ... but not significantly\"",
        "fig6_most_aligned": "stated in Sec. 8",
        "fig8_frames": "\"Scaling with more frames is generally helpful, but is especially important for video "
                       "models\" (Figure 8); image models \"plateau quickly\" (Sec. A.3)",
        "fig8_captions": "\"our test time scaling approach improves alignment on the PVD dataset\" (Sec. 6)",
        "fig8_beats_original": "\"for all models, using even just 3 captions leads to better alignment compared to the "
                               "baseline score\" (Sec. A.3)",
        "fig8_saturation": "\"This saturates around 6 captions for most models\" (Sec. A.3)",
        "fig8_eq2_form": f"Table 1, PVD: Eq. 2 R² {pvd.r2.min():.3f} to {pvd.r2.max():.3f} ({len(pvd)} fits)",
        "fig5_bag_of_words": "\"the language models tend to rank the neighbor which has the same words but ordered "
                             "differently first ... more akin to a bag-of-words than being temporally sensitive, at "
                             "least at the shallower layers\" (Sec. 8, on Test of Time's captions)",
    }
    return [_verdict(c.key, "published", AS_PUBLISHED, "quoted from the paper", values[c.key]) for c in CLAIMS]


# --------------------------------------------------------------------------- #
# Re-analysis: the paper's own data, re-analysed here
# --------------------------------------------------------------------------- #
def trend_verdict(curves: pd.DataFrame, axis: str, key: str | None = None) -> Verdict:
    """Figure 3 on the paper's grid: every curve along ``axis`` ("frames" or "captions") must rise beyond
    the digitisation margin (:func:`vtalign.scaling.grid_curves` with ``margin``). ``key``: the claim
    (default ``fig3_<axis>``; Figure 8's slices, :func:`vtalign.scaling.slice_curves`, grade ``fig8_<axis>``)."""
    c = curves[curves.axis == axis]
    rising, falling = int((c.trend == "rises").sum()), int((c.trend == "falls").sum())
    flat_steps = int((c.steps - c.rising_steps - c.falling_steps).sum())
    down_steps = int(c.falling_steps.sum())
    dipped = c[(c.trend != "rises") & (c.falling_steps > 0)]
    return _verdict(key or f"fig3_{axis}", "re-analysis", claim_status(rising, falling, len(c)),
                    f"a curve rises when its first-to-last gain exceeds zero beyond the margin and no step falls "
                    f"beyond it ({c.interval.iloc[0] if len(c) else ''})",
                    f"{rising} of {len(c)} curves rise, {falling} fall; {flat_steps} of {int(c.steps.sum())} single "
                    f"steps are flat within the margin"
                    + (f", {down_steps} fall beyond it"
                       + (f" (in {', '.join(dipped.model.astype(str).unique())})" if "model" in dipped else "")
                       if down_steps else ""),
                    f"gains {c.gain.min():+.3f} to {c.gain.max():+.3f}" if len(c) else "")


def _form_statuses(forms: pd.DataFrame, unit: str = "model") -> list[tuple[str, str, float, float, list[str]]]:
    """Per ``unit`` of a form comparison: (unit, status of :func:`vtalign.verdicts.form_status`, Eq. 2's
    ΔAICc, the best other form's ΔAICc, the forms at the lowest AICc)."""
    out = []
    for name, sub in forms.groupby(unit, sort=False):
        eq2 = float(sub[sub.form == "eq2_additive_power"].delta_aicc.iloc[0])
        best_other = float(sub[sub.form != "eq2_additive_power"].delta_aicc.min())
        winners = lowest_aicc(sub.assign(model=name))[name]
        out.append((name, form_status(eq2, best_other), eq2, best_other, winners))
    return out


def _combined(statuses) -> str:
    statuses = list(statuses)
    return CONTRADICTED if CONTRADICTED in statuses else SUPPORTED if set(statuses) == {SUPPORTED} else UNRESOLVED


def form_verdict(forms: pd.DataFrame, evidence: str = "re-analysis") -> Verdict:
    """Eq. 2 against the alternative forms by AICc, per model (:func:`vtalign.compare_forms`): contradicted
    where another form beats it by ΔAICc > 10, naming the form and the margin."""
    rows = _form_statuses(forms)
    parts = [f"{model}: lowest AICc {best_form_text(winners)}"
             + (f", Eq. 2 behind by ΔAICc {eq2:.1f}" if "eq2_additive_power" not in winners else
                f", next by ΔAICc {best_other:.1f}" if len(winners) == 1 else "")
             for model, _, eq2, best_other, winners in rows]
    status = _combined(r[1] for r in rows)
    return _verdict("eq2_best_form", evidence, status, "Eq. 2 best by ΔAICc > 10 over each of four alternative forms "
                    "(supported), or another form better by ΔAICc > 10 (contradicted)", "; ".join(parts))


def caption_gain_verdict(gain: Interval, source: str, published: float, tolerance: float,
                         implied: float | None = None) -> Verdict:
    """Figure 7's "+60%" against the same quantity (1 -> all captions, relative) re-analysed from the
    paper's points (:func:`vtalign.scaling.relative_gain`), by the equivalence rule
    :func:`vtalign.verdicts.about_status` on the band ``published ± tolerance`` (the precision the paper printed
    it with). ``implied``: the gain the paper's own line (all = 1.6 x one - 0.018) gives at these points' mean
    one-caption score, printed beside it."""
    where = versus_published(gain, published)
    low, high = published - tolerance, published + tolerance
    return _verdict("fig7_caption_gain", "re-analysis", about_status(gain, published, tolerance),
                    f"the interval ({gain.how}) must lie inside {_pct(published)} ± {tolerance * 100:g} points "
                    f"({_pct(low)} to {_pct(high)}: the precision the paper printed it with) to support \"about "
                    f"{_pct(published)}\", wholly outside it to contradict it; straddling an edge resolves nothing",
                    f"a gain of {_pct(gain.estimate)} [{_pct(gain.low)}, {_pct(gain.high)}] from {source}: "
                    + ("the stated gain lies inside the interval" if where == "matches"
                       else f"{where} than the stated {_pct(published)}"),
                    "Figure 7's own points are not published; this is the same quantity on other published points"
                    + (f"; the paper's line gives {_pct(implied)} at their mean one-caption score"
                       if implied is not None else ""))


def frame_averaging_verdict(diff, margin: float, best_image: tuple[str, float],
                            best_video: tuple[str, float]) -> Verdict:
    """Frame averaging on Figure 2: the paired difference (frame-averaged minus first frame) over the
    image models shown both ways (:func:`vtalign.paired_difference`), its interval widened by the
    digitisation margin of a difference."""
    interval = Interval(diff.difference, diff.ci_low - 2 * margin, diff.ci_high + 2 * margin)
    return _verdict("fig2_frame_averaging", "re-analysis", sign_status(interval),
                    f"paired over models: the 95% bootstrap interval of the mean difference, widened by "
                    f"±{2 * margin:g} (digitisation), must exclude zero",
                    f"Δ {diff.difference:+.4f} [{interval.low:+.4f}, {interval.high:+.4f}] over {diff.n} models, "
                    f"sign-flip {p_phrase(diff.p_value)}",
                    f"best one-frame point {best_image[0]} {best_image[1]:.4f}; best frame-averaged point "
                    f"{best_video[0]} {best_video[1]:.4f}")


def strength_verdict(regressions: pd.DataFrame) -> Verdict:
    """Figure 2's regression over models: every panel's Pearson r must have a 95% bootstrap interval
    above zero (:func:`vtalign.figure2_regressions`)."""
    up = int((regressions.ci_low > 0).sum())
    down = int((regressions.ci_high < 0).sum())
    return _verdict("fig2_strength", "re-analysis", claim_status(up, down, len(regressions)),
                    "every panel's Pearson r has its 95% bootstrap interval (over models) above zero",
                    "; ".join(f"{r.panel}: r = {r.pearson_r:.3f} [{r.ci_low:.2f}, {r.ci_high:.2f}], n = {r.n}"
                              for r in regressions.itertuples()))


def downstream_verdict(correlations: pd.DataFrame, lower_is_better, semantic,
                       exceptions=("perception_test_point_tracking",)) -> Verdict:
    """Figure 4 as Sec. 7 states it: alignment correlates with downstream performance on semantic *and*
    non-semantic tasks, point tracking being the exception the paper names (``exceptions``: shown, not
    counted). A task correlates when its 95% bootstrap interval of r (sign turned where lower is better)
    lies above zero; supported when every counted task does, contradicted when one lies below."""
    c = correlations.assign(sign=np.where(correlations.task.isin(list(lower_is_better)), -1.0, 1.0))
    c = c.assign(good_low=np.where(c.sign > 0, c.ci_low, -c.ci_high),
                 good_high=np.where(c.sign > 0, c.ci_high, -c.ci_low), semantic=c.task.isin(list(semantic)))
    counted, excepted = c[~c.task.isin(list(exceptions))], c[c.task.isin(list(exceptions))]
    up, down = counted[counted.good_low > 0], counted[counted.good_high < 0]
    kinds = lambda d: f"{int(d.semantic.sum())} semantic, {int((~d.semantic).sum())} non-semantic"
    shown = lambda d: ", ".join(f"{r.task} r = {r.pearson_r:+.3f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
                                for r in d.itertuples())
    unresolved = counted[(counted.good_low <= 0) & (counted.good_high >= 0)]
    return _verdict("fig4_downstream", "re-analysis", claim_status(len(up), len(down), len(counted)),
                    "each task's 95% bootstrap interval of r over models (sign turned where lower is better) must lie "
                    "above zero; the exception the paper names is shown, not counted",
                    f"{len(up)} of {len(counted)} tasks correlate ({kinds(up)})"
                    + (f"; not resolved: {shown(unresolved)}" if len(unresolved) else "")
                    + (f"; the stated exception: {shown(excepted)}" if len(excepted) else ""),
                    f"{len(c)} tasks over the self-supervised video models of Figure 4 (Kinetics is "
                    "Kinetics-700-2020); the interval is the bootstrap over models, the digitisation error "
                    "(≤ 0.001) is far smaller")


def test_of_time_verdict(scores: pd.DataFrame, margin: float, threshold: float = 0.9) -> Verdict:
    """Figure 5's "most models are near-perfect at k = 3", with the printing margin: a model counts as
    near-perfect when its score minus ``margin`` is at least ``threshold``, and as below when its score
    plus ``margin`` is under it. (The "weakly encoded order" part cannot be read from scores alone.)"""
    at3 = scores[scores.k == 3]
    above = int((at3.alignment - margin >= threshold).sum())
    below = int((at3.alignment + margin < threshold).sum())
    status = SUPPORTED if above > len(at3) / 2 else CONTRADICTED if below >= len(at3) / 2 else UNRESOLVED
    return _verdict("fig5_order", "re-analysis", status,
                    f"more than half the models at ≥ {threshold} at k = 3 after the printing margin ±{margin:g}; the "
                    "order part needs features, which are not published",
                    f"{above} of {len(at3)} models ≥ {threshold} beyond the margin, {len(at3) - above - below} within "
                    f"it, {below} below")


test_of_time_verdict.__test__ = False  # named test_*: not a pytest test


def reorder_verdict(scores: pd.DataFrame, margin: float) -> Verdict:
    """Figure 6's printed drops: each drop (positive - negative) counts as above zero only beyond the
    rounding of its two printed values (``2 * margin``). The paper's "not significant" cannot be
    re-tested from printed scores."""
    d = scores.positive - scores.negative
    above, below = int((d - 2 * margin > 0).sum()), int((d + 2 * margin < 0).sum())
    return _verdict("fig6_reorder", "re-analysis", claim_status(above, below, len(d)),
                    f"every drop above zero beyond the rounding of two printed values (±{2 * margin:g})",
                    f"{above} of {len(d)} drops above the margin, {below} below; drops {d.min():.3f} to {d.max():.3f}",
                    "significance needs per-item scores, which are not published")


def most_aligned_verdict(absolute, relative) -> Verdict:
    """"The most aligned models drop the most": Spearman of the drop with the positive score, and of the
    *relative* drop (drop / positive), which removes the plain effect of score size. Supported only
    when the relative drop's interval lies above zero."""
    status = sign_status(Interval(relative.pearson_r, relative.ci_low, relative.ci_high))
    return _verdict("fig6_most_aligned", "re-analysis", status,
                    "the relative drop (drop / positive score) must correlate with the positive score: 95% bootstrap "
                    "interval of Pearson's r above zero (a larger score alone makes a larger absolute drop)",
                    f"relative drop: Spearman {relative.spearman_r:+.2f} ({p_phrase(relative.spearman_p)}), Pearson "
                    f"{relative.pearson_r:+.2f} [{relative.ci_low:+.2f}, {relative.ci_high:+.2f}]",
                    f"absolute drop: Spearman {absolute.spearman_r:+.3f} ({p_phrase(absolute.spearman_p)})")


# --------------------------------------------------------------------------- #
# Re-analysis of Figure 8 (PVD): one-dimensional slices, the fixed count not printed
# --------------------------------------------------------------------------- #
def pvd_frames_verdict(curves: pd.DataFrame, video_models, margin: float) -> Verdict:
    """Figure 8 (left): every frames curve must rise by the Figure 3 rule (:func:`trend_verdict` on
    :func:`vtalign.scaling.slice_curves`), *and* the video models' mean first-to-last gain must exceed
    the image models' beyond the digitisation margin (a gain is known to ±2 ``margin``, so a difference
    of two means of gains to ±4 ``margin``). Contradicted when either part is; supported when both are."""
    trend_part = trend_verdict(curves, "frames", key="fig8_frames")
    c = curves[curves.axis == "frames"]
    video = c.model.isin(list(video_models))
    if not video.any() or video.all():
        return _verdict("fig8_frames", "re-analysis", trend_part.status, trend_part.rule,
                        trend_part.value + "; video and image models cannot be compared (one group is empty)")
    gv, gi = c[video].gain, c[~video].gain
    diff = float(gv.mean() - gi.mean())
    interval = Interval(diff, diff - 4 * margin, diff + 4 * margin, f"values within ±{margin:g}")
    status = _combined([trend_part.status, sign_status(interval)])
    return _verdict("fig8_frames", "re-analysis", status,
                    trend_part.rule + "; and the video models' mean gain minus the image models' must lie above zero "
                    f"beyond ±{4 * margin:g}",
                    f"{trend_part.value}; first-to-last gain: video models {gv.min():+.4f} to {gv.max():+.4f} "
                    f"(mean {gv.mean():+.4f}), image models {gi.min():+.4f} to {gi.max():+.4f} "
                    f"(mean {gi.mean():+.4f}); difference {interval}",
                    f"smallest video-model gain {gv.min():+.4f} vs largest image-model gain {gi.max():+.4f}; "
                    f"image models: {', '.join(c[~video].model)}")


def _by_count(captions: pd.DataFrame) -> pd.DataFrame:
    return captions.pivot_table(index="model", columns="n_captions", values="score", sort=False)


def pvd_beats_original_verdict(captions: pd.DataFrame, original: pd.DataFrame, margin: float,
                               original_margin: float, at_least: int = 3) -> Verdict:
    """Figure 8 (right) against its dashed lines: a model counts when every synthesised-caption count from
    ``at_least`` up scores above its original-caption score beyond the two digitisation margins, and
    against when any such count scores below it beyond them."""
    wide = _by_count(captions)
    base = original.set_index("model").score.reindex(wide.index)
    m = margin + original_margin
    lead = wide.sub(base, axis=0)
    above = lead.loc[:, [n for n in lead.columns if n >= at_least]]
    n_for, n_against = int((above.min(axis=1) - m > 0).sum()), int((above.min(axis=1) + m < 0).sum())
    worst = above.min(axis=1)
    model = worst.idxmin()
    count = int(above.loc[model].idxmin())
    below = [n for n in lead.columns if n < at_least]
    context = "; ".join(f"with {int(n)} caption{'s' if n > 1 else ''}: {int((lead[n] - m > 0).sum())} of "
                        f"{len(lead)} above beyond the margin, {int((lead[n] + m < 0).sum())} below" for n in below)
    return _verdict("fig8_beats_original", "re-analysis", claim_status(n_for, n_against, len(lead)),
                    f"for each model, every count of {at_least} or more synthesised captions must score above the "
                    f"original caption beyond the two digitisation margins (±{m:g})",
                    f"{n_for} of {len(lead)} models above the original at every count ≥ {at_least}, {n_against} below; "
                    f"smallest lead {worst.min():+.4f} ({model}, {count} captions)",
                    context)


def pvd_saturation_verdict(captions: pd.DataFrame, margin: float, at: int = 6) -> Verdict:
    """Figure 8 (right), "saturates around 6 captions for most models": a model has saturated at ``at``
    when no larger count scores above its score at ``at`` beyond the noise of a difference (2 ``margin``).
    Supported when more than half the models have, contradicted when half or more still rise."""
    wide = _by_count(captions)
    later = wide.loc[:, [n for n in wide.columns if n > at]]
    rise_after = later.max(axis=1) - wide[at]
    still = rise_after > 2 * margin
    n_sat = int((~still).sum())
    status = SUPPORTED if n_sat > len(wide) / 2 else CONTRADICTED
    peak = wide.idxmax(axis=1)
    fall = wide.max(axis=1) - wide[wide.columns.max()]
    fell = fall > 2 * margin
    return _verdict("fig8_saturation", "re-analysis", status,
                    f"a model has saturated at {at} captions when no larger count scores above it beyond "
                    f"±{2 * margin:g} (a difference of two digitised values); more than half the models must have",
                    f"{n_sat} of {len(wide)} models saturated at {at}"
                    + (f"; still rising after {at}: " + ", ".join(f"{m} {d:+.4f}" for m, d in rise_after[still].items())
                       if still.any() else ""),
                    "peaks at " + ", ".join(f"{int(n)} captions ({int((peak == n).sum())})"
                                            for n in sorted(peak.unique()))
                    + f"; {int(fell.sum())} of {len(wide)} models score lower at {int(wide.columns.max())} captions "
                    f"than at their peak beyond the margin, by up to {fall.max():.4f}, which a saturating law "
                    "cannot follow")


def slice_form_verdict(forms: pd.DataFrame) -> Verdict:
    """Eq. 2 against the forms a one-dimensional slice can tell apart (:func:`vtalign.scaling.compare_slice_forms`
    on both panels of Figure 8), by the rule of :func:`form_verdict`, per (model, panel)."""
    units = forms.assign(unit=forms.model.astype(str) + " (" + forms.axis + ")")
    rows = _form_statuses(units, "unit")
    status = _combined(r[1] for r in rows)
    lost = [f"{u}: {best_form_text(w)} better by ΔAICc {d:.1f}" for u, st, d, _, w in rows if st == CONTRADICTED]
    won = sum("eq2_additive_power" in w for *_, w in rows)
    wins = {}
    for *_, w in rows:
        for f in w:
            wins[f] = wins.get(f, 0) + 1
    return _verdict("fig8_eq2_form", "re-analysis", status,
                    "per model and panel, Eq. 2's term best by ΔAICc > 10 over each other form a slice can tell apart "
                    "(supported), or another form better by ΔAICc > 10 (contradicted)",
                    f"lowest AICc on {len(rows)} slices: " + ", ".join(f"`{f}` {n}" for f, n in
                                                                        sorted(wins.items(), key=lambda x: -x[1]))
                    + f"; Eq. 2 best by more than 10 on {sum(r[1] == SUPPORTED for r in rows)}"
                    + (f"; another form better by more than 10: {'; '.join(lost)}" if lost else ""),
                    "on a slice, Eq. 2, the multiplicative and the product forms are one curve, so only the "
                    f"exponential and log-linear forms compete; Eq. 2 at the lowest AICc on {won} of {len(rows)} "
                    "slices")


# --------------------------------------------------------------------------- #
# Controlled world: method checks (planted world beside its null world)
# --------------------------------------------------------------------------- #
def _world_line(curves: pd.DataFrame, axis: str) -> tuple[bool, str]:
    c = curves[curves.axis == axis]
    detected = bool(len(c)) and bool((c.trend == "rises").all())
    return detected, f"{int((c.trend == 'rises').sum())} of {len(c)} curves rise"


def detections(curves: pd.DataFrame, world: str) -> pd.DataFrame:
    """Whether the Figure 3 rule finds each effect in one world's curves (:func:`vtalign.scaling.grid_curves`):
    one row per check (``frames``, ``captions``) with world, check, detected and the count behind it."""
    rows = []
    for axis in ("frames", "captions"):
        found, line = _world_line(curves, axis)
        rows.append(dict(world=world_label(world), check=axis, detected=found, value=line))
    return pd.DataFrame(rows)


def live_trend_verdict(planted: pd.DataFrame, null: pd.DataFrame | None, axis: str, separation: Interval | None,
                       paper_effect: float | None) -> Verdict:
    """Figure 3's rule (:func:`vtalign.scaling.grid_curves`, bootstrap over items) on the planted and the
    null world: detected when every curve rises in the planted world, not every one rises in the null, and
    the mean first-to-last gain differs between the worlds beyond its interval."""
    if not (planted.axis == axis).any():
        return not_testable(f"fig3_{axis}", "controlled world", f"the grid has one {axis} count only, so no curve "
                            f"along {axis}: pass two or more")
    found, line = _world_line(planted, axis)
    if null is None:
        return _verdict(f"fig3_{axis}", "controlled world", method_check(found, None), "no null world ran", line)
    silent_null, null_line = _world_line(null, axis)
    n = null[null.axis == axis]
    half = float(((n.gain_high - n.gain_low) / 2).mean()) if len(n) else None
    status = method_check(found, silent_null, separation, half, paper_effect)
    return _verdict(f"fig3_{axis}", "controlled world", status,
                    "the same rule as the re-analysis with bootstrap intervals over items, in both worlds; the "
                    "mean gain must differ between worlds beyond its interval",
                    f"planted: {line}" + (f"; planted - null gain {separation}" if separation else ""),
                    f"null: {null_line}" + (f"; null interval half-width {half:.4f} vs the paper's smallest gain "
                                            f"{paper_effect:+.3f}" if half is not None and paper_effect is not None
                                            else ""))


def live_caption_gain_verdict(planted: Interval, null: Interval | None, published: float) -> Verdict:
    """Figure 7's quantity measured in both worlds: detected when the planted gain's interval lies above
    zero and the null's does not. The planted size is the generator's choice, so its comparison with the
    paper's +60% is printed, not graded."""
    where = versus_published(planted, published)
    value = (f"planted {_pct(planted.estimate)} [{_pct(planted.low)}, {_pct(planted.high)}] ("
             + ("matches" if where == "matches" else f"{where} than") + f" the paper's {_pct(published)}; not "
             "comparable: the generator sets it)")
    if null is None:
        return _verdict("fig7_caption_gain", "controlled world", NOT_TESTABLE, "no null world ran", value)
    status = method_check(direction(planted) > 0, direction(null) > 0, planted.minus(null), null.half_width, published)
    return _verdict("fig7_caption_gain", "controlled world", status,
                    "relative gain from one to all captions, bootstrap over items: above zero in the planted world, "
                    "not in the null", value, f"null {_pct(null.estimate)} [{_pct(null.low)}, {_pct(null.high)}]; "
                                              f"its half-width {null.half_width:.0%} vs the paper's {_pct(published)}")


def live_frame_averaging_verdict(planted: pd.DataFrame, null: pd.DataFrame | None,
                                 paper_effect: float | None = None) -> Verdict:
    """Frame averaging, live: the frames curve at one caption (the Figure 2 setting) of each world's grid,
    first frame against the most frames averaged, paired over items. ``paper_effect``: the paper's Δ
    (frame-averaged minus image), set beside the null's half-width."""
    pick = lambda c: c[(c.axis == "frames") & (c["at"] == c["at"].min())].iloc[0]
    p = pick(planted)
    value = f"planted: {p.levels.split()[-1]} frames - 1 frame = {p.gain:+.4f} [{p.gain_low:+.4f}, {p.gain_high:+.4f}]"
    if null is None:
        return _verdict("fig2_frame_averaging", "controlled world", NOT_TESTABLE, "no null world ran", value)
    gain = lambda c: Interval(c.gain, c.gain_low, c.gain_high)
    q = pick(null)
    half = gain(q).half_width
    status = method_check(p.gain_low > 0, q.gain_low > 0, gain(p).minus(gain(q)), half, paper_effect)
    return _verdict("fig2_frame_averaging", "controlled world", status,
                    "paired bootstrap over items at one caption: the averaged-minus-first interval above zero in the "
                    "planted world and not in the null", value,
                    f"null: {q.gain:+.4f} [{q.gain_low:+.4f}, {q.gain_high:+.4f}]"
                    + (f"; its half-width {half:.4f} vs the paper's Δ {paper_effect:+.3f}" if paper_effect else ""))


def _significant_positive(table: pd.DataFrame, r: str = "pearson_r", p: str = "permutation_p") -> pd.DataFrame:
    if table is None or table.empty:
        return table
    keep = holm(table[p].astype(float).values) & (table[r].astype(float).values > 0)
    return table[keep]


def _power(n: int, m: int, paper_rs, alpha: float, n_permutations: int | None,
           tests: str) -> tuple[float | None, float | None, str, str]:
    """For a live correlation check: the critical r of its test (:func:`vtalign.verdicts.critical_pearson_r`),
    the paper's effect (the weakest of its printed ``paper_rs``, in absolute value: the test must be able to
    find every one of them), the rule's clause naming both with n and m, and the control column's clause
    (both starting with "; "). Without ``paper_rs``: no power rule (None, None, "", "")."""
    if paper_rs is None:
        return None, None, "", ""
    rs = [abs(float(r)) for r in np.atleast_1d(paper_rs)]
    if not rs:
        raise ValueError("paper_r is empty: give the paper's printed r values (or None for no power rule).")
    r_c, paper_r = critical_pearson_r(n, m, alpha, n_permutations), min(rs)
    reach = (f"r_c = {r_c:.3f}" if np.isfinite(r_c) else
             "none: " + ("nothing is tested" if m == 0 else "too few points or permutations for significance"))
    clause = (f"; no power when none is found and the weakest of the paper's {len(rs)} printed r (|r| from "
              f"{min(rs):.2f} to {max(rs):.2f}) is not above the critical r (the smallest r the test can declare "
              f"significant: two-sided t test at {alpha:g}/m; here {reach}, for n = {plural(n, 'variant')} and "
              f"m = {plural(m, tests)})")
    text = (f"; power: n = {plural(n, 'variant')}, m = {plural(m, tests)}, critical {reach}; paper's r {paper_r:.2f} "
            + ("above it" if paper_r > r_c else "not above it: no power"))
    return r_c, paper_r, clause, text


def live_strength_verdict(planted: pd.DataFrame | None, null: pd.DataFrame | None, paper_r=None,
                          alpha: float = 0.05, n_permutations: int | None = None) -> Verdict:
    """Figure 2, live: per text model, the line of alignment on the semantic k-NN score over the vision
    variants; detected when some line is positive with a permutation p significant after Holm's
    correction over text models, in the planted world and in no line of the null world. When no line is
    found and the weakest of ``paper_r`` (the paper's printed r values) is not above the smallest r the test can declare
    significant with these n variants and m lines (:func:`vtalign.verdicts.critical_pearson_r`), the test had
    no power."""
    if planted is None or planted.empty:
        return not_testable("fig2_strength", "controlled world", "too few vision variants for a regression")
    found = _significant_positive(planted)
    value = (f"planted: {len(found)} of {len(planted)} lines positive and significant (Holm); r = "
             f"{planted.pearson_r.min():+.2f} to {planted.pearson_r.max():+.2f}")
    if null is None or null.empty:
        return _verdict("fig2_strength", "controlled world", NOT_TESTABLE, "no null world ran", value)
    fired = _significant_positive(null)
    r_c, paper, clause, power = _power(int(planted.n.max()), len(planted), paper_r, alpha, n_permutations, "line")
    # method_check's no-power rule compares a width with the paper's effect: here the critical r plays the width
    return _verdict("fig2_strength", "controlled world",
                    method_check(len(found) > 0, len(fired) > 0, null_half_width=r_c, paper_effect=paper),
                    "a line counts when r > 0 and its permutation p (scores shuffled over variants) survives Holm's "
                    "correction over text models" + clause, value,
                    f"null (labels permuted over clips): {len(fired)} of {len(null)} lines; r = "
                    f"{null.pearson_r.min():+.2f} to {null.pearson_r.max():+.2f}" + power)


def readouts_above_chance(scores: pd.DataFrame, n_items: int, probe: str = "linear",
                          alpha: float = 0.05) -> pd.DataFrame:
    """Which tasks' frozen readouts beat chance: the best variant's score must exceed chance by ``z``
    standard errors of a readout at chance (binomial sqrt(c(1 - c)/N) for accuracies; sqrt(2/N) for R²,
    a readout at chance having R² <= 0), with ``z`` Bonferroni-corrected for taking the best of the
    variants (two-sided ``alpha`` / number of variants). Columns: task, semantic, best, chance, margin, above."""
    from scipy.stats import norm
    last = scores[(scores.probe == probe) & (scores.layer_choice == "last")]
    z = float(norm.ppf(1 - alpha / 2 / max(last.vision.nunique(), 1)))
    rows = []
    for task, t in last.groupby("task", sort=False):
        chance = float(t.chance.iloc[0])
        margin = z * (np.sqrt(2.0 / n_items) if t.kind.iloc[0] == "regression"
                      else np.sqrt(chance * (1 - chance) / n_items))
        rows.append(dict(task=task, semantic=bool(t.semantic.iloc[0]), best=float(t.score.max()), chance=chance,
                         margin=float(margin), above=bool(t.score.max() > chance + margin)))
    return pd.DataFrame(rows)


def _downstream_found(correlations: pd.DataFrame | None, above: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    if correlations is None or correlations.empty:
        return pd.DataFrame(), pd.DataFrame()
    entered = correlations[correlations.task.isin(above[above.above].task)]
    return entered, _significant_positive(entered)


def downstream_detections(world: str, correlations: pd.DataFrame | None, above: pd.DataFrame,
                          fits: pd.DataFrame | None) -> pd.DataFrame:
    """Whether the Figure 4 and Figure 2 rules find a relation in one world: rows (world, check, detected,
    value) for ``downstream`` (an above-chance task correlating, Holm) and ``strength`` (a Figure 2 line)."""
    entered, found = _downstream_found(correlations, above)
    lines = _significant_positive(fits) if fits is not None and len(fits) else pd.DataFrame()
    return pd.DataFrame([
        dict(world=world_label(world), check="downstream", detected=len(found) > 0,
             value=f"{len(entered)} tasks beat chance, {len(found)} correlate"),
        dict(world=world_label(world), check="strength", detected=len(lines) > 0,
             value=f"{len(lines)} of {0 if fits is None else len(fits)} lines significant")])


def live_downstream_verdict(planted: pd.DataFrame | None, planted_above: pd.DataFrame,
                            null: pd.DataFrame | None, null_above: pd.DataFrame | None, paper_r=None,
                            alpha: float = 0.05, n_permutations: int | None = None) -> Verdict:
    """Figure 4, live: a task enters only when its readout beats chance (:func:`readouts_above_chance`);
    detected when an entered task correlates positively with alignment across the variants (permutation
    p significant after Holm's correction over the entered tasks) in the planted world and none does in the
    null world (labels permuted over clips). When none correlates and the weakest of ``paper_r`` (the paper's
    printed r values, absolute) is not above the smallest r the test can declare significant with these n
    variants and m entered tasks (:func:`vtalign.verdicts.critical_pearson_r`), the test had no power."""
    entered, found = _downstream_found(planted, planted_above)
    at_chance = planted_above[~planted_above.above].task.tolist()
    value = (f"planted: {len(entered)} of {len(planted_above)} tasks beat chance, {len(found)} correlate "
             f"({', '.join(f'{r.task} r = {r.pearson_r:+.2f}' for r in found.itertuples()) or 'none'}); at chance: "
             f"{', '.join(at_chance) or 'none'}")
    if null is None or null_above is None:
        return _verdict("fig4_downstream", "controlled world", NOT_TESTABLE, "no null world ran", value)
    null_entered, fired = _downstream_found(null, null_above)
    n = int(planted.n.max()) if paper_r is not None and planted is not None and len(planted) else 0
    r_c, paper, clause, power = _power(n, len(entered), paper_r, alpha, n_permutations, "entered task")
    # method_check's no-power rule compares a width with the paper's effect: here the critical r plays the width
    return _verdict("fig4_downstream", "controlled world",
                    method_check(len(found) > 0, len(fired) > 0, null_half_width=r_c, paper_effect=paper),
                    "tasks whose readout beats chance enter (best variant above chance by z standard errors, z "
                    "Bonferroni-corrected over the variants); a task correlates when r > 0 with a permutation p that "
                    "survives Holm's correction over the entered tasks" + clause,
                    value, f"null (labels permuted over clips): {len(null_entered)} tasks beat chance, "
                           f"{len(fired)} correlate" + power)


def live_order_verdict(planted: pd.Series, null: pd.Series | None, blind: pd.Series | None = None) -> Verdict:
    """Test of Time, live: can the order-sensitivity measure (:func:`vtalign.book.live.order_sensitivity`)
    see order? An order-aware pooling's same-order share must lie above 1/3 (order-blind) by its Wilson
    interval in the planted world and not in the null world (both circles at once). The frame average is
    order-blind by construction and is shown, never graded."""
    share = lambda r: Interval(r.same_order, r.same_order_low, r.same_order_high)
    fmt = lambda r: f"{r.same_order:.2f} [{r.same_order_low:.2f}, {r.same_order_high:.2f}]"
    value = f"order-aware video side, same-order share: planted {fmt(planted)}"
    if blind is not None:
        value += f"; frame average {fmt(blind)} (blind by construction, not evidence)"
    if null is None:
        return _verdict("fig5_order", "controlled world", NOT_TESTABLE, "no null world ran", value)
    status = method_check(planted.same_order_low > 1 / 3, null.same_order_low > 1 / 3,
                          share(planted).minus(share(null)))
    return _verdict("fig5_order", "controlled world", status,
                    "the same-order share of nearest neighbours must exceed 1/3 (order-blind) by its 95% Wilson "
                    "interval in the planted world and not in the null", value, f"null: {fmt(null)}")


def _pooled(table: pd.DataFrame, pooling: str) -> pd.DataFrame:
    """The rows of a :func:`vtalign.book.reordering.negative_table` for one pooling of the vision model."""
    return table[table.vision.str.endswith(pooling)]


def _significant_drops(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows whose drop is positive with a sign-flip p that survives Holm's correction over the rows."""
    return rows[holm(rows.p_value.values) & (rows.difference.values > 0)] if len(rows) else rows


def reorder_detections(world: str, table: pd.DataFrame, aware: str, blind: str) -> pd.DataFrame:
    """Whether the Figure 6 rule finds an order preference in one world: rows (world, check, detected, value)
    for the order-aware pooling (``reorder``) and the order-blind control (``reorder_control``)."""
    rows = []
    for check, pooling in (("reorder", aware), ("reorder_control", blind)):
        t = _pooled(table, pooling)
        hits = _significant_drops(t)
        rows.append(dict(world=world_label(world), check=check, detected=len(hits) > 0,
                         value=f"{len(hits)} of {len(t)} text models drop significantly (Holm)"))
    return pd.DataFrame(rows)


def live_reorder_verdict(planted: pd.DataFrame, null: pd.DataFrame | None, aware: str, blind: str,
                         paper_drops) -> Verdict:
    """Figure 6, live: the order-aware pooling's drop must be positive with a sign-flip p that survives
    Holm's correction over the text models tested, in the planted world; the order-blind control rows
    never count toward the claim and make the check fire when they are significant; the null world
    (narration order unrelated to the clip) must show nothing. The null's interval half-width is set
    beside the paper's largest drop: wider means no power."""
    aware_rows = _pooled(planted, aware)
    found, control = _significant_drops(aware_rows), _significant_drops(_pooled(planted, blind))
    value = (f"planted, order-aware: {len(found)} of {len(aware_rows)} text models drop significantly "
             f"(Holm); drops {aware_rows.difference.min():+.4f} to {aware_rows.difference.max():+.4f}")
    largest = float(np.max(paper_drops))
    if null is None:
        return _verdict("fig6_reorder", "controlled world", NOT_TESTABLE, "no null world ran", value)
    null_rows = _pooled(null, aware)
    fired = _significant_drops(null_rows)
    half = float(((null_rows.null_high - null_rows.null_low) / 2).max())
    status = method_check(len(found) > 0, len(fired) > 0 or len(control) > 0, None, half, largest)
    return _verdict("fig6_reorder", "controlled world", status,
                    "order-aware drop > 0 with a sign-flip p that survives Holm's correction over text models; the "
                    "order-blind control (never counted) and the null world must show none",
                    value, f"order-blind control: {len(control)} significant; null world: {len(fired)} significant; "
                           f"null half-width {half:.4f} vs the paper's largest drop {largest:.3f}")


# --------------------------------------------------------------------------- #
# Real data: real captions measured with the offline language models
# --------------------------------------------------------------------------- #
def bag_of_words_verdict(readings: pd.DataFrame, contrast: pd.DataFrame, margin: float,
                         source: str = "sequence", controls: str = "") -> Verdict:
    """Sec. 8's bag-of-words claim on real counterfactuals (:mod:`vtalign.book.text_order`), graded per model on
    ``source``'s pairs (subset ``all``) by the order share (:func:`~vtalign.book.text_order.order_share`: how far
    shuffling the counterfactual's words moves it from its caption, as a share of the distance to the caption's
    nearest other caption; 0 for a bag of words, no ceiling). A model reads *for* the claim when more than half its
    shallower layers (:func:`~vtalign.book.text_order.graded_layers`) have the share's interval below ``margin``,
    *against* when more than half have it above. Supported when every model reads for it, contradicted when any
    reads against. The top-1 rate is not graded: with unrelated captions as distractors it sits at its ceiling for
    the counterfactual and the shuffled words alike. ``readings``: :func:`~vtalign.book.text_order.model_readings`;
    ``contrast``: the layers behind them; ``controls``: the controls' numbers, in words.

    >>> from vtalign.book import text_order as t
    >>> c = pd.DataFrame(dict(source="sequence", subset="all", model="m", layer=[1, 2], n_layers=4, n=10,
    ...                       top1=1.0, order_share=[0.7, 0.8], order_share_low=[0.6, 0.7],
    ...                       order_share_high=[0.8, 0.9], reading=t.ORDER_SENSITIVE))
    >>> bag_of_words_verdict(t.model_readings(c), c, 0.5).status   # top-1 at its ceiling, order moves the text
    'contradicted'
    """
    r = readings[(readings.source == source) & (readings.subset == "all")]
    c = contrast[(contrast.source == source) & (contrast.subset == "all")]
    n_for, n_against = int((r.reading == "for").sum()), int((r.reading == "against").sum())
    from .text_order import graded_layers
    parts = []
    for m in r.itertuples():
        layers = c[c.model == m.model]
        shallow = layers[layers.layer.isin(graded_layers(int(layers.n_layers.iloc[0])))]
        parts.append(f"{m.model}: {m.bag_of_words} of {m.graded_layers} shallower layers bag of words, {m.against} "
                     f"order-sensitive (order share {shallow.order_share.min():.2f} to {shallow.order_share.max():.2f} "
                     f"there, {layers.order_share.min():.2f} to {layers.order_share.max():.2f} over all layers; "
                     f"top-1 of the counterfactual {layers.top1.min():.2f} to {layers.top1.max():.2f}, of no weight: "
                     "at its ceiling)")
    n = int(c.n.iloc[0]) if len(c) else 0
    return _verdict("fig5_bag_of_words", "real data", claim_status(n_for, n_against, len(r)),
                    _bag_of_words_rule(f"{margin:g}"), f"{source}, {n} real caption pairs: " + "; ".join(parts),
                    controls)


def _bag_of_words_rule(margin: str) -> str:
    """The rule of :func:`bag_of_words_verdict` in words, at ``margin`` (a number, or the symbol of a range's)."""
    return ("per model, on its shallower layers: the order share (shuffling the counterfactual's words: mean "
            "distance gained from the caption, as a share of the mean distance to the caption's nearest other "
            f"caption; 0 for a bag of words) must have its 95% bootstrap interval over pairs below {margin} "
            f"on more than half of them; a model contradicts it when more than half lie above {margin}. "
            "What could fail it: an encoder in which word order moves a text as far as a change of content "
            "(the tests build one that the top-1 rule read as a bag of words)")


def bag_of_words_over_margins(contrast: pd.DataFrame, margins, source: str = "sequence",
                              controls: str = "") -> Verdict:
    """Sec. 8's bag-of-words claim graded at every margin of a stated range (:func:`bag_of_words_verdict` at
    each, on the layers re-read there: :func:`vtalign.book.text_order.read_at`). The paper puts no number on "more
    akin to a bag-of-words", so a status that depends on where the margin is drawn is not a finding: supported
    or contradicted only when every margin of the range gives it, not resolved when they disagree (the value
    says where the status turns). ``contrast``: :func:`vtalign.book.text_order.order_tables`' second table.

    >>> c = pd.DataFrame(dict(source="sequence", subset="all", model="m", layer=[1, 2], n_layers=4, n=10, top1=1.0,
    ...                       order_share=[0.3, 0.35], order_share_low=[0.2, 0.3], order_share_high=[0.4, 0.45]))
    >>> bag_of_words_over_margins(c, (0.25, 0.5, 0.75)).status   # order-sensitive at 0.25, bag of words above
    'not resolved'
    >>> bag_of_words_over_margins(c, (0.5, 0.75)).status
    'supported'
    """
    from .text_order import read_at
    margins = sorted(float(m) for m in margins)
    if not margins:
        raise ValueError("margins must name at least one margin, e.g. [0.25, 0.5, 0.75].")
    verdicts = [bag_of_words_verdict(*read_at(contrast, m), m, source, controls) for m in margins]
    statuses = [v.status for v in verdicts]
    middle = verdicts[len(verdicts) // 2]
    same = len(set(statuses)) == 1
    mid = margins[len(margins) // 2]
    span = f"m = {margins[0]:g}" if len(margins) == 1 else f"each margin m of {', '.join(f'{m:g}' for m in margins)}"
    return _verdict("fig5_bag_of_words", "real data", statuses[0] if same else UNRESOLVED,
                    f"at {span} (the paper puts no number on \"more akin to a bag-of-words\": a status must hold at "
                    f"every margin of the range, else it is not resolved): " + _bag_of_words_rule("m"),
                    ("" if same else "the status turns on the margin: "
                     + ", ".join(f"{m:g} {st}" for m, st in zip(margins, statuses)) + f"; at {mid:g}, ")
                    + middle.value, controls)


# --------------------------------------------------------------------------- #
# Saving, collecting, rendering
# --------------------------------------------------------------------------- #
COLUMNS = ["claim", "evidence", "status", "rule", "value", "control"]


def save_verdicts(chapter: str, verdicts: list[Verdict], graded: bool = True) -> pd.DataFrame:
    """Write a chapter's verdicts to ``results/<chapter>/verdicts.csv`` (anew, so no verdict of an earlier
    run survives) and return them as a table. ``graded=False`` (a chapter run on a user's data instead of
    the paper's, or on the null world alone) writes no row: the claims table then says the chapter did
    not grade the claim with these parameters."""
    table = pd.DataFrame([v.as_dict() for v in verdicts], columns=COLUMNS)
    (table if graded else table.iloc[:0]).to_csv(verdicts_csv(chapter), index=False)
    return table


def show(verdicts: list[Verdict]):
    """The verdicts as a Markdown block for a chapter: one line per claim, the status in bold, each line
    carrying the anchor that the landing table and the chapter's opening line link to."""
    from IPython.display import Markdown

    from .presentation import claim_anchor
    return Markdown("\n".join(f'- <a id="{claim_anchor(v.claim)}"></a>{claim(v.claim).figure}, '
                              f"*{claim(v.claim).statement}* ({v.evidence}): "
                              f"**{v.status}**. {v.value}" + ("." if v.value else "")
                              + (f" Control: {v.control}." if v.control else "") + f" *Rule: {v.rule}.*"
                              for v in verdicts))


def claims_table() -> pd.DataFrame:
    """Every claim x kind of evidence: the published rows, then each chapter's saved verdicts; a claim
    with no row of a kind where its chapter did not run gets a *not testable here* row saying so.
    Columns: claim, evidence, status, rule, value, control, figure, statement, chapter."""
    rows = [v.as_dict() for v in published_verdicts()]
    for c in CLAIMS:
        for evidence, chapter in zip(("re-analysis", "controlled world"), c.chapters):
            if not chapter:
                rows.append(not_testable(c.key, evidence, c.untested).as_dict())
                continue
            path = verdicts_csv(chapter, create=False)
            saved = pd.read_csv(path, keep_default_na=False) if path.is_file() else pd.DataFrame(columns=COLUMNS)
            mine = saved[(saved.claim == c.key) & (saved.evidence == evidence)]
            if mine.empty:
                reason = (f"chapter {chapter} did not run in this build" if not path.is_file()
                          else f"chapter {chapter} did not grade it with these parameters")
                rows.append(not_testable(c.key, evidence, reason).as_dict())
            rows += mine[COLUMNS].to_dict("records")
        for chapter in c.real:  # real data: only where a chapter grades it (no row otherwise)
            path = verdicts_csv(chapter, create=False)
            saved = pd.read_csv(path, keep_default_na=False) if path.is_file() else pd.DataFrame(columns=COLUMNS)
            mine = saved[(saved.claim == c.key) & (saved.evidence == "real data")]
            rows += (mine[COLUMNS].to_dict("records") if not mine.empty else [not_testable(
                c.key, "real data", f"chapter {chapter} did not run in this build" if not path.is_file()
                else f"chapter {chapter} did not grade it with these parameters").as_dict()])
    table = pd.DataFrame(rows, columns=COLUMNS)
    for v in table.itertuples():
        Verdict(*[getattr(v, c) for c in COLUMNS])  # every saved row is checked against the vocabulary
    meta = {c.key: (c.figure, c.statement) for c in CLAIMS}
    table["figure"] = table.claim.map(lambda k: meta[k][0])
    table["statement"] = table.claim.map(lambda k: meta[k][1])
    chapters = {(c.key, e): ch for c in CLAIMS for e, ch in zip(("re-analysis", "controlled world"), c.chapters)}
    chapters.update({(c.key, "real data"): c.real[0] for c in CLAIMS if c.real})
    table["chapter"] = [chapters.get((k, e), "") for k, e in zip(table.claim, table.evidence)]
    order = {e: i for i, e in enumerate(EVIDENCE)}
    keys = {c.key: i for i, c in enumerate(CLAIMS)}
    return table.sort_values(["claim", "evidence"], key=lambda s: s.map(keys if s.name == "claim" else order),
                             kind="stable").reset_index(drop=True)



_PUBLISHED_CELL = 90  # characters: a longer published value (a quote, a list of tasks) is shown in the details


def _status_link(r) -> str:
    """A status as the landing table shows it: bold, linked to the section of the chapter that grades it
    (the published number: to the paper-vs-this-run section of its re-analysis chapter, or of its first real-data
    chapter where it has no re-analysis chapter)."""
    from .presentation import claim_anchor, graded_here
    status = f"**{r.status}**"
    if r.evidence == "published":
        # the paper's number, where it is short enough for a cell; a quoted sentence stays in the details below
        status = (markdown_cell(r.value) if r.value and len(r.value) <= _PUBLISHED_CELL and not r.value.startswith('"')
                  else status)
        c = claim(r.claim)
        chapter = c.chapters[0] or (c.real[0] if c.real else "")
        return f'<a href="chapters/{chapter}.html#paper-vs-this-run">{status}</a>' if chapter else status
    if r.chapter and (r.claim, r.evidence) in graded_here(r.chapter):
        return f'<a href="chapters/{r.chapter}.html#{claim_anchor(r.claim)}">{status}</a>'
    return status


def write_claims_page(path=None, csv_path=None):
    """Write ``results/claims.csv`` and render the landing page's table (``book/claims.md``) from it: one row
    per claim and one column per kind of evidence, each status linked to where it is graded, and the
    numbers behind every status folded under the table."""
    from pathlib import Path
    table = claims_table()
    csv_path = Path(csv_path) if csv_path else claims_csv()
    table.to_csv(csv_path, index=False)
    table = pd.read_csv(csv_path, keep_default_na=False)  # the page shows exactly what the file says
    path = Path(path) if path else book_dir() / "claims.md"
    kinds = [e for e in EVIDENCE if e in set(table.evidence)]
    heads = {"controlled world": "controlled world (method check)"}
    lines = ["| claim | " + " | ".join(heads.get(e, e) for e in kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    details = []
    for key, rows in table.groupby("claim", sort=False):
        c = claim(key)
        cells = {e: "<br>".join(_status_link(r) + (f" ({c.real_scope})" if e == "real data" and c.real_scope else "")
                                for r in rows[rows.evidence == e].itertuples()) for e in kinds}
        lines.append(f"| **{c.figure}.** {markdown_cell(c.statement)} | "
                     + " | ".join(cells[e] or "—" for e in kinds) + " |")
        items = []
        for r in rows.itertuples():
            measured = r.value if r.status != NOT_TESTABLE else "; ".join(x for x in (r.rule, r.value) if x)
            rule = f" *Rule: {r.rule}.*" if r.rule and r.status != NOT_TESTABLE else ""
            control = f" Control or margin: {r.control}." if r.control else ""
            items.append(f"- *{r.evidence}*: {_status_link(r)}. {measured}{'.' if measured else ''}{control}{rule}")
        details.append(f":::{{dropdown}} {c.figure}: {c.statement}\n" + "\n".join(items) + "\n:::")
    absent = [e for e in EVIDENCE if e not in set(table.evidence)]
    note = ("\n\nNo claim has " + " or ".join(f"*{e}* evidence" for e in absent) + " in this build, so the table has "
            "no column for it" + (" (*real data*: real captions and paragraphs measured live with the offline "
                                  "language models)" if "real data" in absent else "") + ".") if absent else ""
    words = "\n".join(f"- **{w}**: {d}" for w, d in DEFINITIONS.items())
    path.write_text("Generated from `results/claims.csv` of this build by `python -m vtalign.book reproducibility`; "
                    "a changed parameter or model changes it. Each status links to the section of the chapter "
                    "that grades it.\n\n" + "\n".join(lines) + note
                    + "\n\nThe numbers, rule and control behind each status:\n\n" + "\n\n".join(details)
                    + "\n\nWhat each status means:\n\n" + words + "\n", encoding="utf-8")
    return path
