"""The paper's pipeline (``make paper``, issue 23 item 6) and "score your own encoder" (item 7).

Known answers of the plans (jobs per setting, Figure 3's grid, every loader of the paper kept), the refusal of
the paper plan without videos or weights, the miniature end to end (every table and figure, a failing job recorded,
a rerun reusing the cache with the same numbers, one alignment equal to a direct sweep of the cached features),
one hand-computed answer for each of Figures 4, 7, 10, 11/12's analyses on constructed inputs, and the
own-encoder comparison's caveats (a tiny folder on the synthetic world: not comparable; the paper's
setting: comparable).
"""
import json

import numpy as np
import pandas as pd
import pytest
import torch
import transformers

from vtalign.alignment import layer_sweep, prepare_features
from vtalign.extract import extract_features
from vtalign.extract.cli import main
from vtalign.extract.datasets import caption_source, load_dataset
from vtalign.extract.paper_models import paper_plan, read_models
from vtalign.extract.paper_run import (
    MINIATURE,
    NOT_BUILT_COLUMNS,
    PaperRunRefused,
    caption_gains,
    compare_published,
    fig2_fits,
    fig2_frames,
    fig4_tables,
    fig7_tables,
    fig10_matrix,
    matrix_table,
    missing_for_paper,
    paper_grid,
    paper_jobs,
    plan_config,
    retrieval_table,
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
    from vtalign.book.paper_pipeline import draw_figures  # the book layer draws the PNGs from the tables

    assert draw_figures(out) == ["fig7.png", "fig10.png", "fig11.png", "fig12.png", "fig4.png"]
    return tables, out


def test_miniature_runs_end_to_end(miniature):
    tables, out = miniature
    jobs = tables["jobs"]
    names = ["jobs", "alignment", "fig2_points", "fig3_grid", "eq2_fits", "fig2_compare", "fig3_compare",
             "table1_compare", "fig4_points", "fig4_correlations", "fig7_pairs", "fig7_compare", "fig7_fit",
             "fig10_matrix", "fig11_long", "fig11_matrix", "fig12_long", "fig12_matrix", "not_built", "fig2_retrieval",
             "fig2_fits"]
    assert all((out / f"{n}.csv").is_file() for n in names) and (out / "report.md").is_file()
    assert all((out / f"fig{n}.png").is_file() for n in (4, 7, 10, 11, 12))
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
    assert json.loads((out / "run.json").read_text())["caption_source"] == "synthetic_world: its own captions"
    # every new table carries the miniature's evidence label, and nothing in it is compared
    for name in names[8:]:
        t = pd.read_csv(out / f"{name}.csv")
        assert t.filter(like="evidence").apply(lambda c: c.astype(str).str.contains("plumbing")).any(axis=1).all()
    for name in ("fig4_correlations", "fig7_compare", "fig7_fit"):
        assert tables[name].comparable.str.startswith("no: the miniature").all()
    # 10 vision representations (one frame count each) x 6 text models at one caption; x the 3 Gemma models at
    # their largest caption count (2)
    f11, f12 = tables["fig11_long"], tables["fig12_long"]
    assert len(f11) == 10 * 6 and set(f11.captions) == {1} and tables["fig11_matrix"].shape == (10, 1 + 1 + 6)
    assert len(f12) == 10 * 3 and set(f12.captions) == {2} and set(f12.text) == {"tiny-gemma", "tiny-gemma2",
                                                                                  "tiny-gemma3"}
    # Figure 10: the 4 native video representations and the first text model, symmetric with a unit diagonal
    m = tables["fig10_matrix"].set_index("representation").drop(columns="evidence")
    assert m.shape == (5, 5) and np.allclose(m.values, m.values.T) and np.allclose(np.diag(m.values), 1)
    # Figure 7: 7 video-capable grids x 2 frame counts, gain 1 -> 2 captions
    assert len(tables["fig7_pairs"]) == 7 * 2 and set(tables["fig7_pairs"].many) == {2}
    assert list(tables["fig7_fit"].quantity) == ["slope", "intercept", "r", "relative_gain"]
    # Figure 4: Figure 4's 9 published rows kept; the 4 native video representations paired in order
    assert len(tables["fig4_points"]) == 9 and tables["fig4_points"].this_run_alignment.notna().sum() == 4
    assert len(tables["fig4_correlations"]) == 6 and set(tables["fig4_correlations"].n) == {4}
    # Figure 2's x-axis: retrieval on the clips' own classes for the 10 vision representations (the broken job's
    # row says it failed), and a regression line per Figure 2 text model over those 10 points
    ret = tables["fig2_retrieval"]
    measured = ret[ret.status == "measured"]
    assert len(measured) == 10 and "broken" not in set(ret.label)  # not planned: its reason is in jobs.csv
    assert measured.retrieval_accuracy.between(0, 1).all() and measured.chance.between(0, 1).all()
    assert set(measured.n_items) == {32} and tables["fig2_points"].retrieval_accuracy.notna().all()
    f2 = tables["fig2_fits"]
    assert len(f2) == 3 and set(f2.n) == {10} and f2.pearson_r.between(-1, 1).all()
    assert f2.comparable.str.startswith("no: the miniature").all()
    nb = tables["not_built"]
    assert list(nb.columns) == NOT_BUILT_COLUMNS and {"Figure 4", "Figure 7", "Figure 10", "Figure 11", "Figure 12",
                                                      "Table 1"} <= set(nb.figure) and (nb.reason != "").all()


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


def test_fig7_gain_and_fit_known_answers():
    # pairs (one caption, ten): a at 1 frame (0.1, 0.16), at 4 frames (0.2, 0.3); b at 1 frame (0.3, 0.44); b at
    # 4 frames has no 10-caption point. By hand: gains 0.6, 0.5 and 0.44/0.3 - 1 = 0.4667; a's mean 0.55; the
    # line through the three pairs: slope (0.44 - 0.16) / 0.2 = 1.4, intercept 0.16 - 0.14 = 0.02, r = 1
    grid = pd.DataFrame([("a", 1, 1, 0.1), ("a", 1, 10, 0.16), ("a", 1, 2, 0.9), ("a", 4, 1, 0.2), ("a", 4, 10, 0.3),
                         ("b", 1, 1, 0.3), ("b", 1, 10, 0.44), ("b", 4, 1, 0.5)],
                        columns=["label", "n_frames", "n_captions", "score"])
    assert np.allclose(caption_gains(grid).gain, [0.6, 0.5, 0.44 / 0.3 - 1])
    published = pd.DataFrame([("a", 1, 1, 0.2), ("a", 1, 10, 0.25)], columns=["label", "n_frames", "n_captions",
                                                                              "score"])
    printed = pd.DataFrame([dict(slope=1.6, intercept=-0.018, r=0.998)])
    tables, not_built = fig7_tables("paper", grid, published, printed)
    compare = tables["fig7_compare"].set_index("label")
    assert np.isclose(compare.loc["a", "this_run_gain"], 0.55) and np.isclose(compare.loc["a", "published_gain"], 0.25)
    assert compare.loc["a", "comparable"].startswith("yes") and compare.loc["b", "comparable"].startswith("no")
    fit = tables["fig7_fit"].set_index("quantity").this_run
    assert np.allclose([fit.slope, fit.intercept, fit.r, fit.relative_gain], [1.4, 0.02, 1.0, (0.6 + 0.5 + 0.44 / 0.3
                                                                                               - 1) / 3])
    assert [r["figure"] for r in not_built] == ["Figure 7"]  # the per-model points the paper does not publish


def test_fig10_matrix_known_answer():
    # k = 1 neighbour of each of 4 items. a and b agree on items 0 and 2 (0.5); c agrees with neither (0);
    # d's layer 0 is c's lists and its layer 1 a's: the best layer pair gives d~a = 1, d~b = 0.5, d~c = 1
    a, b, c = [[1], [0], [3], [2]], [[1], [2], [3], [0]], [[2], [3], [0], [1]]
    nb = {"a": np.array([a]), "b": np.array([b]), "c": np.array([c]), "d": np.array([c, a])}
    m = fig10_matrix(nb, backend="torch")
    assert list(m.representation) == ["a", "b", "c", "d"]
    assert m.drop(columns="representation").values.tolist() == [[1, 0.5, 0, 1], [0.5, 1, 0, 0.5], [0, 0, 1, 1],
                                                                [1, 0.5, 1, 1]]


def test_fig11_matrix_table_known_answer():
    long = pd.DataFrame(dict(vision=["v", "v", "w", "w"], text=["a", "b", "a", "b"], score=[0.25, 0.5, 0.125, 0.75],
                             layer_x=[1, 2, 0, 3], layer_y=[3, 0, 1, 1], n_layers_x=[4, 4, 6, 6],
                             n_layers_y=[5, 7, 5, 7]))
    wide = matrix_table(long)
    assert list(wide.columns) == ["vision", "a (0.250) 5", "b (0.750) 7"]
    assert wide.values.tolist() == [["v (0.500) 4", "0.250 (1, 3)", "0.500 (2, 0)"],
                                    ["w (0.750) 6", "0.125 (0, 1)", "0.750 (3, 1)"]]


def test_fig4_correlation_known_answer():
    # three of four published models measured here: x = published task t (1, 2, 3), y = this run's alignment
    # (0.1, 0.2, 0.4). By hand: dx = (-1, 0, 1), dy = (-4, -1, 5) / 30, r = 3 / sqrt(2 * 42 / 9) = 0.98198
    published = pd.DataFrame(dict(model=["4DS-e", "VideoMAE-B", "VJEPA-H", "4DS-S"], alignment=0.05,
                                  t=[1.0, 2.0, 3.0, 4.0]))
    fig2 = pd.DataFrame(dict(label=["4ds_e", "videomae_base_k400", "vjepa_huge", "vjepa_huge"],
                             setting=["video", "video", "video", "image"], alignment=[0.1, 0.2, 0.4, 0.9]))
    printed = pd.DataFrame(dict(task=["t"], pearson_r=[0.9], p_value=[0.01]))
    tables, not_built = fig4_tables("paper", fig2, published, printed, n_boot=200)
    row = tables["fig4_correlations"].iloc[0]
    assert row.n == 3 and abs(row.this_run_pearson_r - 3 / np.sqrt(2 * 42 / 9)) < 1e-9
    assert row.published_pearson_r == 0.9 and row.comparable == "no: 3 of the paper's 4 models measured here"
    assert tables["fig4_points"].this_run_alignment.isna().tolist() == [False, False, False, True]
    assert [r["part"] for r in not_built] == ["downstream scores"]


def test_caption_source_names_the_vatex_source(tmp_path):
    path = tmp_path / "vatex_validation_v1.0.json"
    path.write_text(json.dumps([{"videoID": f"v{i}", "enCap": [f"caption {j}" for j in range(10)]} for i in range(3)]))
    assert caption_source(load_dataset("vatex", json_file=str(path))) == \
        "official JSON vatex_validation_v1.0.json (3 videos, 10 English captions a video)"
    shipped = caption_source(load_dataset("vatex", n_items=4))
    assert shipped == "public tokenised files vatex/val.en (5 captions a video)"


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
    assert "Captions that ran: synthetic_world: its own captions." in page
    gain = miniature[0]["fig7_fit"].set_index("quantity").this_run.relative_gain
    assert "Figure 7 (2 captions vs one, printed: 10 vs one)" in page and f"mean gain {gain:+.1%}" in page
    assert "| ssv2 | 4 | " in page and "`fig10.png`" in page and "`fig4_correlations.csv` (6 rows)" in page
    assert "- Table 1, PVD rows" in page


def test_compare_published_matches_by_label_and_setting():
    fig2 = pd.DataFrame([dict(label="dinov2_giant", model_type="image_on_video", alignment=0.21),
                         dict(label="not_a_paper_model", model_type="native_video", alignment=0.5)])
    grid = pd.DataFrame([dict(label="videomaev2_huge", n_frames=2, n_captions=10, score=0.3)])
    fits = pd.DataFrame([dict(evidence="x", label="dinov2_giant (image-on-video)", n_points=32, status="fitted",
                              r2=0.99, s_inf=0.3, c_f=0.1, alpha=1.0, c_c=0.1, beta=1.0)])
    out = compare_published("paper", fig2, grid, fits)
    not_built = out.pop("not_built")  # Table 1's 9 PVD rows: the plan runs VaTeX only
    assert not_built[["figure", "part"]].values.tolist() == [["Table 1", "PVD rows (9: dinov2_base, dinov2_giant, "
                                                              "dinov2_large, pe_core_giant, timesformer_base, "
                                                              "videomaev2_base, videomaev2_huge, videomaev2_large, "
                                                              "vivit_b_16x2)"]]
    yes = {name: t[t.comparable.str.startswith("yes")] for name, t in out.items()}
    assert yes["fig2_compare"][["label", "model_type", "published_alignment", "this_run_alignment"]].values.tolist() \
        == [["dinov2_giant", "image_on_video", 0.2233, 0.21]]  # the digitised point beside this run's
    assert yes["fig3_compare"][["published_score", "this_run_score"]].values.tolist() == [[0.316, 0.3]]
    assert yes["table1_compare"][["label", "s_inf", "this_run_s_inf"]].values.tolist() == [["dinov2_giant", 0.365, 0.3]]
    assert len(out["fig2_compare"]) == 41 and (out["fig2_compare"].comparable == "no: not run here").sum() == 40
    mini = compare_published("miniature", fig2, grid, fits)  # the same points from a miniature: never compared
    mini.pop("not_built")
    assert all(t.comparable.str.startswith("no: the miniature").all() for t in mini.values())


def test_miniature_retrieval_equals_the_metric_on_the_cached_features(miniature, cache):
    """One retrieval row against the metric computed directly: the last layer of the cached entry, the classes of
    the dataset's items."""
    from vtalign.probes import retrieval_accuracy

    ret = miniature[0]["fig2_retrieval"].set_index(["label", "setting"])
    opts = dict(n_clips=MINIATURE["n_clips"], size=MINIATURE["size"])
    fx, mx = extract_features("synthetic_world", "tiny-videomae", frames=4, dataset_options=opts, cache_dir=cache,
                              progress=False)
    label_of = {it.id: it.label for it in load_dataset("synthetic_world", **opts).items}
    last = fx.shape[1] - 1
    direct = retrieval_accuracy(fx[:, last, :mx["layer_dims"][last]], [label_of[i] for i in mx["item_ids"]])
    assert ret.loc[("tiny-videomae", "video"), "frames"] == 4
    assert ret.loc[("tiny-videomae", "video"), "retrieval_accuracy"] == direct


def test_fig2_fit_known_answer_beside_the_printed_r():
    class Job:  # a vision job as the plan's jobs table has it
        def __init__(self, label):
            self.label, self.setting, self.native_frames, self.frames = label, "image", "1", "1"

    vision = [(i, Job(lab)) for i, lab in enumerate("abc")]
    align = pd.DataFrame(dict(label=list("abc") * 2, setting="image", frames=1, captions=[1, 1, 1, 2, 2, 2],
                              text="gemma2_9b_it", score=[0.2, 0.25, 0.4, 0.9, 0.1, 0.5]))
    retrieval = pd.DataFrame(dict(label=list("abc"), setting="image", retrieval_accuracy=[0.1, 0.2, 0.3]))
    cfg = dict(retrieval=dict(dataset="kinetics400"))
    fits, not_built = fig2_fits("paper", cfg, align, retrieval, vision, ["gemma2_9b_it"], n_boot=200)
    row = fits.iloc[0]
    # the one-caption points only, (0.1, 0.2), (0.2, 0.25), (0.3, 0.4); by hand: sum dx dy = 0.02,
    # sum dx^2 = 0.02, sum dy^2 = 0.0216667, r = 0.02 / sqrt(0.02 x 0.0216667) = 0.960769
    assert row.pearson_r == pytest.approx(0.02 / np.sqrt(0.02 * 0.065 / 3), abs=1e-12)
    assert row.pearson_r == pytest.approx(0.960769, abs=1e-6)
    assert (row.n, row.panel, row.published_r) == (3, "k400", 0.87) and row.comparable.startswith("yes")
    assert not not_built
    ssv2 = fig2_fits("paper", dict(retrieval=dict(dataset="ssv2")), align, retrieval, vision, ["gemma2_9b_it"],
                     n_boot=50)[0].iloc[0]
    assert ssv2.published_r == 0.81  # Figure 2's SSv2 panel


def test_retrieval_set_is_checked_before_any_work(tmp_path, capsys):
    with pytest.raises(ValueError, match="needs list_file"):
        plan_config("paper", retrieval=dict(dataset="kinetics400", video_root=str(tmp_path)))
    for name in ("vatex", "synthetic_world"):  # not a panel of Figure 2 (the miniature's own clips included)
        with pytest.raises(ValueError, match=r"one of \['kinetics400', 'ssv2'\]"):
            plan_config("paper", retrieval=dict(dataset=name, video_root="x", list_file="y"))
    assert plan_config("paper")["retrieval"] is None
    # without a retrieval set the paper plan says Figure 2's x-axis is not built, and how to build it
    table, not_built = retrieval_table("paper", plan_config("paper"), pd.DataFrame(), {}, {})
    assert table.empty and "RETRIEVAL=kinetics400" in not_built[0]["reason"]
    # a retrieval folder without the listed videos is one line of the refusal
    listing = tmp_path / "test.csv"
    listing.write_text("label,youtube_id,time_start,time_end,split\nabseiling,abc,12,22,test\n")
    jobs = paper_jobs("paper")
    cfg = plan_config("paper", retrieval=dict(dataset="kinetics400", video_root=str(tmp_path), list_file=str(listing)))
    missing = missing_for_paper(jobs, None, allow_download=True, retrieval=cfg["retrieval"])
    assert any(m.startswith("retrieval set (kinetics400):") for m in missing)
    # the CLI refuses an option the paper plan does not read
    with pytest.raises(SystemExit) as stop:
        main(["--plan", "paper", "--no-progress", "--option", "retreival_root=\"/x\""])
    assert stop.value.code == 2 and "retreival_root" in capsys.readouterr().err


def test_a_failed_retrieval_entry_is_a_row_and_a_not_built_line():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Request:  # what retrieval_table reads of a request that failed: its frame count
        frames: int

    jobs = pd.DataFrame([dict(label="m", setting="video")])
    failed = {Request(4): "RuntimeError: out of memory"}
    table, not_built = retrieval_table("miniature", plan_config("miniature"), jobs, {0: Request(4)}, failed)
    assert table.status.tolist() == ["failed: RuntimeError: out of memory"] and table.retrieval_accuracy.isna().all()
    assert not_built[0]["part"] == "retrieval of m (video)" and "out of memory" in not_built[0]["reason"]
