"""The book in a real browser: the checker finds what a reader would miss, with math rendered offline.

Needs Debian's `chromium` package; skipped (with that name) without it. The built book itself is
checked by `make check-html`, which `.ci/run` runs after `make test`.
"""
import pytest

from vtalign.book.site import CHROMIUM_PACKAGE, check_book, find_chromium, vendor_mathjax

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason=f"no Chromium: install Debian's `{CHROMIUM_PACKAGE}` package "
                                       "(apt-get install chromium) to run the browser tests")

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">{script}</head><body>
<p>A figure: <img src="{image}" alt="figure"></p>
<div class="math notranslate nohighlight">\\[ \\mathcal{{A}}(X, Y) = \\frac{{1}}{{kN}} \\sum_i x_i \\]</div>
<a href="{link}">next</a></body></html>"""


def _png(path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    fig.savefig(path)
    plt.close(fig)


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
    assert bad.broken_images == ["missing.png"] and bad.missing_links == ["nowhere.html#x"]
    assert bad.rendered_math == 0 and "1 of 1 display equations not rendered by MathJax" in bad.problems
    assert corrupt.broken_images == ["corrupt.png"]            # the file exists but does not decode
