"""Every chapter notebook: well-formed source, and a papermill run with smoke parameters.

Smoke runs write to a temporary results folder (VTALIGN_RESULTS_ROOT), never to results/.
"""
import json

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from vtalign import book, verdicts
from vtalign.book import claims
from vtalign.paths import notebooks_dir, project_root

pytestmark = pytest.mark.notebook
NAMES = [nb.name for nb in book.NOTEBOOKS]
REAL_DATA = {ch for c in claims.CLAIMS for ch in c.real}  # chapters measuring real captions (evidence: real data)


def test_every_notebook_is_registered_and_in_the_toc():
    sources = sorted(p.name for p in notebooks_dir().glob("*.ipynb"))
    assert sources == sorted(nb.source for nb in book.NOTEBOOKS)
    toc = yaml.safe_load((project_root() / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    chapters = [f.removeprefix("book/chapters/") for f in files if f.startswith("book/chapters/")]
    appendix = {c["file"].removeprefix("book/chapters/") for part in toc["parts"] if part["caption"] == "Appendix"
                for c in part["chapters"]}
    assert sorted(chapters) == sorted(NAMES)
    # the sidebar, the run order and the file numbers follow one order; the appendix closes the sidebar
    assert [c for c in chapters if c not in appendix] == [n for n in NAMES if n not in appendix]
    for position, name in enumerate(NAMES, 1):
        assert book.notebook(name).source == f"{position:02d}_{name}.ipynb"


@pytest.mark.parametrize("name", NAMES)
def test_source_notebook_is_clean(name):
    raw = json.loads(book.notebook(name).path.read_text())
    assert all(c.get("id") for c in raw["cells"]), "every cell has an id (nbformat 4.5; papermill warns otherwise)"
    nb = nbformat.read(book.notebook(name).path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    titles = [c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("# ")]
    assert len(titles) == 1, "one title per chapter"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    for c in nb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None, "committed notebooks stay output-free"
            assert "sys.path" not in c.source
    assert any("## Summary" in c.source for c in nb.cells if c.cell_type == "markdown")


@pytest.mark.parametrize("name", NAMES)
def test_papermill_parses_every_parameter_line(name, caplog):
    """papermill's own inspection: a parameter line it cannot parse (e.g. a comment with quotes and
    parentheses) would make it warn on every re-run and hide that parameter from --help-notebook."""
    import logging

    import papermill as pm

    with caplog.at_level(logging.WARNING, logger="papermill"):
        params = pm.inspect_notebook(str(book.notebook(name).path))
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert params, "the parameters cell declares parameters"


def _run(name, tmp_path, **params):
    out = tmp_path / f"{name}.ipynb"
    results = tmp_path / "results"
    record = book.run_notebook(name, params, smoke=True, output_path=out, results_root=results)
    assert out.is_file()
    executed = nbformat.read(out, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    stamp = json.loads((results / name / "run.json").read_text())
    assert stamp == record and stamp["mode"] == "smoke" and len(stamp["run_id"]) == 12
    assert executed.metadata["vtalign"]["run_id"] == stamp["run_id"]  # the page shows the run its folder holds
    assert record["seconds"] > 0
    _check_display_policy(name, executed)
    return results / name


def _check_display_policy(name, executed):
    """What a reader sees of an executed chapter: its status line under the title, the parameters shown,
    prose without the code that wrote it, every other input folded."""
    from vtalign.book import presentation

    assert executed.cells[1].source == presentation.STATUS_INCLUDE.format(chapter=name)
    for cell in executed.cells:
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        if tags & set(presentation.SHOWN):
            assert not tags & {presentation.HIDE_INPUT, presentation.REMOVE_INPUT}
            continue
        kinds = {k for o in cell.outputs for k in o.get("data", {})} | {o.output_type for o in cell.outputs}
        prose = cell.outputs and "text/markdown" in kinds and kinds <= {"text/markdown", "text/plain", "display_data",
                                                                      "execute_result"}
        assert tags & {presentation.HIDE_INPUT, presentation.REMOVE_INPUT} == (
            {presentation.REMOVE_INPUT} if prose else {presentation.HIDE_INPUT}), cell.source[:80]


EXPECTED = {
    "alignment_vs_retrieval": ["figure2_alignment_vs_retrieval.png", "figure2_alignment_vs_retrieval.svg",
                               "regressions.csv"],
    "test_time_scaling": ["figure3_scaling.png", "figure3_scaling.svg", "fit_params.csv", "form_comparison.csv",
                          "figure7_caption_gain.png", "table1_side_by_side.csv", "figure8_pvd.png",
                          "pvd_slice_fits.csv",
                          "pvd_form_comparison.csv", "pvd_vs_table1.csv", "pvd_curves.csv"],
    "downstream_correlation": ["figure4_downstream.png", "figure4_downstream.svg", "correlations.csv"],
    "videocomp_negatives": ["figure6_videocomp.png", "figure6_videocomp.svg", "scores.csv"],
    "test_of_time": ["figure5_test_of_time.png", "figure5_test_of_time.svg", "scores.csv"],
    "performance": ["sweep.png", "sweep.svg", "knn_scaling.png", "sweep.csv", "knn_scaling.csv", "targets.csv"],
    "live_scaling": ["live_scaling.png", "live_scaling.svg", "grid.csv", "baselines.csv", "fit_params.csv",
                     "form_comparison.csv"],
    "live_temporal": ["live_test_of_time.png", "order_sensitivity.png", "scores.csv", "order_sensitivity.csv"],
    "live_downstream": ["alignment.csv", "downstream_scores.csv", "figure2_points.csv", "figure2_fits.csv",
                        "task_correlations.csv", "cross_model_alignment.csv", "live_figure2.png", "live_figure4.png",
                        "live_figure10.png", "duplicate_items.csv"],
    "live_videocomp": ["negatives.csv", "live_figure6.png", "reorder_distances.csv", "reorder_distances.png"],
    "text_order": ["ranks.csv", "order_contrast.csv", "model_readings.csv", "text_order.png", "text_order.svg"],
    "caption_scaling": ["caption_scaling.png", "caption_scaling.svg", "curves.csv", "gains.csv", "original_leads.csv",
                        "form_comparison.csv", "encoding_time.csv"],
}


# The checks each live chapter runs in its null world, where the effect is absent by construction.
NULL_CHECKS = {"live_scaling": {"frames", "captions"}, "live_temporal": {"order"},
               "live_downstream": {"downstream", "strength"}, "live_videocomp": {"reorder", "reorder_control"}}


@pytest.mark.parametrize("name", NAMES)
def test_smoke_run_writes_tables_and_figures(name, tmp_path):
    out = _run(name, tmp_path)
    paper_chapter = name != "performance"  # the paper has no performance figure to compare with
    for f in EXPECTED[name] + (["paper_vs_this_run.csv", "verdicts.csv"] if paper_chapter else []):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    if paper_chapter:
        comparison = pd.read_csv(out / "paper_vs_this_run.csv")
        live = name.startswith("live_") or name in REAL_DATA  # other models or a text-only analogue: no difference
        assert list(comparison.columns) == ["quantity", "paper", "this_run"] + ([] if live else ["difference"]) + \
            ["this_run_is"]
        assert len(comparison) >= 3
        graded = pd.read_csv(out / "verdicts.csv", keep_default_na=False)
        assert len(graded) and set(graded.status) <= set(verdicts.DEFINITIONS)
        assert set(graded.evidence) == {"controlled world" if name in NULL_CHECKS else "real data"
                                        if name in REAL_DATA else "re-analysis"}
    if name in NULL_CHECKS:  # the null world ran beside the planted one, and no check fired on it
        found = pd.read_csv(out / "detections.csv", keep_default_na=False)
        null = found[found.world == "null world"]
        assert set(null.check) == NULL_CHECKS[name] and not null.detected.any(), null.to_dict("records")


def test_a_chapter_run_on_the_null_world_alone_detects_nothing_and_grades_nothing(tmp_path):
    out = _run("live_scaling", tmp_path, world="null")
    found = pd.read_csv(out / "detections.csv", keep_default_na=False)
    assert set(found.world) == {"null world"} and set(found.check) == {"frames", "captions"}
    assert not found.detected.any()
    assert pd.read_csv(out / "verdicts.csv").empty
    with pytest.raises(RuntimeError, match="world must be one of"):
        _run("live_scaling", tmp_path, world="nul")


def test_scaling_notebook_fits_a_user_grid(tmp_path):
    nf, nc = (a.ravel().astype(float) for a in np.meshgrid([1, 2, 4, 8, 16], [1, 2, 3, 5, 10]))
    score = 0.3 - (0.1 * nf ** -0.9 + 0.12 * nc ** -1.1)
    grid_csv = tmp_path / "grid.csv"
    pd.DataFrame(dict(model="toy", n_frames=nf, n_captions=nc, score=score)).to_csv(grid_csv, index=False)
    out = _run("test_time_scaling", tmp_path, grid_csv=str(grid_csv))
    params = pd.read_csv(out / "fit_params.csv")
    assert list(params.columns) == ["model", "r2", "s_inf", "c_f", "alpha", "c_c", "beta"]
    row = params.iloc[0]
    assert row.model == "toy" and row.r2 == pytest.approx(1, abs=1e-8)
    assert (row.s_inf, row.alpha, row.beta) == pytest.approx((0.3, 0.9, 1.1), abs=1e-4)
    graded = pd.read_csv(out / "verdicts.csv")  # a user's grid grades no Figure 3 claim; Figure 8's still stand
    assert set(graded.claim) == {"fig8_frames", "fig8_captions", "fig8_beats_original", "fig8_saturation",
                                 "fig8_eq2_form"}


def test_downstream_notebook_on_user_table(tmp_path):
    rng = np.random.default_rng(0)
    a = np.linspace(0.02, 0.1, 8)
    table = pd.DataFrame(dict(model=[f"m{i}" for i in range(8)], alignment=a, task_up=3 * a + rng.normal(0, 0.01, 8),
                              task_noise=rng.normal(size=8)))
    csv = tmp_path / "downstream.csv"
    table.to_csv(csv, index=False)
    out = _run("downstream_correlation", tmp_path, downstream_csv=str(csv))
    corr = pd.read_csv(out / "correlations.csv").set_index("task")
    assert list(corr.reset_index().columns) == ["task", "pearson_r", "pearson_p", "spearman_r", "spearman_p",
                                                "ci_low", "ci_high"]
    assert corr.loc["task_up", "pearson_r"] > 0.9 and corr.loc["task_up", "pearson_p"] < 0.01


def test_temporal_notebooks_score_live_features(tmp_path):
    rng = np.random.default_rng(0)
    video = rng.normal(size=(64, 8))
    np.savez(tmp_path / "vc.npz", video=video, positive=np.hstack([3 * video, np.zeros((64, 4))]),
             negative=rng.normal(size=(64, 12)))
    scores = pd.read_csv(_run("videocomp_negatives", tmp_path, features_npz=str(tmp_path / "vc.npz")) / "scores.csv")
    live = scores[scores.model.str.endswith("(this run)")].iloc[0]
    assert live.positive == 1.0 and live.negative < 0.5
    np.savez(tmp_path / "tot.npz", video=video[:, None, :].repeat(2, 1), text=video[:, None, :] * 2)
    scores = pd.read_csv(_run("test_of_time", tmp_path, features_npz=str(tmp_path / "tot.npz")) / "scores.csv")
    live = scores[scores.model.str.endswith("(this run)")]
    assert live.alignment.tolist() == [1.0, 1.0, 1.0]
    assert live.chance.iloc[0] == pytest.approx(1 / 63)


def test_cli_refuses_parameters_for_several_notebooks(capsys):
    with pytest.raises(SystemExit):
        book.runner.main(["run", "-p", "k", "5"])
    assert "exactly one notebook" in capsys.readouterr().err


def test_unknown_notebook_name():
    with pytest.raises(ValueError, match="No notebook named"):
        book.notebook("figure_99")


def _minimal_parameters(name, tmp_path):
    """The smallest legal parameters of each chapter: the fewest models, points, frames, captions and
    draws it accepts. Analyses they make impossible must be skipped with a note, not fail the chapter."""
    from vtalign.book import load_published

    def csv(df, stem):
        path = tmp_path / f"{stem}.csv"
        df.to_csv(path, index=False)
        return str(path)

    if name == "alignment_vs_retrieval":
        pts = load_published("fig2_alignment_vs_retrieval_digitized")
        return dict(points_csv=csv(pts.groupby("panel").head(2), "points"), n_bootstrap=1)
    if name == "test_time_scaling":
        grid = load_published("fig3_vatex_scaling_frames_digitized")
        model = grid.model.iloc[0]
        small = grid[(grid.model == model) & grid.n_frames.isin(sorted(grid.n_frames.unique())[:2])
                     & grid.n_captions.isin(sorted(grid.n_captions.unique())[:2])]
        return dict(grid_csv=csv(small, "grid"), n_bootstrap=0, frame_levels=[int(small.n_frames.min())])
    if name == "downstream_correlation":
        return dict(downstream_csv=csv(load_published("fig4_downstream_digitized").head(2), "downstream"),
                    n_bootstrap=1)
    if name == "videocomp_negatives":
        return dict(scores_csv=csv(load_published("fig6_videocomp_printed").head(1), "videocomp"), k=1,
                    n_bootstrap=1)
    if name == "test_of_time":
        return dict(ks=[1])
    if name == "live_scaling":
        return dict(dataset_options={"n_clips": 12, "size": 64}, frames=[1, 2], captions=[1, 2], k=1,
                    n_permutations=1, n_bootstrap=1, null_control=False)  # the null world: the smoke run
    if name == "live_temporal":
        return dict(vision_models=["efficientnet-lite0"], text_models=["minilm-l6"], frames=1, ks=[1],
                    first_frame_control=False, null_control=False)
    if name == "live_downstream":
        return dict(dataset_options={"n_clips": 12, "size": 64}, vision_models=["efficientnet-lite0"],
                    poolings=["first"],
                    cached_frames=1, text_models=["minilm-l6"], main_text_model="minilm-l6", k=1, tasks=["background"],
                    n_folds=2, n_bootstrap=1, n_permutations=1)
    if name == "live_videocomp":
        return dict(dataset_options={"n_clips": 12, "size": 64}, cached_frames=1, order_blind_pooling="mean:1",
                    order_aware_pooling="segments:1", text_models=["minilm-l6"], k=1, paragraph_sources=[],
                    n_bootstrap=1, n_permutations=1)
    if name == "text_order":  # one model, no paraphrase control; the smoke run's 32 pairs, so its features are cached
        return dict(text_models=["minilm-l6"], sources=["sequence"], paraphrase_source="", n_pairs={"sequence": 32},
                    n_bootstrap=1)
    if name == "caption_scaling":  # one caption a side: no gain, no fit (skipped with a note); the smoke's captions
        return dict(datasets=["pvd"], n_items=16, pvd_sides=[1, 1], k=1, n_bootstrap=1)
    raise AssertionError(f"no minimal parameters for {name}: add them here")


# performance has nothing to make smaller: its defaults read the benchmark records, which its smoke run
# (run_smoke_benchmark: a tiny benchmark added to them) does too, so a second run would repeat it (35 s)
@pytest.mark.parametrize("name", [n for n in NAMES if n != "performance"])
def test_chapter_runs_with_its_smallest_legal_parameters(name, tmp_path):
    out = _run(name, tmp_path, **_minimal_parameters(name, tmp_path))
    skipped = out / "skipped_analyses.csv"
    if skipped.is_file():  # every skipped analysis says why and how to enable it
        notes = pd.read_csv(skipped)
        assert notes.reason.notna().all() and notes.enable_with.notna().all()


def test_landing_page_lists_skipped_analyses(tmp_path, monkeypatch):
    monkeypatch.setenv("VTALIGN_RESULTS_ROOT", str(tmp_path))
    for name in ("live_scaling", "test_of_time", "performance"):  # run stamps: these chapters ran
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text("{}")
    pd.DataFrame([dict(analysis="Eq. 2 fit", reason="4 points cannot fit Eq. 2's 5 parameters.",
                       enable_with="six grid cells")]).to_csv(tmp_path / "live_scaling" / "skipped_analyses.csv",
                                                              index=False)
    pd.DataFrame(columns=["analysis", "reason", "enable_with"]).to_csv(
        tmp_path / "test_of_time" / "skipped_analyses.csv", index=False)
    text = book.write_build_status(tmp_path / "status.md").read_text()
    assert "| {doc}`chapters/live_scaling` | Eq. 2 fit | 4 points cannot fit" in text
    assert "chapters/test_of_time" not in text                      # ran, skipped nothing
    not_run = text.split("Chapters not run in this build: ")[1]
    assert "alignment_vs_retrieval" in not_run and "performance" not in not_run
    pd.DataFrame(columns=["analysis", "reason", "enable_with"]).to_csv(
        tmp_path / "live_scaling" / "skipped_analyses.csv", index=False)
    text = book.write_build_status(tmp_path / "status.md").read_text()
    assert text.startswith(f"3 of {len(NAMES)} chapters ran for this build: 3 with the default parameters")
    assert "No chapter skipped an analysis" in text


def test_downstream_chapter_takes_tiny_models_and_a_user_table(tmp_path):
    """The path a user with real models takes: any vision model id (here tiny random configs of two HF
    families, one image and one video model), alignment measured live, downstream numbers from a CSV."""
    variants = ["tiny-vit | first", "tiny-vit | mean:4", "tiny-vit | segments:2", "tiny-videomae | clips"]
    csv = tmp_path / "k400.csv"
    pd.DataFrame({"model": variants, "k400": [0.31, 0.42, 0.40, 0.55], "ssv2": [0.2, 0.25, 0.3, 0.41]}).to_csv(
        csv, index=False)
    out = _run("live_downstream", tmp_path, dataset_options={"n_clips": 24, "size": 32, "n_frames": 8},
               vision_models=["tiny-vit", "tiny-videomae"], poolings=["first", "mean:4", "segments:2"],
               cached_frames=4, text_models=["tiny-bert"], main_text_model="tiny-bert", k=3,
               downstream_csv=str(csv), semantic_tasks=["k400", "ssv2"], n_bootstrap=50, n_permutations=50)
    points = pd.read_csv(out / "figure2_points.csv")
    assert sorted(points.vision) == sorted(variants)
    expected = {v: (a + b) / 2 for v, a, b in zip(variants, [0.31, 0.42, 0.40, 0.55], [0.2, 0.25, 0.3, 0.41])}
    assert np.allclose(points.semantic_score, points.vision.map(expected))
    assert set(pd.read_csv(out / "task_correlations.csv").task) == {"k400", "ssv2"}


def test_extraction_progress_is_echoed_to_the_terminal_not_kept_in_the_chapter(tmp_path, capfd, monkeypatch):
    """run_notebook(show_progress=True) points the kernel's progress bars at a file that it copies to its own
    stderr while the chapter runs; the executed chapter keeps no bar and no kernel warning."""
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "cache"))  # a cold cache: the chapter extracts
    out = tmp_path / "ch.ipynb"
    book.run_notebook("live_scaling", {"dataset_options": {"n_clips": 12, "size": 32, "n_frames": 8},
                                       "frames": [1, 2], "captions": [1, 2], "k": 1, "n_permutations": 1,
                                       "contrast_caption_style": ""},
                      smoke=True, output_path=out, results_root=tmp_path / "results", show_progress=True)
    err = capfd.readouterr().err
    assert "synthetic_world x efficientnet-lite0 (video)" in err and "without encryption" not in err
    kept = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"
                   for o in c.outputs)
    assert "item/s" not in kept and "without encryption" not in kept and "IProgress" not in kept
    assert not list((tmp_path / "results" / "_runs").glob("*.progress"))
