"""The book's overview figure of the method, drawn by code, and the glossary's list of terms.

:func:`draw_method_overview` draws how this library turns N videos and their captions into one
alignment score, step by step, with the function that does each step under its box:

- the test-time axes, F frames per video and C captions per video, as inputs;
- the encoders (an image or video model; a language model) give per-layer features
  X [N, L, p] and Y [N, L', q] (:func:`vtalign.extract_features`: an image model's frame features,
  or a video model's clip features, averaged over time; the C captions joined into one string and
  the language model's tokens averaged);
- each layer is clamped and L2-normalised and its k nearest neighbours found
  (:func:`vtalign.prepare_features`, :func:`vtalign.layer_neighbours`);
- Eq. 1 for every pair of layers, and the maximum over the pairs is the alignment score
  (:func:`vtalign.layer_sweep`, ``SweepResult.best``).

Beside it, a worked example: six unit vectors in two spaces, their k = 2 neighbour sets and the
mutual k-NN score, all computed by :func:`vtalign.knn_indices` and :func:`vtalign.mutual_knn` when
the figure is drawn (no number in it is typed by hand).

:func:`write_method_overview` writes the figure as SVG; the book includes it from
``book/figures/method_overview.svg`` (:data:`OVERVIEW_SVG`), generated at build time, never committed
(``python -m vtalign.book.overview [path]`` writes it from the command line).
:data:`TERMS` lists the terms ``book/glossary.md`` must define (checked by the tests).
"""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

from ..alignment import knn_indices, mutual_knn, neighbour_overlap
from ..paths import book_dir

__all__ = ["draw_method_overview", "write_method_overview", "worked_example", "glossary_terms", "TERMS",
           "OVERVIEW_SVG", "GLOSSARY", "WIDTH_IN", "MIN_FONT_PT"]

# Where the book's generated figure goes and where the glossary lives (relative to the project root).
OVERVIEW_SVG = Path("book/figures/method_overview.svg")
GLOSSARY = Path("book/glossary.md")

WIDTH_IN = 7.2       # figure width in inches (the book shows figures at most 720 px wide: scale 1 here)
HEIGHT_IN = 6.15
MIN_FONT_PT = 9.0    # no text smaller than this

# Terms the glossary defines, as written on its term lines (chapters link them with {term}`...`).
TERMS = (
    "mutual k-nearest-neighbour alignment",
    "mutual kNN",
    "layer sweep",
    "max over layer pairs",
    "image model",
    "image-on-video",
    "video model",
    "test-time scaling",
    "Eq. 2",
    "AICc",
    "ΔAICc",
    "shuffled floor",
    "clamp rule",
    "method check",
    "planted world",
    "null world",
    "re-analysis",
    "published",
    "real data",
    "controlled world",
    "order-aware pooling",
    "order-blind pooling",
    "reorder negative",
    "Test of Time",
    "chance level",
    "permutation test",
    "bootstrap interval",
    "Holm correction",
)

# Colours: one accent for the test-time axes and the score, neutral boxes elsewhere.
INK = "#222222"
CODE = "#555555"
ACCENT = "#c8501e"
ACCENT_FILL = "#fbe9df"
VIDEO_FILL = "#e4edf7"
TEXT_FILL = "#e8f3e6"
JOINT_FILL = "#f1eef6"
EDGE = "#7a7a7a"

STYLES = {  # line style -> text properties
    "title": dict(fontsize=10, fontweight="bold", color=INK),
    "head": dict(fontsize=9, fontweight="bold", color=INK),
    "body": dict(fontsize=9, color=INK),
    "code": dict(fontsize=9, family="DejaVu Sans Mono", color=CODE),
    "axis": dict(fontsize=10, fontweight="bold", color=ACCENT),
    "note": dict(fontsize=9, style="italic", color=CODE),
}
LINE_IN = {"title": 0.19, "head": 0.17, "body": 0.17, "code": 0.17, "axis": 0.19, "note": 0.17}  # line pitch, inches
PAD_IN = 0.07

# The worked example: six items as unit vectors (angles in degrees) in two spaces, k = 2.
EXAMPLE_ANGLES_X = (10, 50, 95, 170, 230, 295)
EXAMPLE_ANGLES_Y = (30, 80, 200, 130, 250, 330)
EXAMPLE_K = 2


def _unit(angles) -> np.ndarray:
    rad = np.deg2rad(np.asarray(angles, dtype=float))
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


def worked_example(angles_x=EXAMPLE_ANGLES_X, angles_y=EXAMPLE_ANGLES_Y, k: int = EXAMPLE_K) -> dict:
    """The worked example's numbers, computed by the library: unit vectors ``x`` and ``y`` [N, 2], each
    item's k neighbour sets in either space (``knn_x``, ``knn_y``, nearest first), how many each item
    shares (``shared``) and the mutual k-NN score (``score``, from :func:`vtalign.mutual_knn`).

    >>> ex = worked_example()
    >>> ex["knn_x"][0].tolist(), ex["knn_y"][0].tolist(), int(ex["shared"].sum()), round(ex["score"], 4)
    ([1, 5], [1, 5], 8, 0.6667)
    """
    x, y = _unit(angles_x), _unit(angles_y)
    knn_x, knn_y = knn_indices(x, k), knn_indices(y, k)
    shared = neighbour_overlap(knn_x, knn_y)
    score = mutual_knn(x, y, k)
    if not np.isclose(score, shared.sum() / (k * len(shared))):  # Eq. 1 two ways: they must agree
        raise AssertionError(f"mutual_knn gave {score}, the neighbour sets give {shared.sum() / (k * len(shared))}.")
    return dict(x=x, y=y, knn_x=knn_x, knn_y=knn_y, shared=shared, score=score, k=k)


# --------------------------------------------------------------------------- #
# Drawing helpers (coordinates in inches from the figure's lower left corner)
# --------------------------------------------------------------------------- #
def _box_height(lines) -> float:
    return sum(LINE_IN[style] for style, _ in lines) + 2 * PAD_IN


def _box(ax, cx: float, top: float, width: float, lines, fill: str, edge: str = EDGE, lw: float = 1.0):
    """A rounded box centred at ``cx`` whose top edge is at ``top``, one text line per (style, text)."""
    h = _box_height(lines)
    ax.add_patch(FancyBboxPatch((cx - width / 2, top - h), width, h, boxstyle="round,pad=0,rounding_size=0.06",
                                facecolor=fill, edgecolor=edge, linewidth=lw))
    y = top - PAD_IN
    for style, text in lines:
        pitch = LINE_IN[style]
        ax.text(cx, y - pitch / 2, text, ha="center", va="center", **STYLES[style])
        y -= pitch
    return dict(cx=cx, top=top, bottom=top - h, left=cx - width / 2, right=cx + width / 2)


def _arrow(ax, start, end, colour: str = EDGE, lw: float = 1.2):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10, color=colour, linewidth=lw,
                                 shrinkA=1, shrinkB=1))


def _down(ax, upper: dict, lower: dict, x_from: float | None = None, x_to: float | None = None,
          colour: str = EDGE):
    _arrow(ax, (upper["cx"] if x_from is None else x_from, upper["bottom"]),
           (lower["cx"] if x_to is None else x_to, lower["top"]), colour)


def _draw_flow(ax, top: float) -> None:
    """The method, top to bottom: two streams (video left, text right) that meet at the layer sweep."""
    left, right, col_w = 1.05, 3.2, 1.95
    mid, mid_w = (left + right) / 2, 2.9
    gap = 0.2
    ax.text(0.08, top, "How vtalign computes one alignment score", ha="left", va="top", **STYLES["title"])
    y = top - 0.3
    ax.text(mid, y, "test-time axes: varied at inference, encoders frozen", ha="center", va="top",
            **STYLES["note"])
    y -= 0.22
    f_axis = _box(ax, left, y, col_w, [("axis", "F frames per video")], ACCENT_FILL, ACCENT, 1.4)
    c_axis = _box(ax, right, y, col_w, [("axis", "C captions per video")], ACCENT_FILL, ACCENT, 1.4)
    y = f_axis["bottom"] - gap
    videos = _box(ax, left, y, col_w, [("title", "N videos"), ("body", "F frames, evenly spaced"),
                                       ("code", "sampling.frame_indices")], VIDEO_FILL)
    captions = _box(ax, right, y, col_w, [("title", "N caption sets"), ("body", "C captions drawn, joined"),
                                          ("code", "sampling.caption_text")], TEXT_FILL)
    _down(ax, f_axis, videos, colour=ACCENT)
    _down(ax, c_axis, captions, colour=ACCENT)
    y = videos["bottom"] - gap
    vision = _box(ax, left, y, col_w, [("title", "image or video model"),
                                       ("body", "each frame, or each clip")], VIDEO_FILL)
    language = _box(ax, right, y, col_w, [("title", "language model"), ("body", "tokens averaged")], TEXT_FILL)
    _down(ax, videos, vision)
    _down(ax, captions, language)
    y = vision["bottom"] - gap
    fx = _box(ax, left, y, col_w, [("title", "X: N \u00d7 L \u00d7 p"), ("body", "frames / clips averaged"),
                                   ("code", "va.extract_features")], VIDEO_FILL)
    fy = _box(ax, right, y, col_w, [("title", "Y: N \u00d7 L\u2032 \u00d7 q"), ("body", "one vector per layer"),
                                    ("code", "va.extract_features")], TEXT_FILL)
    _down(ax, vision, fx)
    _down(ax, language, fy)
    y = fx["bottom"] - gap
    kx = _box(ax, left, y, col_w, [("body", "clamp, L2-normalise"), ("title", "k-NN sets of each layer"),
                                   ("code", "va.layer_neighbours")], VIDEO_FILL)
    ky = _box(ax, right, y, col_w, [("body", "clamp, L2-normalise"), ("title", "k-NN sets of each layer"),
                                    ("code", "va.layer_neighbours")], TEXT_FILL)
    _down(ax, fx, kx)
    _down(ax, fy, ky)
    y = kx["bottom"] - 0.28
    sweep = _box(ax, mid, y, mid_w, [("title", "mutual k-NN of every layer pair"),
                                     ("body", "Eq. 1 (va.mutual_knn) for all L \u00d7 L\u2032 pairs"),
                                     ("code", "va.layer_sweep(X, Y, k).scores")], JOINT_FILL)
    _down(ax, kx, sweep, x_to=mid - 0.6)
    _down(ax, ky, sweep, x_to=mid + 0.6)
    y = sweep["bottom"] - gap
    score = _box(ax, mid, y, mid_w, [("axis", "alignment score = max over pairs"),
                                     ("body", "one number per (F, C): what Eq. 2 fits"),
                                     ("code", "va.layer_sweep(X, Y, k).best")], ACCENT_FILL, ACCENT, 1.4)
    _down(ax, sweep, score)


def _draw_example(ax, x0: float, x1: float, top: float) -> None:
    """Six unit vectors in two spaces, item 0's two nearest neighbours joined to it, and the table of
    neighbour sets with the score, every number from :func:`worked_example`."""
    ex = worked_example()
    k, n = ex["k"], len(ex["shared"])
    mid = (x0 + x1) / 2
    ax.text(x0, top, f"Worked example: N = {n}, k = {k}", ha="left", va="top", **STYLES["title"])
    ax.text(x0, top - 0.27, "unit vectors; nearest = highest cosine", ha="left", va="top", **STYLES["note"])
    radius, label_r = 0.42, 0.57
    cy = top - 1.2
    for cx, pts, nbrs, name in ((mid - 0.6, ex["x"], ex["knn_x"], "space X"),
                                (mid + 0.6, ex["y"], ex["knn_y"], "space Y")):
        ax.add_patch(Circle((cx, cy), radius, fill=False, edgecolor="#bbbbbb", linewidth=0.8))
        for j in nbrs[0]:
            ax.plot([cx + radius * pts[0, 0], cx + radius * pts[j, 0]],
                    [cy + radius * pts[0, 1], cy + radius * pts[j, 1]], color=ACCENT, linewidth=1.2, zorder=2)
        for i, (px, py) in enumerate(pts):
            ax.plot(cx + radius * px, cy + radius * py, "o", markersize=5, zorder=3,
                    color=ACCENT if i == 0 else INK)
            ax.text(cx + label_r * px, cy + label_r * py, str(i), ha="center", va="center", **STYLES["body"])
        ax.text(cx, cy - radius - 0.3, name, ha="center", va="center", **STYLES["body"])
    ax.text(x0, cy - radius - 0.52, "lines: item 0 and its k nearest", ha="left", va="center", **STYLES["note"])
    columns = ((x0 + 0.22, "item"), (x0 + 0.92, "kNN in X"), (x0 + 1.67, "kNN in Y"), (x0 + 2.37, "shared"))
    row_y = cy - radius - 0.85
    for cx, head in columns:
        ax.text(cx, row_y, head, ha="center", va="center", **STYLES["head"])
    ax.plot([x0 + 0.02, x1 - 0.02], [row_y - 0.12] * 2, color="#999999", linewidth=0.8)
    for i in range(n):
        row_y -= 0.2
        cells = (str(i), "{%s}" % ", ".join(map(str, sorted(ex["knn_x"][i]))),
                 "{%s}" % ", ".join(map(str, sorted(ex["knn_y"][i]))), str(int(ex["shared"][i])))
        for (cx, _), cell in zip(columns, cells):
            ax.text(cx, row_y, cell, ha="center", va="center", **STYLES["body"])
    ax.plot([x0 + 0.02, x1 - 0.02], [row_y - 0.12] * 2, color="#999999", linewidth=0.8)
    total = int(ex["shared"].sum())
    row_y -= 0.3
    ax.text(mid, row_y, f"A = {total} / ({k} \u00d7 {n}) = {ex['score']:.2f}", ha="center", va="center",
            **STYLES["axis"])
    ax.text(mid, row_y - 0.22, f"va.mutual_knn(X, Y, k={k})", ha="center", va="center", **STYLES["code"])
    key_y = 0.95
    ax.text(x0, key_y, "Key", ha="left", va="center", **STYLES["head"])
    ax.text(x0, key_y - 0.22, "orange: test-time axes, score", ha="left", va="center", color=ACCENT,
            fontsize=STYLES["body"]["fontsize"])
    ax.text(x0, key_y - 0.44, "grey code: the vtalign function", ha="left", va="center", **STYLES["code"])
    ax.text(x0, key_y - 0.66, "(va = import vtalign as va)", ha="left", va="center", **STYLES["code"])


def draw_method_overview() -> Figure:
    """The method overview figure (7.2 x 5.75 in; every font 9 pt or larger): the pipeline from videos and
    captions to the alignment score, with the test-time axes F and C as inputs, and a worked example whose
    numbers are computed by :func:`vtalign.mutual_knn` when it is drawn.

    Built on a bare :class:`~matplotlib.figure.Figure` with an Agg canvas (no pyplot state), so drawing it
    changes no global settings and opens no window; in a notebook, display it with ``display(fig)``.
    """
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN))
    FigureCanvasAgg(fig)  # so fig.canvas.draw() works without pyplot
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, WIDTH_IN)
    ax.set_ylim(0, HEIGHT_IN)
    ax.set_axis_off()
    top = HEIGHT_IN - 0.08
    _draw_flow(ax, top)
    ax.plot([4.35, 4.35], [0.15, top], color="#dddddd", linewidth=0.8)
    _draw_example(ax, 4.5, WIDTH_IN - 0.05, top)
    return fig


def write_method_overview(path: Path | str | None = None) -> Path:
    """Write :func:`draw_method_overview` as SVG to ``path`` (default: the book's
    ``book/figures/method_overview.svg`` of the project root); its folder is created. Returns the path.

    The file is the same for the same library and matplotlib versions: fixed SVG ids, no date.
    """
    path = book_dir() / OVERVIEW_SVG.relative_to("book") if path is None else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = draw_method_overview()
    with matplotlib.rc_context({"svg.hashsalt": "vtalign-overview", "svg.fonttype": "path"}):
        fig.savefig(path, format="svg", metadata={"Date": None})
    return path


def glossary_terms(markdown: str) -> list[str]:
    """The term lines of every ``{glossary}`` block of a MyST page: non-blank, unindented lines inside the
    block (definitions are indented).

    >>> glossary_terms("```{glossary}\\nmutual kNN\\nEq. 1\\n  The score.\\n\\nk\\n  Neighbours.\\n```\\n")
    ['mutual kNN', 'Eq. 1', 'k']
    """
    terms = []
    for block in re.findall(r"^(`{3,}|:{3,})\{glossary\}[^\n]*\n(.*?)^\1\s*$", markdown, flags=re.M | re.S):
        for line in block[1].splitlines():
            if line.strip() and not line[0].isspace() and not line.startswith(":"):
                terms.append(line.strip())
    return terms


if __name__ == "__main__":  # python -m vtalign.book.overview [path]
    import sys

    print(write_method_overview(sys.argv[1] if len(sys.argv) > 1 else None))
