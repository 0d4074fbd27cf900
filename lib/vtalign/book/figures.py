"""The paper's figures: one plotting function per figure, plus saving helpers.

Every chapter of the book calls exactly one ``plot_*`` function per figure
from here, so the code behind any figure is one step from its chapter.
Figures are written as PNG and SVG under ``results/<chapter>/`` by
:func:`save_figure`; tables as CSV by :func:`save_table`.

Legibility rules every figure follows (``tests/test_figure_legibility.py`` checks them): the book's
content column is about 720 CSS px (7.5 in at 96 px/in) wide, so figures are drawn at most
:data:`DISPLAY_WIDTH_IN` wide with no text under 9 pt; legends sit in a strip below the axes and list
only series that have points; point labels are placed so that none overlaps another (those that find
no free place are named in a note under the figure); axes say the metric and its direction.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.container import Container
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import Bbox

from ..correlation import linear_fit
from ..paths import results_dir
from ..scaling import ScalingFit
from .tables import p_phrase

__all__ = [
    "use_paper_style",
    "SkippedAnalyses",
    "save_figure",
    "save_table",
    "paper_vs_run",
    "plot_alignment_vs_retrieval",
    "plot_scaling_grid",
    "plot_caption_gain",
    "plot_pvd_slices",
    "plot_downstream",
    "plot_videocomp",
    "plot_test_of_time",
    "plot_sweep_benchmark",
    "plot_knn_scaling",
    "plot_peers",
    "plot_order_sensitivity",
    "plot_live_figure2",
    "plot_task_correlations",
    "plot_alignment_matrix",
    "plot_negative_differences",
    "plot_reorder_distances",
    "plot_preparation_choice",
]

DISPLAY_WIDTH_IN = 7.5   # the book's content column: 720 CSS px at 96 px/in; figures are drawn this wide
MIN_FONT_PT = 9.0        # smallest text at display size
LABEL_PT = 9.0           # point and bar labels
LEGEND_PT = 9.5
TITLE_PT = 10.5

MODEL_TYPES = {  # model_type -> (label, marker, colour), as in Figure 2
    "native_video": ("native video model", "o", "#4c72b0"),
    "image_on_video": ("image model on video", "^", "#dd8452"),
    "image_on_image": ("image model on image", "s", "#55a868"),
    "order_aware": ("image model on video, order-aware pooling", "D", "#c44e52"),
}
# Distinct series get a distinct colour, marker and line style together.
LINE_STYLES = ["-", "--", "-.", ":", (0, (6, 2, 1, 2, 1, 2)), (0, (1, 3))]
MARKERS = ["o", "s", "^", "D", "v", "p", "h", "<", ">", "8"]
SERIES_COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
                  "#64b5cd"]  # seaborn's "deep"
LLM_STYLES = [("#8172b3", "--"), ("#937860", ":"), ("#da8bc3", "-."), ("#8c8c8c", (0, (6, 2, 1, 2, 1, 2)))]
CHANCE_STYLE = dict(color="#333333", ls=":", lw=1.6)
NULL_STYLE = dict(color="#7f7f7f", ls="--", lw=1.4)

RETRIEVAL_PANELS = {"k400": "Kinetics-400", "ssv2": "Something-Something v2"}
# Figure 4's tasks: (readable name, metric). The paper (Sec. 7) names the tasks and calls their
# numbers "downstream accuracy"; it states no metric for the tracking, pose and depth tasks, so those
# say "score" (their direction comes from the chapter's lower_is_better).
DOWNSTREAM_TASKS = {
    "ssv2": ("SSv2 action classification", "accuracy"),
    "kinetics": ("Kinetics-700-2020 action classification", "accuracy"),
    "perception_test_point_tracking": ("Perception Test point tracking", "score"),
    "re10k_camera_pose": ("RealEstate10k camera pose", "score"),
    "scannet_depth": ("ScanNet depth estimation", "score"),
    "waymo_box_tracking": ("Waymo Open box tracking", "score"),
}
PARAGRAPH_SOURCES = {"activitynet": "ActivityNet Captions paragraphs", "youcook2": "YouCook2 paragraphs"}


def use_paper_style() -> None:
    """Seaborn's darkgrid theme, as the paper's plots use, sized for the book's 7.5 in column; fixed SVG
    ids for reproducible files; in a notebook, inline figures as SVG (sharp at any zoom)."""
    sns.set_theme(style="darkgrid", context="notebook", rc={
        "font.size": 10.5, "axes.labelsize": 10.5, "axes.titlesize": TITLE_PT, "xtick.labelsize": 9.5,
        "ytick.labelsize": 9.5, "legend.fontsize": LEGEND_PT, "legend.title_fontsize": LEGEND_PT})
    plt.rcParams["svg.hashsalt"] = "vtalign"
    plt.rcParams["figure.dpi"] = 100
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the book's environment
        return
    if get_ipython() is not None:  # a kernel or an IPython shell; a plain script keeps its backend
        from matplotlib_inline.backend_inline import set_matplotlib_formats
        set_matplotlib_formats("svg")


def _plural(n, word: str) -> str:
    """``"1 caption"``, ``"4 captions"``."""
    n = int(n) if float(n).is_integer() else n
    return f"{n} {word}" + ("" if n == 1 else "s")


def _readable(name: str) -> str:
    """A column or task name for a reader: Figure 4's tasks by their name, others with spaces."""
    return DOWNSTREAM_TASKS.get(name, (str(name).replace("_", " "), None))[0]


def _proxy(represents, **style) -> Line2D:
    """A legend handle drawn nowhere that stands for ``represents`` (artists with points)."""
    handle = Line2D([], [], **style)
    handle._vtalign_represents = [a for a in represents if a is not None]
    return handle


def _has_points(artist) -> bool:
    """Whether an artist (or, for a proxy, any artist it stands for) shows data: the rule for legend entries."""
    sources = getattr(artist, "_vtalign_represents", None)
    if sources is not None:
        return any(_has_points(a) for a in sources)
    if isinstance(artist, Container):  # bars, error bars
        return any(_has_points(a) for a in artist.get_children())
    if isinstance(artist, Line2D):
        xy = np.asarray(artist.get_xydata(), float).reshape(-1, 2)
        return bool(np.isfinite(xy).all(axis=1).any())
    if hasattr(artist, "get_offsets"):
        return len(artist.get_offsets()) > 0 and len(artist.get_paths()) > 0
    if isinstance(artist, Patch):
        return artist.axes is not None
    return False


def _renderer(fig):
    return fig.canvas.get_renderer()


def _strip_legend(fig, handles, labels, title, avail_px, renderer):
    """One legend of the bottom strip, with the most columns (at most one row per entry) that fit
    ``avail_px``; returns it and its extent. Widths fall with fewer columns: a binary search."""
    def make(ncol):
        leg = fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.5), ncol=ncol, frameon=False,
                         fontsize=LEGEND_PT, title=title, title_fontsize=LEGEND_PT, handlelength=2.6,
                         columnspacing=1.2, borderaxespad=0.2)
        return leg, leg.get_window_extent(renderer)

    lo, hi = 1, len(handles)
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        leg, box = make(mid)
        if box.width <= avail_px:
            if best is not None:
                best[0].remove()
            best, lo = (leg, box), mid + 1
        else:
            leg.remove()
            hi = mid - 1
    return best or make(1)


def _bottom_legends(fig, rows, *, gap_pt: float = 6.0):
    """Legends in a strip under the axes: ``rows`` is a list of rows (top first), each a list of
    ``(handles, labels, title)`` placed side by side (a row whose legends do not fit side by side is
    split). Entries whose handle has no points are dropped; each legend takes as many columns as fit its
    share of the width. The figure grows by the strip's height, so the axes keep their size, and
    ``tight_layout`` fits the axes above the strip."""
    renderer = _renderer(fig)
    dpi = fig.dpi
    width_px = fig.get_figwidth() * dpi - 8
    placed, heights = [], []  # placed: (legend, row, column, legends in the row)

    def keep(spec):
        handles, labels, title = spec
        kept = [(h, t) for h, t in zip(handles, labels) if _has_points(h)]
        return ([h for h, _ in kept], [t for _, t in kept], title)

    def lay(row):
        made = [_strip_legend(fig, *spec, width_px / len(row), renderer) for spec in row]
        if len(row) > 1 and any(box.width > width_px / len(row) for _, box in made):
            for leg, _ in made:
                leg.remove()
            for spec in row:
                lay([spec])
            return
        r = len(heights)
        for c, (leg, box) in enumerate(made):
            leg._vtalign_handles = list(row[c][0])  # what each entry stands for (checked by the tests)
            placed.append((leg, r, c, len(made)))
        heights.append(max(box.height for _, box in made))

    for row in rows:
        row = [spec for spec in map(keep, row) if spec[0]]
        if row:
            lay(row)
    if not placed:
        fig.tight_layout()
        return []
    gap = gap_pt * dpi / 72
    strip_px = sum(heights) + gap * (len(heights) + 1)
    fig.set_figheight(fig.get_figheight() + strip_px / dpi)
    total_px = fig.get_figheight() * dpi
    tops, y = {}, gap
    for r in reversed(range(len(heights))):
        tops[r] = y + heights[r]
        y += heights[r] + gap
    for leg, r, c, n in placed:
        leg.set_bbox_to_anchor(((c + 0.5) / n, tops[r] / total_px), transform=fig.transFigure)
    fig.tight_layout(rect=(0, strip_px / total_px, 1, 1))
    return [leg for leg, *_ in placed]


def _overlaps(a: Bbox, b: Bbox, pad: float = 0.0) -> bool:
    return a.x0 < b.x1 + pad and b.x0 < a.x1 + pad and a.y0 < b.y1 + pad and b.y0 < a.y1 + pad


def _place_labels(ax, xs, ys, labels, *, fontsize: float = LABEL_PT, marker_pt: float = 5.0,
                  radii=(3, 9, 16, 26, 38, 52, 68, 86), color="#222222", extra_obstacles=()):
    """Label points (data coordinates) so that no label overlaps another label or a marker, and every
    label stays inside the axes. Deterministic: crowded points choose first, each takes the nearest free
    spot on rings of growing radius (points), joined to its point by a thin leader line when it sits
    away from it. Call once the layout is final. Returns the labels that found no place."""
    fig = ax.figure
    renderer = _renderer(fig)
    px = fig.dpi / 72
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    pts = ax.transData.transform(np.column_stack([xs, ys]))
    inside = ax.get_window_extent(renderer).padded(-2)
    r_px = marker_pt * px
    markers = [Bbox.from_extents(x - r_px, y - r_px, x + r_px, y + r_px) for x, y in pts]
    taken = list(extra_obstacles)
    leaders = []  # sampled leader lines (pixels): no later label may cover one
    crowd = [(-int(((np.abs(pts - p) < 60 * px).all(axis=1)).sum()), i) for i, p in enumerate(pts)]
    angles = np.deg2rad([45, 135, 315, 225, 0, 180, 90, 270, 22.5, 157.5, 337.5, 202.5, 67.5, 112.5, 292.5, 247.5])
    missing = []
    for _, i in sorted(crowd):
        probe = ax.text(0, 0, str(labels[i]), fontsize=fontsize)
        box = probe.get_window_extent(renderer)
        w, h = box.width, box.height
        probe.remove()
        done = False
        for strict in (True, False):
            for radius in radii:
                for a in angles:
                    c, s = np.cos(a), np.sin(a)
                    ax_, ay_ = pts[i] + radius * px * np.array([c, s]) + (r_px * c, r_px * s)
                    ha = "left" if c > 0.3 else "right" if c < -0.3 else "center"
                    va = "bottom" if s > 0.3 else "top" if s < -0.3 else "center"
                    x0 = ax_ if ha == "left" else ax_ - w if ha == "right" else ax_ - w / 2
                    y0 = ay_ if va == "bottom" else ay_ - h if va == "top" else ay_ - h / 2
                    cand = Bbox.from_extents(x0, y0, x0 + w, y0 + h)
                    if not (inside.x0 <= cand.x0 and cand.x1 <= inside.x1 and inside.y0 <= cand.y0
                            and cand.y1 <= inside.y1):
                        continue
                    if any(_overlaps(cand, t, 1.5) for t in taken):
                        continue
                    if any(((seg[:, 0] >= cand.x0 - 1) & (seg[:, 0] <= cand.x1 + 1) & (seg[:, 1] >= cand.y0 - 1)
                            & (seg[:, 1] <= cand.y1 + 1)).any() for seg in leaders):
                        continue
                    if strict and any(_overlaps(cand, m) for j, m in enumerate(markers) if j != i):
                        continue
                    far = radius > radii[1]
                    if far:  # the leader line must not cross another label
                        seg = np.linspace(pts[i], (ax_, ay_), 12)[2:]
                        if any(t.contains(*p) for t in taken for p in seg):
                            continue
                    dx, dy = (ax_ - pts[i][0]) / px, (ay_ - pts[i][1]) / px
                    ax.annotate(str(labels[i]), (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points",
                                ha=ha, va=va, fontsize=fontsize, color=color, zorder=4,
                                arrowprops=dict(arrowstyle="-", color="#555555", lw=0.6, shrinkA=0,
                                                shrinkB=r_px / px) if far else None,
                                annotation_clip=False).set_in_layout(False)
                    taken.append(cand)
                    if far:
                        leaders.append(np.linspace(pts[i], (ax_, ay_), 16)[1:])
                    done = True
                    break
                if done:
                    break
            if done:
                break
        if not done:
            missing.append(labels[i])
    return missing


def _note_unlabelled(fig, missing, what: str = "points") -> None:
    """Name under the figure the points whose label found no free place."""
    if not missing:
        return
    text = f"Not labelled (no free place beside their {what}): " + ", ".join(dict.fromkeys(map(str, missing))) + "."
    lines = textwrap.wrap(text, width=int(fig.get_figwidth() * 12.5))
    extra = (len(lines) * LABEL_PT * 1.35 + 6) / 72
    h = fig.get_figheight()
    # grow the figure at the bottom by the note's height, keeping every artist where it was (in inches)
    for a in fig.axes:
        p = a.get_position()
        a.set_position([p.x0, (p.y0 * h + extra) / (h + extra), p.width, p.height * h / (h + extra)])
    for leg in fig.legends:
        bx = leg.get_bbox_to_anchor().transformed(fig.transFigure.inverted())
        leg.set_bbox_to_anchor((bx.x0, (bx.y0 * h + extra) / (h + extra)), transform=fig.transFigure)
    fig.set_figheight(h + extra)
    fig.text(0.01, 2 / 72 / (h + extra), "\n".join(lines), fontsize=LABEL_PT, ha="left", va="bottom",
             color="#333333")


def _fit_texts(ax, texts, axis: str = "x", log: bool = False) -> None:
    """Widen the axis limit so that ``texts`` (bar labels) end inside the axes."""
    renderer = _renderer(ax.figure)
    for _ in range(4):
        box = ax.get_window_extent(renderer)
        over = max([t.get_window_extent(renderer).x1 - box.x1 + 4 for t in texts] + [0]) if axis == "x" else \
            max([t.get_window_extent(renderer).y1 - box.y1 + 4 for t in texts] + [0])
        if over <= 0:
            return
        lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
        span_px = box.width if axis == "x" else box.height
        if log:
            hi = hi * (hi / lo) ** (over / (span_px - over))
        else:
            hi = hi + (hi - lo) * over / (span_px - over)
        (ax.set_xlim if axis == "x" else ax.set_ylim)(lo, hi)


def _quiet_log_minor(ax) -> None:
    """Log axes without colliding minor labels: over two powers of ten or more, no minor labels; over a
    shorter range, plain numbers at 1, 2 and 5 times the powers of ten instead."""
    for axis, lim in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() != "log":
            continue
        lo, hi = sorted(lim)
        if lo > 0 and np.floor(np.log10(hi)) - np.ceil(np.log10(lo)) < 1:
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def _style(i: int) -> dict:
    """Colour, marker and line style of the i-th series."""
    return dict(color=SERIES_COLOURS[i % len(SERIES_COLOURS)], marker=MARKERS[i % len(MARKERS)],
                ls=LINE_STYLES[i % len(LINE_STYLES)])


def save_figure(fig, chapter: str, stem: str) -> list[Path]:
    """Write ``fig`` to ``results/<chapter>/<stem>.png`` and ``.svg``; returns both paths."""
    out = results_dir(chapter)
    paths = [out / f"{stem}.png", out / f"{stem}.svg"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight", metadata={"Date": None})
    return paths


def save_table(df: pd.DataFrame, chapter: str, stem: str) -> Path:
    """Write ``df`` to ``results/<chapter>/<stem>.csv`` (no index) and return the path."""
    path = results_dir(chapter) / f"{stem}.csv"
    df.to_csv(path, index=False)
    return path


class SkippedAnalyses:
    """The analyses a chapter could not run with its parameters, said where they would have been.

    ``notes = SkippedAnalyses(CHAPTER)`` starts the chapter's list (``results/<chapter>/skipped_analyses.csv``,
    written anew, so a re-run with other parameters never shows old notes). ``notes.attempt(analysis,
    enable, fn, *args)`` returns ``fn(*args)``, or ``None`` after showing a visible note when ``fn``
    raises :class:`vtalign.InsufficientData`; other errors still fail the chapter. ``enable`` says which
    parameters would make the analysis possible.
    """

    COLUMNS = ["analysis", "reason", "enable_with"]

    def __init__(self, chapter: str):
        self.chapter, self.rows = chapter, []
        self._write()

    def _write(self) -> None:
        save_table(pd.DataFrame(self.rows, columns=self.COLUMNS), self.chapter, "skipped_analyses")

    def note(self, analysis: str, reason: str, enable: str) -> None:
        from IPython.display import Markdown, display

        self.rows.append(dict(analysis=analysis, reason=reason, enable_with=enable))
        self._write()
        display(Markdown(f"> **Skipped: {analysis}.** {reason} To run it: {enable}."))

    def attempt(self, analysis: str, enable: str, fn, *args, **kwargs):
        from ..checks import InsufficientData

        try:
            return fn(*args, **kwargs)
        except InsufficientData as err:
            self.note(analysis, str(err), enable)
            return None

    def __bool__(self) -> bool:
        return bool(self.rows)


def paper_vs_run(rows, comparable: bool = True) -> pd.DataFrame:
    """The "paper vs this run" table every chapter ends with.

    rows : iterable of (quantity, paper_value, this_run_value, how_obtained)
    where how_obtained says what this run did (e.g. "recomputed from digitised points").
    comparable : whether the two columns measure the same quantity on the same models, so that their
        difference means something; the live chapters (other models, a generated world) pass False and
        the table has no difference column.
    """
    df = pd.DataFrame(rows, columns=["quantity", "paper", "this_run", "this_run_is"])
    if not comparable:
        return df[["quantity", "paper", "this_run", "this_run_is"]]
    df["difference"] = pd.to_numeric(df.this_run, errors="coerce") - pd.to_numeric(df.paper, errors="coerce")
    return df[["quantity", "paper", "this_run", "difference", "this_run_is"]]


# --------------------------------------------------------------------------- #
# Figure 2: alignment vs retrieval accuracy
# --------------------------------------------------------------------------- #
def plot_alignment_vs_retrieval(points: pd.DataFrame, published_lines: pd.DataFrame,
                                refit: pd.DataFrame, label_points: bool = True):
    """Figure 2: one panel per retrieval benchmark (stacked, each the column's full width); markers by
    model type; the published per-LLM regression lines (broad, dashed/dotted, one colour each) and this
    run's refit line (thin black, drawn on top, so a paper line it matches shows around it). Every point
    is labelled where a free place exists; the others are named under the figure."""
    score = points.columns[-1]
    panels = list(dict.fromkeys(points.panel))
    fig, axes = plt.subplots(len(panels), 1, figsize=(DISPLAY_WIDTH_IN, 5.4 * len(panels)), squeeze=False)
    axes = axes[:, 0]
    llms = list(dict.fromkeys(published_lines.llm))
    llm_style = {llm: LLM_STYLES[i % len(LLM_STYLES)] for i, llm in enumerate(llms)}
    drawn = {key: [] for key in [*llms, "refit", *MODEL_TYPES]}
    r_text = {key: [] for key in [*llms, "refit"]}
    short = lambda panel: panel.upper()
    for ax, panel in zip(axes, panels):
        sub = points[points.panel == panel]
        xs = np.linspace(sub.retrieval_accuracy.min(), sub.retrieval_accuracy.max(), 50)
        for llm, line in published_lines[published_lines.panel == panel].groupby("llm", sort=False):
            r = line.iloc[0]
            colour, ls = llm_style[llm]
            drawn[llm] += ax.plot(xs, r.slope * xs + r.intercept, ls=ls, lw=4.5, color=colour, alpha=0.75, zorder=1.5)
            if "r" in line and pd.notna(r["r"]):
                r_text[llm].append(f"{r['r']:.2f} {short(panel)}")
        for fit in refit[refit.panel == panel].itertuples():  # none when the refit was skipped
            drawn["refit"] += ax.plot(xs, fit.slope * xs + fit.intercept, color="black", lw=1.2, zorder=2.5)
            r_text["refit"].append(f"{fit.pearson_r:.2f} {short(panel)}")
        for mtype, (label, marker, colour) in MODEL_TYPES.items():
            m = sub[sub.model_type == mtype]
            if len(m):
                drawn[mtype].append(ax.scatter(m.retrieval_accuracy, m[score], marker=marker, s=60, color=colour,
                                               alpha=0.9, edgecolor="white", linewidth=0.6, zorder=3))
        ax.margins(x=0.08, y=0.1)
        name = RETRIEVAL_PANELS.get(panel, panel.upper())
        ax.set_title(f"{name} ({short(panel)}) retrieval", fontsize=TITLE_PT)
        ax.set_xlabel(f"{short(panel)} video retrieval: weighted k-NN accuracy (0-1, higher is better)")
        ax.set_ylabel("Alignment with Gemma-2-9B-it\n(mutual k-NN, VaTeX, one caption)")
    with_r = lambda key: f" (r = {', '.join(r_text[key])})" if r_text[key] else ""
    lines = [(_proxy(drawn[llm], color=llm_style[llm][0], ls=llm_style[llm][1], lw=4.5, alpha=0.75),
              f"{llm}, paper's line{with_r(llm)}") for llm in llms]
    lines.append((_proxy(drawn["refit"], color="black", lw=1.2), f"refit to the plotted points{with_r('refit')}"))
    kinds = [(_proxy(drawn[m], marker=MODEL_TYPES[m][1], color=MODEL_TYPES[m][2], ls="", markersize=8,
                     markeredgecolor="white"), MODEL_TYPES[m][0]) for m in MODEL_TYPES]
    _bottom_legends(fig, [[([h for h, _ in kinds], [t for _, t in kinds], None)],
                          [([h for h, _ in lines], [t for _, t in lines], None)]])
    if label_points:
        missing = []
        for ax, panel in zip(axes, panels):
            sub = points[points.panel == panel]
            missing += [f"{name} ({short(panel)})" for name in
                        _place_labels(ax, sub.retrieval_accuracy, sub[score], list(sub.model))]
        _note_unlabelled(fig, missing)
    return fig


# --------------------------------------------------------------------------- #
# Figure 3 / Eq. 2: test-time scaling
# --------------------------------------------------------------------------- #
def _level_style(i: int, n: int) -> dict:
    """Style of the i-th of n ordered levels: a sequential colour plus its own marker and line style."""
    colour = plt.get_cmap("viridis")(0.05 + 0.78 * i / max(1, n - 1))
    return dict(color=colour, marker=MARKERS[i % len(MARKERS)], ls=LINE_STYLES[i % len(LINE_STYLES)])


def plot_scaling_grid(grid: pd.DataFrame, fits: dict[str, ScalingFit] | None = None,
                      caption_levels=None, frame_levels=None, *, chance: float | None = None,
                      null: float | None = None, null_label: str = "shuffled-pairing null (mean)",
                      null_grid: pd.DataFrame | None = None):
    """Figure 3: one row per model; left, score vs frames (one line per caption count); right, score vs
    captions (one line per frame count); each count has its own colour, marker and line style. Fitted laws
    as thin black lines where given. ``caption_levels`` / ``frame_levels`` choose the lines (at most six
    each; default: all). Optional reference levels: ``chance`` (k/(N-1)), ``null`` (e.g. the mean of a
    shuffled-pairing null, named by ``null_label``) as horizontal lines, and ``null_grid`` (the same grid
    measured in a null world) as grey lines in the same styles."""
    models = list(dict.fromkeys(grid.model))

    def present(levels, column):  # requested levels that the grid has; all of them if none asked
        have = sorted(grid[column].unique())
        chosen = [v for v in (levels or have) if v in have]
        return chosen or have

    caption_levels = sorted(present(caption_levels, "n_captions"))[: len(LINE_STYLES)]
    frame_levels = sorted(present(frame_levels, "n_frames"))[: len(LINE_STYLES)]
    fig, axes = plt.subplots(len(models), 2, figsize=(DISPLAY_WIDTH_IN, 3.3 * len(models)), sharey=True,
                             squeeze=False)
    handles = {"n_captions": {}, "n_frames": {}}
    fit_lines, null_lines, refs = [], [], []
    for row, model in zip(axes, models):
        g = grid[grid.model == model]
        for ax, x, levels, other in ((row[0], "n_frames", caption_levels, "n_captions"),
                                     (row[1], "n_captions", frame_levels, "n_frames")):
            for i, level in enumerate(levels):
                style = _level_style(i, len(levels))
                s = g[g[other] == level].sort_values(x)
                if s.empty:
                    continue
                line, = ax.plot(s[x], s.score, ms=5.5, lw=1.6, zorder=3, **style)
                handles[other].setdefault(level, (style, []))[1].append(line)
                if fits and model in fits:
                    xs = np.geomspace(s[x].min(), s[x].max(), 60)
                    args = (xs, level) if x == "n_frames" else (level, xs)
                    fit_lines += ax.plot(xs, fits[model].predict(*args), color="black", lw=0.8, alpha=0.7, zorder=2)
                if null_grid is not None:
                    n = null_grid[(null_grid.model == model) & (null_grid[other] == level)].sort_values(x)
                    if len(n):
                        null_lines += ax.plot(n[x], n.score, color="#9a9a9a", marker=style["marker"], ls=style["ls"],
                                              ms=4, lw=1.1, zorder=2.5, markerfacecolor="none")
            if chance is not None:
                refs.append(("chance", ax.axhline(chance, **CHANCE_STYLE, zorder=1)))
            if null is not None:
                refs.append(("null", ax.axhline(null, **NULL_STYLE, zorder=1)))
            ax.set_xscale("log", base=2)
            ticks = sorted(grid[x].unique())
            ax.set_xticks(ticks, [str(int(t)) for t in ticks])
            ax.minorticks_off()
            what = "frames" if x == "n_frames" else "captions"
            ax.set_xlabel(f"Number of {what} per video (log scale)")
            r2 = f" (Eq. 2 fit: $R^2$ = {fits[model].r2:.3f})" if fits and model in fits and x == "n_frames" else ""
            ax.set_title(f"{model}\nby number of {what}{r2}", fontsize=TITLE_PT - 0.5)
        row[0].set_ylabel("Alignment score (mutual k-NN)")
    def level_legend(other, word):
        items = handles[other]
        return ([_proxy(lines, **style, ms=5.5, lw=1.6) for style, lines in items.values()],
                [_plural(level, word) for level in items])

    left_h, left_l = level_legend("n_captions", "caption")
    right_h, right_l = level_legend("n_frames", "frame")
    extra = []
    if fit_lines:
        extra.append((_proxy(fit_lines, color="black", lw=0.8), "Eq. 2 fit"))
    if null_lines:
        extra.append((_proxy(null_lines, color="#9a9a9a", marker="o", markerfacecolor="none", lw=1.1),
                      "null world (grey, same styles)"))
    for kind, label, style in (("chance", f"chance k/(N-1) = {chance:.3f}" if chance is not None else "", CHANCE_STYLE),
                               ("null", f"{null_label} = {null:.3f}" if null is not None else "", NULL_STYLE)):
        lines = [a for k, a in refs if k == kind]
        if lines:
            extra.append((_proxy(lines, **style), label))
    rows = [[(left_h, left_l, "captions per video"), (right_h, right_l, "frames per video")]]
    if extra:
        rows.append([([h for h, _ in extra], [t for _, t in extra], None)])
    _bottom_legends(fig, rows)
    return fig


def plot_caption_gain(pairs: pd.DataFrame, published_slope: float, published_intercept: float):
    """Figure 7 style: all-captions vs one-caption alignment, this run's fit and the paper's line."""
    fit = linear_fit(pairs.one_caption, pairs.all_captions)
    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    sources = list(dict.fromkeys(pairs.source)) if "source" in pairs else [None]
    handles = []
    for i, source in enumerate(sources):
        sub = pairs if source is None else pairs[pairs.source == source]
        style = _style(i)
        pts = ax.scatter(sub.one_caption, sub.all_captions, s=42, color=style["color"], marker=style["marker"],
                         edgecolor="white", linewidth=0.5, zorder=3)
        handles.append((pts, source or "pairs"))
    xs = np.linspace(pairs.one_caption.min(), pairs.one_caption.max(), 20)
    lines = [(ax.plot(xs, published_slope * xs + published_intercept, ls="--", color="#7f7f7f", lw=1.6)[0],
              f"paper: y = {published_slope}x {published_intercept:+}"),
             (ax.plot(xs, fit.predict(xs), color="black", lw=1.2)[0],
              f"this run: y = {fit.slope:.2f}x {fit.intercept:+.3f} (r = {fit.r:.3f})"),
             (ax.plot(xs, xs, color="#b0b0b0", lw=1, ls=":")[0], "y = x (no gain)")]
    ax.set_xlabel("Alignment with one caption per video (mutual k-NN)")
    ax.set_ylabel("Alignment with all captions (mutual k-NN)")
    _bottom_legends(fig, [[([h for h, _ in handles], [t for _, t in handles], None)],
                          [([h for h, _ in lines], [t for _, t in lines], None)]])
    return fig, fit


def plot_pvd_slices(frames: pd.DataFrame, captions: pd.DataFrame, original: pd.DataFrame | None = None,
                    fits: dict[tuple[str, str], ScalingFit] | None = None):
    """Figure 8: left, score vs frames; right, score vs synthesised captions, one series per model (its own
    colour, marker and line style); the original caption's score as a dotted line in the model's colour
    (right); fits keyed ``(model, axis)`` (:func:`vtalign.scaling.fit_slice`) as thin black lines."""
    models = list(dict.fromkeys([*frames.model, *captions.model]))
    fig, axes = plt.subplots(1, 2, figsize=(DISPLAY_WIDTH_IN, 4.0), sharey=True)
    drawn, fit_lines, base_lines = {}, [], []
    for ax, table, x, word in ((axes[0], frames, "n_frames", "frames"), (axes[1], captions, "n_captions", "captions")):
        for i, model in enumerate(models):
            s = table[table.model == model].sort_values(x)
            if s.empty:
                continue
            style = _style(i)
            line, = ax.plot(s[x], s.score, ms=4.5, lw=1.4, zorder=3, **style)
            drawn.setdefault(model, []).append(line)
            fit = (fits or {}).get((model, word))
            if fit is not None:
                xs = np.geomspace(s[x].min(), s[x].max(), 60)
                fit_lines += ax.plot(xs, fit.predict(xs, xs), color="black", lw=0.8, alpha=0.7, zorder=2)
            if original is not None and word == "captions":
                o = original[original.model == model]
                if len(o):
                    base_lines.append(ax.axhline(float(o.score.iloc[0]), color=style["color"], ls=":", lw=1.3,
                                                 zorder=1))
        ax.set_xscale("log", base=2)
        ticks = sorted(table[x].unique())
        ax.set_xticks(ticks, [str(int(t)) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel(f"Number of {word} per video (log scale)")
        ax.set_title(f"PVD, by number of {'frames' if word == 'frames' else 'synthesised captions'}",
                     fontsize=TITLE_PT - 0.5)
    axes[0].set_ylabel("Alignment score (mutual k-NN)")
    model_h = [_proxy(lines, ms=4.5, lw=1.4, **_style(models.index(m))) for m, lines in drawn.items()]
    extra = []
    if fit_lines:
        extra.append((_proxy(fit_lines, color="black", lw=0.8), "Eq. 2's term, fitted to each curve"))
    if base_lines:
        extra.append((_proxy(base_lines, color="#555555", ls=":", lw=1.3),
                      "original detailed caption (dotted, the model's colour)"))
    rows = [[(model_h, list(drawn), "vision model")]]
    if extra:
        rows.append([([h for h, _ in extra], [t for _, t in extra], None)])
    _bottom_legends(fig, rows)
    return fig


# --------------------------------------------------------------------------- #
# Figure 4: downstream correlation
# --------------------------------------------------------------------------- #
def _task_axis(task: str, lower_is_better) -> str:
    """The y label of a downstream task: its metric and which direction is better."""
    metric = DOWNSTREAM_TASKS.get(task, (None, "score"))[1]
    if task in lower_is_better:
        return f"{metric} (lower is better)"
    if task in DOWNSTREAM_TASKS:
        return f"{metric} (0-1, higher is better)" if metric == "accuracy" else f"{metric} (higher is better)"
    return metric


def plot_downstream(df: pd.DataFrame, tasks, correlations: pd.DataFrame, alignment: str = "alignment",
                    lower_is_better=()):
    """Figure 4: one scatter per downstream task against alignment, with the LS line, Pearson R and p;
    panels titled by the task, y axes by its metric and direction (the paper states accuracy for the
    action tasks and no metric for the others, which say "score"). Up to ten models get their own colour
    and marker, named once in the legend; more are labelled beside their points."""
    tasks = list(tasks)
    n = len(tasks)
    cols = min(2, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(DISPLAY_WIDTH_IN, 3.0 * rows), squeeze=False)
    models = list(dict.fromkeys(df.model)) if "model" in df else []
    by_marker = 0 < len(models) <= 10
    fitted, drawn = [], {m: [] for m in models}
    for ax, task in zip(axes.ravel(), tasks):
        found = correlations[correlations.task == task]
        sns.regplot(data=df, x=alignment, y=task, ax=ax, ci=None, scatter=not by_marker,
                    scatter_kws=dict(s=36, zorder=3), line_kws=dict(color="black", lw=1), fit_reg=len(found) > 0)
        if len(found):
            fitted.append(ax.lines[-1])
        if by_marker:
            for i, model in enumerate(models):
                rows_m = df[df.model == model]
                drawn[model].append(ax.scatter(rows_m[alignment], rows_m[task], s=50, zorder=3, edgecolor="white",
                                               linewidth=0.5, color=SERIES_COLOURS[i], marker=MARKERS[i]))
        stats = (f"Pearson R = {found.pearson_r.iloc[0]:.3f}, {p_phrase(found.pearson_p.iloc[0])}" if len(found)
                 else "correlation skipped (too few models)")
        ax.set_title(f"{_readable(task)}\n{stats}", fontsize=TITLE_PT - 0.5)
        ax.set_xlabel("Alignment with text (mutual k-NN)")
        ax.set_ylabel(_task_axis(task, lower_is_better))
        ax.margins(x=0.08, y=0.1)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    legend = []
    if by_marker:
        legend.append(([_proxy(drawn[m], ls="", marker=MARKERS[i], markersize=8, markeredgecolor="white",
                               color=SERIES_COLOURS[i]) for i, m in enumerate(models)],
                       models, "model"))
    if fitted:
        legend.append(([_proxy(fitted, color="black", lw=1)], ["least-squares line"], None))
    _bottom_legends(fig, [[spec] for spec in legend])
    if models and not by_marker:
        missing = []
        for ax, task in zip(axes.ravel(), tasks):
            missing += [f"{m} ({_readable(task)})" for m in _place_labels(ax, df[alignment], df[task], list(df.model))]
        _note_unlabelled(fig, missing)
    return fig


# --------------------------------------------------------------------------- #
# Figures 5 and 6: temporal probes
# --------------------------------------------------------------------------- #
def _hbars(ax, categories, groups, values, colours, fmt, bar_text=None):
    """Grouped horizontal bars: one block per category (top to bottom), one bar per group inside it.
    Returns the bar containers (per group) and the bar labels."""
    n = len(groups)
    height = 0.8 / n
    containers, texts = [], []
    for j, group in enumerate(groups):
        y = np.arange(len(categories)) - 0.4 + height * (j + 0.5)
        vals = np.asarray(values[j], float)
        bars = ax.barh(y, np.nan_to_num(vals), height=height * 0.92, color=colours[j], zorder=2)
        containers.append(bars)
        labels = ["" if not np.isfinite(v) else fmt(v) if bar_text is None else bar_text[j][i]
                  for i, v in enumerate(vals)]
        texts += ax.bar_label(bars, labels=labels, padding=3, fontsize=LABEL_PT)
    for t in texts:  # out of the layout: _fit_texts makes room for them once the layout is done
        t.set_in_layout(False)
    ax.set_yticks(np.arange(len(categories)), categories)
    ax.set_ylim(len(categories) - 0.5, -0.5)
    return containers, texts


def plot_videocomp(df: pd.DataFrame):
    """Figure 6: positive vs temporally reordered negative captions, models sorted by positive score."""
    d = df.sort_values("positive", ascending=False)
    fig, ax = plt.subplots(figsize=(DISPLAY_WIDTH_IN, 0.9 + 0.55 * len(d)))
    containers, texts = _hbars(ax, list(d.model), ["positive", "negative"], [d.positive, d.negative],
                               ["#4c72b0", "#c44e52"], lambda v: f"{v:.3f}")
    ax.set_xlabel("Alignment with text (mutual k-NN, k = 5)")
    ax.set_xlim(0, None)
    _bottom_legends(fig, [[(containers, ["positive captions", "temporally reordered negative captions"], None)]])
    _fit_texts(ax, texts)
    return fig


def plot_test_of_time(df: pd.DataFrame, chance=None):
    """Figure 5: alignment at each k per model on Test of Time, one bar per k. The chance level k/(N-1)
    is marked on every bar (a black tick) and given in the legend: from ``chance`` when passed (one
    number, or a mapping k -> level), else from the table's ``chance`` column when it has one. With a
    ``times_chance`` column, each bar label also says how many times chance the score is."""
    models = list(dict.fromkeys(df.model))
    ks = sorted(df.k.unique())
    if chance is not None:
        level = (lambda k: chance[k]) if isinstance(chance, dict) else (lambda k: float(chance))
        df = df.assign(chance=[level(k) for k in df.k])
    table = df.set_index(["model", "k"])
    colours = sns.color_palette("crest", n_colors=len(ks))
    values = [[table.alignment.get((m, k), np.nan) for m in models] for k in ks]
    times = "times_chance" in df and chance is None
    texts = [[(f"{table.alignment.get((m, k), np.nan):.2f}" +
               (f"  ({table.times_chance.get((m, k)):.0f}× chance)" if times and (m, k) in table.index else ""))
              for m in models] for k in ks]
    block_in = 0.24 * len(ks) + 0.2  # inches per model
    fig, ax = plt.subplots(figsize=(DISPLAY_WIDTH_IN, 0.9 + block_in * len(models)))
    containers, labels = _hbars(ax, models, ks, values, colours, None, texts)
    ticks = []
    if "chance" in df:
        height = 0.8 / len(ks)
        for j, k in enumerate(ks):
            y = np.arange(len(models)) - 0.4 + height * (j + 0.5)
            c = [table.chance.get((m, k), np.nan) for m in models]
            ticks += ax.plot(c, y, ls="", marker="|", markersize=72 * block_in * height * 0.85, mew=2.2,
                             color="black", zorder=4)
    ax.set_xlim(0, 1.05)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel("Alignment with text (mutual k-NN), Test of Time")
    legend = [(containers, [f"k = {k}" for k in ks], "neighbours k")]
    if ticks:
        levels = df.drop_duplicates("k").set_index("k").chance
        legend.append(([_proxy(ticks, ls="", marker="|", markersize=10, mew=2.2, color="black")],
                       ["chance k/(N-1): " + ", ".join(f"{levels[k]:.3f} (k = {k})" for k in ks)], None))
    _bottom_legends(fig, [legend])
    _fit_texts(ax, labels)
    return fig


# --------------------------------------------------------------------------- #
# Performance chapter
# --------------------------------------------------------------------------- #
def _seconds_bars(labels, seconds, colours, notes, xlabel: str, legend=()):
    """Horizontal bars of seconds (log scale), one per label, each annotated with its note."""
    labels, seconds = list(labels), np.asarray(list(seconds), float)
    fig, ax = plt.subplots(figsize=(DISPLAY_WIDTH_IN, 0.9 + 0.5 * max(1, len(labels))))
    bars = ax.barh(np.arange(len(labels)), seconds, color=list(colours), zorder=2)
    texts = ax.bar_label(bars, labels=list(notes), padding=4, fontsize=LABEL_PT)
    for t in texts:
        t.set_in_layout(False)
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=MIN_FONT_PT)
    ax.set_xscale("log")
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel(xlabel)
    if legend:
        _bottom_legends(fig, [[([_proxy([bars], color=c, lw=8) for c, _ in legend], [t for _, t in legend], None)]])
    else:
        fig.tight_layout()
    _fit_texts(ax, texts, log=True)
    _quiet_log_minor(ax)
    return fig


def plot_sweep_benchmark(table: pd.DataFrame):
    """Seconds for a whole layer sweep per method and machine (log scale), speed-ups annotated."""
    return _seconds_bars(
        table.machine + "\n" + table.method, table.seconds,
        ["#c44e52" if m.startswith("reference") else "#4c72b0" for m in table.method],
        [f"{r.seconds:.3g} s" + (f"  ({r.speedup_vs_reference:.1f}x)" if r.speedup_vs_reference else "")
         for r in table.itertuples()],
        "seconds for all layer pairs (log scale, lower is better)",
        [("#c44e52", "reference algorithm"), ("#4c72b0", "vtalign and peers (speed-up vs the reference)")])


def plot_knn_scaling(table: pd.DataFrame):
    """kNN time, peak memory and achieved fraction of the matmul rate against N, per backend and machine
    (colour, marker and line style per series); the legend takes the fourth panel's place."""
    fig, axes = plt.subplots(2, 2, figsize=(DISPLAY_WIDTH_IN, 6.4))
    axes = axes.ravel()
    handles, labels = [], []
    for i, ((machine, backend), g) in enumerate(table.groupby(["machine", "backend"], sort=False)):
        g = g.sort_values("n")
        style = _style(i)
        drawn = [axes[0].plot(g.n, g.seconds, ms=5, **style)[0],
                 axes[1].plot(g.n, g.peak_mib.clip(lower=0.1), ms=5, **style)[0],
                 axes[2].plot(g.n, g.fraction_of_matmul, ms=5, **style)[0]]
        handles.append(_proxy(drawn, ms=5, **style))
        labels.append(f"{backend}, {machine}")
    for ax, ylabel, title in zip(axes, ["seconds (lower is better)", "peak memory, MiB", "fraction of matmul rate"],
                                 ["kNN search time", "peak memory", "similarity GFLOP/s over matmul GFLOP/s"]):
        ax.set_xscale("log")
        ax.set_xlabel("N (items, log scale)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=TITLE_PT)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    for ax in axes[:3]:
        _quiet_log_minor(ax)
    ref = axes[2].axhline(1.0, color="grey", lw=1, ls="--")
    axes[3].axis("off")
    fig.tight_layout()
    handles.append(_proxy([ref], color="grey", lw=1, ls="--"))
    labels.append("matmul rate (fraction 1)")
    leg = axes[3].legend(handles, labels, loc="center", frameon=False, fontsize=LEGEND_PT, title="backend, machine",
                         title_fontsize=LEGEND_PT)
    leg._vtalign_handles = handles
    return fig


def plot_peers(table: pd.DataFrame):
    """Exact vtalign against the inexact peers at one N: seconds (bars) and the share of rows whose
    neighbour list differs from the exact one (annotated), per machine."""
    timed = table.dropna(subset=["seconds"])
    return _seconds_bars(
        timed.machine + "\n" + timed.peer, timed.seconds,
        ["#4c72b0" if e else "#c44e52" for e in timed.peer.str.startswith("vtalign")],
        [f"{r.seconds:.3g} s, {r.rows_with_other_order:.2%} of rows differ" for r in timed.itertuples()],
        "seconds for one kNN search (log scale, lower is better)",
        [("#4c72b0", "exact (vtalign)"), ("#c44e52", "not exact (peers)")])


# --------------------------------------------------------------------------- #
# Live chapters
# --------------------------------------------------------------------------- #
def plot_order_sensitivity(order: pd.DataFrame):
    """Share of nearest neighbours (within the same colour pair) that show the same order of events,
    per representation; an order-blind representation sits near 1/3, an order-aware one near 1."""
    df = order.assign(representation=order.model + "\n" + order.side)
    reps = list(dict.fromkeys(df.representation))
    whiches = list(dict.fromkeys(df.which))
    table = df.drop_duplicates(["representation", "which"]).set_index(["representation", "which"]).same_order
    fig, ax = plt.subplots(figsize=(DISPLAY_WIDTH_IN, 1.0 + 0.75 * len(reps)))
    containers, texts = _hbars(ax, reps, whiches, [[table.get((r, w), np.nan) for r in reps] for w in whiches],
                               sns.color_palette("crest", n_colors=max(2, len(whiches)))[: len(whiches)],
                               lambda v: f"{v:.2f}")
    blind = ax.axvline(1 / 3, color="#333333", ls="--", lw=1.2, zorder=3)
    ax.set_xlim(0, 1.05)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel("Share of same-pair nearest neighbours that show the same order")
    _bottom_legends(fig, [[(containers, whiches, "layer"),
                           ([_proxy([blind], color="#333333", ls="--", lw=1.2)], ["order-blind (1/3)"], None)]])
    _fit_texts(ax, texts)
    return fig


def plot_live_figure2(points: pd.DataFrame, fits: pd.DataFrame, ylabel: str, chance: float | None = None):
    """Figure 2, live: alignment (y) against the semantic-task score (x), markers by model type
    (filled: trained weights, hollow: random weights), one least-squares line per text model (its own
    colour and line style). ``xlabel`` of the plot is ``ylabel`` (the name is kept for existing calls);
    ``chance``: the alignment of unrelated spaces, k/(N-1), drawn as a dotted line."""
    fig, ax = plt.subplots(figsize=(DISPLAY_WIDTH_IN, 5.0))
    texts = list(dict.fromkeys(points.text))
    colours = {t: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, t in enumerate(texts)}
    line_styles = {t: LINE_STYLES[i % len(LINE_STYLES)] for i, t in enumerate(texts)}
    xs = np.linspace(points.semantic_score.min(), points.semantic_score.max(), 50)
    by_type, by_text, hollow, line_handles = {}, {}, [], []
    for text in texts:
        sub = points[points.text == text]
        for mtype, (label, marker, _) in MODEL_TYPES.items():
            m = sub[sub.model_type == mtype]
            if m.empty:
                continue
            random = m.vision.str.contains("-random")
            for rnd, part in ((False, m[~random]), (True, m[random])):
                if part.empty:
                    continue
                pc = ax.scatter(part.semantic_score, part.alignment, marker=marker, s=60, alpha=0.9, zorder=3,
                                facecolor="none" if rnd else colours[text], edgecolor=colours[text], linewidth=1.5)
                by_type.setdefault(mtype, []).append(pc)
                by_text.setdefault(text, []).append(pc)
                if rnd:
                    hollow.append(pc)
        f = fits[fits.text == text] if "text" in fits else fits.iloc[:0]
        if len(f):
            f = f.iloc[0]
            line = ax.plot(xs, f.slope * xs + f.intercept, color=colours[text], lw=1.8, ls=line_styles[text])[0]
            by_text.setdefault(text, []).append(line)
            line_handles.append((_proxy([line], color=colours[text], lw=1.8, ls=line_styles[text]),
                                 f"{text}: r = {f.pearson_r:.2f} [{f.ci_low:.2f}, {f.ci_high:.2f}]"))
    refs = []
    if chance is not None:
        refs.append((_proxy([ax.axhline(chance, **CHANCE_STYLE)], **CHANCE_STYLE), f"chance k/(N-1) = {chance:.3f}"))
    kinds = [(_proxy(by_type.get(m, []), marker=MODEL_TYPES[m][1], color="#7f7f7f", ls="", markersize=8),
              MODEL_TYPES[m][0]) for m in MODEL_TYPES]
    kinds.append((_proxy(hollow, marker="o", markerfacecolor="none", markeredgecolor="#7f7f7f", ls="",
                         markersize=8, markeredgewidth=1.5), "hollow: random weights"))
    lines = line_handles or [(_proxy(by_text[t], marker="o", color=colours[t], ls=""), t)
                             for t in texts if t in by_text]
    ax.set_xlabel(ylabel)
    ax.set_ylabel("Alignment with text\n(mutual k-NN, best layer pair)")
    _bottom_legends(fig, [[([h for h, _ in kinds], [t for _, t in kinds], "vision side")],
                          [([h for h, _ in lines + refs], [t for _, t in lines + refs],
                            "text model: Pearson r [95% CI]" if line_handles else "text model")]])
    return fig


def plot_task_correlations(live: pd.DataFrame, published: pd.DataFrame, text: str,
                           null: pd.DataFrame | None = None):
    """Figure 4 beside its live counterpart (stacked): Pearson r (with its bootstrap CI when known) of
    alignment with each task; blue: semantic tasks, orange: non-semantic. ``null``: the same correlations
    in the null world, drawn on the live panel as hollow diamonds with their CI."""
    fig, axes = plt.subplots(2, 1, figsize=(DISPLAY_WIDTH_IN, 2.0 + 0.42 * (len(live) + len(published))),
                             gridspec_kw=dict(height_ratios=[max(1, len(live)), max(1, len(published))]))
    bars, ci, null_marks = {True: [], False: []}, [], []
    for ax, df, title in ((axes[0], live, f"Measured here: alignment with {text}, synthetic world"),
                          (axes[1], published, "Published (Figure 4): 4DS family vs Gemma-2-9B-it, VaTeX")):
        df = df.reset_index(drop=True)
        y = np.arange(len(df))
        for sem in (True, False):
            rows = df[df.semantic == sem]
            if len(rows):
                bars[sem].append(ax.barh(rows.index, rows.pearson_r, color="#4c72b0" if sem else "#dd8452",
                                         alpha=0.85, height=0.7 if null is None or ax is not axes[0] else 0.5,
                                         zorder=2))
        if "ci_low" in df:
            ci.append(ax.errorbar(df.pearson_r, y, xerr=[df.pearson_r - df.ci_low, df.ci_high - df.pearson_r],
                                  fmt="none", ecolor="black", lw=1, capsize=3, zorder=3))
        if null is not None and ax is axes[0] and len(null):
            nl = null.set_index("task").reindex(df.task)
            ny = y + 0.32
            null_marks.append(ax.scatter(nl.pearson_r, ny, marker="D", s=30, facecolor="white",
                                         edgecolor="#333333", zorder=4))
            if "ci_low" in nl:
                ax.errorbar(nl.pearson_r, ny, xerr=[nl.pearson_r - nl.ci_low, nl.ci_high - nl.pearson_r], fmt="none",
                            ecolor="#7f7f7f", lw=1, capsize=2, zorder=3)
        ax.set_yticks(y, [_readable(t) for t in df.task])
        ax.axvline(0, color="grey", lw=1)
        ax.set_xlim(-1.05, 1.05)
        ax.set_ylim(len(df) - 0.5, -0.5)
        ax.set_xlabel("Pearson r of alignment with the task's score")
        ax.set_title(title, fontsize=TITLE_PT)
    legend = [(_proxy(bars[True], color="#4c72b0", lw=8), "semantic task"),
              (_proxy(bars[False], color="#dd8452", lw=8), "non-semantic task"),
              (_proxy(ci, color="black", lw=1, marker="|", markersize=7), "95% bootstrap interval"),
              (_proxy(null_marks, marker="D", ls="", markerfacecolor="white", markeredgecolor="#333333"),
               "null world (labels permuted)")]
    _bottom_legends(fig, [[([h for h, _ in legend], [t for _, t in legend], None)]])
    return fig


def _short_number(v: float) -> str:
    """Two decimals without the leading zero (".27"; "1" for 1.00), so heat-map cells stay narrow."""
    s = f"{v:.2f}"
    return "1" if s == "1.00" else s.replace("0.", ".", 1) if s.lstrip("-").startswith("0.") else s


def plot_alignment_matrix(matrix: pd.DataFrame, chance: float):
    """Figure 10: pairwise alignment between representations, rows and columns ordered by average-linkage
    clustering on 1 - alignment; columns numbered as the rows, chance marked on the colour bar."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform
    dist = squareform(1 - matrix.values, checks=False)
    order = leaves_list(linkage(dist, method="average")) if len(matrix) > 2 else np.arange(len(matrix))
    m = matrix.iloc[order, order]
    n = len(m)
    names = [f"{name}  ({i + 1})" for i, name in enumerate(m.index)]
    fig, ax = plt.subplots(figsize=(DISPLAY_WIDTH_IN, 1.2 + 0.34 * n))
    annot = np.vectorize(_short_number)(m.values)
    sns.heatmap(m, annot=annot, fmt="", cmap="rocket_r", vmin=0, vmax=1, ax=ax, square=False,
                annot_kws=dict(fontsize=LABEL_PT if n <= 16 else MIN_FONT_PT), linewidths=0.5, linecolor="white",
                cbar_kws=dict(label=f"alignment (mutual k-NN); chance {chance:.3f}", pad=0.02))
    ax.set_yticks(np.arange(n) + 0.5, names, rotation=0, fontsize=MIN_FONT_PT)
    ax.set_xticks(np.arange(n) + 0.5, [str(i + 1) for i in range(n)], rotation=0, fontsize=MIN_FONT_PT)
    ax.set_xlabel("representation (numbered as the rows)")
    ax.set_ylabel("")
    cbar = ax.collections[0].colorbar
    cbar.ax.axhline(chance, color="#2a9d8f", lw=2.5)
    cbar.ax.tick_params(labelsize=MIN_FONT_PT)
    fig.tight_layout()
    return fig


def plot_negative_differences(table: pd.DataFrame, null: pd.DataFrame | None = None):
    """Figure 6, live: alignment with positive minus with reordered captions, per (vision side, text
    model), with its bootstrap CI (black) and the central 95% of the sign-flip null (grey band). ``null``:
    the same table measured in the null world, drawn as hollow diamonds with their CI under each row."""
    df = table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(DISPLAY_WIDTH_IN, 1.0 + 0.6 * len(df)))
    y = np.arange(len(df))
    bands = [ax.fill_betweenx([i - 0.35, i + 0.35], r.null_low, r.null_high, color="grey", alpha=0.3, lw=0)
             for i, r in df.iterrows()]
    aware = df.vision.str.contains("segments").values
    ci = ax.errorbar(df.difference, y, xerr=[df.difference - df.ci_low, df.ci_high - df.difference], fmt="none",
                     ecolor="black", lw=1, capsize=3)
    pts = {flag: ax.scatter(df.difference[aware == flag], y[aware == flag], color="#c44e52" if flag else "#4c72b0",
                            marker="D" if flag else "o", zorder=3) for flag in (True, False)}
    nulls = []
    if null is not None and len(null):
        nl = df[["vision", "text"]].merge(null, on=["vision", "text"], how="left")
        ny = y + 0.28
        nulls.append(ax.scatter(nl.difference, ny, marker="D", s=22, facecolor="white", edgecolor="#333333", zorder=4))
        ax.errorbar(nl.difference, ny, xerr=[nl.difference - nl.ci_low, nl.ci_high - nl.difference], fmt="none",
                    ecolor="#7f7f7f", lw=1, capsize=2)
    ax.set_yticks(y, df.vision + "\n× " + df.text, fontsize=MIN_FONT_PT)
    ax.set_ylim(len(df) - 0.5, -0.5)
    ax.axvline(0, color="grey", lw=1)
    ax.set_xlabel("alignment with positives − with reordered negatives\n(mutual k-NN; above 0: order noticed)")
    legend = [(_proxy([pts[False]], marker="o", ls="", color="#4c72b0"), "order-blind pooling"),
              (_proxy([pts[True]], marker="D", ls="", color="#c44e52"), "order-aware pooling (segments)"),
              (_proxy([ci], color="black", lw=1, marker="|", markersize=7), "95% bootstrap interval"),
              (_proxy(bands, color="grey", alpha=0.3, lw=8), "central 95% of the sign-flip null"),
              (_proxy(nulls, marker="D", ls="", markerfacecolor="white", markeredgecolor="#333333"), "null world")]
    _bottom_legends(fig, [[([h for h, _ in legend], [t for _, t in legend], None)]])
    return fig


def plot_reorder_distances(table: pd.DataFrame):
    """Per text model and layer (relative depth), the median ratio of how far reordering moves a
    paragraph to how far its nearest other paragraph is; one panel per source."""
    sources = list(dict.fromkeys(table.source))
    models = list(dict.fromkeys(table.model))
    fig, axes = plt.subplots(1, len(sources), figsize=(DISPLAY_WIDTH_IN, 4.0), squeeze=False, sharey=True)
    drawn = {m: [] for m in models}
    refs = []
    for ax, source in zip(axes[0], sources):
        sub = table[table.source == source]
        for model, m in sub.groupby("model", sort=False):
            drawn[model] += ax.plot(m.layer / max(m.layer.max(), 1), m.median_ratio, ms=4, lw=1.5,
                                    **_style(models.index(model)))
        refs.append(ax.axhline(1, color="#333333", ls=":", lw=1.2))
        ax.set_yscale("log")
        _quiet_log_minor(ax)
        ax.set_xlabel("layer depth (0 = first, 1 = last)")
        ax.set_title(PARAGRAPH_SOURCES.get(source, source), fontsize=TITLE_PT)
    axes[0][0].set_ylabel("median ratio: reorder distance /\nnearest other paragraph (log)")
    legend = [(_proxy(drawn[m], ms=4, lw=1.5, **_style(i)), m) for i, m in enumerate(models)]
    legend.append((_proxy(refs, color="#333333", ls=":", lw=1.2), "ratio 1: as far as the nearest other paragraph"))
    _bottom_legends(fig, [[([h for h, _ in legend], [t for _, t in legend], "text model")]])
    return fig


def plot_preparation_choice(table: pd.DataFrame):
    """Live scaling grid under the two clamp rules: score with per-layer thresholds against one shared
    threshold, one point per grid cell."""
    fig, ax = plt.subplots(figsize=(5.5, 5.0))
    pts = ax.scatter(table.score_shared, table.score_per_layer, s=30, zorder=3)
    both = table[["score_shared", "score_per_layer"]]
    lo, hi = both.min().min(), both.max().max()
    diag = ax.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=1)[0]
    ax.set_xlabel("alignment, one threshold over all layers")
    ax.set_ylabel("alignment, one threshold per layer\n(default for CNNs)")
    _bottom_legends(fig, [[([_proxy([pts], marker="o", ls="", color=pts.get_facecolor()[0]),
                             _proxy([diag], color="grey", ls="--", lw=1)],
                            ["one cell of the live scaling grid", "y = x (same score)"], None)]])
    return fig
