"""One request, one route (issue 20, item 6): a request is built and checked once and carried through the
command line, the front door and a Ray plan; a user's loaded model is not loaded again to be named; each
run returns what it did."""
import pickle

import numpy as np
import pytest

from vtalign.extract import request as request_mod
from vtalign.extract.cache import extract_request
from vtalign.extract.cli import main as extract_main
from vtalign.extract.datasets import Item, VideoTextDataset
from vtalign.extract.encoders import ENCODERS, load_encoder, register_encoder
from vtalign.extract.features import extract, extract_features
from vtalign.extract.request import build_request

OPTS = {"n_clips": 40, "size": 32, "n_frames": 8}


def _toy(n=40):
    return VideoTextDataset("toy", {"n": n}, [Item(f"v{i:03d}", [f"caption {i}", f"other {i}"]) for i in range(n)])


def _counting_checks(monkeypatch):
    calls = []
    real = request_mod.check_request
    monkeypatch.setattr(request_mod, "check_request", lambda *a, **kw: calls.append(a[1:4]) or real(*a, **kw))
    return calls


def test_the_command_line_checks_each_request_once(tmp_path, monkeypatch):
    calls = _counting_checks(monkeypatch)
    argv = ["--dataset", "synthetic_world", *[f"--option={k}={v}" for k, v in OPTS.items()], "--model", "tiny-bert",
            "--captions", "1", "2", "--cache", str(tmp_path), "--no-progress"]
    assert extract_main(argv) == 0
    assert sorted(c[2] for c in calls) == [1, 2]          # one check per request (it was two: CLI, then the run)


def test_a_request_built_to_read_is_checked_again_before_a_run_makes_its_entry(tmp_path):
    """load_features builds leniently (skip_failures, no videos needed); a run that makes the entry from it
    checks it as strictly as its own flags say."""
    ds = VideoTextDataset("short", {}, [Item("a", ["one", "two"]), Item("b", ["one"])])
    lenient = build_request(ds, "tiny-bert", captions=2, skip_failures=True, needs_videos=False)
    with pytest.raises(ValueError, match="fewer captions"):
        extract_request(lenient, cache_dir=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())                    # refused before any entry was made
    feats, meta, _ = extract_request(lenient, cache_dir=tmp_path, progress=False, skip_failures=True)
    assert meta["item_ids"] == ["a"] and feats.shape[0] == 1


def test_a_loaded_user_model_is_not_loaded_again_to_be_named(tmp_path):
    loads = []

    @register_encoder("counted-bert")
    def counted(device="cpu"):
        loads.append(1)
        enc = load_encoder("tiny-bert", device=device)
        enc.name, enc.revision = "counted-bert", "counted-1"
        return enc

    try:
        enc = counted()
        loads.clear()
        feats, meta = extract_features(_toy(), "counted-bert", captions=1, encoder=enc, cache_dir=tmp_path,
                                       progress=False)
        assert loads == [] and meta["request"]["model_revision"] == "counted-1"
        again, _, run = extract(_toy(), "counted-bert", captions=1, cache_dir=tmp_path, progress=False)
        assert run.reused_entry and np.array_equal(again, feats)    # named without it: the same entry
        assert loads == [1]                                          # loaded once, to be asked its facts
    finally:
        ENCODERS.pop("counted-bert", None)


def test_a_request_travels_without_its_dataset_and_rebuilds_it():
    r = build_request("synthetic_world", "tiny-vit", frames=2, dataset_options=OPTS)
    sent = pickle.loads(pickle.dumps(r))
    assert sent == r and hash(sent) == hash(r) and sent.key == r.key
    assert sent.built is None and len(pickle.dumps(r)) < 4000       # the items are not shipped
    assert sent.data.ids == r.data.ids                               # rebuilt from name and options


def test_each_run_returns_its_summary_and_nothing_is_left_in_module_state(tmp_path):
    import vtalign.extract.cache as cache

    first = extract(_toy(), "tiny-bert", captions=1, cache_dir=tmp_path, progress=False).summary
    second = extract(_toy(), "tiny-bert", captions=1, cache_dir=tmp_path, progress=False).summary
    assert first.computed == [0, 1] and not first.reused_entry
    assert second.reused_entry and second.computed == [] and first.computed == [0, 1]    # two records
    assert not hasattr(cache, "LAST_RUN") and not hasattr(cache, "CLUSTER")
    assert second.describe() == "reused from the cache"


def test_load_options_reach_the_loader_and_do_not_change_the_entry(tmp_path, monkeypatch):
    """--revision and --trust-remote-code (issue 23: options out of reach) travel with the request to where the
    model is loaded; for a local folder they change neither its identity nor its entry."""
    from test_content_identity import _save_model

    from vtalign.extract import encoders

    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "vtcache"))
    folder = _save_model(tmp_path / "mm", seed=0)
    seen = []
    real = encoders.load_hf_encoder
    monkeypatch.setattr(encoders, "load_hf_encoder", lambda name, **kw: seen.append(kw) or real(name, **kw))
    base = ["--dataset", "synthetic_world", *[f"--option={k}={v}" for k, v in OPTS.items()], "--model", str(folder),
            "--captions", "1", "--cache", str(tmp_path / "cache"), "--no-progress"]
    assert extract_main([*base, "--revision", "main", "--trust-remote-code"]) == 0
    assert seen and seen[0]["revision"] == "main" and seen[0]["trust_remote_code"] is True
    *_, run = extract("synthetic_world", str(folder), captions=1, dataset_options=OPTS, cache_dir=tmp_path / "cache",
                      progress=False)
    assert run.reused_entry                                          # the same entry without them
    r = build_request("synthetic_world", str(folder), captions=1, dataset_options=OPTS,
                      load_options={"revision": "main"})
    assert pickle.loads(pickle.dumps(r)).load_options == {"revision": "main"}    # to Ray workers too


def test_load_options_are_checked():
    with pytest.raises(ValueError, match="Unknown load option.*the load options are allow_download, revision"):
        build_request("synthetic_world", "tiny-bert", dataset_options=OPTS, load_options={"revison": "main"})
    with pytest.raises(ValueError, match="apply to Hugging Face ids and local folders; minilm-l6 is a registered"):
        build_request("synthetic_world", "minilm-l6", dataset_options=OPTS, load_options={"allow_download": True})
    with pytest.raises(ValueError, match="trust_remote_code='yes'.*takes a bool"):
        build_request("synthetic_world", "minilm-l6", dataset_options=OPTS, load_options={"trust_remote_code": "yes"})
