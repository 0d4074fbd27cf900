"""The published-number tables, their provenance, paths, and what the repository may hold."""
import subprocess

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


def test_environment_yml_carries_every_top_level_requirement():
    """environment.yml (GPU machines) and requirements.in (the CPU pins `make` uses) name the same packages,
    with the same exact pins; only torch and faiss differ in name (CUDA builds: pytorch, faiss-gpu)."""
    import re

    import yaml

    from vtalign.paths import project_root

    def split(spec):  # "name==1.2.*" / "name=1.2" / "name" -> (name, pin without a trailing .*)
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:==?\s*([^\s;#]+))?", spec)
        return m.group(1).lower(), (m.group(2) or "").removesuffix(".*")

    root = project_root()
    renamed = {"torch": "pytorch", "faiss-cpu": "faiss-gpu"}
    wanted = {}
    for line in (root / "requirements.in").read_text().splitlines():
        if line.split("#")[0].strip():
            name, pin = split(line.split("#")[0])
            wanted[renamed.get(name, name)] = pin
    have = {}
    for dep in yaml.safe_load((root / "environment.yml").read_text())["dependencies"]:
        for spec in dep["pip"] if isinstance(dep, dict) else [dep]:
            if not spec.startswith("-"):
                name, pin = split(spec)
                have[name] = pin
    missing = sorted(set(wanted) - set(have))
    assert not missing, f"environment.yml lacks {missing} (in requirements.in)"
    for name, pin in wanted.items():
        assert have[name].startswith(pin), f"{name}: requirements.in pins {pin}, environment.yml has {have[name]!r}"
