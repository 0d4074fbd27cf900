"""Issue 23: VideoMAEv2 through trust_remote_code, with a local module that follows the published interface
(tests/fixtures/videomaev2_remote: config class + model with ``auto_map``), from a local folder and from a
Hugging Face cache laid out as a download leaves it (offline: no network is used). Never on by default; a hub id
needs a pinned 40-hex commit; the code's files are printed and their digests recorded in the cache key.
None of this ran on OpenGVLab's real code or weights (see the README)."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vtalign.extract.cli import main as extract_main
from vtalign.extract.encoders import (
    HF_FAMILIES,
    MODEL_TYPE_FAMILY,
    REMOTE_CODE_CONTRACT,
    encoder_facts,
    load_encoder,
    preprocess_frames,
)
from vtalign.extract.errors import RequestError
from vtalign.extract.request import build_request, request_arguments

FIXTURE = Path(__file__).parent / "fixtures" / "videomaev2_remote"
MODEL_CONFIG = dict(img_size=32, patch_size=8, in_chans=3, num_classes=0, embed_dim=32, depth=2, num_heads=2,
                    mlp_ratio=2.0, tubelet_size=2, num_frames=4, use_mean_pooling=True)
COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "vtalign-test/videomaev2-tiny"
OPTS = {"n_clips": 6, "size": 32, "n_frames": 8}


def sinusoid_table(n, d):
    """The fixed positions of VideoMAE(v2): sin on even, cos on odd channels of position / 10000^(2(j//2)/d)."""
    position = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    div = torch.tensor([10000 ** (2 * (j // 2) / d) for j in range(d)], dtype=torch.float64)
    table = position / div
    table[:, 0::2], table[:, 1::2] = torch.sin(table[:, 0::2]), torch.cos(table[:, 1::2])
    return table.float().unsqueeze(0)


def _remote_folder(folder: Path, edit=lambda code: code) -> Path:
    """A checkpoint folder as OpenGVLab publishes one: config.json (model_type VideoMAEv2_Base, auto_map,
    model_config), the two code files (``edit`` applied) and seeded random weights."""
    folder.mkdir(parents=True)
    for src in FIXTURE.glob("*.py.in"):
        (folder / src.name[:-3]).write_text(edit(src.read_text()))
    config = {"model_type": "VideoMAEv2_Base", "architectures": ["VideoMAEv2"], "model_config": MODEL_CONFIG,
              "auto_map": {"AutoModel": "modeling_videomaev2.VideoMAEv2",
                           "AutoConfig": "modeling_config.VideoMAEv2Config"}}
    (folder / "config.json").write_text(json.dumps(config))
    from transformers import AutoConfig, AutoModel
    torch.manual_seed(0)
    model = AutoModel.from_config(AutoConfig.from_pretrained(folder, trust_remote_code=True), trust_remote_code=True)
    model.save_pretrained(folder)
    json.loads((folder / "config.json").read_text())["auto_map"]   # still there after saving
    return folder


def _hub_cache(tmp_path, monkeypatch) -> Path:
    """The folder laid out as the Hugging Face cache holds a download of REPO at COMMIT (refs/main -> COMMIT)."""
    import huggingface_hub.constants as hf_constants
    cache = tmp_path / "hub"
    repo = cache / f"models--{REPO.replace('/', '--')}"
    _remote_folder(repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    return repo / "snapshots" / COMMIT


def test_local_remote_code_follows_the_declared_contract(tmp_path, capsys):
    folder = _remote_folder(tmp_path / "v2")
    assert MODEL_TYPE_FAMILY["VideoMAEv2_Base"] == "videomae_v2" and HF_FAMILIES["videomae_v2"].inputs == "blocks"
    with pytest.raises(RequestError, match=r"runs its own code \(modeling_config.py, modeling_videomaev2.py\), "
                                           r"which is off by default"):
        load_encoder(str(folder))                                  # never on by default
    enc = load_encoder(str(folder), trust_remote_code=True)
    said = capsys.readouterr().err
    digest = hashlib.sha256((folder / "modeling_videomaev2.py").read_bytes()).hexdigest()
    assert "about to run" in said and "(local folder)" in said
    assert f"modeling_videomaev2.py sha256:{digest[:12]}" in said
    assert (enc.modality, enc.pooling, enc.native_frames) == ("video", "mean", 4)
    assert enc.describe()["remote_code"]["modeling_videomaev2.py"] == f"sha256:{digest}"

    frames = np.random.default_rng(0).integers(0, 256, (2, 4, 40, 48, 3), dtype=np.uint8)
    out = enc.encode(frames)
    # The contract's layers computed by hand from the same weights: the first block's input, every block's output.
    from transformers import AutoModel
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    x = preprocess_frames(frames, 32).transpose(1, 2)              # [B, C, T, H, W]
    with torch.no_grad():
        tokens = model.model.patch_embed(x)
        tokens = tokens + sinusoid_table(tokens.shape[1], 32)
        layers = [tokens.mean(1)]
        for block in model.model.blocks:
            tokens = block(tokens)
            layers.append(tokens.mean(1))
    assert out.shape == (2, 3, 32)
    np.testing.assert_allclose(out, torch.stack(layers, 1).numpy(), rtol=1e-5, atol=1e-5)


def test_remote_code_without_the_contract_is_refused(tmp_path):
    # its own folder name: transformers imports a folder's code as a module named after the folder, once a process
    folder = _remote_folder(tmp_path / "v2_without_blocks", lambda code: code.replace("self.blocks", "self.layers"))
    with pytest.raises(RuntimeError, match="does not follow the declared output contract"):
        load_encoder(str(folder), trust_remote_code=True)
    assert "model.blocks" in REMOTE_CODE_CONTRACT


def test_hub_remote_code_needs_a_pinned_commit_and_records_its_digests(tmp_path, monkeypatch, capsys):
    snapshot = _hub_cache(tmp_path, monkeypatch)
    with pytest.raises(RequestError, match="off by default"):
        encoder_facts(REPO)
    for revision in (None, "main"):                                 # a branch or a tag can move
        with pytest.raises(RequestError, match="needs a pinned revision, the 40-hex commit hash"):
            encoder_facts(REPO, trust_remote_code=True, revision=revision)
    assert "about to run" not in capsys.readouterr().err           # refused before anything was announced or run
    facts = encoder_facts(REPO, trust_remote_code=True, revision=COMMIT)
    assert f"about to run {REPO} (commit {COMMIT}) code: modeling_config.py sha256:" in capsys.readouterr().err
    digests = {p.name: "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in snapshot.glob("*.py")}
    assert facts.remote_code == digests and facts.revision == COMMIT and facts.native_frames == 4

    options = {"trust_remote_code": True, "revision": COMMIT}
    r = build_request("synthetic_world", REPO, frames=4, dataset_options=OPTS, load_options=options)
    assert r.key["remote_code"] == digests and r.key["model_revision"] == COMMIT
    # --check rebuilds a recorded request with its commit but never trusts code by itself: refused, not invalid
    again = request_arguments(r.key)
    assert again["load_options"] == {"revision": COMMIT}
    with pytest.raises(RequestError, match="off by default") as refused:
        build_request(again.pop("dataset"), again.pop("model"), dataset_options=again.pop("dataset_options"), **again)
    assert refused.value.permanent is False
    assert r.entry("/c").parts[-2] == "vtalign-test__videomaev2-tiny@" + COMMIT[:12]

    cache = tmp_path / "features"
    base = ["--dataset", "synthetic_world", *[f"--option={k}={v}" for k, v in OPTS.items()], "--model", REPO,
            "--frames", "4", "--cache", str(cache), "--no-progress"]
    assert extract_main([*base, "--trust-remote-code"]) == 2
    assert "needs a pinned revision" in capsys.readouterr().err
    assert not cache.exists()                                       # refused before any entry was made
    assert extract_main([*base, "--trust-remote-code", "--revision", COMMIT]) == 0
    meta = json.loads((r.entry(cache) / "meta.json").read_text())
    assert meta["request"]["remote_code"] == digests and meta["encoder"]["remote_code"] == digests
