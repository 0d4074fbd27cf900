"""The book in a real browser: the checker finds what a reader would miss, with math rendered offline.

Needs Debian's `chromium` package; skipped (with that name) without it. The built book itself is
checked by `make check-html`, which `.ci/run` runs after `make test`. Each Chromium launch costs a
second or more, so the fixtures are few pages that each hold several cases.
"""
import struct

import pytest

from vtalign.book.site import (
    CHROMIUM_PACKAGE,
    check_book,
    check_html_command,
    find_chromium,
    screenshot_name,
    vendor_mathjax,
)

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason=f"no Chromium: install Debian's `{CHROMIUM_PACKAGE}` package "
                                       "(apt-get install chromium) to run the browser tests")

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">{script}</head><body>
<p>A figure: <img src="{image}" alt="figure"></p>
<div class="math notranslate nohighlight">\\[ \\mathcal{{A}}(X, Y) = \\frac{{1}}{{kN}} \\sum_i x_i \\]</div>
<a href="{link}">next</a></body></html>"""

# Jupyter Book's structure (sphinx-book-theme): the page in main.bd-main, the text in article.bd-article,
# a notebook cell as div.cell > div.cell_input + div.cell_output > div.output; the theme makes outputs scroll.
BOOK_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; font: 16px sans-serif; }} .bd-main {{ display: flex; }}
article.bd-article {{ width: 800px; margin-left: 200px; }}
div.cell_output .output {{ max-width: 100%; overflow-x: auto; }}
</style></head><body><main id="main-content" class="bd-main" role="main"><article class="bd-article">
{body}
</article></main></body></html>"""


def _wide(label):
    return f"<table><tr><td>{label}</td>" + "".join(f"<td>column_{i}_value</td>" for i in range(60)) + "</tr></table>"


LAYOUT = BOOK_PAGE.format(body=f"""
<section id="claims"><h1>Claims</h1>
<table><tr><td><a href="#claims">here</a></td><td><a href="layout.html#old-style">old-style anchor</a></td>
<td><a href="layout.html#missing-anchor">gone</a></td><td><a href="other.html#results">other page</a></td>
<td><a href="other.html#no-such-section">other page, gone</a></td><td><a href="#">top</a></td></tr></table></section>
<a name="old-style"></a>
<div style="overflow: hidden">{_wide("clipped-table")}</div>
{_wide("loose-table")}
<div style="overflow-x: auto">{_wide("scrolled-table")}</div>
<section id="outputs"><h2>Outputs</h2>
<div class="cell"><div class="cell_output"><div class="output text_html">{_wide("output-table")}</div></div></div>
<div class="cell"><div class="cell_input">
<pre>x = None  # NaN, nan, &lt;NA&gt;, dtype: and Name: are fine in code</pre></div>
<div class="cell_output"><div class="output text_plain"><pre>None
0    NaN
1    &lt;NA&gt;
Name: gain, dtype: float64</pre></div>
<div class="output text_plain"><pre>Nonexistent nanometres 0.31 NaNa</pre></div></div></div></section>
<section id="rows"><h2>Rows</h2>
<div class="cell_output"><div class="output text_html"><table><tr><td style="display: block">parameter</td>
<td style="display: block">model-stacked-under-it</td><td>0.979</td></tr></table>
<table><tr><td>parameter</td><td>model-on-one-line</td><td>0.979</td></tr></table></div></div></section>
""")
OTHER = BOOK_PAGE.format(body='<section id="results"><h1>Results</h1><p style="height: 2500px">Tall.</p></section>')


def _png(path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    fig.savefig(path)
    plt.close(fig)


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_checker_passes_a_good_page_and_names_every_problem_of_a_bad_one(tmp_path):
    vendor_mathjax(tmp_path / "_static" / "mathjax")
    _png(tmp_path / "figure.png")
    script = '<script defer src="_static/mathjax/tex-chtml.js"></script>'
    (tmp_path / "good.html").write_text(PAGE.format(script=script, image="figure.png", link="bad.html"))
    (tmp_path / "bad.html").write_text(PAGE.format(script="", image="missing.png", link="nowhere.html#x"))
    (tmp_path / "corrupt.png").write_bytes(b"not a png")
    (tmp_path / "corrupt.html").write_text(PAGE.format(script=script, image="corrupt.png", link="good.html"))
    reports = {r.page: r for r in check_book(tmp_path)}
    good, bad, corrupt = reports["good.html"], reports["bad.html"], reports["corrupt.html"]
    assert good.problems == [] and good.rendered_math == good.display_math == 1 and good.images == 1
    assert good.width == 1400 and good.height > 0
    assert bad.broken_images == ["missing.png"] and bad.missing_links == ["nowhere.html#x"]
    assert bad.rendered_math == 0 and "1 of 1 display equations not rendered by MathJax" in bad.problems
    assert corrupt.broken_images == ["corrupt.png"]            # the file exists but does not decode


def test_checker_finds_overflow_forbidden_output_and_missing_anchors(tmp_path):
    (tmp_path / "layout.html").write_text(LAYOUT)
    (tmp_path / "other.html").write_text(OTHER)
    reports = {r.page: r for r in check_book(tmp_path)}
    layout, other = reports["layout.html"], reports["other.html"]
    assert other.problems == [] and other.height >= 2500

    # Anchors: checked in this page and in the page linked to; '#' alone is the top of the page.
    assert layout.missing_links == []
    assert layout.missing_anchors == ["layout.html#missing-anchor", "other.html#no-such-section"]

    # Overflow: the table clipped by overflow:hidden and the one sticking out of the article fail; the ones
    # in a scroller (a div with overflow-x:auto, a cell's output) pass.
    overflows = "\n".join(layout.overflows)
    assert "clipped-table" in overflows and "overflow-x: hidden" in overflows
    assert any("loose-table" in o and "sticks out of the article column" in o for o in layout.overflows)
    assert "scrolled-table" not in overflows and "output-table" not in overflows
    assert len(layout.overflows) == 2 and all(" px" in o for o in layout.overflows)
    assert layout.page_overflow > 0          # the loose table widens the page: a reader scrolls it sideways

    # ... and the scrollers that hide content are named, as notes rather than problems.
    assert len(layout.scrolled) == 2 and "scrolled-table" in layout.scrolled[0]
    assert "output-table" in layout.scrolled[1] and "in #outputs scrolls sideways" in layout.scrolled[1]
    assert not any("px hidden" in p for p in layout.problems)

    # Forbidden strings: in outputs only (the same tokens in the code input pass), whole tokens only,
    # one entry per output and token with its count and the context of its first occurrence.
    tokens = [f.split()[0].strip("'") for f in layout.forbidden]
    assert tokens == ["None", "NaN", "<NA>", "Name:", "dtype:"]
    assert all(" 1 time in output 2 (#outputs)" in f for f in layout.forbidden)
    assert "dtype: float64" in layout.forbidden[-1] and "Copy" not in layout.forbidden[-1]
    assert all(f"forbidden in output: {f}" in layout.problems for f in layout.forbidden)

    # Table rows: cells a theme rule stacks (as Bootstrap's .row did to index cells) are a problem; a plain
    # row is not.
    assert len(layout.misaligned) == 1 and "model-stacked-under-it" in layout.misaligned[0]
    assert "#rows" in layout.misaligned[0]
    assert f"table row not on one line: {layout.misaligned[0]}" in layout.problems


def test_check_html_command_reports_each_page_and_photographs_it_at_full_height(tmp_path, capsys):
    assert check_html_command(tmp_path / "nothing", None) == 2              # no built book
    (tmp_path / "index.html").write_text('<meta http-equiv="refresh" content="0; url=book/other.html">')
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "other.html").write_text(OTHER)
    shots = tmp_path / "shots"
    assert check_html_command(tmp_path, str(shots)) == 0
    out = capsys.readouterr().out
    assert "ok   book/other.html" in out and "1 of 1 pages without problems" in out
    assert screenshot_name("book/chapters/test_of_time.html") == "book_chapters_test_of_time.png"
    width, height = _png_size(shots / "book_other.png")
    assert width == 1400 and height >= 2500                                # the whole page, not one window

    (tmp_path / "book" / "layout.html").write_text(LAYOUT)
    assert check_html_command(tmp_path, None) == 1
    out = capsys.readouterr().out
    assert "FAIL book/layout.html" in out and "link to missing anchor layout.html#missing-anchor" in out
