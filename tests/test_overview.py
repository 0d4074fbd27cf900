"""The method overview figure and the glossary: the figure builds and writes an SVG, reads at the book's
width (every font 9 pt or more, no two texts overlapping, nothing off the page), its worked example is
computed, every function it names exists, and the glossary defines every listed term."""
import importlib
import re
from itertools import combinations

import numpy as np
import pytest
from matplotlib.text import Text

import vtalign as va
from vtalign.book import overview
from vtalign.paths import project_root

DISPLAY_PX = 720   # the book shows a figure at most this wide
CSS_DPI = 96


@pytest.fixture(scope="module")
def drawn():
    fig = overview.draw_method_overview()
    fig.canvas.draw()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return fig, texts


@pytest.fixture(scope="module")
def glossary_text():
    return (project_root() / overview.GLOSSARY).read_text(encoding="utf-8")


def test_writes_a_nonempty_svg_and_creates_its_folder(tmp_path):
    path = overview.write_method_overview(tmp_path / "figures" / "nested" / "method_overview.svg")
    assert path.is_file() and path.stat().st_size > 10_000
    head = path.read_text(encoding="utf-8")[:2000]
    assert "<svg" in head and 'width="518.4pt"' in head  # 7.2 in: the width the font check assumes


def test_width_and_every_font_readable_at_the_book_width(drawn):
    fig, texts = drawn
    width = fig.get_size_inches()[0]
    assert width <= 7.5
    scale = min(1.0, DISPLAY_PX / (width * CSS_DPI))
    assert len(texts) > 40
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() * scale < overview.MIN_FONT_PT]
    assert not small, f"fonts below {overview.MIN_FONT_PT} pt at {DISPLAY_PX} px: {small}"


def test_no_two_texts_overlap_and_all_lie_on_the_page(drawn):
    fig, texts = drawn
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    page = fig.bbox
    off = [s for s, b in boxes if b.x0 < page.x0 or b.y0 < page.y0 or b.x1 > page.x1 or b.y1 > page.y1]
    assert not off, f"texts off the page: {off}"
    clash = [(a, b) for (a, ba), (b, bb) in combinations(boxes, 2)
             if min(ba.x1, bb.x1) - max(ba.x0, bb.x0) > 0 and min(ba.y1, bb.y1) - max(ba.y0, bb.y0) > 0]
    assert not clash, f"overlapping texts: {clash}"


def test_worked_example_is_computed_and_printed(drawn):
    ex = overview.worked_example()
    x, y, k = ex["x"], ex["y"], ex["k"]
    # an independent count: neighbours by brute-force cosine ranking (no ties in this example)
    def sets(f):
        sim = f @ f.T / np.outer(np.linalg.norm(f, axis=1), np.linalg.norm(f, axis=1))
        np.fill_diagonal(sim, -np.inf)
        return [set(np.argsort(-row)[:k].tolist()) for row in sim]
    shared = [len(a & b) for a, b in zip(sets(x), sets(y))]
    assert ex["shared"].tolist() == shared
    assert ex["score"] == pytest.approx(sum(shared) / (k * len(shared)))
    assert ex["score"] == va.mutual_knn(x, y, k)
    assert 0 < ex["score"] < 1  # an example that shows partial agreement
    printed = {t.get_text() for t in drawn[1]}
    assert f"A = {sum(shared)} / ({k} \u00d7 {len(shared)}) = {ex['score']:.2f}" in printed
    for i, row in enumerate(ex["knn_x"]):
        assert "{%s}" % ", ".join(map(str, sorted(row))) in printed


def _resolve(dotted: str):
    """The object a dotted name like ``va.layer_sweep`` or ``vtalign.extract.sampling.frame_indices`` names."""
    parts = dotted.replace("va.", "vtalign.", 1).split(".") if dotted.startswith("va.") else dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def test_every_function_the_figure_names_exists(drawn):
    code = [t.get_text() for t in drawn[1] if t.get_fontfamily()[0] == "DejaVu Sans Mono"]
    names = {m for s in code for m in re.findall(r"\b(?:va|sampling)\.[A-Za-z_][\w.]*", s)}
    assert {"va.layer_sweep", "va.layer_neighbours", "va.extract_features", "va.mutual_knn"} <= names
    for name in names:
        name = name.replace("sampling.", "vtalign.extract.sampling.", 1) if name.startswith("sampling.") else name
        _resolve(name.split("(")[0].rstrip("."))


def test_glossary_defines_every_term(glossary_text):
    terms = overview.glossary_terms(glossary_text)
    missing = [t for t in overview.TERMS if t not in terms]
    assert not missing, f"terms missing from {overview.GLOSSARY}: {missing}"
    lowered = [t.lower() for t in terms]
    assert len(lowered) == len(set(lowered)), "a glossary term is defined twice (Sphinx terms ignore case)"


def test_glossary_definitions_are_indented_and_name_real_functions(glossary_text):
    block = re.search(r"```\{glossary\}\n(.*?)^```", glossary_text, flags=re.M | re.S).group(1)
    entries = [e for e in re.split(r"\n\s*\n", block) if e.strip() and not e.strip().startswith(":")]
    assert len(entries) >= 25
    for entry in entries:
        lines = entry.splitlines()
        body = [ln for ln in lines if ln[:1].isspace()]
        assert body and all(ln.startswith("  ") for ln in body), f"entry without an indented definition: {lines[0]}"
        assert lines[-1] in body, f"a term line after the definition in: {lines[0]}"
    for ref in re.findall(r"`((?:va|vtalign)\.[A-Za-z_][\w.]*)", glossary_text):
        _resolve(ref.rstrip("."))


def test_default_path_is_the_books_figures_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(overview, "book_dir", lambda: tmp_path / "book")
    path = overview.write_method_overview()
    assert path == tmp_path / overview.OVERVIEW_SVG and path.stat().st_size > 10_000
