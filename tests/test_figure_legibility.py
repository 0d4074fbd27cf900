"""Every figure of the book is legible where the book shows it.

The book's content column is about 720 CSS px wide (7.5 in at 96 px/in); a figure wider than that
(as saved, with ``bbox_inches="tight"``) is scaled down to it. One checker,
:func:`legibility_problems`, applies to every figure:

(a) every visible text is at least 9 pt at display size;
(b) no two texts overlap (point and bar labels, tick labels, titles, axis labels), and every data
    label lies inside its axes;
(c) every legend entry stands for something drawn with data; no legend overlaps another legend, any
    text outside it, or data inside an axes;
(d) no axis label is a raw snake_case column name;
(e) "R^2" never appears literally (mathtext ``$R^2$`` is fine).

Each public ``plot_*`` of :mod:`vtalign.book.figures` is drawn from small inputs shaped like the
chapters' (published tables from data_manifest/paper, synthetic live tables; never results/), and the
checker is shown to catch a deliberately bad figure of each kind.
"""
import re
from itertools import combinations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import Collection
from matplotlib.container import Container
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.text import Text
from scipy import stats

from vtalign.book import figures
from vtalign.book.paper import load_published
from vtalign.scaling import ScalingFit, caption_gain_pairs

DISPLAY_WIDTH_IN = 7.5   # 720 CSS px at 96 px/in
MIN_PT = 9.0
SNAKE = re.compile(r"^[A-Za-z0-9]+(_[A-Za-z0-9]+)+$")


# --------------------------------------------------------------------------- #
# The checker
# --------------------------------------------------------------------------- #
def _has_data(artist) -> bool:
    """Whether a legend handle (or the artists a proxy stands for) shows any data."""
    sources = getattr(artist, "_vtalign_represents", None)
    if sources is not None:
        return any(_has_data(a) for a in sources)
    if isinstance(artist, Container):
        return any(_has_data(a) for a in artist.get_children())
    if isinstance(artist, Line2D):
        xy = np.asarray(artist.get_xydata(), float).reshape(-1, 2)
        return artist.axes is not None and bool(np.isfinite(xy).all(axis=1).any())
    if isinstance(artist, Collection):
        return artist.axes is not None and len(artist.get_offsets()) > 0 and len(artist.get_paths()) > 0
    if isinstance(artist, Patch):
        return artist.axes is not None
    return False


def _drawn_tick_labels(ax):
    """The tick labels matplotlib actually draws (ticks inside the view limits)."""
    out = []
    if not ax.axison:
        return out
    for axis in (ax.xaxis, ax.yaxis):
        if not axis.get_visible():
            continue
        for tick in axis._update_ticks():
            out += [t for t in (tick.label1, tick.label2) if t.get_visible() and t.get_text().strip()]
    return out


def _box(text, renderer):
    return Text.get_window_extent(text, renderer)  # the text alone, not an annotation's leader line


def _overlap(a, b, tol=0.5) -> bool:
    return a.x0 < b.x1 - tol and b.x0 < a.x1 - tol and a.y0 < b.y1 - tol and b.y0 < a.y1 - tol


def _data_points(ax, renderer):
    """Display coordinates of the data an axes shows (line vertices and points along segments, scatter
    points, bar rectangles' corners and centres)."""
    pts = []
    for line in ax.get_lines():
        if not line.get_visible():
            continue
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), float).reshape(-1, 2))
        xy = xy[np.isfinite(xy).all(axis=1)]
        pts.append(xy)
        if len(xy) > 1 and line.get_linestyle() not in ("None", "", " "):
            t = np.linspace(0, 1, 25)[:, None]
            pts += [a + t * (b - a) for a, b in zip(xy[:-1], xy[1:])]
    for c in ax.collections:
        if c.get_visible() and len(c.get_offsets()) and c.get_offset_transform() is not None:
            off = c.get_offset_transform().transform(np.asarray(c.get_offsets(), float))
            pts.append(off[np.isfinite(off).all(axis=1)])
    for p in ax.patches:
        if isinstance(p, Rectangle) and p.get_visible() and p.get_width() and p.get_height():
            b = p.get_window_extent(renderer)
            pts.append(np.array([[b.x0, b.y0], [b.x1, b.y1], [b.x0, b.y1], [b.x1, b.y0],
                                 [(b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2]]))
    return np.concatenate(pts) if pts else np.empty((0, 2))


def legibility_problems(fig, columns=()) -> list[str]:
    """Everything that would make ``fig`` hard to read at the book's display width (see the module
    docstring); an empty list for a legible figure. ``columns``: the input tables' column names."""
    fig.draw_without_rendering()   # layout and ticks as drawn, without rasterising
    renderer = fig.canvas.get_renderer()
    tight = fig.get_tightbbox(renderer)  # inches, as save_figure and the inline backend crop it
    scale = min(1.0, DISPLAY_WIDTH_IN / tight.width)
    problems = []
    axes = [ax for ax in fig.axes if ax.get_visible()]
    legends = [ax.get_legend() for ax in axes if ax.get_legend() is not None] + list(fig.legends)
    legends = [leg for leg in legends if leg.get_visible()]
    in_legend = {id(t) for leg in legends for t in leg.findobj(Text)}
    ticks = [t for ax in axes for t in _drawn_tick_labels(ax)]
    tick_ids = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
                for tick in axis.get_major_ticks() + axis.get_minor_ticks() for t in (tick.label1, tick.label2)}
    others = [t for t in fig.findobj(Text) if id(t) not in tick_ids and t.get_visible() and t.get_text().strip()
              and (t.axes is None or t.axes.get_visible())]
    shown = others + ticks

    # (a) size at display scale
    for t in shown:
        if t.get_fontsize() * scale < MIN_PT - 1e-6:
            problems.append(f"(a) {t.get_text()[:40]!r} is {t.get_fontsize() * scale:.1f} pt at display size")
    # (e) a literal R^2
    for t in shown:
        if re.search(r"R\^2|R\*\*2", re.sub(r"\$[^$]*\$", "", t.get_text())):
            problems.append(f"(e) literal R^2 in {t.get_text()[:60]!r}")
    # (b) labels inside their axes; no two texts (outside legends) overlap
    labels = {id(t) for ax in axes for t in ax.texts}
    for ax in axes:
        inside = ax.get_window_extent(renderer).padded(1)
        for t in ax.texts:
            if t.get_visible() and t.get_text().strip():
                b = _box(t, renderer)
                if not (inside.x0 <= b.x0 and b.x1 <= inside.x1 and inside.y0 <= b.y0 and b.y1 <= inside.y1):
                    problems.append(f"(b) data label {t.get_text()[:40]!r} leaves its axes")
    free = [(t, _box(t, renderer)) for t in shown if id(t) not in in_legend]
    for (t1, b1), (t2, b2) in combinations(free, 2):
        if _overlap(b1, b2):
            kind = "data labels" if id(t1) in labels and id(t2) in labels else "texts"
            problems.append(f"(b) {kind} overlap: {t1.get_text()[:30]!r} and {t2.get_text()[:30]!r}")
    # (c) legends: entries with data, no overlap with other legends, texts or data
    drawn = [a for ax in fig.axes for a in ax.get_children() + list(ax.containers)]
    for leg in legends:
        entries = [t.get_text() for t in leg.get_texts()]
        handles = getattr(leg, "_vtalign_handles", None)
        if handles is not None:
            empty = [label for h, label in zip(handles, entries) if not _has_data(h)]
        else:
            empty = [label for label in entries if not any(_has_data(a) for a in drawn if a.get_label() == label)]
        problems += [f"(c) legend entry {label!r} has no plotted data" for label in empty]
    boxes = [leg.get_window_extent(renderer) for leg in legends]
    for (i, a), (j, b) in combinations(enumerate(boxes), 2):
        if _overlap(a, b):
            problems.append("(c) two legends overlap")
    for leg, box in zip(legends, boxes):
        for t, b in free:
            if _overlap(box, b):
                problems.append(f"(c) a legend overlaps {t.get_text()[:30]!r}")
        for ax in axes:
            if leg.axes is ax and not ax.has_data():
                continue
            pts = _data_points(ax, renderer)
            inside = ((pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1))
            if inside.any():
                problems.append(f"(c) a legend covers {int(inside.sum())} data point(s)")
    # (d) axis labels
    raw = {c for c in columns if isinstance(c, str)}
    for ax in axes:
        for label in (ax.get_xlabel(), ax.get_ylabel()):
            if label and (SNAKE.match(label.strip()) or label.strip() in raw):
                problems.append(f"(d) axis label {label!r} is a raw column name")
    return problems


def assert_legible(fig, *tables):
    columns = {c for t in tables if isinstance(t, pd.DataFrame) for c in t.columns}
    problems = legibility_problems(fig, columns)
    assert not problems, "\n".join(dict.fromkeys(problems))


_BUILT = {}


def built(name):
    """Each figure is drawn once per session (with the book's style) and shared by the tests below."""
    if name not in _BUILT:
        with plt.rc_context():
            figures.use_paper_style()
            fig, tables = BUILDERS[name]()
        plt.close(fig)   # out of pyplot's registry; an Agg canvas of its own still draws it
        FigureCanvasAgg(fig)
        _BUILT[name] = fig, tables
    return _BUILT[name]


@pytest.fixture(autouse=True, scope="module")
def paper_style():
    with plt.rc_context():
        figures.use_paper_style()
        yield
    _BUILT.clear()


# --------------------------------------------------------------------------- #
# Small inputs shaped like the chapters'
# --------------------------------------------------------------------------- #
def _fig2_inputs():
    points = load_published("fig2_alignment_vs_retrieval_digitized")
    lines = load_published("fig2_regression_lines_digitized").merge(load_published("fig2_printed_legend_r"),
                                                                    on=["llm", "panel"], how="left")
    rows = []
    for panel, sub in points.groupby("panel", sort=False):
        fit = stats.linregress(sub.retrieval_accuracy, sub.alignment_gemma2_9b_it)
        rows.append(dict(panel=panel, n=len(sub), slope=fit.slope, intercept=fit.intercept, pearson_r=fit.rvalue))
    return points, lines, pd.DataFrame(rows)


def _grid_fits(grid):
    """Eq. 2 with Table 1's parameters (no fitting in a figure test)."""
    table1 = load_published("table1_scaling_law_params")
    fits = {}
    for r in table1[(table1.dataset == "vatex") & table1.model.isin(grid.model)].itertuples():
        params = dict(s_inf=r.s_inf, c_f=r.c_f, alpha=r.alpha, c_c=r.c_c, beta=r.beta)
        fits[r.model] = ScalingFit("eq2_additive_power", params, {}, r.r2, 0.0, 32, 0.0, 0.0, 0.0)
    return fits


def _live_grid(world_shift=0.0):
    rows = [dict(model="efficientnet-lite0 x minilm-l6", n_frames=f, n_captions=c,
                 score=0.08 + 0.05 * np.log2(c) + 0.01 * np.log2(f) - world_shift)
            for f in (1, 2, 4, 16) for c in (1, 2, 5, 10)]
    return pd.DataFrame(rows)


def _live_points():
    variants = [("efficientnet-lite0", "first", "image_on_image"), ("efficientnet-lite0", "mean:4", "image_on_video"),
                ("efficientnet-lite0", "mean:16", "image_on_video"),
                ("efficientnet-lite0", "segments:4", "order_aware")]
    variants += ([(m + "-random", p, t) for m, p, t in variants]
                 + [("efficientnet-lite2", p, t) for _, p, t in variants])
    rng = np.random.default_rng(0)
    rows = [dict(vision=f"{m} | {p}", model_type=t, text=text, alignment=0.08 + 0.04 * rng.random(),
                 semantic_score=0.57 + 0.07 * rng.random())
            for m, p, t in variants for text in ("minilm-l6", "gemma3-270m", "smollm2-135m")]
    return pd.DataFrame(rows)


def _live_fits(points):
    rows = []
    for text, sub in points.groupby("text", sort=False):
        fit = stats.linregress(sub.semantic_score, sub.alignment)
        rows.append(dict(text=text, n=len(sub), slope=fit.slope, intercept=fit.intercept, pearson_r=fit.rvalue,
                         ci_low=fit.rvalue - 0.3, ci_high=min(1.0, fit.rvalue + 0.2)))
    return pd.DataFrame(rows)


def _task_table(r):
    tasks = ["background", "first_shape", "colours_present", "first_position", "first_motion", "first_left_of_last",
             "object_count"]
    r = np.resize(np.asarray(r, float), len(tasks))
    return pd.DataFrame(dict(task=tasks, semantic=[True] * 3 + [False] * 4, n=12, pearson_r=r,
                             ci_low=np.clip(r - 0.35, -1, 1), ci_high=np.clip(r + 0.3, -1, 1)))


def _negatives(scale=1.0):
    rows = []
    for pooling in ("mean:16", "segments:4"):
        for i, text in enumerate(("minilm-l6", "gemma3-270m", "smollm2-135m")):
            d = scale * (0.002 + 0.004 * i) * (3 if "segments" in pooling else 1)
            rows.append(dict(vision=f"efficientnet-lite0 | {pooling}", text=text, difference=d, ci_low=d - 0.004,
                             ci_high=d + 0.005, null_low=-0.006, null_high=0.006, positive=0.08, negative=0.08 - d))
    return pd.DataFrame(rows)


def _machines(table):
    return pd.concat([table.assign(machine=m) for m in ("x86_64 (cpu, full)", "NVIDIA H100 80GB HBM3 (cuda, full)")],
                     ignore_index=True)


def build_alignment_vs_retrieval():
    points, lines, refit = _fig2_inputs()
    return figures.plot_alignment_vs_retrieval(points, lines, refit, label_points=True), (points, lines, refit)


def build_scaling_grid():
    grid = load_published("fig3_vatex_scaling_frames_digitized")
    return figures.plot_scaling_grid(grid, _grid_fits(grid), frame_levels=[1, 2, 4, 16, 48]), (grid,)


def build_scaling_grid_live():
    grid, null_grid = _live_grid(), _live_grid(0.05)
    fig = figures.plot_scaling_grid(grid, None, chance=10 / 255, null=0.052, null_grid=null_grid)
    return fig, (grid,)


def build_caption_gain():
    grid = load_published("fig3_vatex_scaling_frames_digitized")
    pvd = load_published("fig8_pvd_captions_digitized")
    pairs = pd.concat([caption_gain_pairs(grid).assign(source="grid (Figure 3, VaTeX)"),
                       caption_gain_pairs(pvd, one=1, many=10, by=("model",)).assign(source="Figure 8, PVD")],
                      ignore_index=True)
    fig, _ = figures.plot_caption_gain(pairs, 1.6, -0.018)
    return fig, (pairs,)


def build_pvd_slices():
    from vtalign.scaling import fit_slice
    frames, captions = load_published("fig8_pvd_frames_digitized"), load_published("fig8_pvd_captions_digitized")
    original = load_published("fig8_pvd_original_caption_digitized")
    fits = {(m, axis): fit_slice(t[t.model == m][column], t[t.model == m].score, axis)
            for axis, t, column in (("frames", frames, "n_frames"), ("captions", captions, "n_captions"))
            for m in t.model.unique()}
    return figures.plot_pvd_slices(frames, captions, original, fits), (frames, captions, original)


def build_downstream():
    data = load_published("fig4_downstream_digitized")
    tasks = [c for c in data.columns if c not in ("model", "alignment")]
    corr = pd.DataFrame([dict(task=t, pearson_r=stats.pearsonr(data.alignment, data[t])[0],
                              pearson_p=stats.pearsonr(data.alignment, data[t])[1]) for t in tasks])
    fig = figures.plot_downstream(data, tasks, corr, "alignment", ["re10k_camera_pose", "scannet_depth"])
    return fig, (data, corr)


def build_downstream_many_models():
    """More models than colours: labelled beside the points instead."""
    data = load_published("fig4_downstream_digitized")
    more = pd.concat([data, data.assign(model=data.model + "-ft", alignment=data.alignment * 1.1)], ignore_index=True)
    tasks = ["ssv2", "scannet_depth"]
    corr = pd.DataFrame([dict(task=t, pearson_r=0.8, pearson_p=0.01) for t in tasks])
    return figures.plot_downstream(more, tasks, corr, "alignment", ["scannet_depth"]), (more, corr)


def build_videocomp():
    scores = load_published("fig6_videocomp_printed")
    return figures.plot_videocomp(scores), (scores,)


def build_test_of_time():
    from vtalign import versus_chance
    scores = versus_chance(load_published("fig5_test_of_time_printed"), 180)
    return figures.plot_test_of_time(scores), (scores,)


def build_test_of_time_live():
    rows = [dict(model=f"efficientnet-lite0 ({mode}) x {text}", k=k, alignment=a * k / 3, n_items=180)
            for mode, a in (("video", 0.9), ("image", 0.02)) for text in ("minilm-l6", "gemma3-270m")
            for k in (1, 2, 3)]
    scores = pd.DataFrame(rows)
    return figures.plot_test_of_time(scores, chance={k: k / 179 for k in (1, 2, 3)}), (scores,)


def build_sweep_benchmark():
    methods = ["reference algorithm", "vtalign (torch)", "vtalign (faiss)"]
    t = _machines(pd.DataFrame(dict(method=methods, seconds=[147.0, 3.15, 5.2])))
    t = t.assign(speedup_vs_reference=t.groupby("machine").seconds.transform("max") / t.seconds)
    return figures.plot_sweep_benchmark(t), (t,)


def build_knn_scaling():
    rows = [dict(backend=b, n=n, seconds=1e-8 * n ** 1.6 * f, peak_mib=n / 300 * f,
                 fraction_of_matmul=min(1.3, n / 1e5 * f))
            for b, f in (("torch", 1.0), ("faiss", 1.5)) for n in (1000, 3000, 10000, 30000, 100000)]
    t = _machines(pd.DataFrame(rows))
    return figures.plot_knn_scaling(t), (t,)


def build_peers():
    peers = ["vtalign (auto)", "fp32 (IEEE) matmul + topk", "TF32 matmul + topk", "faiss flat"]
    t = _machines(pd.DataFrame(dict(peer=peers, seconds=[0.05, 0.22, 0.075, 0.17],
                                    rows_with_other_order=[0.0, 0.0002, 0.034, 0.0001])))
    return figures.plot_peers(t), (t,)


def build_order_sensitivity():
    rows = [dict(model=m, side=s, which=w, same_order=v)
            for m, s, base in (("efficientnet-lite0", "video (8 frames, video)", 0.32), ("minilm-l6", "text", 0.0),
                               ("efficientnet-lite0", "video (1 frames, image)", 0.34))
            for w, v in (("aligned layer", base), ("most order-aware layer", base + 0.09))]
    order = pd.DataFrame(rows)
    return figures.plot_order_sensitivity(order), (order,)


def build_live_figure2():
    points = _live_points()
    fig = figures.plot_live_figure2(points, _live_fits(points), "mean semantic-task score (weighted k-NN, last layer)",
                                    chance=10 / 255)
    return fig, (points,)


def build_live_figure2_without_fits():
    points = _live_points()
    fig = figures.plot_live_figure2(points, pd.DataFrame(columns=["text"]), "mean of the semantic columns")
    return fig, (points,)


def build_task_correlations():
    live = _task_table([0.5, 0.6, 0.88, -0.1, 0.3, 0.2, -0.4])
    null = _task_table([0.05, -0.1, 0.02, 0.1, -0.05, 0.0, 0.08])
    published = load_published("fig4_printed_pearson").assign(semantic=lambda d: d.task.isin(["ssv2", "kinetics"]))
    return figures.plot_task_correlations(live, published, "gemma3-270m", null=null), (live, published)


def build_alignment_matrix():
    """The live chapter's size: 12 vision variants and 3 text models."""
    names = [f"{m} | {p}" for m in ("efficientnet-lite0", "efficientnet-lite2", "efficientnet-lite0-random")
             for p in ("first", "mean:4", "mean:16", "segments:4")] + ["minilm-l6", "gemma3-270m", "smollm2-135m"]
    rng = np.random.default_rng(1)
    a = rng.uniform(0.05, 0.95, (len(names), len(names)))
    a = (a + a.T) / 2
    np.fill_diagonal(a, 1.0)
    m = pd.DataFrame(a, index=names, columns=names)
    return figures.plot_alignment_matrix(m, 10 / 255), (m,)


def build_negative_differences():
    table = _negatives()
    return figures.plot_negative_differences(table, null=_negatives(0.1)), (table,)


def build_reorder_distances():
    rows = [dict(source=s, model=m, layer=layer, median_ratio=10 ** (-4 + layer * 0.5) * f)
            for s in ("activitynet", "youcook2")
            for m, f in (("minilm-l6", 1), ("gemma3-270m", 0.5), ("smollm2-135m", 2))
            for layer in range(7)]
    table = pd.DataFrame(rows)
    return figures.plot_reorder_distances(table), (table,)


def build_preparation_choice():
    rng = np.random.default_rng(2)
    shared = rng.uniform(0.08, 0.5, 16)
    table = pd.DataFrame(dict(score_shared=shared, score_per_layer=shared + rng.normal(0, 0.004, 16)))
    return figures.plot_preparation_choice(table), (table,)


BUILDERS = {name[len("build_"):]: fn for name, fn in dict(globals()).items() if name.startswith("build_")}


def test_every_public_plot_function_has_a_figure_here():
    public = {n for n in figures.__all__ if n.startswith("plot_")}
    covered = {"plot_" + name for name in BUILDERS}   # build_<name> draws plot_<name> (variants add a suffix)
    assert public <= covered, f"no legibility test for {sorted(public - covered)}"


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_figure_is_legible_at_display_width(name):
    fig, tables = built(name)
    assert_legible(fig, *tables)


def test_figure_2_draws_only_model_types_with_points_and_keeps_the_paper_lines_visible():
    fig, _ = built("alignment_vs_retrieval")
    texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert "image model on video, order-aware pooling" not in texts   # the published points have none
    assert any(t.startswith("gemma2-9b-it") for t in texts) and any(t.startswith("refit") for t in texts)
    ax = fig.axes[0]
    paper = [line for line in ax.get_lines() if line.get_linewidth() > 3]
    refit = [line for line in ax.get_lines() if line.get_color() == "black"]
    assert paper and refit and all(p.get_zorder() < r.get_zorder() for p in paper for r in refit)


def test_chance_levels_are_drawn_where_given():
    fig, (scores,) = built("test_of_time")   # the chance column of versus_chance: one black tick per bar
    ticks = [line for line in fig.axes[0].get_lines() if line.get_marker() == "|"]
    assert sum(len(line.get_xdata()) for line in ticks) == len(scores)
    assert np.allclose(sorted(np.concatenate([line.get_xdata() for line in ticks])), sorted(scores.chance))
    fig, _ = built("scaling_grid_live")
    levels = {round(line.get_ydata()[0], 4) for ax in fig.axes for line in ax.get_lines()
              if len(set(line.get_ydata())) == 1 and len(line.get_ydata()) == 2}
    assert {round(10 / 255, 4), 0.052} <= levels


def test_scaling_levels_have_distinct_styles_and_singular_labels():
    fig, _ = built("scaling_grid")
    for leg in fig.legends[:2]:
        labels = [t.get_text() for t in leg.get_texts()]
        styles = [(h.get_marker(), str(h.get_linestyle()), str(h.get_color())) for h in leg.legend_handles]
        assert len(set(styles)) == len(styles)
        assert all(not re.match(r"^1 \w+s$", label) for label in labels)
        assert any(re.match(r"^1 (caption|frame)$", label) for label in labels)
    assert all(ax.get_title() for ax in fig.axes)


# --------------------------------------------------------------------------- #
# The checker catches each kind of problem
# --------------------------------------------------------------------------- #
def _kinds(fig, columns=()):
    try:
        problems = legibility_problems(fig, columns)
    finally:
        plt.close(fig)
    return {p[:3] for p in problems}, problems


def test_checker_catches_small_text_and_wide_figures():
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("fine", fontsize=7)
    assert "(a)" in _kinds(fig)[0]
    fig, ax = plt.subplots(figsize=(15, 4))   # shown at half size: 11 pt prints as 5.5 pt
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("too wide", fontsize=11)
    assert "(a)" in _kinds(fig)[0]


def test_checker_catches_overlapping_labels():
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter([0.5, 0.51], [0.5, 0.5])
    ax.set_xlim(0, 1)
    ax.annotate("mae_huge", (0.5, 0.5), fontsize=10)
    ax.annotate("mae_base", (0.51, 0.5), fontsize=10)
    kinds, problems = _kinds(fig)
    assert "(b)" in kinds and any("data labels overlap" in p for p in problems)


def test_checker_catches_empty_and_covering_legends():
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter([0.1, 0.9], [0.1, 0.9], label="native video model")
    ax.scatter([], [], label="order-aware pooling")
    ax.legend(fontsize=10)
    kinds, problems = _kinds(fig)
    assert any("'order-aware pooling' has no plotted data" in p for p in problems)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(np.linspace(0, 1, 30), np.linspace(0, 1, 30)[::-1], label="points")
    ax.legend(fontsize=10, loc="upper left")
    assert any("covers" in p for p in _kinds(fig)[1])
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], label="a line")
    ax.legend(fontsize=10, loc="upper center", bbox_to_anchor=(0.5, 0.02))   # over the x tick labels
    assert any("a legend overlaps" in p for p in _kinds(fig)[1])


def test_checker_catches_raw_column_names_and_literal_r2():
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1])
    ax.set_ylabel("re10k_camera_pose")
    ax.set_title("Eq. 2 fit, R^2 = 0.99")
    kinds, _ = _kinds(fig, {"re10k_camera_pose"})
    assert {"(d)", "(e)"} <= kinds
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1])
    ax.set_title("Eq. 2 fit, $R^2$ = 0.99")
    ax.set_ylabel("score (lower is better)")
    assert not _kinds(fig)[1]
