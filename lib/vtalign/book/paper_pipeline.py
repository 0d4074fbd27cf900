"""``book/paper_pipeline.md``: what ``make paper`` and ``--score`` wrote in this checkout, generated at build time.

The page reads ``results/paper/<plan>/`` (written by :func:`vtalign.extract.paper_run.run_paper`) and
``results/paper/score/*/placement.csv`` (:func:`vtalign.extract.paper_run.score_encoder`); it runs nothing, so
the book's build time does not change. A plan that has not been run is said to have not been run. Every number
on the page comes from those files, with the kind of evidence they carry.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..extract.paper_run import EVIDENCE, PLANS
from ..paths import book_dir, results_dir
from .tables import markdown_cell

__all__ = ["write_paper_pipeline_page", "plan_summary"]


def plan_summary(folder: Path) -> dict | None:
    """What one plan's folder holds: None when it was never run (no ``jobs.csv``); else dict(run (run.json),
    jobs (DataFrame), status_counts, pairs, best (the highest alignment row or None), fitted, grids,
    matched (name -> (matched, total)) of the three comparison tables)."""
    if not (folder / "jobs.csv").is_file():
        return None
    read = lambda name: pd.read_csv(folder / f"{name}.csv", keep_default_na=False)  # noqa: E731
    jobs, align, fits = read("jobs"), read("alignment"), read("eq2_fits")
    run = json.loads((folder / "run.json").read_text()) if (folder / "run.json").is_file() else {}
    align_scores = pd.to_numeric(align.score, errors="coerce") if len(align) else pd.Series(dtype=float)
    matched = {}
    for name in ("fig2_compare", "fig3_compare", "table1_compare"):
        t = read(name)
        matched[name] = (int(t.comparable.astype(str).str.startswith("yes").sum()), len(t))
    return dict(run=run, jobs=jobs, status_counts=jobs.status.value_counts().to_dict(), pairs=len(align),
                best=align.loc[align_scores.idxmax()] if len(align) else None,
                fitted=int((fits.status == "fitted").sum()) if len(fits) else 0, grids=len(fits), matched=matched)


def _plan_section(plan: str, folder: Path) -> list[str]:
    s = plan_summary(folder)
    lines = [f"## Plan `{plan}`", ""]
    if s is None:
        lines += [f"**Not run in this checkout**: `results/paper/{plan}/` holds no `jobs.csv`. Run it with "
                  f"`make paper{' PLAN=miniature' if plan == 'miniature' else ' VIDEO_ROOT=... ALLOW_DOWNLOAD=1'}`.",
                  ""]
        return lines
    run = s["run"]
    counts = ", ".join(f"{n} {k}" for k, n in s["status_counts"].items())
    lines += [f"Evidence: {run.get('evidence', EVIDENCE[plan])}.", ""]
    if run:
        lines += [f"Run {run['finished']} on {run['dataset']} "
                  f"({', '.join(f'{k}={v}' for k, v in run['options'].items())}), frames {run['frames']}, "
                  f"captions {run['captions']}, k = {run['k']}, in {run['seconds']} s."]
    lines += [f"Jobs: {len(s['jobs'])} ({counts}).", ""]
    if s["best"] is not None:
        b = s["best"]
        lines += [f"{s['pairs']} representation pairs swept; the highest best-layer alignment is "
                  f"{float(b.score):.3f} ({b.label} {b.setting}, {b.frames} frames x {b.text}, {b.captions} "
                  f"caption(s); chance {float(b.chance):.3f}). Eq. 2 fitted on {s['fitted']} of {s['grids']} "
                  "grids.", ""]
    lines += ["Beside the published numbers: " + "; ".join(
        f"`{n}.csv` {m} of {t} published points matched" for n, (m, t) in s["matched"].items())
        + (" (a miniature is never compared: random weights on generated clips)." if plan == "miniature" else "."),
        "", "| job | setting | status | reason |", "|---|---|---|---|"]
    lines += [f"| {markdown_cell(r.label)} | {r.setting or '—'} | {r.status} | {markdown_cell(r.reason) or '—'} |"
              for r in s["jobs"].itertuples()]
    return lines + [""]


def _score_section(root: Path) -> list[str]:
    lines = ["## Score your own encoder", "",
             "One command puts a vision encoder (a Hugging Face id, a local folder or a registered name) through "
             "Figure 2's protocol (best-layer mutual k-NN alignment with Gemma-2-9B-it on 1,024 VaTeX videos, one "
             "caption, k = 10) and places it among the published Figure 2 and Figure 4 points, printing for each "
             "condition whether it is the paper's (dataset, N, text model, captions, k, weights); it says "
             "NOT COMPARABLE, and why, when one differs:", "",
             "```bash", "make score MODEL=my-org/my-video-encoder VIDEO_ROOT=/data/vatex ALLOW_DOWNLOAD=1",
             "python -m vtalign.extract --score /path/to/folder --dataset synthetic_world --option n_clips=32 \\",
             "    --text-model tiny-gemma2 --k 5      # offline, as the tests run it: not comparable", "```", ""]
    found = sorted((root / "score").glob("*/placement.csv")) if (root / "score").is_dir() else []
    if not found:
        return lines + ["No encoder has been scored in this checkout (`results/paper/score/` is empty).", ""]
    lines += ["| model | figure | score | above (of the published points) | comparable |", "|---|---|---|---|---|"]
    for path in found:
        for r in pd.read_csv(path).itertuples():
            lines.append(f"| {markdown_cell(r.model)} | {markdown_cell(r.figure)} | {r.score:.3f} | "
                         f"{r.below} of {r.published_points} | {markdown_cell(r.comparable)} |")
    return lines + [""]


def write_paper_pipeline_page(path=None, root=None) -> Path:
    """Write ``book/paper_pipeline.md`` from ``results/paper/`` (``root``); see the module docstring."""
    path = Path(path) if path else book_dir() / "paper_pipeline.md"
    root = Path(root) if root else results_dir("paper", create=False)
    lines = ["# The paper's pipeline, in one command", "",
             "`make paper` runs the paper's plan: every loadable model of `data_manifest/paper/a2_models.csv` x "
             "VaTeX (1,024 videos) x Figure 3's grid of frame and caption counts, locally or on a Ray cluster "
             "(`CLUSTER=ray://...`), then the best-layer alignment with Figure 2's text models, Figure 2's points, "
             "Figure 3's grid and Eq. 2's fits, written under `results/paper/paper/` beside the published numbers "
             "where the models match. Without the videos or the weights it is refused before any work, with the "
             "list of what is missing. `make paper PLAN=miniature` runs the same code offline on one tiny "
             "random-initialised config per loader over 32 synthetic-world clips and a 2 x 2 grid: plumbing, "
             "never evidence about the paper's models (`make test` runs it). What each plan wrote in this "
             "checkout:", ""]
    for plan in PLANS:
        lines += _plan_section(plan, root / plan)
    lines += _score_section(root)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
