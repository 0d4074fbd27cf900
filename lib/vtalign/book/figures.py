"""The paper's figures: one plotting function per figure, plus saving helpers.

Every chapter of the book calls exactly one ``plot_*`` function per figure
from here, so the code behind any figure is one step from its chapter.
Figures are written as PNG and SVG under ``results/<chapter>/`` by
:func:`save_figure`; tables as CSV by :func:`save_table`.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..correlation import linear_fit
from ..paths import results_dir
from ..scaling import ScalingFit

__all__ = [
    "use_paper_style",
    "SkippedAnalyses",
    "save_figure",
    "save_table",
    "paper_vs_run",
    "plot_alignment_vs_retrieval",
    "plot_scaling_grid",
    "plot_caption_gain",
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

MODEL_TYPES = {  # model_type -> (label, marker, colour), as in Figure 2
    "native_video": ("native video model", "o", "#4c72b0"),
    "image_on_video": ("image model on video", "^", "#dd8452"),
    "image_on_image": ("image model on image", "s", "#55a868"),
    "order_aware": ("image model on video, order-aware pooling", "D", "#c44e52"),
}
LINE_STYLES = ["-", "--", "-.", ":", (0, (5, 1, 1, 1)), (0, (1, 1))]


def use_paper_style() -> None:
    """Seaborn's darkgrid theme, as the paper's plots use, and fixed SVG ids for reproducible files."""
    sns.set_theme(style="darkgrid", context="notebook")
    plt.rcParams["svg.hashsalt"] = "vtalign"
    plt.rcParams["figure.dpi"] = 100


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


def paper_vs_run(rows) -> pd.DataFrame:
    """The "paper vs this run" table every chapter ends with.

    rows : iterable of (quantity, paper_value, this_run_value, how_obtained)
    where how_obtained says what this run did (e.g. "recomputed from digitised points").
    """
    df = pd.DataFrame(rows, columns=["quantity", "paper", "this_run", "this_run_is"])
    df["difference"] = pd.to_numeric(df.this_run, errors="coerce") - pd.to_numeric(df.paper, errors="coerce")
    return df[["quantity", "paper", "this_run", "difference", "this_run_is"]]


# --------------------------------------------------------------------------- #
# Figure 2: alignment vs retrieval accuracy
# --------------------------------------------------------------------------- #
def plot_alignment_vs_retrieval(points: pd.DataFrame, published_lines: pd.DataFrame,
                                refit: pd.DataFrame, label_points: bool = True):
    """Figure 2: one panel per retrieval benchmark; markers by model type; published
    per-LLM regression lines (dotted) and this run's refit line (solid black)."""
    score = points.columns[-1]
    panels = list(dict.fromkeys(points.panel))
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 6), squeeze=False)
    llm_colours = sns.color_palette("crest", n_colors=max(1, published_lines.llm.nunique()))
    for ax, panel in zip(axes[0], panels):
        sub = points[points.panel == panel]
        xs = np.linspace(sub.retrieval_accuracy.min(), sub.retrieval_accuracy.max(), 50)
        for colour, (llm, line) in zip(llm_colours, published_lines[published_lines.panel == panel].groupby("llm", sort=False)):
            r = line.iloc[0]
            label = f"{llm} (paper line" + (f", r = {r['r']:.2f})" if "r" in line else ")")
            ax.plot(xs, r.slope * xs + r.intercept, ls=":", lw=2.5, color=colour, label=label)
        for fit in refit[refit.panel == panel].itertuples():  # none when the refit was skipped
            ax.plot(xs, fit.slope * xs + fit.intercept, color="black", lw=1.5,
                    label=f"refit to plotted points (r = {fit.pearson_r:.2f})")
        for mtype, (label, marker, colour) in MODEL_TYPES.items():
            m = sub[sub.model_type == mtype]
            ax.scatter(m.retrieval_accuracy, m[score], marker=marker, s=80, color=colour,
                       alpha=0.85, label=label, edgecolor="white", zorder=3)
            if label_points:
                for _, row in m.iterrows():
                    ax.annotate(row.model, (row.retrieval_accuracy, row[score]), fontsize=6.5,
                                xytext=(3, 3), textcoords="offset points", alpha=0.8)
        ax.set_xlabel(f"{panel.upper()} retrieval accuracy")
        ax.set_ylabel("Alignment with Gemma-2-9B-it (VaTeX)")
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- #
# Figure 3 / Eq. 2: test-time scaling
# --------------------------------------------------------------------------- #
def plot_scaling_grid(grid: pd.DataFrame, fits: dict[str, ScalingFit] | None = None,
                      caption_levels=None, frame_levels=None):
    """Figure 3: score vs frames (one line per caption count, left) and vs captions (one line
    per frame count, right), one colour per model; fitted laws as thin black lines where given.
    ``caption_levels`` / ``frame_levels`` choose the lines (at most six each; default: all)."""
    models = list(dict.fromkeys(grid.model))
    colours = dict(zip(models, sns.color_palette("muted", len(models))))
    def present(levels, column):  # requested levels that the grid has; all of them if none asked
        have = sorted(grid[column].unique())
        chosen = [v for v in (levels or have) if v in have]
        return chosen or have

    caption_levels = present(caption_levels, "n_captions")[: len(LINE_STYLES)]
    frame_levels = present(frame_levels, "n_frames")[: len(LINE_STYLES)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5), sharey=True)
    for ax, x, levels, other in ((left, "n_frames", caption_levels, "n_captions"),
                                 (right, "n_captions", frame_levels, "n_frames")):
        for model in models:
            g = grid[grid.model == model]
            for style, level in zip(LINE_STYLES, sorted(levels, reverse=True)):
                s = g[g[other] == level].sort_values(x)
                if s.empty:
                    continue
                ax.plot(s[x], s.score, ls=style, marker="o", color=colours[model], ms=5,
                        label=f"{model}, {level} {other.split('_')[1]}")
                if fits and model in fits:
                    xs = np.geomspace(s[x].min(), s[x].max(), 60)
                    args = (xs, level) if x == "n_frames" else (level, xs)
                    ax.plot(xs, fits[model].predict(*args), color="black", lw=0.8, alpha=0.6)
        ax.set_xscale("log", base=2)
        ticks = sorted(grid[x].unique())
        ax.set_xticks(ticks, [str(int(t)) for t in ticks])
        ax.set_xlabel("Number of frames" if x == "n_frames" else "Number of captions")
    left.set_ylabel("Alignment score")
    right.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    if fits:
        left.plot([], [], color="black", lw=0.8, label="fitted law")
        left.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def plot_caption_gain(pairs: pd.DataFrame, published_slope: float, published_intercept: float):
    """Figure 7 style: all-captions vs one-caption alignment, this run's fit and the paper's line."""
    fit = linear_fit(pairs.one_caption, pairs.all_captions)
    fig, ax = plt.subplots(figsize=(6, 5))
    sns.scatterplot(data=pairs, x="one_caption", y="all_captions", hue="source" if "source" in pairs else None,
                    s=60, ax=ax)
    xs = np.linspace(pairs.one_caption.min(), pairs.one_caption.max(), 20)
    ax.plot(xs, published_slope * xs + published_intercept, ls="--", color="grey",
            label=f"paper: y = {published_slope}x {published_intercept:+}")
    ax.plot(xs, fit.predict(xs), color="black",
            label=f"this run: y = {fit.slope:.2f}x {fit.intercept:+.3f} (r = {fit.r:.3f})")
    ax.plot(xs, xs, color="lightgrey", lw=1, label="y = x")
    ax.set_xlabel("Alignment, one caption")
    ax.set_ylabel("Alignment, all captions")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, fit


# --------------------------------------------------------------------------- #
# Figure 4: downstream correlation
# --------------------------------------------------------------------------- #
def plot_downstream(df: pd.DataFrame, tasks, correlations: pd.DataFrame, alignment: str = "alignment",
                    lower_is_better=()):
    """Figure 4: one scatter per downstream task against alignment, with the LS line, r and p."""
    n = len(tasks)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.8 * rows), squeeze=False)
    for ax, task in zip(axes.ravel(), tasks):
        found = correlations[correlations.task == task]
        sns.regplot(data=df, x=alignment, y=task, ax=ax, ci=None, scatter_kws=dict(s=40),
                    line_kws=dict(color="black", lw=1), fit_reg=len(found) > 0)
        if "model" in df:
            for _, row in df.iterrows():
                ax.annotate(row.model, (row[alignment], row[task]), fontsize=6.5, xytext=(3, 2),
                            textcoords="offset points")
        arrow = " (lower is better)" if task in lower_is_better else ""
        stats = (f"R = {found.pearson_r.iloc[0]:.3f}, p = {found.pearson_p.iloc[0]:.3f}" if len(found)
                 else "correlation skipped (too few models)")
        ax.set_title(f"{task}{arrow}\n{stats}", fontsize=9)
        ax.set_xlabel("Alignment with text")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- #
# Figures 5 and 6: temporal probes
# --------------------------------------------------------------------------- #
def plot_videocomp(df: pd.DataFrame):
    """Figure 6: positive vs temporally reordered negative captions, models sorted by positive score."""
    d = df.sort_values("positive").melt(id_vars="model", value_vars=["positive", "negative"],
                                        var_name="captions", value_name="alignment")
    fig, ax = plt.subplots(figsize=(10, 4.5))
    sns.barplot(data=d, x="model", y="alignment", hue="captions", ax=ax,
                palette={"positive": "#4c72b0", "negative": "#c44e52"})
    for container in ax.containers:
        ax.bar_label(container, fmt="%.3f", fontsize=7)
    ax.set_xlabel("")
    ax.set_ylabel("Alignment (k = 5)")
    ax.tick_params(axis="x", rotation=30)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    fig.tight_layout()
    return fig


def plot_test_of_time(df: pd.DataFrame):
    """Figure 5: alignment at k = 1, 2, 3 per model on Test of Time."""
    fig, ax = plt.subplots(figsize=(max(9.0, 1.3 * df.model.nunique()), 4.5))
    sns.barplot(data=df, x="model", y="alignment", hue="k", ax=ax, palette="crest")
    for container in ax.containers:
        ax.bar_label(container, fmt="%.2f", fontsize=7)
    ax.set_xlabel("")
    ax.set_ylim(0, 1.1)
    ax.tick_params(axis="x", rotation=20)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- #
# Performance chapter
# --------------------------------------------------------------------------- #
def _seconds_bars(labels, seconds, colours, notes, xlabel: str):
    """Horizontal bars of seconds (log scale), one per label, each annotated with its note."""
    fig, ax = plt.subplots(figsize=(9, 0.6 + 0.45 * max(1, len(labels))))
    ax.barh(labels, seconds, color=list(colours))
    for y, (s, note) in enumerate(zip(seconds, notes)):
        ax.annotate(note, (s, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def plot_sweep_benchmark(table: pd.DataFrame):
    """Seconds for a whole layer sweep per method and machine (log scale), speed-ups annotated."""
    return _seconds_bars(
        table.machine + "\n" + table.method, table.seconds,
        ["#c44e52" if m.startswith("reference") else "#4c72b0" for m in table.method],
        [f"{r.seconds:.3g} s" + (f"  ({r.speedup_vs_reference:.1f}x)" if r.speedup_vs_reference else "")
         for r in table.itertuples()],
        "seconds for all layer pairs (log scale)")


def plot_knn_scaling(table: pd.DataFrame):
    """kNN time, peak memory and achieved fraction of the matmul rate against N, per backend and machine."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for (machine, backend), g in table.groupby(["machine", "backend"], sort=False):
        g = g.sort_values("n")
        label = f"{backend}, {machine}"
        axes[0].plot(g.n, g.seconds, marker="o", label=label)
        axes[1].plot(g.n, g.peak_mib.clip(lower=0.1), marker="o", label=label)
        axes[2].plot(g.n, g.fraction_of_matmul, marker="o", label=label)
    for ax, ylabel in zip(axes, ["seconds", "peak memory (MiB)", "similarity GFLOP/s / matmul GFLOP/s"]):
        ax.set_xscale("log")
        ax.set_xlabel("N (items)")
        ax.set_ylabel(ylabel)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[2].axhline(1.0, color="grey", lw=1, ls="--")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_peers(table: pd.DataFrame):
    """Exact vtalign against the inexact peers at one N: seconds (bars) and the share of rows whose
    neighbour list differs from the exact one (annotated), per machine."""
    timed = table.dropna(subset=["seconds"])
    return _seconds_bars(
        timed.machine + "\n" + timed.peer, timed.seconds,
        ["#4c72b0" if e else "#c44e52" for e in timed.peer.str.startswith("vtalign")],
        [f"{r.seconds:.3g} s, {r.rows_with_other_order:.2%} of rows differ" for r in timed.itertuples()],
        "seconds for one kNN search (log scale); blue: exact, red: not exact")


# --------------------------------------------------------------------------- #
# Live chapters
# --------------------------------------------------------------------------- #
def plot_order_sensitivity(order: pd.DataFrame):
    """Share of nearest neighbours (within the same colour pair) that show the same order of events,
    per representation; an order-blind representation sits near 1/3, an order-aware one near 1."""
    df = order.assign(representation=order.model + "\n" + order.side)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    sns.barplot(data=df, x="representation", y="same_order", hue="which", ax=ax, palette="crest")
    for container in ax.containers:
        ax.bar_label(container, fmt="%.2f", fontsize=7)
    ax.axhline(1 / 3, color="grey", ls="--", lw=1, label="order-blind (1/3)")
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("")
    ax.set_ylabel("nearest neighbour shows the same order")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def plot_live_figure2(points: pd.DataFrame, fits: pd.DataFrame, ylabel: str):
    """Figure 2, live: alignment (y) against the semantic-task score (x), markers by model type
    (filled: trained weights, hollow: random weights), one least-squares line per text model."""
    fig, ax = plt.subplots(figsize=(8.5, 6))
    texts = list(dict.fromkeys(points.text))
    colours = dict(zip(texts, sns.color_palette("crest", n_colors=len(texts))))
    xs = np.linspace(points.semantic_score.min(), points.semantic_score.max(), 50)
    for text in texts:
        sub = points[points.text == text]
        for mtype, (label, marker, colour) in MODEL_TYPES.items():
            m = sub[sub.model_type == mtype]
            if m.empty:
                continue
            random = m.vision.str.contains("-random")
            for rnd, part in ((False, m[~random]), (True, m[random])):
                ax.scatter(part.semantic_score, part.alignment, marker=marker, s=70, alpha=0.85, zorder=3,
                           facecolor="none" if rnd else colours[text], edgecolor=colours[text], linewidth=1.5)
        f = fits[fits.text == text]
        if len(f):
            f = f.iloc[0]
            ax.plot(xs, f.slope * xs + f.intercept, color=colours[text], lw=1.8,
                    label=f"{text}: r = {f.pearson_r:.2f} [{f.ci_low:.2f}, {f.ci_high:.2f}]")
    for mtype, (label, marker, _) in MODEL_TYPES.items():
        if (points.model_type == mtype).any():
            ax.scatter([], [], marker=marker, color="grey", label=label)
    ax.scatter([], [], marker="o", facecolor="none", edgecolor="grey", label="hollow: random weights")
    ax.set_xlabel(ylabel)
    ax.set_ylabel("Alignment with text (best layer pair)")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_task_correlations(live: pd.DataFrame, published: pd.DataFrame, text: str):
    """Figure 4 beside its live counterpart: Pearson r (with its bootstrap CI when known) of alignment
    with each task; blue: semantic tasks, orange: non-semantic."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.9 + 0.45 * max(len(live), len(published))),
                             gridspec_kw=dict(width_ratios=[1, 1]))
    for ax, df, title in ((axes[0], live, f"measured here: alignment with {text}, synthetic world"),
                          (axes[1], published, "published (Figure 4): 4DS family vs Gemma-2-9B-it, VaTeX")):
        y = np.arange(len(df))
        colours = ["#4c72b0" if s else "#dd8452" for s in df.semantic]
        ax.barh(y, df.pearson_r, color=colours, alpha=0.85)
        if "ci_low" in df:
            ax.errorbar(df.pearson_r, y, xerr=[df.pearson_r - df.ci_low, df.ci_high - df.pearson_r], fmt="none",
                        ecolor="black", lw=1, capsize=3)
        ax.set_yticks(y, df.task)
        ax.axvline(0, color="grey", lw=1)
        ax.set_xlim(-1.05, 1.05)
        ax.set_xlabel("Pearson r with alignment")
        ax.set_title(title, fontsize=9)
        ax.invert_yaxis()
    fig.tight_layout()
    return fig


def plot_alignment_matrix(matrix: pd.DataFrame, chance: float):
    """Figure 10: pairwise alignment between representations, rows and columns ordered by average-linkage
    clustering on 1 - alignment."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform
    dist = squareform(1 - matrix.values, checks=False)
    order = leaves_list(linkage(dist, method="average")) if len(matrix) > 2 else np.arange(len(matrix))
    m = matrix.iloc[order, order]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(m), 0.6 + 0.5 * len(m)))
    sns.heatmap(m, annot=True, fmt=".2f", cmap="rocket_r", vmin=0, vmax=1, ax=ax, annot_kws=dict(fontsize=7),
                cbar_kws=dict(label=f"alignment (chance {chance:.3f})"))
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig


def plot_negative_differences(table: pd.DataFrame):
    """Figure 6, live: alignment with positive minus with reordered captions, per (vision side, text
    model), with its bootstrap CI (black) and the central 95% of the sign-flip null (grey band)."""
    df = table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.45 * len(df)))
    y = np.arange(len(df))
    for i, r in df.iterrows():
        ax.fill_betweenx([i - 0.35, i + 0.35], r.null_low, r.null_high, color="grey", alpha=0.3, lw=0)
    colours = ["#c44e52" if "segments" in v else "#4c72b0" for v in df.vision]
    ax.errorbar(df.difference, y, xerr=[df.difference - df.ci_low, df.ci_high - df.difference], fmt="none",
                ecolor="black", lw=1, capsize=3)
    ax.scatter(df.difference, y, color=colours, zorder=3)
    ax.set_yticks(y, df.vision + "  x  " + df.text, fontsize=8)
    ax.axvline(0, color="grey", lw=1)
    ax.set_xlabel("alignment(positive) - alignment(reordered negative)   [grey: 95% of the null]")
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


def plot_reorder_distances(table: pd.DataFrame):
    """Per text model and layer (relative depth), the median ratio of how far reordering moves a
    paragraph to how far its nearest other paragraph is; one panel per source."""
    sources = list(dict.fromkeys(table.source))
    fig, axes = plt.subplots(1, len(sources), figsize=(6 * len(sources), 4), squeeze=False)
    for ax, source in zip(axes[0], sources):
        sub = table[table.source == source]
        for model, m in sub.groupby("model", sort=False):
            ax.plot(m.layer / max(m.layer.max(), 1), m.median_ratio, marker="o", ms=3, label=model)
        ax.axhline(1, color="grey", ls="--", lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("relative layer depth")
        ax.set_ylabel("reorder distance / nearest-other distance (median)")
        ax.set_title(source)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_preparation_choice(table: pd.DataFrame):
    """Live scaling grid under the two clamp rules: score with per-layer thresholds against one shared
    threshold, one point per grid cell."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(table.score_shared, table.score_per_layer, s=30)
    lo, hi = table[["score_shared", "score_per_layer"]].min().min(), table[["score_shared", "score_per_layer"]].max().max()
    ax.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=1)
    ax.set_xlabel("one threshold over all layers")
    ax.set_ylabel("one threshold per layer (default for CNNs)")
    fig.tight_layout()
    return fig
