"""The package layout keeps its one-way imports: core <- extract <- book.

The measurement core (the modules at the top level of ``vtalign``) never imports the extraction
pipeline or the book support, and the extraction pipeline never imports the book support.
``vtalign/__init__.py`` is exempt: it re-exports public names from every layer.
"""
import ast
from pathlib import Path

import pytest

import vtalign

PACKAGE = Path(vtalign.__file__).parent


def _package_of(path: Path) -> list[str]:
    return ["vtalign", *path.parent.relative_to(PACKAGE).parts]


def _imported_modules(source: str, package: list[str]) -> set[str]:
    """Absolute names of the vtalign modules a module of ``package`` imports (relative imports resolved)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # "from . import extract"
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m == "vtalign" or m.startswith("vtalign.")}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ("extract", "book") else "core"


RANK = {"core": 0, "extract": 1, "book": 2}
FILES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def _upward(source: str, module: str) -> list[str]:
    here = _layer(module)
    package = module.split(".")[:-1]
    return sorted(m for m in _imported_modules(source, package) if RANK[_layer(m)] > RANK[here])


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way(path):
    module = ".".join([*_package_of(path), path.stem])
    upward = _upward(path.read_text(), module)
    assert not upward, f"{path.relative_to(PACKAGE)} imports {upward} from a layer above its own"


def test_the_rule_catches_upward_imports():
    assert _upward("from ..book import figures\nfrom .cache import x", "vtalign.extract.datasets") == [
        "vtalign.book", "vtalign.book.figures"]
    assert _upward("from .extract.cache import extract_features", "vtalign.alignment") == [
        "vtalign.extract.cache", "vtalign.extract.cache.extract_features"]
    assert _upward("import vtalign.book.live", "vtalign.stats") == ["vtalign.book.live"]
    assert _upward("from ..extract import cache\nfrom .. import paths", "vtalign.book.live") == []


def test_notebooks_import_only_public_names():
    import json

    root = PACKAGE.parent.parent
    for nb in sorted((root / "notebooks").glob("*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            for node in ast.walk(ast.parse("".join(cell["source"]))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vtalign"):
                    names = [node.module, *(a.name for a in node.names)]
                    private = [n for n in names if any(part.startswith("_") for part in n.split("."))]
                    assert not private, f"{nb.name} imports private names {private}"


# Inside the extraction pipeline: a request is built (request) and kept on disk (store, parts) by modules
# that know nothing of how a run is routed; one process runs it (cache); Ray (cluster) sits above that, and
# only the front door (features) and the command line choose between them.
EXTRACT_LAYERS = {"identity": 0, "errors": 0, "manifest": 0, "datasets": 0, "synthetic": 0, "video": 0,
                  "sampling": 0, "encoders": 0, "validation": 1, "request": 2, "store": 3, "parts": 4, "cache": 5,
                  "cluster": 6, "cluster_alignment": 7, "features": 7, "manage": 4, "projection": 7, "paper_models": 8,
                  "paper_run": 9, "cli": 10}


def _extract_upward(source: str, module: str) -> list[str]:
    here = EXTRACT_LAYERS[module.rsplit(".", 1)[1]]
    if here == 0:  # the inputs (datasets, videos, encoders...) use one another freely
        return []
    names = {m.split(".")[2] for m in _imported_modules(source, ["vtalign", "extract"])
             if m.startswith("vtalign.extract.") and m.split(".")[2] in EXTRACT_LAYERS}
    return sorted(n for n in names if EXTRACT_LAYERS[n] >= here and n != module.rsplit(".", 1)[1])


def test_extraction_modules_import_only_lower_ones():
    files = sorted((PACKAGE / "extract").glob("*.py"))
    missing = [p.stem for p in files if p.stem not in EXTRACT_LAYERS and not p.stem.startswith("__")]
    assert not missing, f"give these modules a layer in EXTRACT_LAYERS: {missing}"
    for path in files:
        if path.stem.startswith("__"):
            continue
        upward = _extract_upward(path.read_text(), f"vtalign.extract.{path.stem}")
        assert not upward, f"extract/{path.name} imports {upward}, at or above its own layer"


def test_the_extraction_rule_catches_the_cache_cluster_loop():
    assert _extract_upward("from .cluster import run_plan", "vtalign.extract.cache") == ["cluster"]
    assert _extract_upward("from .cache import extract_request", "vtalign.extract.cluster") == []
