"""The code passes the project's lint (ruff, pinned in requirements.in; rules in pyproject.toml: pyflakes, import
order, syntax errors and 120-character lines) over the library, the tests and the notebooks' code cells."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> str | None:
    here = Path(sys.executable).with_name("ruff")
    return str(here) if here.is_file() else shutil.which("ruff")


@pytest.mark.skipif(_ruff() is None, reason="ruff is not installed (make test installs it from requirements.lock)")
def test_ruff_finds_nothing():
    done = subprocess.run([_ruff(), "check", "--no-cache", "--output-format", "concise", "."], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, f"ruff check found problems (fix them, or `ruff check --fix .`):\n{done.stdout}"


def test_the_lint_can_fail(tmp_path):
    """The rules are live: an unused import, unsorted imports and a 121-character line are each reported."""
    if _ruff() is None:
        pytest.skip("ruff is not installed")
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nimport os\n\nx = '" + "a" * 115 + "'\n")
    done = subprocess.run([_ruff(), "check", "--no-cache", "--output-format", "concise",
                           "--config", str(ROOT / "pyproject.toml"), str(bad)], capture_output=True, text=True)
    assert done.returncode == 1
    assert {"F401", "I001", "E501"} <= {w for w in done.stdout.split() if w[:1] in "FIE" and w[1:].isdigit()}
