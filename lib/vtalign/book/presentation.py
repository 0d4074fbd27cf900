"""How an executed chapter is shown: which code is folded or removed, and what each page opens with.

The rules live here, applied to every executed copy by :func:`prepare_executed` (the source notebooks in
``notebooks/`` stay plain, so a new cell follows the rules without anyone tagging it):

- the ``parameters`` cell, and the cell papermill injects with this run's values, are shown: readers
  re-run the chapter with them;
- a cell whose every output is prose (Markdown generated from results) has its code removed: the
  sentence is the result, the f-string behind it distracts;
- every other code cell is folded behind a "show code" toggle (Jupyter Book's ``hide-input``).

Each chapter then opens, under its title, with the statuses of the claims it grades and the stamp of
the run it shows (:func:`write_status_pages`, from ``results/claims.csv`` and
``results/<chapter>/run.json``), and warns when the results folder was rewritten by a later run.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from ..paths import chapter_status_page, claims_csv, executed_dir, run_record, verdicts_csv

__all__ = ["HIDE_INPUT", "REMOVE_INPUT", "SHOWN", "display_tags", "apply_display_policy", "prepare_executed",
           "claim_anchor", "graded_here", "stale_results", "write_status_pages", "STATUS_INCLUDE"]

HIDE_INPUT = "hide-input"
REMOVE_INPUT = "remove-input"
SHOWN = ("parameters", "injected-parameters")
_PROSE_TYPES = {"text/markdown", "text/plain"}
# The line under each chapter's title; the page it names is written at build time.
STATUS_INCLUDE = "```{{include}} ../status/{chapter}.md\n```"
METADATA_KEY = "vtalign"
_MTIME_SLACK_S = 2.0  # file times of one run's outputs vs its stamp: coarse file systems round to 1-2 s


def _prose_only(cell: dict) -> bool:
    outputs = cell.get("outputs") or []
    return bool(outputs) and all(
        out.get("output_type") in ("display_data", "execute_result")
        and "text/markdown" in out.get("data", {}) and set(out["data"]) <= _PROSE_TYPES
        for out in outputs)


def display_tags(cell: dict) -> list[str]:
    """The tags ``cell`` is shown with (its own, plus ``hide-input`` or ``remove-input`` by the rules)."""
    tags = list(cell.get("metadata", {}).get("tags", []))
    if cell.get("cell_type") != "code" or set(tags) & set(SHOWN) or {HIDE_INPUT, REMOVE_INPUT} & set(tags):
        return tags
    return tags + [REMOVE_INPUT if _prose_only(cell) else HIDE_INPUT]


def apply_display_policy(nb: dict) -> dict:
    """Tag every code cell of an executed notebook (a dict as read from JSON) by the rules; returns it."""
    for cell in nb["cells"]:
        tags = display_tags(cell)
        if tags:
            cell.setdefault("metadata", {})["tags"] = tags
    return nb


def prepare_executed(path: Path, chapter: str, record: dict) -> None:
    """Make an executed copy ready for the book: the display rules, the status line under the title, and
    the run's stamp in the notebook's metadata (``metadata.vtalign``)."""
    path = Path(path)
    nb = apply_display_policy(json.loads(path.read_text(encoding="utf-8")))
    include = STATUS_INCLUDE.format(chapter=chapter)
    if not any(include in "".join(c.get("source", [])) for c in nb["cells"]):
        first = next((i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown"), -1)
        nb["cells"].insert(first + 1, {"cell_type": "markdown", "id": "vtalign-status", "metadata": {},
                                       "source": [include]})
    nb.setdefault("metadata", {})[METADATA_KEY] = record
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _utc(record: dict) -> str:
    """When a run finished, as a stamp shows it (UTC, without the offset the ISO form carries)."""
    return str(record.get("finished", "?")).replace("+00:00", "")


def claim_anchor(key: str) -> str:
    """The HTML id of the place in a chapter where claim ``key`` is graded (``claims.show`` writes it)."""
    return f"claim-{key}"


def graded_here(chapter: str) -> set[tuple[str, str]]:
    """The (claim, evidence) pairs that ``chapter`` graded in its last run, so its page has their anchors."""
    path = verdicts_csv(chapter, create=False)
    if not path.is_file():
        return set()
    saved = pd.read_csv(path, keep_default_na=False)
    return set(zip(saved.claim, saved.evidence))


def _stamp_line(record: dict) -> str:
    commit = record.get("commit", "unknown")
    dirty = " with uncommitted changes" if record.get("dirty") else ""
    params = record.get("parameters") or {}
    shown = ", ".join(f"`{k}` = `{json.dumps(v)}`" for k, v in params.items()) or "the notebook's defaults"
    return (f"This page shows the run `{record.get('run_id', 'unknown')}` ({record.get('mode', '?')} parameters: "
            f"{shown}), finished {_utc(record)} UTC at commit `{commit[:12]}`{dirty}, in "
            f"{record.get('seconds', 0):.0f} s.")


def _executed_record(chapter: str) -> dict:
    path = executed_dir() / f"{chapter}.ipynb"
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get(METADATA_KEY, {})


def stale_results(chapter: str, shown: dict, saved: dict) -> str:
    """Why ``results/<chapter>/`` does not match the executed chapter whose stamp is ``shown`` (``saved``:
    the folder's own ``run.json``), or ``""``. Two cases: another run stamped the folder since (``make
    notebook`` without ``make html``), or files in it are newer than its stamp (a run that writes no
    stamp, such as papermill called directly)."""
    folder = run_record(chapter, create=False).parent
    if saved and shown and saved.get("run_id") != shown.get("run_id"):
        return (f"`results/{chapter}/` was rewritten by another run (`{saved.get('run_id')}`, finished {_utc(saved)} "
                f"UTC) than the one this page shows (`{shown.get('run_id')}`). Its tables and figures do not match "
                "this page: run `make html` after `make notebook`, or `make book`.")
    stamp = folder / "run.json"
    if stamp.is_file():
        newer = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != "run.json"
                       and p.stat().st_mtime > stamp.stat().st_mtime + _MTIME_SLACK_S)
        if newer:
            return (f"{len(newer)} file(s) in `results/{chapter}/` ({', '.join(newer[:3])}"
                    f"{', ...' if len(newer) > 3 else ''}) were written after the run this page shows, by a run "
                    "that left no stamp (papermill called directly?). Re-run the chapter with `make notebook "
                    f"NB={chapter}` and then `make html`.")
    return ""


def write_status_pages(table: pd.DataFrame | None = None) -> list[Path]:
    """Write ``book/status/<chapter>.md`` for every chapter: the claims it grades (statuses from
    ``results/claims.csv``, each linked to its place on the page and back to the landing table) and the
    stamp of the run the page shows, with a warning when ``results/<chapter>/`` holds another run."""
    from .claims import claim
    from .runner import NOTEBOOKS

    table = table if table is not None else pd.read_csv(claims_csv(), keep_default_na=False)
    written = []
    for nb in NOTEBOOKS:
        lines = []
        mine = table[table.chapter == nb.name]
        if len(mine):
            items = []
            for r in mine.itertuples():
                c = claim(r.claim)
                text = f"{html.escape(c.figure)}, {html.escape(c.statement[0].lower() + c.statement[1:])}"
                if (r.claim, r.evidence) in graded_here(nb.name):
                    text = f'<a href="#{claim_anchor(r.claim)}">{text}</a>'
                items.append(f"{text} ({html.escape(r.evidence)}): <strong>{html.escape(r.status)}</strong>")
            lines.append("<p><strong>Claims graded here.</strong> " + "; ".join(items) + '. Every claim: '
                         '<a href="../intro.html#every-claim-its-status-its-numbers">the landing table</a>.</p>')
        shown, saved = _executed_record(nb.name), {}
        record_path = run_record(nb.name, create=False)
        if record_path.is_file():
            saved = json.loads(record_path.read_text())
        if shown:
            lines.append(_stamp_line(shown))
        warning = stale_results(nb.name, shown, saved)
        if warning:
            lines.append(f"\n```{{warning}}\n{warning}\n```")
        path = chapter_status_page(nb.name)
        path.write_text("\n\n".join(lines) + "\n" if lines else "\n", encoding="utf-8")
        written.append(path)
    return written
