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

from ..extract.paper_run import EVIDENCE, FIG4_LOWER_IS_BETTER, PLANS
from ..paths import book_dir, paper_csv, results_dir
from .tables import markdown_cell

__all__ = ["write_paper_pipeline_page", "plan_summary", "draw_figures"]


def plan_summary(folder: Path) -> dict | None:
    """What one plan's folder holds: None when it was never run (no ``jobs.csv``); else dict(run (run.json),
    jobs (DataFrame), status_counts, pairs, best (the highest alignment row or None), fitted, grids,
    matched (name -> (matched, total)) of the three comparison tables, files (name -> rows, or None for a
    figure) of every CSV and PNG it holds, not_built (DataFrame, empty when absent))."""
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
    files = {p.name: (len(pd.read_csv(p)) if p.suffix == ".csv" else None)
             for p in sorted(folder.iterdir()) if p.suffix in (".csv", ".png")}
    not_built = read("not_built") if (folder / "not_built.csv").is_file() else pd.DataFrame(
        columns=["figure", "part", "reason"])
    return dict(run=run, jobs=jobs, status_counts=jobs.status.value_counts().to_dict(), pairs=len(align),
                files=files, not_built=not_built,
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
        source = run.get("caption_source", "not recorded (a run made before the source was recorded)")
        lines += ["", f"Captions that ran: {source}.", ""]
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
        ""]
    lines += _figure_lines(folder)
    lines += [f"Files under `results/paper/{plan}/` (every table carries its evidence label): "
              + ", ".join(f"`{n}`" + (f" ({r} rows)" if r is not None else "") for n, r in s["files"].items())
              + ".", ""]
    if len(s["not_built"]):
        lines += ["Not built from this plan's features (`not_built.csv`):", ""]
        lines += [f"- {markdown_cell(r.figure)}, {markdown_cell(r.part)}: {markdown_cell(r.reason)}"
                  for r in s["not_built"].itertuples()]
        lines += [""]
    lines += ["| job | setting | status | reason |", "|---|---|---|---|"]
    lines += [f"| {markdown_cell(r.label)} | {r.setting or '—'} | {r.status} | {markdown_cell(r.reason) or '—'} |"
              for r in s["jobs"].itertuples()]
    return lines + [""]


def _figure_lines(folder: Path) -> list[str]:
    """Figure 2's regression lines, Figure 7's line and gain and Figure 4's r per task, this run beside the
    printed values, from the plan's ``fig2_fits.csv``, ``fig7_fit.csv`` and ``fig4_correlations.csv`` (nothing
    for a table that is absent or empty: a run made before it existed, or without a retrieval set)."""
    lines = []
    fits = folder / "fig2_fits.csv"
    if fits.is_file() and len(f := pd.read_csv(fits, keep_default_na=False)):
        ret = pd.read_csv(folder / "fig2_retrieval.csv", keep_default_na=False)
        measured = ret[ret.status == "measured"]
        lines += [f"Figure 2 (x: retrieval accuracy, weighted k-NN with k = 8, on {measured.dataset.iloc[0]}, "
                  f"{int(measured.n_items.iloc[0]):,} videos, {len(measured)} vision representations; y: alignment "
                  "at one caption):" if len(measured) else "Figure 2:", "",
                  "| text model | panel | models | r, this run | r, printed | comparable |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r.text} | {r.panel} | {r.n} | "
                  + (f"{float(r.pearson_r):.3f} [{float(r.ci_low):.2f}, {float(r.ci_high):.2f}]" if r.pearson_r != ""
                     else "not computed") + f" | {r.published_r or '—'} | {markdown_cell(r.comparable)} |"
                  for r in f.itertuples()]
        lines += [""]
    if (folder / "fig7_fit.csv").is_file():
        fit = pd.read_csv(folder / "fig7_fit.csv").set_index("quantity")
        mine, pub = fit.this_run, fit.published
        pairs = pd.read_csv(folder / "fig7_pairs.csv") if (folder / "fig7_pairs.csv").is_file() else None
        many = f"{int(pairs.many.max())} captions" if pairs is not None and len(pairs) else "all captions"
        lines += [f"Figure 7 ({many} vs one, printed: 10 vs one): this run's line y = {mine.slope:.3f}x "
                  f"{mine.intercept:+.3f} (r = {mine.r:.3f}), mean gain {mine.relative_gain:+.1%}; printed: "
                  f"y = {pub.slope:g}x {pub.intercept:+g} (r = {pub.r:g}), gain {pub.relative_gain:+.0%}. Comparable: "
                  f"{fit.comparable.iloc[0]}.", ""]
    if (folder / "fig4_correlations.csv").is_file():
        c = pd.read_csv(folder / "fig4_correlations.csv", keep_default_na=False)
        lines += ["Figure 4 (x: the published downstream numbers; y: the alignment this run measured; downstream "
                  "scores are not measured here):", "",
                  "| task | models | r, this run | r, printed | comparable |", "|---|---|---|---|---|"]
        lines += [f"| {r.task} | {r.n} | " + (f"{float(r.this_run_pearson_r):.3f}" if r.status == "computed"
                                               else markdown_cell(r.status)) + f" | {r.published_pearson_r} | "
                  f"{markdown_cell(r.comparable)} |" for r in c.itertuples()]
        lines += [""]
    return lines


def _plot_matrix(long: pd.DataFrame, path: Path, title: str) -> None:
    """A heat map of Figure 11 or 12's long table (vision rows x text columns, best-layer scores)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    wide = long.pivot(index="vision", columns="text", values="score")
    fig, ax = plt.subplots(figsize=(2.5 + 0.9 * wide.shape[1], 1.2 + 0.32 * wide.shape[0]))
    sns.heatmap(wide, annot=len(wide) <= 40, fmt=".2f", cmap="rocket_r", ax=ax,
                cbar_kws=dict(label="best-layer alignment (mutual k-NN)"))
    ax.set(title=title, xlabel="text model", ylabel="vision representation")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def draw_figures(folder, plan: str | None = None) -> list[str]:
    """Draw Figures 4, 7, 10, 11 and 12 as PNGs beside their tables in a plan's folder (written by
    :func:`vtalign.extract.paper_run.run_paper`), where the tables have points; returns the names written.
    ``plan`` (default: the folder's name) decides the titles: a miniature's say it is plumbing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import figures

    folder = Path(folder)
    plan = plan or folder.name
    read = lambda name: pd.read_csv(folder / f"{name}.csv")  # noqa: E731
    tag = " (miniature: plumbing on random weights)" if plan == "miniature" else ""
    written = []
    pairs = read("fig7_pairs")
    if len(pairs) >= 3:
        printed = pd.read_csv(paper_csv("fig7_fit_printed")).iloc[0]
        fig, _ = figures.plot_caption_gain(pairs.assign(source="this run" + tag), float(printed.slope),
                                           float(printed.intercept))
        fig.savefig(folder / "fig7.png", dpi=90)
        plt.close(fig)
        written.append("fig7.png")
    m = read("fig10_matrix")
    if len(m) >= 2:
        align = read("alignment")
        chance = float(align.chance.iloc[0]) if len(align) else 0.0
        fig = figures.plot_alignment_matrix(m.drop(columns="evidence").set_index("representation"), chance)
        fig.axes[0].set_title("Figure 10: cross-model alignment" + tag)
        fig.savefig(folder / "fig10.png", dpi=90)
        plt.close(fig)
        written.append("fig10.png")
    for name, title in (("fig11", "Figure 11: one caption"), ("fig12", "Figure 12: all captions")):
        long = read(f"{name}_long")
        if len(long):
            _plot_matrix(long, folder / f"{name}.png", title + tag)
            written.append(f"{name}.png")
    pts, corr = read("fig4_points"), read("fig4_correlations")
    have = pts[pts.this_run_alignment.notna()]
    if len(have):
        tasks = list(corr.task)
        data = have.rename(columns={f"published_{t}": t for t in tasks}).assign(
            model=have.model + " ~ " + have.label.astype(str), alignment=have.this_run_alignment)
        done = corr[corr.status == "computed"].rename(columns={"this_run_pearson_r": "pearson_r",
                                                               "this_run_pearson_p": "pearson_p"})
        fig = figures.plot_downstream(data, tasks, done, "alignment", FIG4_LOWER_IS_BETTER)
        fig.suptitle("Figure 4: published downstream (y) vs this run's alignment (x)" + tag, fontsize=9, y=1.0,
                     va="bottom")
        fig.savefig(folder / "fig4.png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        written.append("fig4.png")
    return written


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
             "Figure 3's grid and Eq. 2's fits (Table 1), Figure 4 (the published downstream numbers against the "
             "alignment this run measures: downstream scores are not measured here), Figure 7 (the gain from more "
             "captions), Figure 10 (the cross-model matrix), Figures 11 and 12 (every vision representation x text "
             "model at one caption and at all captions), written under `results/paper/paper/` beside the published "
             "numbers where the models match; what cannot be built is a row of `not_built.csv` with its reason. "
             "Without the videos or the weights it is refused before any work, with the list of what is missing. "
             "`make paper PLAN=miniature` runs the same code offline on one tiny "
             "random-initialised config per loader over 32 synthetic-world clips and a 2 x 2 grid: plumbing, "
             "never evidence about the paper's models (`make test` runs it). What each plan wrote in this "
             "checkout:", ""]
    for plan in PLANS:
        lines += _plan_section(plan, root / plan)
    lines += _score_section(root)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def main(argv=None) -> int:
    """``python -m vtalign.book.paper_pipeline --plan miniature``: draw a plan's figures, then write the page."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--plan", default="paper", choices=PLANS)
    args = parser.parse_args(argv)
    folder = results_dir("paper", create=False) / args.plan
    if not (folder / "jobs.csv").is_file():
        print(f"{folder} holds no jobs.csv: run `make paper PLAN={args.plan}` first.")
        return 2
    print(f"{args.plan}: drew {', '.join(draw_figures(folder, args.plan)) or 'no figures (no points)'} in {folder}")
    print(write_paper_pipeline_page())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
