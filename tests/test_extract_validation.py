"""No silent wrong answers in extraction (issue 20): every request is checked before any work, with one line
saying what is wrong and exit code 2, and no cache entry made; ``--check --repair`` never retries such a
request. Tiny models and a four-clip world keep every test here fast."""
import json

import numpy as np
import pytest

from vtalign.extract import cli
from vtalign.extract.cache import CHUNK_ITEMS, cache_entry, extract_features, feature_request, load_features
from vtalign.extract.cli import main as extract_main
from vtalign.extract.datasets import Item, VideoTextDataset, load_dataset

WORLD = ["--dataset", "synthetic_world", "--option", "n_clips=4", "--option", "size=32", "--option", "n_frames=8"]
OPTS = {"n_clips": 4, "size": 32, "n_frames": 8}


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


BAD = {  # arguments -> words the one-line error must hold
    "frames 0": (["--model", "tiny-vit", "--frames", "0"], "frames=0"),
    "frames -2": (["--model", "tiny-vit", "--frames", "4", "-2"], "frames=-2"),
    "captions 0": (["--model", "tiny-bert", "--captions", "0"], "captions=0"),
    "captions -1": (["--model", "tiny-bert", "--captions", "-1"], "captions=-1"),
    "captions 1000": (["--model", "tiny-bert", "--captions", "1000"], "the most any item has is 10"),
    "n_clips -5": (["--model", "tiny-bert", "--option", "n_clips=-5"], "n_clips must be at least 1"),
    "n_clips abc": (["--model", "tiny-bert", "--option", "n_clips=abc"], "n_clips of dataset synthetic_world takes an integer"),
    "nclips": (["--model", "tiny-bert", "--option", "nclips=8"], "Unknown option 'nclips' for dataset synthetic_world (did you mean 'n_clips'?); its options: annotators,"),
    "p_moving": (["--model", "tiny-vit", "--option", "p_moving=2"], "p_moving is a probability"),
    "visible": (["--model", "tiny-vit", "--option", "visible=3"], "visible of dataset synthetic_world takes a list of 2 integers"),
    "unknown model": (["--model", "tiny-vit", "--model", "no-such-org/no-such-model"], "Unknown model 'no-such-org/no-such-model'"),
    "clip length": (["--model", "tiny-videomae", "--frames", "6"], "not a multiple of the encoder's native clip length n_o=4"),
    "frames mode": (["--model", "tiny-videomae", "--mode", "frames"], "keeps per-frame features of image models"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_request_is_one_line_exit_2_and_no_cache_entry(tmp_path, capsys, case):
    args, words = BAD[case]
    argv = [*WORLD, *args, "--cache", str(tmp_path / "cache"), "--no-progress"]
    assert extract_main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert words in captured.err and "Traceback" not in captured.err
    assert "internet connection" not in captured.err
    assert _files(tmp_path / "cache") == []                       # nothing made, so nothing to --check or repair


def test_missing_videos_are_one_line_before_any_work(tmp_path, capsys):
    for dataset in ("kinetics400", "vatex"):                       # no video_root: at build time / at the model
        argv = ["--dataset", dataset, "--option", "n_items=3", "--model", "tiny-vit", "--cache", str(tmp_path)]
        assert extract_main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "video_root" in err and "--option video_root=" in err, err
    assert _files(tmp_path) == []


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="frames=0"):
        extract_main([*WORLD, "--model", "tiny-vit", "--frames", "0", "--cache", str(tmp_path), "--debug"])


def test_a_library_caller_gets_the_same_sentence(tmp_path, capsys):
    with pytest.raises(ValueError) as err:                          # RequestError is a ValueError
        extract_features("synthetic_world", "tiny-bert", captions=1000, dataset_options=OPTS, cache_dir=tmp_path,
                         progress=False)
    assert extract_main([*WORLD, "--model", "tiny-bert", "--captions", "1000", "--cache", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {err.value}\n"
    with pytest.raises(ValueError, match="Unknown option 'nclips'"):
        extract_features("synthetic_world", "tiny-bert", dataset_options={"nclips": 8}, cache_dir=tmp_path,
                         progress=False)
    with pytest.raises(ValueError, match="frames=0"):
        extract_features("synthetic_world", "tiny-vit", frames=0, dataset_options=OPTS, cache_dir=tmp_path,
                         progress=False)
    with pytest.raises(FileNotFoundError, match="Unknown model") as unknown:   # and a ValueError: both kinds
        extract_features("synthetic_world", "no-such-org/no-such-model", dataset_options=OPTS, cache_dir=tmp_path)
    assert isinstance(unknown.value, ValueError) and "\n" not in str(unknown.value)
    assert _files(tmp_path) == []


def test_captions_beyond_what_some_items_have_need_skip_failures(tmp_path):
    ds = VideoTextDataset("uneven", {}, [Item(f"v{i}", ["a one", "a two"][: 1 + i % 2]) for i in range(6)])
    with pytest.raises(ValueError, match=r"captions=2: 3 of 6 items of uneven have fewer captions .*--skip-failures"):
        extract_features(ds, "tiny-bert", captions=2, cache_dir=tmp_path, progress=False)
    assert _files(tmp_path) == []                                   # refused before any item was encoded
    feats, meta = extract_features(ds, "tiny-bert", captions=2, cache_dir=tmp_path, progress=False,
                                   skip_failures=True)
    assert meta["item_ids"] == ["v1", "v3", "v5"] and len(meta["failures"]) == 3 and feats.shape[0] == 3


def test_k_must_be_below_the_number_of_items_before_any_work(tmp_path, capsys):
    argv = [*WORLD, "--model", "tiny-vit", "--model", "tiny-bert", "--frames", "2", "--cluster", "local",
            "--sweeps", str(tmp_path / "sweeps.csv"), "--k", "4", "--cache", str(tmp_path / "cache")]
    assert extract_main(argv) == 2
    err = capsys.readouterr().err
    assert "k=4" in err and "N=4" in err and err.count("\n") == 1
    assert _files(tmp_path) == []


def _junk_entry(root, ds, model, **request):
    """An incomplete entry as a run of an unchecked request used to leave one: parts/request.json only."""
    req = feature_request(ds, model, **request)                     # builds the request without judging it
    entry = cache_entry(req, root)
    (entry / "parts").mkdir(parents=True)
    (entry / "parts" / "request.json").write_text(json.dumps({**req, "chunk_items": CHUNK_ITEMS}))
    return entry


def test_check_reports_junk_of_bad_requests_and_repair_never_retries_them(tmp_path, capsys, monkeypatch):
    ds = load_dataset("synthetic_world", **OPTS)
    junk = [_junk_entry(tmp_path, ds, "tiny-vit", frames=0), _junk_entry(tmp_path, ds, "tiny-bert", captions=1000)]
    resumable = _junk_entry(tmp_path, ds, "tiny-bert", captions=2)
    assert extract_main(["--check", "--cache", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.count("invalid ") == 2 and "frames=0" in out and "captions=1000" in out
    assert f"--drop {junk[0]}" in out and out.count("incomplete ") == 1
    retried = []
    real = cli.extract_features
    monkeypatch.setattr(cli, "extract_features", lambda **kw: retried.append(kw) or real(**kw))
    assert extract_main(["--check", "--repair", "--no-progress", "--cache", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert [r["captions"] for r in retried] == [2] and out.count("not repaired: its request fails validation") == 2
    assert (resumable / "meta.json").is_file() and all(not (j / "meta.json").exists() for j in junk)
    load_features(ds, "tiny-bert", captions=2, cache_dir=tmp_path)
