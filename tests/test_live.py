"""The live measurements agree with the alignment core called directly, and order sensitivity
gives the hand-computed answers."""
import numpy as np
import pytest

import vtalign as va
from vtalign import paths
from vtalign.book import live
from vtalign.extract.datasets import load_dataset

OPTS = {"n_clips": 24, "size": 32, "n_frames": 8, "visible": [2, 4]}


def test_scaling_grid_cells_equal_a_direct_layer_sweep():
    grid = live.scaling_grid("synthetic_world", "tiny-vit", "tiny-bert", [1, 4], [1, 3], k=3, dataset_options=OPTS)
    assert len(grid) == 4 and set(grid.n_items) == {24}
    ds = load_dataset("synthetic_world", **OPTS)
    fv, mv = va.extract_features(ds, "tiny-vit", frames=4, progress=False)
    ft, mt = va.extract_features(ds, "tiny-bert", captions=3, progress=False)
    sweep = va.layer_sweep(live.prepared(fv, mv), live.prepared(ft, mt), k=3)
    cell = grid[(grid.n_frames == 4) & (grid.n_captions == 3)].iloc[0]
    assert cell.score == pytest.approx(sweep.best[2], abs=1e-12) and (cell.layer_x, cell.layer_y) == sweep.best[:2]
    same, items = live.scaling_grid("synthetic_world", "tiny-vit", "tiny-bert", [1, 4], [1, 3], k=3,
                                    dataset_options=OPTS, return_items=True)
    assert same.equals(grid) and items.shape == (4, 24)
    assert np.allclose(items.mean(axis=1), grid.score, atol=1e-12)  # each cell's items average to its score
    assert np.array_equal(items[grid.index[(grid.n_frames == 4) & (grid.n_captions == 3)][0]],
                          sweep.overlaps[sweep.best[0], sweep.best[1]] / 3)


def test_scaling_grid_extracts_no_more_frames_than_it_asks_for(monkeypatch):
    """frames [1, 2, 4] read a 4-frame per-frame entry, not the default 16 (the same cells either way)."""
    asked = []
    real = live.extract_features

    def spy(ds, model, **kw):
        asked.append((model, kw.get("frames"), kw.get("mode", "video")))
        return real(ds, model, **kw)

    monkeypatch.setattr(live, "extract_features", spy)
    grid = live.scaling_grid("synthetic_world", "tiny-vit", "tiny-bert", [1, 2, 4], [1], k=3, dataset_options=OPTS)
    vision = {a for a in asked if a[0] == "tiny-vit"}
    assert vision == {("tiny-vit", 4, "frames")}
    direct = live.scaling_grid("synthetic_world", "tiny-vit", "tiny-bert", [1, 2, 4], [1], k=3,
                               dataset_options=OPTS, cached_frames=None)
    assert np.array_equal(grid.score, direct.score)  # pooling the entry is the direct extraction


def test_order_sensitivity_known_answers():
    ids = ["tot-red-before-green", "tot-green-after-red", "tot-green-before-red", "tot-red-after-green",
           "tot-blue-before-white"]
    # events: (red, green), (red, green), (green, red), (green, red), (blue, white)
    keys = ["same_pair", "same_order", "n_same_pair", "both_swapped", "preposition_swap", "colour_swap"]
    pick = lambda r: [r[k] for k in keys]
    same_event = np.array([[1], [0], [3], [2], [0]])          # 4 of 5 same pair; all 4 same order
    assert pick(live.order_sensitivity(same_event, ids)) == [0.8, 1.0, 4, 1.0, 0.0, 0.0]
    reversed_event = np.array([[3], [2], [1], [0], [1]])      # the one-word swap: always the reverse event
    assert pick(live.order_sensitivity(reversed_event, ids)) == [0.8, 0.0, 4, 0.0, 1.0, 0.0]
    same_words = np.array([[2], [3], [0], [1], [0]])          # the colour swap: the same words, the reverse event
    result = live.order_sensitivity(same_words, ids)
    assert pick(result) == [0.8, 0.0, 4, 0.0, 0.0, 1.0]
    # 95% Wilson interval of 0 of 4 (hand-computed): [0, 0.4899]
    assert (result["same_order_low"], result["same_order_high"]) == pytest.approx((0.0, 0.48990), abs=1e-5)


def test_temporal_probe_tables():
    scores, order = live.temporal_probe("tiny-vit", "tiny-bert", frames=4, ks=(1, 3), dataset_options={"size": 32})
    assert list(scores.k) == [1, 3] and (scores.n_items == 180).all()
    assert scores.chance.tolist() == pytest.approx([1 / 179, 3 / 179])
    assert set(order.which) == {"aligned layer", "most order-aware layer"} and len(order) == 4
    assert ((order.same_pair >= 0) & (order.same_pair <= 1)).all()


def test_the_first_frame_control_sees_one_black_frame_per_clip():
    """Live Test of Time's first-frame control (an image model on frame 0, which is black in every clip): the
    video side holds no information, so alignment sits at chance. Run here on a tiny model, because the
    chapter's smoke run leaves it out (180 identical rows tie everywhere: the slow, exact path)."""
    scores, _ = live.temporal_probe("tiny-vit", "tiny-bert", frames=4, ks=(1,), mode="image",
                                    dataset_options={"size": 32})
    assert (scores["mode"] == "image").all() and (scores.n_items == 180).all()
    assert scores.aligned.iloc[0] <= 3 / 179       # one black frame per clip: nothing to align with


@pytest.mark.skipif(not paths.data_mirror_dirs(), reason="no local data mirror (../shared/data)")
def test_label_datasets_read_a_user_video_root(tmp_path):
    clip = next(it.video.path for it in load_dataset("clips").items)
    for folder in ("abseiling", "air drumming"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "clip1.mp4").symlink_to(clip)
    ds = load_dataset("kinetics400", video_root=tmp_path)
    assert ds.ids == ["abseiling/clip1", "air drumming/clip1"]
    assert ds.items[1].captions == ["a video of air drumming"] and ds.items[0].video.num_frames() > 0
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "x.webm").symlink_to(clip)
    ssv2 = load_dataset("ssv2", video_root=tmp_path)
    assert len(ssv2) == 1 and ssv2.items[0].captions[0].startswith("Approaching")
    with pytest.raises(FileNotFoundError, match="no videos found"):
        load_dataset("ssv2", video_root=tmp_path / "abseiling")
