"""The retrieval metric in the live downstream chapter: labelled sets' labels, the long-form rows that feed
Figure 2, and the path a user with Kinetics videos takes (constructed videos here, tiny random models)."""
import numpy as np
import pandas as pd
import pytest

from vtalign import paths
from vtalign.book import downstream
from vtalign.book.downstream import Representation, Variant

needs_data = pytest.mark.skipif(not paths.data_mirror_dirs(), reason="no local data mirror (../shared/data)")


def _rep(name, x):
    v = Variant(name, "first")
    return Representation(v.name, "video", x[:, None, :], [x.shape[1]], [f"i{j}" for j in range(len(x))], v)


def test_retrieval_scores_rows_and_their_null():
    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b", "c", "d"], 30)
    clustered = rng.normal(size=(120, 8)) + 4 * np.eye(8)[np.repeat(np.arange(4), 30)]
    reps = {r.name: r for r in (_rep("clustered", clustered), _rep("noise", rng.normal(size=(120, 8))))}
    scores = downstream.retrieval_scores(reps, {"action": y}, seed=1)
    assert set(scores.probe) == {"retrieval"} and (scores.k == 8).all() and (scores.temperature == 0.07).all()
    by = scores.set_index("model")
    assert by.loc["clustered", "score"] > 0.95 and abs(by.loc["clustered", "chance"] - 0.25) < 0.1
    assert abs(by.loc["noise", "score"] - 0.25) < 0.12 and abs(by.loc["noise", "chance"] - 0.25) < 0.12
    alignment = pd.DataFrame(dict(vision=list(reps), model_type="image_on_image", text="t", score=[0.3, 0.1]))
    points = downstream.figure2_points(alignment, scores, probe="retrieval")
    assert points.semantic_score.tolist() == [by.loc["clustered", "score"], by.loc["noise", "score"]]
    with pytest.raises(ValueError, match="describe 3 items"):
        downstream.retrieval_scores(reps, {"action": y[:3]})


def test_retrieval_tasks_of_the_world():
    assert downstream.retrieval_tasks() == ["background", "first_shape"]
    assert downstream.retrieval_tasks(["first_motion"]) == ["first_motion"]
    with pytest.raises(ValueError, match="single-label class tasks"):
        downstream.retrieval_tasks(["colours_present"])


@needs_data
def test_dataset_labels_refuse_unlabelled_and_all_distinct_sets():
    with pytest.raises(ValueError, match="vatex has no class label"):
        downstream.dataset_labels("vatex", {"n_items": 4})
    with pytest.raises(ValueError, match="class of its own"):
        downstream.dataset_labels("clips")              # the 12 clips: every label is its own


def _write_avi(path, n_frames, colour, seed, size=32):
    import av
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w", format="avi") as out:
        stream = out.add_stream("rawvideo", rate=10)
        stream.width, stream.height, stream.pix_fmt = size, size, "bgr24"
        for _ in range(n_frames):
            img = np.clip(np.array(colour)[None, None] + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@needs_data
def test_a_kinetics_test_list_is_retrieved_end_to_end(tmp_path, monkeypatch):
    """The user's path: a list file and a folder of videos -> features -> retrieval accuracy. Class 0 videos are
    reddish, class 1 bluish: a colour-sensitive encoder retrieves them; the same videos with labels that ignore
    the colour are the control."""
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "k400"
    root.mkdir()
    lines, blind = [], []
    for i in range(16):
        _write_avi(root / f"v{i:02d}.avi", 2, (200, 30, 30) if i % 2 else (30, 30, 200), seed=i)
        lines.append(f"v{i:02d}.avi {i % 2}")
        blind.append(f"v{i:02d}.avi {(i // 2) % 2}")                # labels unrelated to the colour
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "blind.txt").write_text("\n".join(blind) + "\n")
    variants = downstream.vision_variants(["tiny-vit"], ["first"])
    result = {}
    for name in ("list", "blind"):
        options = {"video_root": str(root), "list_file": str(tmp_path / f"{name}.txt")}
        reps = downstream.representations("kinetics400", variants, ["tiny-bert"], cached_frames=1,
                                          dataset_options=options, progress=False)
        labels = downstream.dataset_labels("kinetics400", options, next(iter(reps.values())).item_ids)
        assert set(labels) == {"abseiling", "air drumming"}
        result[name] = downstream.retrieval_scores(reps, {"kinetics400": labels}).iloc[0]
    assert result["list"].score == 1.0
    assert result["blind"].score < 0.75 and result["list"].chance < 0.75


def test_retrieval_per_task_against_each_variants_chance_and_a_margin():
    rows = pd.DataFrame(dict(vision=["v1", "v2", "v3"] * 2, task=["bg"] * 3 + ["shape"] * 3,
                             score=[1.0, 0.9, 0.95, 0.33, 0.26, 0.17], chance=[0.18, 0.16, 0.17, 0.25, 0.24, 0.25]))
    marked = downstream.retrieval_margins(rows, n_items=256)
    # 3 variants: z = 2.394 (two-sided 0.05 / 3); at chance 0.25 over 256 queries the margin is 0.0648
    assert marked.margin.iloc[3] == pytest.approx(2.394 * np.sqrt(0.25 * 0.75 / 256), abs=1e-4)
    by = downstream.retrieval_by_task(marked).set_index("task")
    assert by.loc["bg", "above"] == 3 and by.loc["bg", "below"] == 0
    assert by.loc["shape", "above"] == 1 and by.loc["shape", "below"] == 1   # 0.33 beats 0.315; 0.17 < 0.185
    assert by.loc["shape", "best_vision"] == "v1" and by.loc["shape", "chance_low"] == 0.24
    with pytest.raises(ValueError, match="n_items"):
        downstream.retrieval_margins(rows, n_items=0)
