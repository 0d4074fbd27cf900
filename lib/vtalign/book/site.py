"""The built book as a reader sees it: math rendered offline, and a check in a real browser.

- :func:`vendor_mathjax` copies MathJax 3 (from the pinned ``django-static-mathjax`` package) into
  ``_static/mathjax/``, which ``_config.yml`` names as ``mathjax_path``: the book renders its math with
  no network (a CDN copy would leave raw TeX for readers offline).
- :func:`check_book` opens every page of ``_build/html`` in headless Chromium and reports broken
  images, internal links to missing files, and display math that MathJax did not render.
- :func:`screenshot` saves what a page looks like.

Command line: ``python -m vtalign.book static`` (before ``jupyter-book build``) and
``python -m vtalign.book check-html [--screenshots DIR]``.
"""
from __future__ import annotations

import html.parser
import importlib.util
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..paths import project_root

__all__ = ["vendor_mathjax", "find_chromium", "check_book", "PageReport", "screenshot", "CHROMIUM_PACKAGE"]

CHROMIUM_PACKAGE = "chromium"  # Debian's package (apt-get install chromium)
# The parts of MathJax's es5 build that tex-chtml.js loads (its speech maps, 4 MB, are not needed).
_MATHJAX_PARTS = ("tex-chtml.js", "input", "output/chtml", "output/chtml.js", "ui", "a11y", "adaptors", "core.js",
                  "startup.js", "loader.js")
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--hide-scrollbars")
_PROBE = """<script>
window.addEventListener('load', function () { setTimeout(function () {
  for (const img of document.images) {
    img.setAttribute('data-vtalign-loaded', img.complete && img.naturalWidth > 0 ? 'yes' : 'no');
  }
  document.body.setAttribute('data-vtalign-checked', '1');
}, 3000); });
</script>"""


def vendor_mathjax(target: Path | None = None) -> Path:
    """Copy MathJax's ``tex-chtml`` bundle into ``target`` (default ``_static/mathjax``); returns it."""
    spec = importlib.util.find_spec("mathjax")
    source = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5" if spec else None
    if source is None or not (source / "tex-chtml.js").is_file():
        raise FileNotFoundError("MathJax is not installed: `make env` installs it (django-static-mathjax in "
                                "requirements-nodeps.txt).")
    target = Path(target) if target else project_root() / "_static" / "mathjax"
    if target.exists():
        shutil.rmtree(target)
    for part in _MATHJAX_PARTS:
        src = source / part
        if src.is_dir():
            shutil.copytree(src, target / part)
        elif src.is_file():
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / part)
    return target


def find_chromium() -> str | None:
    """The path of a Chromium binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run_chromium(chromium: str, *args: str, timeout: float = 120) -> str:
    with tempfile.TemporaryDirectory(prefix="vtalign-chromium-") as profile:
        out = subprocess.run([chromium, *_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                             text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"chromium failed ({out.returncode}): {out.stderr[-2000:]}")
    return out.stdout


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.math = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "img" and a.get("src"):
            self.srcs.append(a["src"])
        if tag == "div" and "math" in (a.get("class") or "").split():
            self.math += 1


@dataclass
class PageReport:
    """What :func:`check_book` found on one page."""
    page: str
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    missing_links: list[str] = field(default_factory=list)
    display_math: int = 0
    rendered_math: int = 0
    checked: bool = False

    @property
    def problems(self) -> list[str]:
        out = [f"broken image {s}" for s in self.broken_images] + [f"link to missing {h}" for h in self.missing_links]
        if not self.checked:
            out.append("the page's load handler never ran (page did not finish loading)")
        if self.display_math and self.rendered_math < self.display_math:
            out.append(f"{self.display_math - self.rendered_math} of {self.display_math} display equations not "
                       "rendered by MathJax")
        return out


def check_book(html_dir: Path, chromium: str | None = None, pages=None) -> list[PageReport]:
    """Open each page of a built book in headless Chromium and report what a reader would miss.

    Every page is loaded from disk (``file://``, no network) with a small script added that records,
    once the page has loaded, whether each ``<img>`` decoded (``naturalWidth > 0``); the DOM after
    scripts ran shows how many equations MathJax rendered. Internal links are checked against the
    files of ``html_dir``.
    """
    html_dir = Path(html_dir)
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError(f"No Chromium found: install Debian's `{CHROMIUM_PACKAGE}` package.")
    pages = sorted(pages or [p for p in html_dir.rglob("*.html") if not p.name.startswith((".", "_", "genindex", "search"))
                             and "_static" not in p.parts and "_sources" not in p.parts])
    reports = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        if re.search(r'<meta[^>]+http-equiv="refresh"', text, re.IGNORECASE):
            continue  # a redirect (index.html -> the landing page), checked where it leads
        links = _Links()
        links.feed(text)
        report = PageReport(str(page.relative_to(html_dir)), images=len(links.srcs), display_math=links.math)
        for href in links.hrefs:
            parsed = urlparse(href)
            if parsed.scheme or href.startswith(("#", "mailto:")):
                continue
            target = (page.parent / unquote(parsed.path)).resolve()
            if parsed.path and not target.exists():
                report.missing_links.append(href)
        probe = page.with_name(f".vtalign-check-{page.name}")
        probe.write_text(text.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
        try:
            dom = _run_chromium(chromium, "--virtual-time-budget=15000", "--dump-dom", probe.as_uri())
        finally:
            probe.unlink(missing_ok=True)
        report.checked = 'data-vtalign-checked="1"' in dom
        report.broken_images = re.findall(r'<img[^>]*?src="([^"]*)"[^>]*?data-vtalign-loaded="no"', dom) + \
            re.findall(r'<img[^>]*?data-vtalign-loaded="no"[^>]*?src="([^"]*)"', dom)
        report.rendered_math = len(re.findall(r'<mjx-container[^>]*display="true"', dom))
        reports.append(report)
    return reports


def screenshot(page: Path, out: Path, chromium: str | None = None, width: int = 1280, height: int = 1600) -> Path:
    """Save a PNG of ``page`` as a reader's browser draws it (after scripts, math included)."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError(f"No Chromium found: install Debian's `{CHROMIUM_PACKAGE}` package.")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _run_chromium(chromium, "--virtual-time-budget=15000", f"--window-size={width},{height}",
                  f"--screenshot={out.resolve()}", Path(page).resolve().as_uri())
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot of {page}.")
    return out
