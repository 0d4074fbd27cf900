"""The paper's pipeline (``make paper``, issue 23 item 6) and "score your own encoder" (item 7).

Known answers of the plans (jobs per setting, Figure 3's grid, every loader of the paper kept), the refusal of
the paper plan without videos or weights, the miniature end to end (every table, a failing job recorded, a
rerun reusing the cache with the same numbers, one alignment equal to a direct sweep of the cached features)
and the own-encoder comparison's caveats (a tiny folder on the synthetic world: not comparable; the paper's
setting: comparable).
"""
import numpy as np
import pandas as pd
import pytest
import torch
import transformers

from vtalign.alignment import layer_sweep, prepare_features
from vtalign.extract import extract_features
from vtalign.extract.cli import main
from vtalign.extract.paper_models import paper_plan, read_models
from vtalign.extract.paper_run import (
    MINIATURE,
    PaperRunRefused,
    compare_published,
    fig2_frames,
    missing_for_paper,
    paper_grid,
    paper_jobs,
    run_paper,
    score_caveats,
)
from vtalign.extract.validation import build_dataset


def test_paper_plan_jobs_and_grid():
    assert paper_grid() == ((1, 2, 4, 8, 12, 16, 32, 48), (1, 2, 4, 10))
    jobs = paper_jobs("paper")
    assert len(jobs) == 121 and jobs.side.value_counts().to_dict() == {"vision": 91, "language": 30}
    assert (jobs.loadable == "yes").sum() == (paper_plan().loadable == "yes").sum()  # the dry run's count
    assert set(jobs[jobs.setting == "image"].frames) == {"1"}
    assert set(jobs[jobs.setting.isin(["video", "image-on-video"])].frames) == {"1 2 4 8 12 16 32 48"}
    assert set(jobs[jobs.side == "language"].captions) == {"1 2 4 10"}
    assert (jobs[jobs.loadable == "no"].why_not != "").all()


def test_miniature_plan_one_tiny_config_per_loader():
    jobs = paper_jobs("miniature")
    counts = jobs[jobs.loadable == "yes"].groupby("setting").size().to_dict()
    assert counts == {"image": 3, "image-on-video": 3, "video": 4, "text": 6}
    # every loader of the paper's rows is a job or a row saying why not: none dropped
    assert set(jobs.family_loader) == set(read_models().family_loader)
    skipped = jobs[jobs.loadable == "no"]
    assert sorted(skipped.family_loader) == ["", "clip", "gemma3", "timm_wrapper", "videomae_v2"]
    assert (skipped.why_not != "").all()
    assert set(jobs[jobs.setting == "video"].frames) == {" ".join(map(str, MINIATURE["frames"]))}


def test_fig2_frames_rule():
    grid = paper_grid()[0]
    assert [fig2_frames("image", "1", grid), fig2_frames("video", "16", grid), fig2_frames("video", "64", grid),
            fig2_frames("video", "10", grid), fig2_frames("image-on-video", "1", grid)] == [1, 16, 48, 8, 8]


def test_paper_plan_refused_listing_what_is_missing(tmp_path):
    jobs = paper_jobs("paper")
    n_ids = jobs[jobs.loadable == "yes"].drop_duplicates(["model", "revision"]).shape[0]
    missing = missing_for_paper(jobs, None, in_cache=lambda repo, rev: False)
    assert len(missing) == 1 + n_ids and missing[0].startswith("VaTeX videos: no video_root")
    assert "weights of gemma2_9b_it (google/gemma-2-9b-it): not in the local Hugging Face cache" in missing
    # an empty folder lacks every sampled video; the control: the 1,024 files there and every config cached ->
    # nothing missing; --allow-download skips the weights
    empty = missing_for_paper(jobs, tmp_path, in_cache=lambda repo, rev: True)
    assert len(empty) == 1 and empty[0].startswith("VaTeX videos: [vatex] 1024 of 1024 videos are missing under")
    ids = build_dataset("vatex", {"n_items": 1024, "sample_seed": 0}).ids
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in ids:
        (videos / f"{i}.mp4").touch()
    assert missing_for_paper(jobs, videos, in_cache=lambda repo, rev: True) == []
    assert missing_for_paper(jobs, videos, allow_download=True, in_cache=lambda repo, rev: False) == []
    out = tmp_path / "out"
    with pytest.raises(PaperRunRefused, match="thing.s. missing") as err:
        run_paper("paper", out=out, in_cache=lambda repo, rev: False)
    assert len(err.value.missing) == 1 + n_ids and not out.exists()  # refused before any work


def test_cli_plan_paper_refuses(capsys):
    assert main(["--plan", "paper", "--no-progress"]) == 2
    text = capsys.readouterr().err
    assert "The paper plan cannot run here" in text and "  - VaTeX videos: no video_root given" in text
    assert "make paper PLAN=miniature" in text


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("paper_cache")


@pytest.fixture(scope="module")
def miniature(cache, tmp_path_factory):
    jobs = paper_jobs("miniature")
    bad = jobs.iloc[[-2]].assign(label="broken", model=str(tmp_path_factory.mktemp("empty")), setting="video",
                                 side="vision", frames="1 4", captions="")
    out = tmp_path_factory.mktemp("miniature")
    tables = run_paper("miniature", jobs=pd.concat([jobs, bad], ignore_index=True), cache_dir=cache, out=out,
                       device="cpu", log=lambda *a: None)
    return tables, out


def test_miniature_runs_end_to_end(miniature):
    tables, out = miniature
    jobs = tables["jobs"]
    names = ["jobs", "alignment", "fig2_points", "fig3_grid", "eq2_fits", "fig2_compare", "fig3_compare",
             "table1_compare"]
    assert all((out / f"{n}.csv").is_file() for n in names) and (out / "report.md").is_file()
    assert jobs.set_index("label").loc["broken", "status"] == "failed"
    assert jobs.set_index("label").loc["broken", "reason"] != ""
    assert set(jobs[(jobs.loadable == "yes") & (jobs.label != "broken")].status) == {"done"}
    assert (jobs[jobs.loadable == "no"].status == "not loadable").sum() == 5
    align = tables["alignment"]
    # 3 image jobs x 3 text models at one caption; 7 video-capable jobs x 2 frame counts x (2 captions of the
    # first text model + 1 of each other)
    assert len(align) == 3 * 3 + 7 * 2 * 4 and set(align.n_items) == {32} and set(align.k) == {5}
    assert np.allclose(align.chance, 5 / 31) and align.score.between(0, 1).all()
    assert len(tables["fig3_grid"]) == 7 * 4 and len(tables["fig2_points"]) == 10
    fits = tables["eq2_fits"]
    assert len(fits) == 7 and fits.status.str.startswith("not fitted: eq2_additive_power has 5 parameters").all()
    for name in ("fig2_compare", "fig3_compare", "table1_compare"):
        t = tables[name]
        assert len(t) and t.comparable.str.startswith("no: the miniature").all()
        assert t.this_run_evidence.str.startswith("plumbing").all()
    assert "plumbing" in (out / "report.md").read_text()


def test_miniature_alignment_equals_a_direct_sweep(miniature, cache):
    align = miniature[0]["alignment"]
    row = align[(align.label == "tiny-videomae") & (align.text == "tiny-gemma2") & (align.frames == 4)
                & (align.captions == 2)].iloc[0]
    opts = dict(n_clips=MINIATURE["n_clips"], size=MINIATURE["size"])
    fx, mx = extract_features("synthetic_world", "tiny-videomae", frames=4, dataset_options=opts, cache_dir=cache,
                              progress=False)
    fy, my = extract_features("synthetic_world", "tiny-gemma2", captions=2, dataset_options=opts, cache_dir=cache,
                              progress=False)
    best = layer_sweep(prepare_features(fx, layer_dims=mx.get("layer_dims")),
                       prepare_features(fy, layer_dims=my.get("layer_dims")), k=5).best
    assert (int(row.layer_x), int(row.layer_y), float(row.score)) == best


def test_miniature_resumes_from_the_cache(miniature, cache, tmp_path):
    again = run_paper("miniature", cache_dir=cache, out=tmp_path, device="cpu", log=lambda *a: None)
    pd.testing.assert_frame_equal(again["alignment"], miniature[0]["alignment"])


def test_score_caveats_known_answers():
    paper = score_caveats("vatex", {}, 1024, "google/gemma-2-9b-it", 1, 10, "facebook/dinov2-giant")
    assert [same for _, same, _ in paper] == [True, True, True, True, True, None]
    tiny = score_caveats("vatex", {}, 1024, "google/gemma-2-9b-it", 1, 10, "tiny-vit")
    assert [c for c, same, _ in tiny if same is False] == ["weights"]


def test_score_own_folder_is_not_comparable(cache, tmp_path, capsys):
    torch.manual_seed(0)
    vit = transformers.ViTModel(transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                       intermediate_size=64, image_size=32, patch_size=8))
    vit.eval().save_pretrained(tmp_path / "vit")
    code = main(["--score", str(tmp_path / "vit"), "--dataset", "synthetic_world", "--option", "n_clips=32",
                 "--option", "size=32", "--text-model", "tiny-gemma2", "--k", "5", "--frames", "4",
                 "--cache", str(cache), "--out", str(tmp_path / "out"), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0 and "NOT COMPARABLE: dataset: synthetic_world" in text and "k: k = 5" in text
    assert "DIFFERS   text model  tiny-gemma2" in text and "above" in text
    placement = pd.read_csv(tmp_path / "out" / "placement.csv")
    assert len(placement) == 2 and placement.comparable.str.startswith("not comparable").all()
    assert (tmp_path / "out" / "figure.png").is_file()


def test_book_page_says_what_ran(miniature, tmp_path):
    from vtalign.book.paper_pipeline import write_paper_pipeline_page

    empty = write_paper_pipeline_page(tmp_path / "empty.md", root=tmp_path / "nothing").read_text()
    assert empty.count("**Not run in this checkout**") == 2 and "No encoder has been scored" in empty
    root = tmp_path / "results"
    root.mkdir()
    (root / "miniature").symlink_to(miniature[1])
    page = write_paper_pipeline_page(tmp_path / "page.md", root=root).read_text()
    assert page.count("**Not run in this checkout**") == 1  # the paper plan only
    best = miniature[0]["alignment"].score.max()
    assert f"the highest best-layer alignment is {best:.3f}" in page and "| broken | video | failed |" in page
    assert "0 of 41 published points matched" in page and "never compared" in page


def test_compare_published_matches_by_label_and_setting():
    fig2 = pd.DataFrame([dict(label="dinov2_giant", model_type="image_on_video", alignment=0.21),
                         dict(label="not_a_paper_model", model_type="native_video", alignment=0.5)])
    grid = pd.DataFrame([dict(label="videomaev2_huge", n_frames=2, n_captions=10, score=0.3)])
    fits = pd.DataFrame([dict(evidence="x", label="dinov2_giant (image-on-video)", n_points=32, status="fitted",
                              r2=0.99, s_inf=0.3, c_f=0.1, alpha=1.0, c_c=0.1, beta=1.0)])
    out = compare_published("paper", fig2, grid, fits)
    yes = {name: t[t.comparable.str.startswith("yes")] for name, t in out.items()}
    assert yes["fig2_compare"][["label", "model_type", "published_alignment", "this_run_alignment"]].values.tolist() \
        == [["dinov2_giant", "image_on_video", 0.2233, 0.21]]  # the digitised point beside this run's
    assert yes["fig3_compare"][["published_score", "this_run_score"]].values.tolist() == [[0.316, 0.3]]
    assert yes["table1_compare"][["label", "s_inf", "this_run_s_inf"]].values.tolist() == [["dinov2_giant", 0.365, 0.3]]
    assert len(out["fig2_compare"]) == 41 and (out["fig2_compare"].comparable == "no: not run here").sum() == 40
    mini = compare_published("miniature", fig2, grid, fits)  # the same points from a miniature: never compared
    assert all(t.comparable.str.startswith("no: the miniature").all() for t in mini.values())
