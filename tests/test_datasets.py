"""Datasets: the generators are deterministic and say what the paper says; the real files parse."""
import numpy as np
import pytest

from vtalign import paths
from vtalign.extract.datasets import load_dataset, reorder_negative
from vtalign.extract.synthetic import COLOURS, TestOfTimeSpec, WorldSpec, world_clip
from vtalign.extract.video import VideoFile

needs_data = pytest.mark.skipif(not paths.data_mirror_dirs(), reason="no local data mirror (../shared/data)")


def test_test_of_time_is_the_described_benchmark():
    ds = load_dataset("test_of_time")
    flipped = load_dataset("test_of_time", caption="flipped")
    assert len(ds) == 180 and len(set(ds.ids)) == 180 and ds.ids == flipped.ids
    assert len({it.captions[0] for it in ds.items}) == 180
    spec = TestOfTimeSpec()
    for it, neg in zip(ds.items, flipped.items):
        cap, bad = it.captions[0], neg.captions[0]
        assert cap.replace("before", "X").replace("after", "before").replace("X", "after") == bad
        assert it.video.num_frames() == spec.n_frames == 30
    # Every colour pair has its four captions: 2 prepositions x 2 colour orders.
    words = [it.captions[0].split() for it in ds.items]
    pairs = {}
    for w in words:
        pairs.setdefault(frozenset((w[1], w[6])), set()).add((w[1], w[4]))
    assert len(pairs) == 45 and all(len(v) == 4 for v in pairs.values())
    red, green = np.array(COLOURS["red"]), np.array(COLOURS["green"])
    for item_id, first, second in (("tot-red-before-green", red, green), ("tot-red-after-green", green, red)):
        clip = ds.items[ds.ids.index(item_id)].video.frames(range(30))
        has = lambda t, c: bool((clip[t] == c).all(-1).any())
        assert not has(spec.first_at - 1, first) and has(spec.first_at, first)
        assert not has(spec.second_at - 1, second) and has(spec.second_at, second)
        end = spec.first_at + spec.duration
        assert has(end - 1, first) and not has(end, first)      # equal durations: no order in a time-average
        assert (clip[0] == 0).all()                    # the black square before anything appears
    mean_clip = lambda i: ds.items[i].video.frames(range(30)).astype(int).sum(0)
    assert sorted(np.unique(mean_clip(0))) == sorted(np.unique(mean_clip(ds.ids.index("tot-green-before-red"))))
    again = load_dataset("test_of_time").items[5].video.frames(range(30))
    assert np.array_equal(ds.items[5].video.frames(range(30)), again)


def test_synthetic_world_is_deterministic_and_objects_are_brief():
    spec = WorldSpec(n_clips=6, n_frames=32, size=64)
    ds = load_dataset("synthetic_world", n_clips=6, size=64)
    assert len(ds) == 6 and all(len(it.captions) == 10 for it in ds.items)
    assert ds.items[2].captions == load_dataset("synthetic_world", n_clips=6, size=64).items[2].captions
    assert np.array_equal(world_clip(spec, 2), world_clip(spec, 2))
    clip = world_clip(spec, 0)
    background = clip[:, 0, 0]                          # corners stay background (objects are central)
    changed = (clip != background[:, None, None]).any(-1).any((1, 2))
    assert 0 < changed.sum() < 32                        # objects are visible only in their windows
    assert load_dataset("synthetic_world", n_clips=6, size=64, seed=1).items[0].captions != ds.items[0].captions
    for it in ds.items:
        bg = next(b for b in ("black", "gray", "dark blue", "brown", "light green", "sky blue") if b in it.captions[0])
        assert all(bg in c for c in it.captions)        # appearance captions always name the background
    motion = load_dataset("synthetic_world", n_clips=3, size=64, caption_style="motion")
    assert all("background" not in c for it in motion.items for c in it.captions)
    with pytest.raises(ValueError, match="visible"):
        load_dataset("synthetic_world", n_clips=2, n_frames=8, visible=[3, 9])


def test_reorder_negative_redraws_identity_shuffles():
    sents = ["a", "b"]
    for item in range(50):                              # two sentences: the only other order
        assert reorder_negative(sents, 0, str(item)) == ["b", "a"]
    neg = reorder_negative(["s1", "s2", "s3", "s4"], 7, "vid")
    assert sorted(neg) == ["s1", "s2", "s3", "s4"] and neg != ["s1", "s2", "s3", "s4"]
    assert neg == reorder_negative(["s1", "s2", "s3", "s4"], 7, "vid")
    with pytest.raises(ValueError, match="two distinct"):
        reorder_negative(["same", "same"], 0, "v")


@needs_data
def test_caption_datasets_parse():
    vatex = load_dataset("vatex")
    assert len(vatex) == 2810 and all(len(it.captions) == 5 for it in vatex.items)
    assert len(load_dataset("vatex", n_items=64).items) == 64
    pvd = load_dataset("pvd")
    assert len(pvd) == 1024 and all(len(it.captions) == 10 for it in pvd.items)
    assert all(len(it.captions) == 1 for it in load_dataset("pvd", caption_set="human").items)
    for source in ("activitynet", "youcook2"):
        pos = load_dataset("videocomp", source=source, n_items=50)
        neg = load_dataset("videocomp", source=source, text="negative", n_items=50)
        assert pos.ids == neg.ids
        for p, n in zip(pos.items, neg.items):
            assert p.captions != n.captions and sorted(p.captions[0].split()) == sorted(n.captions[0].split())


@needs_data
def test_real_clips_decode_to_the_frames_asked_for():
    """Random access (decord on mp4, PyAV on AVI) returns the same frames as sequential decoding."""
    ds = load_dataset("clips", captioned_only=False)
    assert len(ds) == 12 and any(i.endswith(".avi") for i in ds.ids)
    for it in ds.items:
        sequential = VideoFile(it.video.path, "pyav")
        n = sequential.num_frames()
        assert it.video.num_frames() == VideoFile(it.video.path, "decord").num_frames() == n > 0
        every = sequential.frames(range(n))
        idx = [0, n // 3, n // 2, n - 1]
        got = it.video.frames(idx)                    # the "auto" backend the pipeline uses
        assert got.dtype == np.uint8 and np.array_equal(got, every[idx]), it.id


@needs_data
def test_decord_seeking_in_avi_is_why_avi_goes_to_pyav():
    avi = next(it.video.path for it in load_dataset("clips", captioned_only=False).items if it.id.endswith(".avi"))
    n = VideoFile(avi, "pyav").num_frames()
    every = VideoFile(avi, "pyav").frames(range(n))
    seeked = VideoFile(avi, "decord").frames([0, n // 2, n - 1])
    if np.array_equal(seeked, every[[0, n // 2, n - 1]]):
        # Seen both ways on machines with the same pinned decord; PyAV for AVI is right either way, and
        # test_real_clips_decode_to_the_frames_asked_for checks the frames the pipeline gets.
        pytest.skip("decord seeks this AVI correctly on this machine; the AVI -> PyAV rule is then only cautious")
    assert not np.array_equal(seeked, every[[0, n // 2, n - 1]])
