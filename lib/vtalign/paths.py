"""Every path the project uses, in one place.

The project root is found once: ``$VTALIGN_ROOT`` if set, else the nearest
folder above this package (or above the working directory) that holds both
``_config.yml`` and ``lib/vtalign``. Notebooks, tests and the book runner all
ask this module rather than building paths of their own, so a notebook writes
to the same ``results/<name>/`` whatever directory papermill runs it in.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "project_root",
    "results_dir",
    "paper_data_dir",
    "paper_csv",
    "notebooks_dir",
    "executed_dir",
    "book_dir",
    "data_mirror_dirs",
    "manifest_path",
    "cache_dir",
    "verdicts_csv",
    "claims_csv",
    "run_record",
    "chapter_status_page",
    "generated_figures_dir",
]


def _is_root(path: Path) -> bool:
    return (path / "_config.yml").is_file() and (path / "lib" / "vtalign").is_dir()


def project_root() -> Path:
    """Return the project's root folder (see the module docstring for the rule)."""
    env = os.environ.get("VTALIGN_ROOT")
    if env:
        root = Path(env).expanduser().resolve()
        if not _is_root(root):
            raise FileNotFoundError(
                f"VTALIGN_ROOT={env!r} is not a vtalign project root "
                "(expected _config.yml and lib/vtalign there); unset it or fix the path."
            )
        return root
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for candidate in (start, *start.parents):
            if _is_root(candidate):
                return candidate
    raise FileNotFoundError(
        "Cannot find the vtalign project root: install the package in editable "
        "mode from a checkout (`make test` does) or set VTALIGN_ROOT."
    )


def results_dir(name: str, create: bool = True) -> Path:
    """``results/<name>/``: a notebook's tables and figures.

    Under the project root, unless ``$VTALIGN_RESULTS_ROOT`` names another folder
    (the test suite's smoke runs use that so they never touch the book's results).
    """
    base = os.environ.get("VTALIGN_RESULTS_ROOT")
    path = (Path(base).expanduser() if base else project_root() / "results") / name
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def paper_data_dir() -> Path:
    """``data_manifest/paper/``: the paper's published numbers, committed with provenance."""
    return project_root() / "data_manifest" / "paper"


def paper_csv(name: str) -> Path:
    """Path of one published-number table, e.g. ``paper_csv("table1_scaling_law_params")``."""
    path = paper_data_dir() / f"{name}.csv"
    if not path.is_file():
        available = sorted(p.stem for p in paper_data_dir().glob("*.csv"))
        raise FileNotFoundError(f"No published table {name!r}; available: {available}")
    return path


def bench_dir(kind: str) -> Path:
    """``bench/<kind>/``: committed benchmark records (``records``: kNN and sweep, ``scaleout``: Ray
    throughput and the full-plan projection, ``kernels``: static compile reports of the Triton kernels)."""
    return project_root() / "bench" / kind


def notebooks_dir() -> Path:
    """``notebooks/``: the committed, output-free source notebooks."""
    return project_root() / "notebooks"


def book_dir() -> Path:
    """``book/``: hand-written pages of the book."""
    return project_root() / "book"


def executed_dir() -> Path:
    """``book/chapters/``: executed copies written by papermill (generated, not committed)."""
    path = book_dir() / "chapters"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_mirror_dirs() -> list[Path]:
    """Local folders searched for data files before any download, in order.

    ``$VTALIGN_DATA_MIRROR`` (if set), then ``../shared/data`` beside the project.
    """
    dirs = []
    env = os.environ.get("VTALIGN_DATA_MIRROR")
    if env:
        dirs.append(Path(env).expanduser().resolve())
    dirs.append(project_root().parent / "shared" / "data")
    return [d for d in dirs if d.is_dir()]


def manifest_path() -> Path:
    """``data_manifest/datasets.toml``: every dataset's files, sources and sha256."""
    return project_root() / "data_manifest" / "datasets.toml"


def cache_dir(kind: str, create: bool = True) -> Path:
    """``.cache/<kind>/``: generated, rebuildable files (``features``, ``downloads``, ``models``).

    Under the project root, unless ``$VTALIGN_CACHE`` names another folder (a shared
    cache between checkouts, or a big disk on a GPU machine).
    """
    base = os.environ.get("VTALIGN_CACHE")
    path = (Path(base).expanduser() if base else project_root() / ".cache") / kind
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def verdicts_csv(chapter: str, create: bool = True) -> Path:
    """``results/<chapter>/verdicts.csv``: the statuses a chapter graded (:mod:`vtalign.book.claims`)."""
    return results_dir(chapter, create) / "verdicts.csv"


def claims_csv() -> Path:
    """``results/claims.csv``: every claim x kind of evidence of this build; the landing page renders it."""
    path = results_dir("", create=True)
    return path / "claims.csv"


def run_record(chapter: str, create: bool = True) -> Path:
    """``results/<chapter>/run.json``: the stamp of the run that wrote the folder (commit, parameters,
    time, run id), written by :func:`vtalign.book.run_notebook`."""
    return results_dir(chapter, create) / "run.json"


def chapter_status_page(chapter: str) -> Path:
    """``book/status/<chapter>.md``: the statuses and run stamp a chapter page opens with (generated by
    ``python -m vtalign.book reproducibility``, never committed)."""
    path = book_dir() / "status"
    path.mkdir(parents=True, exist_ok=True)
    return path / f"{chapter}.md"


def generated_figures_dir() -> Path:
    """``book/figures/``: figures the book's hand-written pages include, drawn at build time (never committed)."""
    path = book_dir() / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path
