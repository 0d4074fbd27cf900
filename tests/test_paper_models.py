"""The paper's model list as data (a2_models.csv): counts of Appendix A.2, valid rows, loadability decided at
run time, and the dry-run listing of the paper plan."""
import io
from contextlib import redirect_stdout

import pandas as pd
import pytest

from vtalign import paths
from vtalign.extract import paper_models as pm
from vtalign.extract import projection
from vtalign.extract.cli import main


@pytest.fixture(scope="module")
def models():
    return pm.read_models()


def _row(**changes):
    base = dict(why_not="", family_loader="dinov2", needs_remote_code="no", revision="")
    return {**base, **changes}


def test_counts_match_appendix_a2(models):
    assert len(models) == 121
    assert models.side.value_counts().to_dict() == {"vision": 91, "language": 30}
    assert int((models.family != "extra_video").sum() - (models.side == "language").sum()) == 85
    assert pm.check_counts(models).empty
    # control: one row fewer is caught, and the message names the family and variant
    with pytest.raises(ValueError, match=r"dinov2 ViT-g/14: 2 listed, 1 rows"):
        pm.check_counts(models.drop(models.index[models.model == "DINOv2 ViT-g/14"][0]))


def test_every_row_is_valid_and_a_bad_row_is_named(models, tmp_path):
    assert set(models.setting) == {"image", "image-on-video", "video", "text"}
    assert (models[models.id_certain == "no"].shape[0] > 0) and (models.id_source != "").all()
    src = paths.paper_data_dir() / "a2_models.csv"
    for col, value, message in [("setting", "video", "a language model's setting"),
                                ("id_certain", "yes", "an inferred id is not certain"),
                                ("revision", "0e826d7", "40-hex commit"),
                                ("family_loader", "", "needs an hf_id and a family_loader")]:
        df = pd.read_csv(src, dtype=str, keep_default_na=False)
        row = {"setting": df.index[df.side == "language"][0],
               "id_certain": df.index[df.id_source == "inferred — uncertain"][0],
               "revision": 0, "family_loader": df.index[df.why_not == ""][0]}[col]
        df.loc[row, col] = value
        bad = tmp_path / f"{col}.csv"
        df.to_csv(bad, index=False)
        with pytest.raises(ValueError, match=rf"row {row + 2} .*{message}"):
            pm.read_models(bad)
    df = pd.read_csv(src, dtype=str, keep_default_na=False).assign(loadable="yes")
    df.to_csv(tmp_path / "extra.csv", index=False)
    with pytest.raises(ValueError, match=r"extra \['loadable'\]"):     # loadable is computed, never stored
        pm.read_models(tmp_path / "extra.csv")


def test_loadable_is_decided_from_the_registered_loaders():
    families = {"dinov2", "timm_wrapper", "videomae_v2"}
    assert pm.loadability(_row(), families=families) == (True, "")
    ok, why = pm.loadability(_row(family_loader="no_such_type"), families=families)
    assert not ok and "no_such_type" in why and "HF_FAMILIES" in why and "not in transformers" in why
    # a model type transformers has but no loader registered yet becomes loadable once a loader lands
    ok, why = pm.loadability(_row(family_loader="siglip"), families=families)
    assert not ok and "has the model type" in why
    assert pm.loadability(_row(family_loader="siglip"), families=families | {"siglip"}) == (True, "")
    # a loader's package, remote code without and with a pinned revision, the CSV's own reason
    assert "timm package" in pm.loadability(_row(family_loader="timm_wrapper"), families=families,
                                            installed=lambda p: False)[1]
    assert pm.loadability(_row(family_loader="timm_wrapper"), families=families, installed=lambda p: True)[0]
    remote = _row(family_loader="videomae_v2", needs_remote_code="yes")
    assert "pinned revision" in pm.loadability(remote, families=families)[1]
    assert pm.loadability({**remote, "revision": "0" * 40}, families=families) == (True, "")
    assert pm.loadability(_row(why_not="not released"), families=families) == (False, "not released")


def test_gpu_hours_per_job_add_up_to_the_projection(models):
    record = pm._projection_record()
    hours = pm.job_gpu_hours(models, record)
    whole = projection.project_plan(
        projection.paper_models(), efficiency=record["efficiency"], gpu_flops=record["gpu"]["matmul_flops"],
        sweep_seconds=record["gpu"]["sweep_seconds"], sweep_pairs=record["gpu"]["sweep_pairs"],
        caption_tokens=record["tokens_per_caption"], n_items=record["n_items"], frames=tuple(record["frames"]),
        captions=tuple(record["captions"]))
    assert hours.sum() == pytest.approx(whole["extraction_gpu_hours"], rel=1e-9)
    one = models.model == "DINOv2 ViT-g/14"
    image, video = hours[one & (models.setting == "image")].item(), hours[one & (models.setting != "image")].item()
    assert video == pytest.approx(image * sum(record["frames"]), rel=1e-9)     # one frame vs Figure 3's grid


def test_dry_run_lists_every_job(models):
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["--plan", "paper", "--dry-run"]) == 0
    lines = out.getvalue().splitlines()
    jobs = [line for line in lines if line[:3].strip().isdigit() and line[3:5] == "  "]
    assert len(jobs) == 121
    for line, model in zip(jobs, models.model):
        assert f" {model} " in line and (" yes" in line or " no: " in line)
    assert any(line.startswith("121 jobs (91 vision, 30 language)") for line in lines)
    with pytest.raises(SystemExit):
        main(["--dry-run"])       # a dry run lists the paper plan only


def test_labels_name_the_models_of_the_published_tables(models):
    pairs = set(zip(models.label, models.setting))
    setting = {"native_video": "video", "image_on_video": "image-on-video", "image_on_image": "image"}
    fig2 = pd.read_csv(paths.paper_csv("fig2_alignment_vs_retrieval_digitized"))
    assert not [(m, t) for m, t in zip(fig2.model, fig2.model_type) if (m, setting[t]) not in pairs]
    labels = set(models.label)
    for name in ("fig3_vatex_scaling_frames_digitized", "fig5_test_of_time_printed", "fig6_videocomp_printed",
                 "fig8_pvd_frames_digitized"):
        used = {m.removesuffix("_video") for m in pd.read_csv(paths.paper_csv(name)).model}
        assert used <= labels, (name, used - labels)
    assert ("dinov2_giant", "video") not in pairs and "dinov2_gigant" not in labels    # the check can fail
