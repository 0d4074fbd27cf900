"""The map of the whole paper (book/coverage.md): every part listed, every link pointing at a section that exists."""
import json
import re

import pandas as pd
import yaml

from vtalign import book
from vtalign.book import coverage
from vtalign.book.claims import CLAIMS
from vtalign.paths import project_root


def test_every_figure_table_equation_and_appendix_section_is_listed():
    names = [p.name for p in coverage.PAPER]
    assert [n for n in names if n.startswith("Figure ")] == [f"Figure {i}" for i in range(1, 13)]
    assert "Table 1" in names
    equations = set()
    for n in names:
        if n.startswith("Eq"):
            for a, b in re.findall(r"(\d+)(?:-(\d+))?", n):
                equations |= set(range(int(a), int(b or a) + 1))
    assert equations == set(range(1, 19)), "every numbered equation (1 to 18) belongs to a listed group"
    assert {"Sec. A.1", "Sec. A.2", "Sec. A.3", "Sec. A.4", "Sec. A.5", "Sec. B"} <= set(names)
    for p in coverage.PAPER:
        assert p.places or p.missing.startswith(("not covered", "a qualitative", "an analogy")), p.name
        assert set(p.claims) <= {c.key for c in CLAIMS}


def _targets(page: str) -> tuple[set[str], str]:
    """The headings (as HTML ids) and explicit labels of a page's source, and its text."""
    if page in ("intro", "glossary"):
        text = (project_root() / "book" / f"{page}.md").read_text()
    else:
        text = "\n".join("".join(c["source"]) for c in json.loads(book.notebook(page).path.read_text())["cells"]
                         if c["cell_type"] == "markdown")
    headings = {coverage.anchor(m) for m in re.findall(r"^#+ (.+)$", text, re.M)}
    labels = set(re.findall(r"^\(([\w-]+)\)=$", text, re.M)) | set(re.findall(r"^:name: ([\w-]+)$", text, re.M))
    return headings | labels, text


def test_every_link_points_at_a_section_that_exists():
    toc = yaml.safe_load((project_root() / "_toc.yml").read_text())
    files = {c["file"] for part in toc["parts"] for c in part["chapters"]} | {toc["root"]}
    for part in coverage.PAPER:
        for place in part.places:
            if place.page not in coverage._PAGES:
                book.notebook(place.page)  # a registered chapter
            else:
                assert f"book/{place.page}" in files
            if place.anchor:
                ids, _ = _targets(place.page)
                assert place.anchor in ids, f"{part.name}: no section {place.section!r} on {place.page}"


def test_the_page_is_written_with_links_and_statuses_and_the_landing_page_links_to_it(tmp_path, monkeypatch):
    monkeypatch.setenv("VTALIGN_RESULTS_ROOT", str(tmp_path))
    text = coverage.write_coverage_page(tmp_path / "coverage.md").read_text()
    assert "no claims table yet" in text and text.count("| **Figure") == 12
    assert '<a href="chapters/test_time_scaling.html#figure-8-re-analysed">' in text
    assert "Figure 11** |" in text and '<a href="paper_pipeline.html">' in text  # built by `make paper`, not here
    assert "not run here (no weights or videos)" in text
    pd.DataFrame([dict(claim="fig8_beats_original", evidence="re-analysis", status="supported"),
                  dict(claim="fig8_beats_original", evidence="published", status="as published")]).to_csv(
        tmp_path / "claims.csv", index=False)
    text = coverage.write_coverage_page(tmp_path / "coverage.md").read_text()
    assert "re-analysis: 1 supported" in text and "as published" not in text
    assert "{doc}`coverage`" in (project_root() / "book" / "intro.md").read_text()
