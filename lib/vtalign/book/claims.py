"""The landing page's table of claims: every finding of the paper, its status, its numbers.

Each :class:`Claim` reads the ``results/`` CSVs that the chapters of *this* build wrote, so the
table changes with the parameters and models a build ran with; nothing in it is typed by hand.
For every claim it gives the published number, the number re-analysed here from published data,
the number measured live here, and a status:

- ``reproduced``: the live measurement shows the claim, with the test named in the reason;
- ``partly``: it shows part of it (e.g. the sign but not the significance, or one of two parts);
- ``contradicted``: it shows the opposite, significantly;
- ``not reproduced``: it shows neither the claim nor its opposite (e.g. no significant correlation);
- ``not testable here``: the needed chapter did not run, or its control failed, so the measurement
  cannot speak to the claim.

``python -m vtalign.book reproducibility`` writes the table to ``book/claims.md``, which the
landing page includes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from ..paths import book_dir, results_dir
from .live import grid_trends, near_perfect_pairs

__all__ = ["Claim", "CLAIMS", "claims_table", "write_claims_page"]


class Missing(Exception):
    """A result file this claim needs is not in this build."""


def _read(chapter: str, stem: str) -> pd.DataFrame:
    path = results_dir(chapter, create=False) / f"{stem}.csv"
    if not path.is_file():
        raise Missing(f"{chapter}/{stem}.csv")
    return pd.read_csv(path)


def _row(table: pd.DataFrame, quantity_starts: str) -> pd.Series:
    found = table[table.quantity.astype(str).str.startswith(quantity_starts)]
    if found.empty:
        raise Missing(f"row '{quantity_starts}'")
    return found.iloc[0]


@dataclass(frozen=True)
class Claim:
    """One finding: what the paper says, where it is tested, and how each column is read from results."""
    figure: str
    statement: str
    chapters: tuple[str, str]  # (the chapter that re-analyses published data, the one that measures live)
    published: Callable[[], str]
    reanalysed: Callable[[], str]
    live: Callable[[], tuple[str, str, str]]  # (number, status, reason)


def _published(name: str, fmt: Callable[[pd.DataFrame], str]) -> Callable[[], str]:
    def read():
        from .paper import load_published
        return fmt(load_published(name))
    return read


def _fixed(text: str) -> Callable[[], str]:
    return lambda: text


# --------------------------------------------------------------------------- #
# Live readers: (number, status, reason)
# --------------------------------------------------------------------------- #
def _live_figure2():
    fits = _read("live_downstream", "figure2_fits")
    significant = fits[(fits.pearson_r > 0) & (fits.permutation_p < 0.05)]
    number = f"r = {fits.pearson_r.min():.2f} to {fits.pearson_r.max():.2f} ({len(fits)} text models)"
    if len(significant) == len(fits):
        return number, "reproduced", "every text model's line has r > 0 with permutation p < 0.05 over the vision variants"
    if (fits.pearson_r < 0).all() and (fits.permutation_p < 0.05).all():
        return number, "contradicted", "every line has r < 0 with permutation p < 0.05"
    if len(significant):
        return number, "partly", f"{len(significant)} of {len(fits)} lines positive with permutation p < 0.05"
    return number, "partly" if (fits.pearson_r > 0).all() else "not reproduced", \
        "no line is significant at 5% (permutation over the vision variants)"


def _live_frame_averaging():
    a = _read("live_downstream", "alignment")
    image, video = (a[a.model_type == t].score.mean() for t in ("image_on_image", "image_on_video"))
    if pd.isna(image) or pd.isna(video):
        raise Missing("both poolings")
    diff = video - image
    return (f"{video:.3f} vs {image:.3f} (Δ {diff:+.3f})", "reproduced" if diff > 0 else "contradicted",
            "mean alignment of frame-averaged vs first-frame variants over networks and text models")


def _live_scaling():
    trends = grid_trends(_read("live_scaling", "grid"))
    c_ok, c_all, r_ok, r_all = (trends[key] for key in ("columns_rising", "columns", "rows_rising", "rows"))
    number = f"frames: {c_ok} of {c_all} columns rise at every step; captions: {r_ok} of {r_all} rows"
    if c_ok == c_all and r_ok == r_all:
        return number, "reproduced", "alignment rises with every added frame count and caption count"
    if c_ok + r_ok > (c_all + r_all) / 2:
        return number, "partly", "most, not all, rows and columns rise at every step"
    return number, "not reproduced", "fewer than half of the rows and columns rise at every step"


def _eq2(chapter: str):
    def read():
        forms = _read(chapter, "form_comparison")
        best = forms.sort_values("delta_aicc").groupby("model").head(1)
        eq2 = forms[forms.form == "eq2_additive_power"]
        wins = int((best.form == "eq2_additive_power").sum())
        r2 = f"{eq2.r2.min():.3f}" if len(eq2) == 1 else f"{eq2.r2.min():.3f}-{eq2.r2.max():.3f}"
        return f"Eq. 2 R² {r2}; best by AICc: {', '.join(sorted(set(best.form)))}", wins, len(best)
    return read


def _reanalysed_eq2():
    number, wins, n = _eq2("test_time_scaling")()
    return f"{number} ({wins} of {n} fits)"


def _live_eq2():
    number, wins, n = _eq2("live_scaling")()
    r2 = _read("live_scaling", "form_comparison").query("form == 'eq2_additive_power'").r2.min()
    if wins == n:
        return number, "reproduced", "Eq. 2 is the best of the five forms by AICc"
    if r2 >= 0.9:
        return number, "partly", f"Eq. 2 fits (R² ≥ {r2:.2f}) but another form has lower AICc"
    return number, "not reproduced", f"Eq. 2 fits poorly (R² {r2:.2f}) and another form has lower AICc"


def _live_figure4():
    c = _read("live_downstream", "task_correlations")
    sem, non = c[c.semantic], c[~c.semantic]
    number = f"mean r semantic {sem.pearson_r.mean():+.2f}, non-semantic {non.pearson_r.mean():+.2f}"
    sig = sem[(sem.pearson_r > 0) & (sem.permutation_p < 0.05)]
    if len(sem) and len(sig) == len(sem):
        return number, "reproduced", "every semantic task correlates positively with permutation p < 0.05"
    if len(sem) and (sem.pearson_r < 0).all() and (sem.permutation_p < 0.05).all():
        return number, "contradicted", "every semantic task correlates negatively with permutation p < 0.05"
    if len(sig):
        return number, "partly", f"{len(sig)} of {len(sem)} semantic tasks positive with permutation p < 0.05"
    return number, "not reproduced", "no semantic task correlates significantly (permutation p < 0.05)"


def _live_test_of_time():
    t = _read("live_temporal", "paper_vs_this_run")
    ok, total = near_perfect_pairs(_read("live_temporal", "scores"))
    video = float(_row(t, "video (frames averaged): same-order share").this_run)
    near = f"{ok} of {total}" if total else "no"
    number = f"{near} pairs ≥ 0.9 at k = 3; frame-averaged video picks the same order {video:.2f} (blind: 0.33)"
    high, blind = bool(total and ok > total / 2), 0.2 <= video <= 0.47
    if high and blind:
        return number, "reproduced", "most pairs near-perfect at k = 3, and the video side picks the same order at chance"
    return number, "partly", ("most pairs near-perfect at k = 3" if high else "fewer than half the pairs reach 0.9 at k = 3") + \
        (", order at chance on the video side" if blind else ", but the video side sees order")


def _live_figure6():
    t = _read("live_videocomp", "negatives")
    blind = t[t.vision.str.contains("mean:")]
    aware = t[t.vision.str.contains("segments:")]
    number = (f"drops {t.difference.min():+.4f} to {t.difference.max():+.4f}; order-blind control inside its null "
              f"{int(blind.within_null.sum())} of {len(blind)}")
    if len(blind) and not blind.within_null.all():
        return number, "not testable here", "the order-blind control left its permutation null: the protocol, not order, moved it"
    if (aware.difference > 0).any() and (aware[aware.difference > 0].p_value < 0.05).any():
        return number, "reproduced", "the order-aware pooling scores lower on reordered captions (permutation p < 0.05)"
    if (t[t.p_value < 0.05].difference < 0).any():
        return number, "contradicted", "negatives score significantly higher for some pair (permutation p < 0.05)"
    return number, "partly", (f"{int((t.difference >= 0).sum())} of {len(t)} drops ≥ 0 and none significant, as the "
                              "paper's own 'lower ... but not significantly'; two poolings cannot test 'most for the "
                              "most aligned'")


def _live_captions():
    gain = grid_trends(_read("live_scaling", "grid"))["caption_gain"]
    return (f"mean gain {gain:+.0%}", "reproduced" if gain > 0 else "contradicted",
            "alignment with all captions over one caption, mean over frame counts")


def _reanalysed(chapter: str, stem: str, fmt: Callable[[pd.DataFrame], str]) -> Callable[[], str]:
    return lambda: fmt(_read(chapter, stem))


CLAIMS: tuple[Claim, ...] = (
    Claim("Figure 2", "Alignment with text grows with the vision model's strength (regression over models)",
          ("alignment_vs_retrieval", "live_downstream"),
          _published("fig2_printed_legend_r", lambda d: f"r = {d.r.min():.2f}-{d.r.max():.2f}"),
          _reanalysed("alignment_vs_retrieval", "regressions",
                      lambda d: f"r = {d.pearson_r.min():.3f}-{d.pearson_r.max():.3f}"),
          _live_figure2),
    Claim("Figure 2", "Averaging an image model's features over frames beats one frame",
          ("alignment_vs_retrieval", "live_downstream"),
          _fixed("Δ 0.014 (text)"),
          _reanalysed("alignment_vs_retrieval", "frame_averaging_gain",
                      lambda d: f"Δ {d.video_minus_image.mean():+.4f} (mean over models)"),
          _live_frame_averaging),
    Claim("Figure 3", "Alignment grows with the frames and captions given at test time",
          ("test_time_scaling", "live_scaling"),
          _fixed("every curve rises (Figure 3)"),
          _reanalysed("test_time_scaling", "fit_params", lambda d: f"Eq. 2 R² {d.r2.min():.3f}-{d.r2.max():.3f}"),
          _live_scaling),
    Claim("Eq. 2, Table 1", "A saturating additive power law (Eq. 2) describes test-time scaling",
          ("test_time_scaling", "live_scaling"),
          _published("table1_scaling_law_params", lambda d: f"R² {d.r2.min():.3f}-{d.r2.max():.3f}"),
          _reanalysed_eq2, _live_eq2),
    Claim("Figure 7", "More captions raise alignment (about +60% from one to all)",
          ("test_time_scaling", "live_scaling"),
          _fixed("+60% (text)"),
          _reanalysed("test_time_scaling", "paper_vs_this_run",
                      lambda d: f"{float(_row(d, 'mean gain').this_run):+.0%}"),
          _live_captions),
    Claim("Figure 4", "Alignment correlates with downstream performance, semantic tasks strongly",
          ("downstream_correlation", "live_downstream"),
          _published("fig4_printed_pearson", lambda d: "SSv2 r = {:.3f}, K400 r = {:.3f}".format(
              *d.set_index("task").loc[["ssv2", "kinetics"], "pearson_r"])),
          _reanalysed("downstream_correlation", "correlations", lambda d: "SSv2 r = {:.3f}, K400 r = {:.3f}".format(
              *d.set_index("task").loc[["ssv2", "kinetics"], "pearson_r"])),
          _live_figure4),
    Claim("Figure 5", "Test of Time: alignment is high, but the order of events is weakly encoded",
          ("test_of_time", "live_temporal"),
          _fixed("most models ≥ 0.9 at k = 3"),
          _reanalysed("test_of_time", "paper_vs_this_run",
                      lambda d: f"{_row(d, 'models near-perfect').this_run} models ≥ 0.9 at k = 3"),
          _live_test_of_time),
    Claim("Figure 6", "Temporally reordered captions lower alignment slightly, most for the most aligned models",
          ("videocomp_negatives", "live_videocomp"),
          _published("fig6_videocomp_printed", lambda d: f"drops {(d.positive - d.negative).min():.3f}-"
                                                          f"{(d.positive - d.negative).max():.3f}"),
          _reanalysed("videocomp_negatives", "paper_vs_this_run",
                      lambda d: f"Spearman(drop, alignment) = {_row(d, 'largest drop').this_run}"),
          _live_figure6),
)


def _safe(fn, default: str) -> str:
    try:
        return fn()
    except (Missing, KeyError, ValueError) as err:
        return f"{default} ({err})" if isinstance(err, Missing) else default


def claims_table() -> pd.DataFrame:
    """One row per claim: figure, claim, published, re-analysed, live, status, reason, chapters."""
    rows = []
    for c in CLAIMS:
        try:
            live, status, reason = c.live()
        except Missing as err:
            live, status, reason = "not run in this build", "not testable here", f"needs {err}"
        rows.append(dict(figure=c.figure, claim=c.statement, published=_safe(c.published, "unavailable"),
                         reanalysed=_safe(c.reanalysed, "not run in this build"), live=live, status=status,
                         reason=reason, chapters=c.chapters))
    return pd.DataFrame(rows)


def write_claims_page(path: Path | None = None) -> Path:
    """Write ``book/claims.md`` (included by the landing page) from this build's results."""
    path = Path(path) if path else book_dir() / "claims.md"
    table = claims_table()
    lines = ["| claim | status here | published | re-analysed here (published data) | measured live here |",
             "|---|---|---|---|---|"]
    for r in table.itertuples():
        reanalysis, live = r.chapters
        lines.append(f"| **{r.figure}.** {r.claim} | **{r.status}**: {r.reason} | {r.published} | "
                     f"{r.reanalysed} ({{doc}}`chapter <chapters/{reanalysis}>`) | "
                     f"{r.live} ({{doc}}`chapter <chapters/{live}>`) |")
    path.write_text("Generated from the `results/` of this build by `python -m vtalign.book reproducibility`; "
                    "a changed parameter or model changes it.\n\n" + "\n".join(lines) + "\n")
    return path
