"""The published-number tables, their provenance, paths, and what the repository may hold."""
import subprocess

import pandas as pd
import pytest

from vtalign import paths
from vtalign.book.paper import load_published, provenance


def test_every_published_table_has_provenance_and_loads():
    listed = set(provenance().file)
    on_disk = {p.stem for p in paths.paper_data_dir().glob("*.csv")} - {"provenance"}
    assert listed == on_disk
    for name in listed:
        df = load_published(name)
        assert len(df) > 0 and df.attrs["provenance"]["exactness"]


def test_published_values_spot_check():
    t1 = load_published("table1_scaling_law_params").set_index(["model", "dataset"])
    assert t1.loc[("videomaev2_huge", "vatex")].tolist() == [0.9791, 0.410, 0.146, 0.748, 0.128, 1.302]
    fig7 = load_published("fig7_fit_printed").iloc[0]
    assert (fig7.slope, fig7.intercept, fig7.r) == (1.6, -0.018, 0.998)


def test_unknown_table_is_a_clear_error():
    with pytest.raises(ValueError, match="No published table"):
        load_published("figure_99")


def test_results_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("VTALIGN_RESULTS_ROOT", str(tmp_path))
    assert paths.results_dir("x") == tmp_path / "x" and (tmp_path / "x").is_dir()
    monkeypatch.setenv("VTALIGN_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not a vtalign project root"):
        paths.project_root()


def test_repository_holds_no_shared_data_or_generated_files():
    files = subprocess.run(["git", "ls-files"], cwd=paths.project_root(), capture_output=True, text=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    banned = (".mp4", ".avi", ".jsonl", ".png", ".svg", ".npz")
    assert not [f for f in files if f.endswith(banned)]
    assert not [f for f in files if f.startswith(("results/", "_build/", "book/chapters/", ".venv/"))]
