"""The null worlds: each removes one planted effect by construction and leaves everything else as it was."""
import numpy as np
import pytest

from vtalign.book import worlds
from vtalign.extract.datasets import load_dataset
from vtalign.extract.request import feature_request
from vtalign.extract.synthetic import TestOfTimeSpec, WorldSpec, world_scene

SMALL = {"n_clips": 6, "size": 32}


def test_scaling_null_shows_every_object_in_every_frame_and_one_caption_per_clip():
    planted = load_dataset("synthetic_world", **worlds.world_options("planted", "scaling", SMALL))
    null = load_dataset("synthetic_world", **worlds.world_options("null", "scaling", SMALL))
    for p, n in zip(planted.items, null.items):
        assert len(set(p.captions)) > 1 and len(set(n.captions)) == 1 and len(n.captions) == len(p.captions)
    spec = WorldSpec(**null.options)
    for i in range(len(null.items)):  # every object is on screen from the first frame to the last
        assert all((o["start"], o["length"]) == (0, spec.n_frames) for o in world_scene(spec, i)["objects"])
    # in the planted world some clips start on the bare background: the first frame misses objects
    starts = [len(np.unique(it.video.frames([0]).reshape(-1, 3), axis=0)) for it in planted.items]
    assert min(starts) == 1


def test_narration_null_changes_only_the_order_of_the_same_events():
    options = {**SMALL, "caption_style": "narrated"}
    planted = load_dataset("synthetic_world", **worlds.world_options("planted", "narration", options))
    null = load_dataset("synthetic_world", **worlds.world_options("null", "narration", options))
    phrases = lambda c: c[len("First "):-1].replace(" and finally ", ", then ").split(", then ")
    reordered = 0
    for p, n in zip(planted.items, null.items):
        for a, b in zip(p.captions, n.captions):
            assert sorted(phrases(a)) == sorted(phrases(b))
            reordered += phrases(a) != phrases(b)
    assert reordered > len(planted.items)
    # the clips are the same: one video extraction serves both worlds
    assert feature_request(planted, "efficientnet-lite0")["dataset_options"] == \
        feature_request(null, "efficientnet-lite0")["dataset_options"]
    assert feature_request(planted, "minilm-l6")["dataset_options"] != \
        feature_request(null, "minilm-l6")["dataset_options"]


def test_test_of_time_null_shows_both_circles_at_once_with_the_same_captions():
    planted = load_dataset("test_of_time", **worlds.world_options("planted", "test_of_time", {"size": 32}))
    null = load_dataset("test_of_time", **worlds.world_options("null", "test_of_time", {"size": 32}))
    assert [it.captions for it in planted.items] == [it.captions for it in null.items]
    spec = TestOfTimeSpec()
    clip = null.items[0].video.frames(range(spec.n_frames)).astype(int)
    lit = [t for t in range(spec.n_frames) if clip[t].any()]
    assert lit == list(range(spec.first_at, spec.first_at + spec.duration))
    colours = len(np.unique(clip[spec.first_at].reshape(-1, 3), axis=0))
    assert colours == 3  # black and both circles in one frame
    with pytest.raises(ValueError, match="events"):
        load_dataset("test_of_time", events="backwards")


def test_null_labels_keep_each_task_distribution_and_unknown_worlds_are_refused():
    labels = {"id": np.array(list("abcdef")), "t": np.array([0, 0, 1, 1, 2, 2]), "m": np.eye(6, dtype=int)}
    out = worlds.null_labels(labels, seed=3)
    assert out["id"].tolist() == list("abcdef")
    assert sorted(out["t"]) == sorted(labels["t"]) and not np.array_equal(out["t"], labels["t"])
    perm = out["m"].argmax(1)  # labels["m"] is the identity, so each row names the clip it came from
    assert sorted(perm) == list(range(6)) and np.array_equal(out["t"], labels["t"][perm])  # rows move together
    assert np.array_equal(worlds.null_labels(labels, 3)["t"], out["t"])  # seeded
    with pytest.raises(ValueError, match="world must be"):
        worlds.world_options("absent", "scaling")
    with pytest.raises(ValueError, match="Unknown check"):
        worlds.world_options("null", "colour")
    with pytest.raises(ValueError, match="annotators"):
        load_dataset("synthetic_world", **SMALL, annotators="some")
