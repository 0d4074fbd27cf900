"""Chapter parameters are checked against the notebook's parameters cell before any work, and a failed run
never replaces the last good chapter."""
import json

import pandas as pd
import pytest

from vtalign import book
from vtalign.book.parameters import ParameterError, check_parameters, declared
from vtalign.book.runner import main

DEFAULTS = dict(vision_models=["efficientnet-lite0"], frames=[1, 2, 4], k=10, temperature=0.07, null_control=True,
                world="planted", dataset_options={"n_clips": 256, "size": 128}, cluster=None, grid_csv="",
                n_bootstrap=200, tasks=[])


def check(chapter="live_scaling", **params):
    return check_parameters(chapter, params, defaults=DEFAULTS)


def test_a_single_value_for_a_list_is_a_one_element_list_never_split_into_characters():
    assert check(vision_models="efficientnet-lite0") == {"vision_models": ["efficientnet-lite0"]}
    assert check(frames=4) == {"frames": [4]}
    assert check(frames=[1, 16], tasks=["a"]) == {"frames": [1, 16], "tasks": ["a"]}


@pytest.mark.parametrize("params, words", [
    (dict(n_boostrap=10), ["no parameter 'n_boostrap'", "Did you mean 'n_bootstrap'?", "grid_csv"]),
    (dict(n_bootstrap="abc"), ["n_bootstrap must be an integer", "'abc'"]),
    (dict(n_bootstrap=2.5), ["n_bootstrap must be an integer"]),
    (dict(k=True), ["k must be an integer"]),
    (dict(null_control="yes"), ["null_control must be true or false"]),
    (dict(temperature="hot"), ["temperature must be a number"]),
    (dict(dataset_options=["n_clips"]), ["dataset_options must be a mapping"]),
    (dict(frames=["a"]), ["every element must be an integer", "'a'"]),
    (dict(frames=0), ["frames must be at least 1; got 0"]),
    (dict(frames=[1, -2]), ["frames must be at least 1; got -2"]),
    (dict(k=256), ["k = 256 needs more than 256 clips", "n_clips is 256"]),
    (dict(k=5, dataset_options={"n_clips": 5}), ["k = 5 needs more than 5 clips"]),
    (dict(dataset_options={"n_clips": -5}), ["n_clips must be at least 2"]),
    (dict(world=3), ["world must be a string"]),
])
def test_a_bad_parameter_is_named_with_what_to_pass(params, words):
    with pytest.raises(ParameterError) as err:
        check(**params)
    for w in words:
        assert w in str(err.value)


def test_integers_pass_for_floats_and_none_defaults_take_scalars():
    assert check(temperature=1, cluster="local", k=3) == {"temperature": 1, "cluster": "local", "k": 3}


def test_a_relative_path_is_read_from_the_caller_s_folder(tmp_path):
    (tmp_path / "grid.csv").write_text("model\n")
    assert check_parameters("c", {"grid_csv": "grid.csv"}, cwd=tmp_path, defaults=DEFAULTS) == \
        {"grid_csv": str((tmp_path / "grid.csv").resolve())}
    assert check_parameters("c", {"grid_csv": ""}, cwd=tmp_path, defaults=DEFAULTS) == {"grid_csv": ""}
    with pytest.raises(ParameterError, match=f"no file at {tmp_path / 'nope.csv'}.*folder the command ran in"):
        check_parameters("c", {"grid_csv": "nope.csv"}, cwd=tmp_path, defaults=DEFAULTS)


def test_every_chapter_declares_its_parameters_and_its_smoke_parameters_pass():
    for nb in book.NOTEBOOKS:
        defaults = declared(nb.name)
        assert defaults, nb.name
        assert check_parameters(nb.name, nb.smoke, defaults=defaults).keys() == nb.smoke.keys()
    assert check_parameters("test_time_scaling", {"forms": ["eq2_additive_power"]}) == \
        {"forms": ["eq2_additive_power"]}  # "all", one name or a list


def test_the_command_line_exits_2_with_one_line_before_any_run(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("VTALIGN_RESULTS_ROOT", str(tmp_path))
    for argv, words in ((["-p", "n_boostrap", "10"], "Did you mean 'n_bootstrap'"),
                        (["-p", "frames", "0"], "frames must be at least 1"),
                        (["-p", "grid_csv", "nope.csv"], "no file at")):
        assert main(["run", "--only", "test_time_scaling" if "frames" not in argv else "live_temporal", *argv]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1 and "Traceback" not in err
    assert not list(tmp_path.glob("*/run.json"))  # nothing ran


def test_a_failed_run_keeps_the_last_good_chapter_and_writes_the_failed_one_beside_it(tmp_path):
    out = tmp_path / "test_of_time.ipynb"
    results = tmp_path / "results"
    good = book.run_notebook("test_of_time", {"ks": [1]}, smoke=True, output_path=out, results_root=results)
    before = out.read_bytes()
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"model": ["m"], "k": [1], "not_alignment": [0.5]}).to_csv(bad, index=False)
    with pytest.raises(RuntimeError) as err:
        book.run_notebook("test_of_time", {"scores_csv": str(bad)}, output_path=out, results_root=results)
    assert out.read_bytes() == before  # the good chapter is untouched
    failed = tmp_path / "test_of_time.failed.ipynb"
    assert failed.is_file() and str(failed) in str(err.value) and "last good chapter is kept" in str(err.value)
    assert not (tmp_path / "test_of_time.running.ipynb").exists()
    assert json.loads((results / "test_of_time" / "run.json").read_text())["run_id"] == good["run_id"]
    book.run_notebook("test_of_time", {"ks": [1]}, smoke=True, output_path=out, results_root=results)
    assert not failed.exists()  # a good run clears the failed copy
