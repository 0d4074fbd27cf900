"""The pipeline behind the live Figures 2, 4, 6 and 10: narrated captions and their reorders, task labels,
per-frame caches, caption-independent video keys, and the downstream and reordering tables on tiny configs."""
import numpy as np
import pandas as pd
import pytest

import vtalign as va
from vtalign.book import downstream, reordering
from vtalign.extract.datasets import load_dataset
from vtalign.extract.request import feature_request
from vtalign.extract.synthetic import WORLD_TASKS, WorldSpec, narration, world_labels, world_scene

OPTS = {"n_clips": 24, "size": 32, "n_frames": 8, "visible": [2, 4]}


def test_reordered_narration_tells_the_same_events_in_another_order():
    spec = WorldSpec(n_clips=20, caption_style="narrated")
    negative = WorldSpec(n_clips=20, caption_style="narrated", reorder_seed=3)
    for i in range(20):
        pos, neg = world_scene(spec, i)["captions"], world_scene(negative, i)["captions"]
        assert world_scene(negative, i)["captions"] == neg                      # deterministic
        for p, n in zip(pos, neg):
            assert p != n and sorted(p.replace(",", "").split()) == sorted(n.replace(",", "").split())
            assert p.startswith("First ") and n.startswith("First ") and " and finally " in n
        objects = world_scene(spec, i)["objects"]
        assert [o["start"] for o in objects] == sorted(o["start"] for o in objects)  # narrated in order
    with pytest.raises(ValueError, match="narrated"):
        world_scene(WorldSpec(reorder_seed=0), 0)
    assert narration(["a", "b", "c"]) == "First a, then b and finally c."


def test_world_labels_follow_the_scene_metadata():
    spec = WorldSpec(n_clips=30)
    labels = world_labels(spec)
    assert set(WORLD_TASKS) <= set(labels) and len(labels["id"]) == 30
    for i in (0, 7, 29):
        scene = world_scene(spec, i)
        first, last = scene["objects"][0], scene["objects"][-1]
        assert labels["background"][i] == scene["background"] and labels["first_shape"][i] == first["shape"]
        assert labels["first_left_of_last"][i] == int(first["x"] < last["x"])
        assert labels["object_count"][i] == len(scene["objects"])
        assert labels["colours_present"][i].sum() == len({o["colour"] for o in scene["objects"]})
    assert np.array_equal(downstream.world_task_labels(list(labels["id"][[3, 1]]), {"n_clips": 30})["background"],
                          labels["background"][[3, 1]])


def test_video_cache_key_ignores_caption_only_options_and_text_key_does_not():
    a = load_dataset("synthetic_world", **OPTS)
    b = load_dataset("synthetic_world", **OPTS, caption_style="narrated", reorder_seed=1, n_captions=3)
    assert feature_request(a, "tiny-vit", 4) == feature_request(b, "tiny-vit", 4)
    assert feature_request(a, "tiny-bert", captions=1) != feature_request(b, "tiny-bert", captions=1)
    c = load_dataset("synthetic_world", **{**OPTS, "seed": 1})                # pixels change: the key changes
    assert feature_request(a, "tiny-vit", 4) != feature_request(c, "tiny-vit", 4)


def test_per_frame_entry_pools_to_the_frame_average(tmp_path):
    ds = load_dataset("synthetic_world", **OPTS)
    per_frame, meta = va.extract_features(ds, "tiny-vit", frames=4, mode="frames", cache_dir=tmp_path, progress=False)
    averaged, _ = va.extract_features(ds, "tiny-vit", frames=4, mode="video", cache_dir=tmp_path, progress=False)
    first, _ = va.extract_features(ds, "tiny-vit", frames=1, mode="image", cache_dir=tmp_path, progress=False)
    assert per_frame.shape[:2] == (24, 4) and per_frame.shape[2:] == averaged.shape[1:]
    assert np.allclose(va.pool_frames(per_frame, meta["layer_dims"], "mean:4")[0], averaged, atol=1e-5)
    assert np.allclose(va.pool_frames(per_frame, meta["layer_dims"], "first")[0], first, atol=1e-5)
    with pytest.raises(ValueError, match="image models"):
        va.extract_features(ds, "tiny-videomae", frames=4, mode="frames", cache_dir=tmp_path, progress=False)


def test_downstream_tables_on_tiny_configs():
    variants = downstream.vision_variants(["tiny-vit", "tiny-videomae"], ["first", "mean:4", "segments:2"])
    assert [v.name for v in variants] == ["tiny-vit | first", "tiny-vit | mean:4", "tiny-vit | segments:2",
                                          "tiny-videomae | clips"]
    reps = downstream.representations("synthetic_world", variants, ["tiny-bert"], cached_frames=4, dataset_options=OPTS,
                                      progress=False)
    neighbours = downstream.neighbour_lists(reps, k=3)
    alignment = downstream.alignment_table(reps, neighbours)
    assert len(alignment) == 4 and alignment.score.between(0, 1).all()
    direct = va.layer_sweep(va.prepare_features(reps["tiny-vit | first"].features),
                            va.prepare_features(reps["tiny-bert"].features), k=3)
    assert alignment.set_index("vision").loc["tiny-vit | first", "score"] == pytest.approx(direct.best[2], abs=1e-12)
    matrix = downstream.cross_model_matrix(neighbours)
    assert np.allclose(matrix.values, matrix.values.T) and (np.diag(matrix.values) == 1).all()
    assert matrix.loc["tiny-bert", "tiny-vit | first"] == pytest.approx(direct.best[2])
    labels = downstream.world_task_labels(reps["tiny-bert"].item_ids, OPTS)
    scores = downstream.downstream_scores(reps, alignment, labels, tasks=["background", "first_position"], n_folds=3)
    assert set(scores.probe) == {"linear", "knn"} and set(scores.layer_choice) == {"last", "aligned"}
    points = downstream.figure2_points(alignment, scores)
    assert len(points) == 4 and points.semantic_score.notna().all()


def test_user_downstream_csv_replaces_the_probes(tmp_path):
    variants = downstream.vision_variants(["tiny-vit"], ["first", "mean:4", "segments:2"])
    csv = tmp_path / "k400.csv"
    pd.DataFrame({"model": ["tiny-vit | first", "tiny-vit | mean:4", "tiny-vit | segments:2"],
                  "k400": [0.2, 0.5, 0.4]}).to_csv(csv, index=False)
    scores = downstream.downstream_from_csv(csv, variants)
    assert scores.score.tolist() == [0.2, 0.5, 0.4] and (scores.probe == "given").all()
    with pytest.raises(ValueError, match="no row"):
        downstream.downstream_from_csv(csv, downstream.vision_variants(["tiny-dinov2"], ["first"]))


def test_negative_table_on_tiny_configs_is_paired_and_seeded():
    a = reordering.negative_table(OPTS, "tiny-vit", ["mean:4", "segments:2"], ["tiny-bert"], cached_frames=4, k=3,
                                  n_boot=200, n_permutations=200, progress=False)
    b = reordering.negative_table(OPTS, "tiny-vit", ["mean:4", "segments:2"], ["tiny-bert"], cached_frames=4, k=3,
                                  n_boot=200, n_permutations=200, progress=False)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.vision) == ["tiny-vit | mean:4", "tiny-vit | segments:2"]
    assert (a.difference == a.positive - a.negative).all() or np.allclose(a.difference, a.positive - a.negative)
    assert ((a.null_low <= 0) & (a.null_high >= 0)).all()


def test_frame_counts_pool_from_the_per_frame_entry_only_when_it_holds_their_frames(tmp_path, monkeypatch):
    from vtalign.book import live
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path))
    ds = load_dataset("synthetic_world", **OPTS)                        # 8 frames per clip
    pooled, meta = live.video_features(ds, "tiny-vit", 2, cached_frames=4)   # frames 0, 7 are among 0, 2, 5, 7
    direct, _ = va.extract_features(ds, "tiny-vit", frames=2, progress=False)
    assert meta["request"]["pooled_from_frames"] == 4 and np.allclose(pooled, direct, atol=1e-5)
    _, meta3 = live.video_features(ds, "tiny-vit", 3, cached_frames=4)     # frames 0, 4, 7: 4 is not cached
    assert "pooled_from_frames" not in meta3["request"] and meta3["request"]["frames"] == 3
    _, text_meta = live.video_features(ds, "tiny-videomae", 4, cached_frames=4)  # video models: their own clips
    assert text_meta["request"]["mode"] == "clips"


def test_duplicate_share_counts_items_identical_to_another():
    f = np.zeros((5, 2, 3), np.float32)
    f[1, 0, 0] = f[3, 0, 0] = 1.0              # items 1 and 3 equal; 0 and 4 equal (zero); 2 unique
    f[2, 1, 1] = 5.0
    rep = downstream.Representation("x", "video", f, [3, 3], list("abcde"))
    assert downstream.duplicate_share(rep) == 0.8
    f[4, 1, 2] = -0.0 + 1e-7                    # one bit of difference is enough to be distinct
    assert downstream.duplicate_share(rep) == 0.4
