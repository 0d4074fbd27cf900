"""The full-plan projection: the model list of Appendix A.2 and the arithmetic, by known answers."""
import pandas as pd
import pytest

from vtalign.extract import projection


def test_model_list_has_the_papers_counts():
    models = projection.paper_models()
    assert models.attrs["counts"] == {"text": 30, "vision": 91}
    vision = models[models.side == "vision"]
    assert int(vision[vision.family != "extra_video"]["count"].sum()) == 85     # + 6 additional video models
    assert models[models.side == "vision"].tokens_per_frame.notna().all()
    assert (models.params_m > 0).all() and (models.layers > 0).all()


def test_plan_arithmetic_by_hand():
    models = pd.DataFrame([
        dict(family="v", variant="a", side="vision", setting="video", count=1, params_m=100, layers=10, width=8,
             tokens_per_frame=50),
        dict(family="i", variant="b", side="vision", setting="image", count=2, params_m=10, layers=4, width=2,
             tokens_per_frame=10),
        dict(family="t", variant="c", side="text", setting="text", count=1, params_m=1000, layers=20, width=16,
             tokens_per_frame=None),
    ])
    p = projection.project_plan(models, efficiency=0.5, gpu_flops=1e12, sweep_seconds=2.0, sweep_pairs=100,
                                caption_tokens=20, n_items=4, frames=(1, 2), captions=(1, 3), overhead_per_part=3.0,
                                part_items=2, gpus=(1, 2))
    # video model: 2 * 1e8 * 50 * (1 + 2) frames * 4 items; image model (one variant per setting):
    # 2 * 1e7 * 10 * (1 image + 1 + 2 video frames) * 4; text: 2 * 1e9 * 20 * (1 + 3) * 4
    flops = 2e8 * 50 * 3 * 4 + 2e7 * 10 * 4 * 4 + 2e9 * 20 * 4 * 4
    assert p["extraction_flops"] == pytest.approx(flops)
    assert p["extraction_gpu_hours"] == pytest.approx(flops / 0.5e12 / 3600)
    # representations: video 2 frame counts, image 1 + 2, text 2 caption counts
    assert p["representations"] == 2 + 3 + 2
    # sweeps: vision reps (2 + 1 + 2) x text reps (2); layer pairs 10*20 per video-model rep, 4*20 per image rep
    assert p["sweeps"] == 10
    pairs = 2 * (2 * 10 * 20 + 3 * 4 * 20)
    assert p["sweep_gpu_hours"] == pytest.approx(2.0 * pairs / 100 / 3600)
    assert p["cache_bytes"] == pytest.approx(4 * 4 * (2 * 10 * 8 + 3 * 4 * 2) + 4 * 4 * 2 * 20 * 16)
    assert p["parts"] == 2 * 7
    total = p["total_gpu_hours"] * 3600
    assert p["wall_hours"][2] == pytest.approx((total + 14 * 3.0) / 2 / 3600)
