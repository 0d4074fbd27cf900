"""Issue 23 item 3: precision (``dtype``) and placement (``device_map``) for Hugging Face ids and folders, on the
command line, in plans, on Ray workers (the pickled request) and in the cache key and meta.json. A bf16 entry is
never taken for an fp32 request; fp32 features are bitwise those of the computation as it was before the switches
existed (the fp32 key has no new field, so existing entries stay valid)."""
import json
import pickle

import numpy as np
import pytest
import torch
import transformers
from test_content_identity import _save_model

from vtalign.extract.cli import main as extract_main
from vtalign.extract.cluster import load_plan
from vtalign.extract.encoders import TINY_FAMILIES, load_encoder, masked_mean, preprocess_frames
from vtalign.extract.errors import RequestError
from vtalign.extract.features import extract
from vtalign.extract.request import build_request, request_arguments
from vtalign.extract.validation import check_load_options

OPTS = {"n_clips": 6, "size": 32, "n_frames": 8}


def _extract(folder, cache, **kw):
    return extract("synthetic_world", str(folder), captions=1, dataset_options=OPTS, cache_dir=cache,
                   progress=False, device="cpu", **kw)


def test_bf16_entry_is_never_reused_for_fp32_and_fp32_is_bitwise_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "vtcache"))
    folder, cache = _save_model(tmp_path / "m", seed=0), tmp_path / "cache"
    fp32, meta32, run = _extract(folder, cache)
    assert not run.reused_entry and "dtype" not in meta32["request"] and "dtype" not in meta32["encoder"]
    # fp32 as computed before the switches existed: the model's hidden states, padding-masked means.
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    request = build_request("synthetic_world", str(folder), captions=1, dataset_options=OPTS)
    assert request.key == meta32["request"]                            # the fp32 key: no new field in it
    from vtalign.extract.sampling import caption_text
    texts = request.data.items
    batch = tok([caption_text(it.captions, 1, 0, it.id) for it in texts], padding=True, truncation=True,
                max_length=512, return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       output_hidden_states=True).hidden_states
    before = torch.stack([masked_mean(h, batch["attention_mask"]) for h in hidden], 1).numpy()
    order = [meta32["item_ids"].index(it.id) for it in texts]
    assert np.array_equal(fp32[order], before)                         # bitwise

    bf16, meta16, run = _extract(folder, cache, load_options={"dtype": "bf16"})
    assert not run.reused_entry                                        # not the fp32 entry
    assert meta16["request"]["dtype"] == "bf16" and meta16["encoder"]["dtype"] == "bf16"
    differ = np.abs(bf16 - fp32).max()
    assert 0 < differ < 0.05 * np.abs(fp32).max()                      # bf16 really ran, and is close
    assert _extract(folder, cache)[2].reused_entry                     # each reuses its own entry
    assert np.array_equal(_extract(folder, cache)[0], fp32)
    assert _extract(folder, cache, load_options={"dtype": "bf16"})[2].reused_entry
    fp16, meta, _ = _extract(folder, cache, load_options={"dtype": "fp16"})
    assert meta["request"]["dtype"] == "fp16" and not np.array_equal(fp16, bf16)


def test_a_bf16_entry_in_the_fp32_folder_is_not_taken(tmp_path, monkeypatch):
    """The control: even with the bf16 entry's files in the fp32 entry's folder, the key decides."""
    import shutil
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "vtcache"))
    folder, cache = _save_model(tmp_path / "m", seed=1), tmp_path / "cache"
    r32 = build_request("synthetic_world", str(folder), captions=1, dataset_options=OPTS)
    r16 = build_request("synthetic_world", str(folder), captions=1, dataset_options=OPTS,
                        load_options={"dtype": "bf16"})
    assert r16.entry(cache).name == r32.entry(cache).name + "-bf16" and r16 != r32
    bf16, _, _ = _extract(folder, cache, load_options={"dtype": "bf16"})
    shutil.copytree(r16.entry(cache), r32.entry(cache))
    fp32, meta, run = _extract(folder, cache)
    assert not run.reused_entry and "dtype" not in meta["request"] and not np.array_equal(fp32, bf16)


def test_bf16_and_device_map_on_a_vision_model(tmp_path):
    torch.manual_seed(0)
    model = transformers.Dinov2Model(transformers.Dinov2Config(**TINY_FAMILIES["dinov2"].kwargs)).eval()
    model.save_pretrained(tmp_path / "dino")
    frames = np.random.default_rng(0).integers(0, 256, (2, 40, 48, 3), dtype=np.uint8)
    fp32 = load_encoder(str(tmp_path / "dino"), device="cpu").encode(frames)
    with torch.no_grad():
        hidden = model(pixel_values=preprocess_frames(frames, 32), output_hidden_states=True).hidden_states
    assert np.array_equal(fp32, torch.stack([h[:, 0] for h in hidden], 1).numpy())   # bitwise, as before
    enc = load_encoder(str(tmp_path / "dino"), device="cpu", dtype="bf16")
    bf16 = enc.encode(frames)
    assert bf16.dtype == np.float32 and enc.describe()["dtype"] == "bf16"
    assert 0 < np.abs(bf16 - fp32).max() < 0.05 * np.abs(fp32).max()
    placed = load_encoder(str(tmp_path / "dino"), device="cpu", device_map="auto")   # accelerate, here on the CPU
    assert placed.describe()["device_map"] == "auto"
    np.testing.assert_allclose(placed.encode(frames), fp32, rtol=1e-6, atol=1e-6)


def test_switches_are_checked_and_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "vtcache"))
    folder = str(_save_model(tmp_path / "m", seed=0))
    assert check_load_options(folder, {"dtype": "fp32", "device_map": None}) == {}   # the defaults: nothing recorded
    with pytest.raises(RequestError, match="dtype='fp64'.*one of fp32, bf16, fp16"):
        check_load_options(folder, {"dtype": "fp64"})
    with pytest.raises(RequestError, match="device_map='balanced'.*'auto'"):
        check_load_options(folder, {"device_map": "balanced"})
    with pytest.raises(RequestError, match="minilm-l6 is a registered name"):
        check_load_options("minilm-l6", {"dtype": "bf16"})
    r = build_request("synthetic_world", folder, captions=1, dataset_options=OPTS,
                      load_options={"dtype": "bf16", "device_map": "auto"})
    assert (r.key["dtype"], r.key["device_map"]) == ("bf16", "auto")
    assert r.entry("/c").name == "text-c1-s0-bf16-devicemap_auto"
    again = pickle.loads(pickle.dumps(r))                              # as a Ray worker receives it
    assert again.load_options == {"dtype": "bf16", "device_map": "auto"} and again.key == r.key and again == r
    assert request_arguments(r.key)["load_options"] == {"dtype": "bf16", "device_map": "auto"}   # --check rebuilds it

    plan = tmp_path / "plan.toml"
    plan.write_text(f'[[grid]]\ndataset = "synthetic_world"\noptions = {json.dumps(OPTS).replace(":", " =")}\n'
                    f'models = ["{folder}"]\ncaptions = [1, 2]\nload_options = {{ dtype = "fp16" }}\n')
    planned = load_plan(plan)
    assert [p.key["dtype"] for p in planned] == ["fp16", "fp16"] and planned[0].load_options == {"dtype": "fp16"}


def test_cli_dtype_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "vtcache"))
    folder = str(_save_model(tmp_path / "m", seed=0))
    base = ["--dataset", "synthetic_world", *[f"--option={k}={v}" for k, v in OPTS.items()], "--captions", "1",
            "--cache", str(tmp_path / "cache"), "--no-progress", "--device", "cpu"]
    assert extract_main([*base, "--model", folder, "--dtype", "bf16"]) == 0
    assert "text-c1-s0-bf16" in capsys.readouterr().out
    assert extract_main(["--check", "--cache", str(tmp_path / "cache")]) == 0       # rebuilt with its dtype: ok
    assert "stale" not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        extract_main([*base, "--model", folder, "--dtype", "fp64"])
    assert "invalid choice: 'fp64'" in capsys.readouterr().err
    assert extract_main([*base, "--model", "tiny-bert", "--dtype", "bf16"]) == 0      # a registered name: said so
    out = capsys.readouterr()
    assert "--dtype do(es) not apply to it" in out.err and out.out.rstrip().endswith("tiny-bert/text-c1-s0")
