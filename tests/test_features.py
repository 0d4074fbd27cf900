"""Cached extraction: reuse, resume after interruption, recompute on mismatch, decode failures, CLI."""
import json

import numpy as np
import pytest

from vtalign.extract.cache import pair_features
from vtalign.extract.cli import main as extract_main
from vtalign.extract.datasets import Item, VideoTextDataset, load_dataset
from vtalign.extract.encoders import load_encoder
from vtalign.extract.errors import ExtractionError
from vtalign.extract.features import extract_features, load_features
from vtalign.extract.parts import CHUNK_ITEMS
from vtalign.extract.request import cache_entry, feature_request
from vtalign.extract.sampling import caption_text
from vtalign.extract.video import GeneratedVideo, VideoFile


class CountingEncoder:
    """Wraps an encoder; counts encode calls; optionally raises on call ``fail_at`` (an interruption)."""

    def __init__(self, enc, fail_at=None):
        self.enc, self.calls, self.fail_at = enc, 0, fail_at

    def __getattr__(self, name):
        return getattr(self.enc, name)

    def encode(self, batch):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt("simulated interruption")
        return self.enc.encode(batch)


def _text_ds(n=3 * CHUNK_ITEMS + 5):
    items = [Item(f"v{i:03d}", [f"caption {i} a", f"caption {i} b"]) for i in range(n)]
    return VideoTextDataset("toy", {"n": n}, items)


def test_cache_round_trip_and_rows_follow_item_order(tmp_path):
    ds = _text_ds()
    feats, meta = extract_features(ds, "tiny-bert", captions=2, cache_dir=tmp_path, progress=False)
    assert feats.shape == (len(ds), 3, 32) and meta["item_ids"] == ds.ids and meta["failures"] == []
    again, meta2 = load_features(ds, "tiny-bert", captions=2, cache_dir=tmp_path)
    assert np.array_equal(again, feats) and meta2 == meta
    enc = load_encoder("tiny-bert")                   # row i is item i's chosen captions, encoded
    direct = enc.encode([caption_text(ds.items[7].captions, 2, 0, ds.items[7].id)])
    np.testing.assert_allclose(feats[7], direct[0], rtol=1e-4, atol=1e-6)
    assert meta["request"]["captions"] == 2 and meta["request"]["seed"] == 0 and meta["encoder"]["pooling"] == "mean"
    with pytest.raises(FileNotFoundError, match="python -m vtalign.extract"):
        load_features(ds, "tiny-bert", captions=1, cache_dir=tmp_path)


def test_interrupted_run_resumes_from_written_parts(tmp_path):
    ds = _text_ds()
    chunks = -(-len(ds) // CHUNK_ITEMS)
    first = CountingEncoder(load_encoder("tiny-bert"), fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        extract_features(ds, "tiny-bert", captions=1, cache_dir=tmp_path, progress=False, encoder=first,
                         batch_size=CHUNK_ITEMS)
    entry = cache_entry(feature_request(ds, "tiny-bert", captions=1), tmp_path)
    assert not (entry / "meta.json").exists() and len(list((entry / "parts").glob("part-*.npz"))) == 2
    second = CountingEncoder(load_encoder("tiny-bert"))
    feats, meta = extract_features(ds, "tiny-bert", captions=1, cache_dir=tmp_path, progress=False,
                                   encoder=second, batch_size=CHUNK_ITEMS)
    assert second.calls == chunks - 2                 # only the chunks not yet written
    fresh, _ = extract_features(ds, "tiny-bert", captions=1, cache_dir=tmp_path / "fresh", progress=False)
    np.testing.assert_allclose(feats, fresh, rtol=1e-5, atol=1e-6)
    assert meta["item_ids"] == ds.ids and not (entry / "parts").exists()


def test_mismatched_entry_is_recomputed_not_reused(tmp_path, capsys):
    ds = _text_ds(10)
    feats, meta = extract_features(ds, "tiny-bert", captions=1, cache_dir=tmp_path, progress=False)
    entry = cache_entry(meta["request"], tmp_path)
    meta["request"]["library_version"] = "0.0.0-old"   # as if written by another version
    (entry / "meta.json").write_text(json.dumps(meta))
    counter = CountingEncoder(load_encoder("tiny-bert"))
    again, meta2 = extract_features(ds, "tiny-bert", captions=1, cache_dir=tmp_path, progress=False, encoder=counter)
    assert counter.calls > 0 and "differs in ['library_version']" in capsys.readouterr().out
    assert meta2["request"]["library_version"] != "0.0.0-old"
    other = VideoTextDataset("toy", {"n": 10}, list(reversed(ds.items)))   # same name/options, other items order
    assert feature_request(other, "tiny-bert", captions=1)["items_digest"] != meta2["request"]["items_digest"]
    with pytest.raises(FileNotFoundError):
        load_features(other, "tiny-bert", captions=1, cache_dir=tmp_path)


def _video_ds(tmp_path):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    good = load_dataset("test_of_time").items[:4]
    items = [good[0], Item("broken", ["x"], VideoFile(bad)), good[1], Item("missing", ["y"],
             VideoFile(tmp_path / "nope.mp4")), *good[2:]]
    return VideoTextDataset("mixed", {}, items)


def test_decode_failures_are_reported_and_never_dropped_silently(tmp_path):
    ds = _video_ds(tmp_path)
    with pytest.raises(ExtractionError) as err:
        extract_features(ds, "tiny-dinov2", frames=2, cache_dir=tmp_path / "c", progress=False)
    text = str(err.value)
    assert "2 item(s) failed" in text and "corrupt.mp4" in text and "nope.mp4" in text and "no such file" in text
    feats, meta = extract_features(ds, "tiny-dinov2", frames=2, cache_dir=tmp_path / "c", progress=False,
                                   skip_failures=True)
    assert feats.shape[0] == 4 and [f["item"] for f in meta["failures"]] == ["broken", "missing"]
    assert meta["item_ids"] == [i for i in ds.ids if i not in ("broken", "missing")]
    tf, tmeta = extract_features(ds, "tiny-bert", captions=1, cache_dir=tmp_path / "c", progress=False)
    v, t, ids = pair_features(feats, meta, tf, tmeta)
    assert ids == meta["item_ids"] and np.array_equal(t, tf[[ds.ids.index(i) for i in ids]])


def test_image_and_video_models_sample_as_described(tmp_path):
    clip = (np.arange(30)[:, None, None, None] * 8 * np.ones((1, 16, 16, 3))).astype(np.uint8)  # frame t is grey 8t
    seen = []

    class Recorder:
        name, modality, native_frames, layer_dims = "rec", "image", None, [1]

        def encode(self, batch):
            seen.append(np.asarray(batch)[..., 0, 0, 0].copy())
            return np.asarray(batch)[..., 0, 0, 0].reshape(len(batch), 1, -1).mean(-1, keepdims=True).astype(np.float32)

        def describe(self):
            return {"model": "rec"}

    ds = VideoTextDataset("ramp", {}, [Item("a", ["c"], GeneratedVideo(lambda: clip, 30, "ramp"))])
    feats, _ = extract_features(ds, "tiny-dinov2", frames=4, cache_dir=tmp_path, progress=False, encoder=Recorder())
    assert seen[-1].tolist() == [0, 80, 152, 232]             # positions 0, 9.67, 19.33, 29 -> frames 0, 10, 19, 29
    assert feats[0, 0, 0] == pytest.approx(np.mean([0, 80, 152, 232]))   # averaged over time
    extract_features(ds, "tiny-dinov2", frames=4, mode="image", cache_dir=tmp_path, progress=False, encoder=Recorder())
    assert seen[-1].tolist() == [0]                           # image model on image: the first frame
    Recorder.modality, Recorder.native_frames = "video", 2
    extract_features(ds, "tiny-videomae", frames=4, cache_dir=tmp_path, progress=False, encoder=Recorder())
    assert seen[-1].tolist() == [[0, 80], [152, 232]]         # two consecutive 2-frame sub-clips


def test_cli_exit_status_and_skip_failures(tmp_path, capsys):
    args = ["--dataset", "test_of_time", "--model", "tiny-vit", "--model", "tiny-bert", "--frames", "1", "4",
            "--cache", str(tmp_path), "--no-progress"]
    assert extract_main(args) == 0
    out = capsys.readouterr().out
    assert out.count("features (180, 3, 32)") == 3 and "captions=1" in out
    assert out.count("(computed 6 part(s), read 0") == 3                 # 180 items: 6 parts of 32, each computed
    assert extract_main(args) == 0
    assert capsys.readouterr().out.count("(reused from the cache)") == 3   # the summary says what was reused
    assert extract_main(["--dataset", "vatex", "--model", "tiny-vit", "--option", "n_items=3", "--frames", "2",
                         "--cache", str(tmp_path), "--no-progress"]) == 2       # no videos: refused before any work
    err = capsys.readouterr().err
    assert "[vatex] was built without videos" in err and "video_root" in err and err.count("\n") == 1
    assert extract_main(["--dataset", "nonesuch", "--model", "tiny-vit"]) == 2   # one line, the known names
    assert "Unknown dataset 'nonesuch'; known: activitynet" in capsys.readouterr().err


def test_frame_count_that_does_not_fit_a_video_model_is_a_usage_error(tmp_path):
    ds = VideoTextDataset("tot", {}, load_dataset("test_of_time").items[:3])
    with pytest.raises(ValueError, match="not a multiple"):       # tiny-videomae: n_o = 4
        extract_features(ds, "tiny-videomae", frames=6, cache_dir=tmp_path, progress=False)


def test_many_failures_are_summarised_not_printed_one_by_one():
    failures = [{"item": f"v{i}", "source": "x.mp4", "error": "broken"} for i in range(50)]
    err = ExtractionError(failures, __import__("pathlib").Path("/tmp"))
    assert "50 item(s) failed" in str(err) and "... and 30 more" in str(err) and len(err.failures) == 50
