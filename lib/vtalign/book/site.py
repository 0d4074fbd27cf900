"""The built book as a reader sees it: math rendered offline, and a check in a real browser.

- :func:`vendor_mathjax` copies MathJax 3 (from the pinned ``django-static-mathjax`` package) into
  ``_static/mathjax/``, which ``_config.yml`` names as ``mathjax_path``: the book renders its math with
  no network (a CDN copy would leave raw TeX for readers offline).
- :func:`check_book` opens every page of ``_build/html`` in headless Chromium at 1400 px and reports
  broken images, internal links to missing files or to ``#anchors`` the target page lacks, display math
  that MathJax did not render, content that sticks out sideways (outside a scroller), and values gone
  missing in the rendered outputs (``None``, ``NaN``, ``<NA>``, a printed pandas Series).
- :func:`screenshot` saves what a page looks like.
- :func:`check_html_command` is ``make check-html``: every page checked, one line each, and a full-height
  screenshot of every page (``results/book/book_chapters_test_of_time.png``).

Command line: ``python -m vtalign.book static`` (before ``jupyter-book build``) and
``python -m vtalign.book check-html [--screenshots DIR]``.
"""
from __future__ import annotations

import html.parser
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..paths import project_root

__all__ = ["vendor_mathjax", "find_chromium", "check_book", "book_pages", "PageReport", "screenshot", "screenshot_name",
           "check_html_command", "CHROMIUM_PACKAGE", "WIDTH", "SCREENSHOTS"]

CHROMIUM_PACKAGE = "chromium"  # Debian's package (apt-get install chromium)
WIDTH = 1400  # the window width every page is checked (and photographed) at
MAX_SCREENSHOT_HEIGHT = 20000
SCREENSHOTS = "results/book"  # where `make check-html` saves them
# The parts of MathJax's es5 build that tex-chtml.js loads (its speech maps, 4 MB, are not needed).
_MATHJAX_PARTS = ("tex-chtml.js", "input", "output/chtml", "output/chtml.js", "ui", "a11y", "adaptors", "core.js",
                  "startup.js", "loader.js")
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--hide-scrollbars")
# Added before </body> of a copy of each page: once the page has loaded and MathJax has typeset, it records
# what a reader at the window's width sees, as JSON in <script id="vtalign-report"> (read from --dump-dom).
_PROBE = r"""<script>
(function () {
  const CHECKED = 'table, img, svg, pre, .cell_output, .output, mjx-container[display="true"]';
  const ARTICLE = ['article.bd-article', '.bd-article', 'main article', '[role="main"]'];  // first found wins
  const BREAK = 'td, th, tr, p, div, li, br, pre, table, dt, dd, h1, h2, h3, h4, h5, h6';
  const TOKEN = /(?<![\w])(None|nan|NaN)(?![\w])|<NA>|dtype:|Name:/g;
  function name(el) {
    const cls = (el.getAttribute('class') || '').trim().split(/\s+/).filter(Boolean).slice(0, 2);
    return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + cls.map(c => '.' + c).join('');
  }
  function describe(el) {
    if (el.tagName.toLowerCase() === 'img') return 'img ' + (el.getAttribute('src') || '');
    const text = (el.innerText || el.textContent || '').replace(/\s+/g, ' ').trim().slice(0, 60);
    return name(el) + (text ? ' "' + text + '"' : '');
  }
  function outputText(el) {       // what a reader reads: no styles, scripts or copy buttons; cells kept apart
    const copy = el.cloneNode(true);
    copy.querySelectorAll('style, script, button, .copybtn, .o-tooltip--left').forEach(n => n.remove());
    copy.querySelectorAll(BREAK).forEach(n => n.after(' '));
    return (copy.textContent || '').replace(/\s+/g, ' ');
  }
  function article() { return ARTICLE.map(s => document.querySelector(s)).find(Boolean); }
  function section(el) {
    const s = el.closest('section[id]');
    return s ? '#' + s.id : 'the page';
  }
  function overflow() {
    const found = [], seen = new Set();
    const column = article();
    for (const el of document.querySelectorAll(CHECKED)) {
      if (el.closest('#vtalign-report')) continue;
      let box = el.getBoundingClientRect();
      if (box.width === 0 || box.height === 0) continue;   // not displayed (a collapsed toggle, display:none)
      let subject = el;
      for (let a = el.parentElement; a; a = a.parentElement) {
        const ox = getComputedStyle(a).overflowX;
        const isArticle = a === column;
        if (ox === 'visible' && !isArticle) continue;
        const r = a.getBoundingClientRect();
        if (!isArticle && (ox === 'auto' || ox === 'scroll')) {   // a scroller: what is inside can be reached;
          subject = a; box = r; continue;                         // the scroller itself must fit
        }
        const right = isArticle ? r.right : r.left + a.clientLeft + a.clientWidth;
        const left = isArticle ? r.left : r.left + a.clientLeft;
        const over = Math.max(box.right - right, left - box.left);
        if (over > 1 && !seen.has(subject)) {
          seen.add(subject);
          found.push({element: describe(subject), px: Math.round(over),
                      where: isArticle ? 'sticks out of the article column' : 'clipped by ' + name(a) +
                                          ' (overflow-x: ' + ox + ')'});
        }
        if (isArticle) break;
        subject = a; box = r;
      }
    }
    return found;
  }
  function scrolled() {           // allowed, but worth knowing: what a reader has to scroll sideways to see
    const found = [], column = article();
    for (const el of (column || document.body).querySelectorAll('*')) {
      if (el.closest('.cell_input')) continue;       // code scrolls: the reader expects it
      const ox = getComputedStyle(el).overflowX;
      if ((ox === 'auto' || ox === 'scroll') && el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1)
        found.push({element: describe(el), px: el.scrollWidth - el.clientWidth, section: section(el)});
    }
    return found;
  }
  function forbidden() {         // one entry per output and token: how often, and where it first occurs
    const found = [];
    let n = 0;
    for (const el of document.querySelectorAll('.cell_output, .output')) {
      if (el.parentElement && el.parentElement.closest('.cell_output, .output')) continue;  // counted in its parent
      n += 1;
      const text = outputText(el), first = new Map();
      for (const m of text.matchAll(TOKEN)) {
        if (first.has(m[0])) { first.get(m[0]).count += 1; continue; }
        const from = Math.max(0, m.index - 30);
        first.set(m[0], {token: m[0], count: 1, output: n, section: section(el),
                         context: text.slice(from, m.index + m[0].length + 30).trim()});
      }
      found.push(...first.values());
    }
    return found;
  }
  function misaligned() {        // a table row whose cells do not sit on one line (a theme rule laid them out)
    const found = [];
    for (const table of document.querySelectorAll('.cell_output table, .output table, article table')) {
      for (const tr of table.rows) {
        const tops = Array.from(tr.cells, c => Math.round(c.getBoundingClientRect().top));
        if (tops.length > 1 && Math.max(...tops) - Math.min(...tops) > 2) {
          found.push({element: describe(tr), px: Math.max(...tops) - Math.min(...tops), section: section(table)});
          break;                     // one row per table is enough to say it
        }
      }
    }
    return found;
  }
  function emit(out) {
    const node = document.createElement('script');
    node.type = 'application/json';
    node.id = 'vtalign-report';
    node.textContent = JSON.stringify(out).replace(/</g, '\\u003c');
    document.body.appendChild(node);
  }
  function report() {
    const root = document.documentElement;
    emit({
      width: window.innerWidth, height: Math.max(root.scrollHeight, document.body.scrollHeight),
      page_overflow: Math.max(0, root.scrollWidth - window.innerWidth),
      images: Array.from(document.images, img => ({src: img.getAttribute('src') || '',
                                                   loaded: img.complete && img.naturalWidth > 0})),
      rendered_math: document.querySelectorAll('mjx-container[display="true"]').length,
      overflows: overflow(), scrolled: scrolled(), forbidden: forbidden(), misaligned: misaligned()});
  }
  let done = false;
  function once() {
    if (done) return;
    done = true;
    try { report(); } catch (e) { emit({error: String(e)}); }
  }
  window.addEventListener('load', function () {
    const mj = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
    (mj || Promise.resolve()).catch(() => null).then(() => setTimeout(once, 500));
    setTimeout(once, 8000);   // MathJax never finished: report what there is
  });
})();
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
    """The links, images, display equations and link targets (``id``, ``<a name>``) of one HTML page."""

    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.anchors: set[str] = set()
        self.math = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.anchors.add(a["id"])
        if tag == "a" and a.get("name"):
            self.anchors.add(a["name"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "img" and a.get("src"):
            self.srcs.append(a["src"])
        if tag == "div" and "math" in (a.get("class") or "").split():
            self.math += 1


def _parse(path: Path) -> _Links:
    links = _Links()
    links.feed(path.read_text(encoding="utf-8", errors="replace"))
    return links


@dataclass
class PageReport:
    """What :func:`check_book` found on one page (geometry measured at ``width`` px)."""
    page: str
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    missing_links: list[str] = field(default_factory=list)
    missing_anchors: list[str] = field(default_factory=list)
    display_math: int = 0
    rendered_math: int = 0
    checked: bool = False
    width: int = 0
    height: int = 0
    page_overflow: int = 0
    overflows: list[str] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)
    misaligned: list[str] = field(default_factory=list)  # table rows whose cells are not on one line
    scrolled: list[str] = field(default_factory=list)  # allowed: content a reader scrolls sideways to see
    error: str = ""

    @property
    def problems(self) -> list[str]:
        out = [f"broken image {s}" for s in self.broken_images] + [f"link to missing {h}" for h in self.missing_links]
        out += [f"link to missing anchor {h}" for h in self.missing_anchors]
        if self.error:
            out.append(f"the check's script failed in the page: {self.error}")
        elif not self.checked:
            out.append("the page's load handler never ran (page did not finish loading)")
        if self.display_math and self.rendered_math < self.display_math:
            out.append(f"{self.display_math - self.rendered_math} of {self.display_math} display equations not "
                       "rendered by MathJax")
        if self.page_overflow:
            out.append(f"page scrolls sideways at {self.width} px: {self.page_overflow} px wider than the window")
        out += [f"overflow: {o}" for o in self.overflows]
        out += [f"forbidden in output: {f}" for f in self.forbidden]
        out += [f"table row not on one line: {m}" for m in self.misaligned]
        return out


def book_pages(html_dir: Path) -> list[Path]:
    """The content pages of a built book (no search, index, sources or static files; no redirects)."""
    html_dir = Path(html_dir)
    pages = []
    for p in sorted(html_dir.rglob("*.html")):
        rel = p.relative_to(html_dir)
        if p.name.startswith((".", "_", "genindex", "search")) or {"_static", "_sources", "_images"} & set(rel.parts):
            continue
        if re.search(r'<meta[^>]+http-equiv="refresh"', p.read_text(encoding="utf-8", errors="replace"), re.IGNORECASE):
            continue  # a redirect (index.html -> the landing page), checked where it leads
        pages.append(p)
    return pages


def _check_links(page: Path, links: _Links, anchors_of, report: PageReport) -> None:
    """Internal links: the file must exist, and a ``#fragment`` must name an id (or ``<a name>``) in it."""
    for href in links.hrefs:
        parsed = urlparse(href)
        if parsed.scheme or parsed.netloc or href.startswith("mailto:"):
            continue
        target = (page.parent / unquote(parsed.path)).resolve() if parsed.path else page.resolve()
        if parsed.path and not target.exists():
            if href not in report.missing_links:
                report.missing_links.append(href)
            continue
        if target.is_dir():
            target = target / "index.html"
        fragment = unquote(parsed.fragment)
        if fragment and target.suffix == ".html" and target.is_file() and fragment not in anchors_of(target) \
                and href not in report.missing_anchors:
            report.missing_anchors.append(href)


def _measure(chromium: str, page: Path, text: str, width: int, height: int) -> dict:
    """Load a copy of ``page`` with :data:`_PROBE` added; the probe's JSON report (``{}`` if it never ran)."""
    probe = page.with_name(f".vtalign-check-{page.name}")
    probe.write_text(text.replace("</body>", _PROBE + "</body>") if "</body>" in text else text + _PROBE,
                     encoding="utf-8")
    try:
        dom = _run_chromium(chromium, "--virtual-time-budget=15000", f"--window-size={width},{height}",
                            "--dump-dom", probe.as_uri())
    finally:
        probe.unlink(missing_ok=True)
    found = re.search(r'<script type="application/json" id="vtalign-report">(.*?)</script>', dom, re.DOTALL)
    return json.loads(found.group(1)) if found else {}


def check_book(html_dir: Path, chromium: str | None = None, pages=None, width: int = WIDTH,
               height: int = 1000) -> list[PageReport]:
    """Open each page of a built book in headless Chromium (a ``width`` x ``height`` window) and report
    what a reader would miss.

    Every page is loaded from disk (``file://``, no network) with a small script added (:data:`_PROBE`) that,
    once the page has loaded and MathJax has typeset, records

    - whether each ``<img>`` decoded (``naturalWidth > 0``) and how many display equations MathJax rendered;
    - horizontal overflow: the page wider than the window, and each table, image, svg, ``pre``, cell output
      and display equation whose box sticks out of the article column (``article.bd-article``) or is clipped
      by an ancestor with ``overflow-x`` hidden or clip. Content inside a scroller (``overflow-x`` auto or
      scroll) can be reached and passes; the scroller itself must fit;
    - tokens that mean a value went missing in the rendered outputs (``.cell_output``, ``.output``; never
      code inputs): ``None``, ``nan``, ``NaN``, ``<NA>`` as whole tokens, and ``dtype:``, ``Name:`` (a
      pandas Series printed instead of formatted);
    - the page's full height (for :func:`screenshot`).

    Internal links are checked statically: the target file must exist and a ``#fragment`` must name an
    ``id`` (or ``<a name>``) in it.
    """
    html_dir = Path(html_dir).resolve()
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError(f"No Chromium found: install Debian's `{CHROMIUM_PACKAGE}` package.")
    pages = sorted(Path(p).resolve() for p in pages) if pages else book_pages(html_dir)
    anchors: dict[Path, set[str]] = {}

    def anchors_of(target: Path) -> set[str]:
        if target not in anchors:
            anchors[target] = _parse(target).anchors
        return anchors[target]

    reports = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        if re.search(r'<meta[^>]+http-equiv="refresh"', text, re.IGNORECASE):
            continue  # a redirect (index.html -> the landing page), checked where it leads
        links = _Links()
        links.feed(text)
        anchors[page.resolve()] = links.anchors
        report = PageReport(str(page.relative_to(html_dir)), images=len(links.srcs), display_math=links.math)
        _check_links(page, links, anchors_of, report)
        seen = _measure(chromium, page, text, width, height)
        report.checked = bool(seen)
        report.error = seen.get("error", "")
        report.width, report.height = seen.get("width", 0), seen.get("height", 0)
        report.page_overflow = seen.get("page_overflow", 0)
        report.broken_images = [i["src"] for i in seen.get("images", []) if not i["loaded"]]
        report.rendered_math = seen.get("rendered_math", 0)
        report.overflows = [f"{o['element']} {o['where']} by {o['px']} px" for o in seen.get("overflows", [])]
        report.scrolled = [f"{o['element']} in {o['section']} scrolls sideways ({o['px']} px hidden)"
                           for o in seen.get("scrolled", [])]
        report.forbidden = [f"{f['token']!r} {f['count']} time{'s' if f['count'] > 1 else ''} in output {f['output']} "
                            f"({f['section']}), first: \u2026{f['context']}\u2026" for f in seen.get("forbidden", [])]
        report.misaligned = [f"{m['element']} in {m['section']} (cells {m['px']} px apart vertically)"
                             for m in seen.get("misaligned", [])]
        reports.append(report)
    return reports


def screenshot(page: Path, out: Path, chromium: str | None = None, width: int = WIDTH, height: int = 1600) -> Path:
    """Save a PNG of ``page`` as a reader's browser draws it (after scripts, math included): the window is
    ``width`` x ``height``, so pass the page's height (``PageReport.height``) for the whole page."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError(f"No Chromium found: install Debian's `{CHROMIUM_PACKAGE}` package.")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    _run_chromium(chromium, "--virtual-time-budget=15000", f"--window-size={width},{height}",
                  f"--screenshot={out.resolve()}", Path(page).resolve().as_uri())
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot of {page}.")
    return out


def screenshot_name(page: str) -> str:
    """``book/chapters/test_of_time.html`` -> ``book_chapters_test_of_time.png``."""
    return re.sub(r"\.html$", "", page).replace("/", "_").replace("\\", "_") + ".png"


def check_html_command(html: Path, screenshots: str | None = None, width: int = WIDTH) -> int:
    """``python -m vtalign.book check-html``: check every page of the built book at ``html`` (see
    :func:`check_book`), print ``ok``/``FAIL`` per page with its problems underneath and a summary, and, when
    ``screenshots`` names a folder, save a full-height screenshot of every page there at ``width`` px
    (``book_chapters_test_of_time.png``). Returns 0 (no problems), 1 (problems) or 2 (no built book)."""
    html = Path(html)
    if not (html / "index.html").is_file():
        print(f"error: no built book at {html}; run `make book` first.", file=sys.stderr)
        return 2
    reports = check_book(html, width=width)
    bad = [r for r in reports if r.problems]
    for r in reports:
        print(f"{'FAIL' if r.problems else 'ok  '} {r.page}: {r.images} images, {r.rendered_math}/{r.display_math} "
              f"display equations rendered, {r.width} x {r.height} px" + "".join(f"\n      {p}" for p in r.problems)
              + "".join(f"\n      note: {n}" for n in r.scrolled),
              flush=True)
    if screenshots:
        for r in reports:
            height = min(max(r.height or 1000, 600), MAX_SCREENSHOT_HEIGHT)
            try:
                print(screenshot(html / r.page, Path(screenshots) / screenshot_name(r.page), width=width,
                                 height=height), flush=True)
            except (RuntimeError, subprocess.TimeoutExpired) as err:
                bad.append(r)
                print(f"FAIL screenshot of {r.page}: {err}", flush=True)
    print(f"{len(reports) - len(set(id(r) for r in bad))} of {len(reports)} pages without problems "
          f"(checked at {width} px).")
    return 1 if bad else 0
