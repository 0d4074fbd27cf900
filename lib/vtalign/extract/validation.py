"""Every extraction request checked before any work, in one place.

The command line (``python -m vtalign.extract``), :func:`vtalign.extract.extract_features`,
:func:`vtalign.extract.load_features`, the Ray plans of :mod:`vtalign.extract.cluster` and
``--check --repair`` all call these functions, so a request is judged the same way everywhere and a
bad one is refused with the same one-sentence :class:`~vtalign.extract.errors.RequestError` (a
``ValueError``) before any item is decoded and before any cache entry is made.

What is checked:

- the dataset is registered, its options are ones it declares (unknown names are listed next to the
  valid ones, with the closest), of the declared types, and values its builder accepts
  (:meth:`vtalign.extract.synthetic.WorldSpec.check` for the synthetic world); the built dataset has items;
- frames >= 1 (and, for a video model, a multiple of its native clip length n_o or less than it);
- captions >= 1 and within what the dataset's items have (items with fewer captions than asked are
  allowed only with ``skip_failures``, which leaves them out);
- the mode is one the model has, the seed is an integer;
- the model resolves (registered, a local folder or a checkpoint in the Hugging Face cache);
- a video or image model has videos to encode (a ``video_root`` for datasets that need one);
- k < N for neighbour counts, when N is known (:func:`check_k`).

Example
-------
>>> build_dataset("synthetic_world", {"nclips": 8})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
vtalign.extract.errors.RequestError: Unknown option 'nclips' for dataset synthetic_world (did you mean 'n_clips'?); ...
"""
from __future__ import annotations

import difflib
import inspect
import types
import typing

import numpy as np

from .datasets import DATASETS, VideoTextDataset, load_dataset
from .encoders import DEVICE_MAPS, DTYPES, ENCODERS, LOAD_OPTIONS, EncoderFacts, encoder_facts
from .errors import MissingVideosError, RequestError, UnknownDatasetError
from .manifest import entry as manifest_entry
from .manifest import manifest

__all__ = ["RequestError", "dataset_option_fields", "check_options", "build_dataset", "check_count",
           "check_mode", "check_request", "check_k", "check_load_options", "is_registered_name",
           "split_model_options", "merge_load_options"]

MODES = ("video", "image", "frames")


# --------------------------------------------------------------------------- #
# Dataset options
# --------------------------------------------------------------------------- #
def dataset_option_fields(name: str) -> dict[str, tuple] | None:
    """The options dataset ``name`` declares, as ``name -> (type, default)``; None when its builder takes
    ``**options`` without declaring them (a user's builder: its options cannot be checked here)."""
    builder = DATASETS[name]
    declared = getattr(builder, "option_fields", None)
    if declared is not None:
        return dict(declared() if callable(declared) else declared)
    sig = inspect.signature(builder)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    try:
        hints = typing.get_type_hints(builder)
    except Exception:  # noqa: BLE001  (annotations that do not evaluate: check names only)
        hints = {}
    out = {}
    for key, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = None if p.default is p.empty else p.default
        hint = hints.get(key)
        if hint is None and default is not None:
            hint = type(default)
        out[key] = (hint, default)
    return out


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _accepts(value, hint) -> bool:
    """Whether ``value`` (as JSON gives it, or as a caller passes it) is of type ``hint``."""
    if hint is None or hint is typing.Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_accepts(v, args[0]) for v in value)
        return len(value) == len(args) and all(_accepts(v, a) for v, a in zip(value, args))
    if origin in (list, typing.List):
        return isinstance(value, (list, tuple)) and all(_accepts(v, args[0]) for v in value) if args else True
    if hint is bool:
        return isinstance(value, (bool, np.bool_))
    if hint is int:
        return _is_int(value)
    if hint is float:
        return _is_int(value) or (isinstance(value, (float, np.floating)))
    if hint is str:
        return isinstance(value, str)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a type this check does not know: the builder judges


def _describe(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        named = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(named) + (" or null" if type(None) in args else "")
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0]).split(' ', 1)[-1]}s"
        return f"a list of {len(args)} " + (f"{_describe(args[0]).split(' ', 1)[-1]}s" if len(set(args)) == 1
                                            else "values")
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        hint, f"a {getattr(hint, '__name__', hint)}")


def check_options(name: str, options: dict | None) -> None:
    """Raise :class:`RequestError` for an option dataset ``name`` does not declare (listing the valid
    ones) or a value of another type than declared. The values themselves are judged by the builder."""
    if name not in DATASETS:
        load_dataset(name)  # raises UnknownDatasetError, listing the known names
    fields = dataset_option_fields(name)
    if fields is None:
        return
    for key, value in (options or {}).items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            valid = ", ".join(sorted(fields)) or "none"
            raise RequestError(f"Unknown option {key!r} for dataset {name}{hint}; its options: {valid}.")
        hint, default = fields[key]
        if not _accepts(value, hint):
            example = "" if default is None else f" (default {_json(default)})"
            raise RequestError(f"Option {key} of dataset {name} takes {_describe(hint)}{example}, got {value!r}.")


def _json(value) -> str:
    import json
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def build_dataset(name: str, options: dict | None = None) -> VideoTextDataset:
    """The dataset ``name`` built with ``options`` after :func:`check_options`; a value its builder refuses
    (``ValueError``, ``TypeError``) is a :class:`RequestError` naming the dataset, and so is a dataset
    that comes out with no items. Data files or videos that are not here raise
    :class:`~vtalign.extract.manifest.DataError` as before."""
    check_options(name, options)
    try:
        ds = load_dataset(name, **dict(options or {}))
    except (UnknownDatasetError, RequestError):
        raise
    except (ValueError, TypeError) as err:
        raise RequestError(f"Dataset {name}: {err}") from err
    if not len(ds):
        raise RequestError(f"Dataset {name} with options {dict(options or {})} has no items; change the options.")
    return ds


# --------------------------------------------------------------------------- #
# Counts, modes, models
# --------------------------------------------------------------------------- #
def check_count(value, name: str, what: str) -> int:
    """``value`` as an int >= 1, else a :class:`RequestError` (``what`` says what it counts)."""
    if not _is_int(value):
        raise RequestError(f"{name}={value!r}: {what} is a whole number of at least 1.")
    if value < 1:
        raise RequestError(f"{name}={value}: {what} must be at least 1; ask for {name} >= 1.")
    return int(value)


def check_mode(modality: str, mode: str, model: str) -> None:
    """The mode of an extraction fits the model: any of :data:`MODES` for an image model (text models
    ignore it); video models average their clips and have no ``"frames"`` mode."""
    if mode not in MODES:
        raise RequestError(f"mode must be 'image' (first frame), 'video' (frames averaged) or 'frames' (every "
                           f"sampled frame kept: [N, F, L, D] for vtalign.pooling), got {mode!r}.")
    if mode == "frames" and modality == "video":
        raise RequestError(f"mode='frames' keeps per-frame features of image models; {model} is a {modality} "
                           "model (use mode='video').")


def is_registered_name(model) -> bool:
    """Whether ``model`` names a model with its own loader (offline models, ``tiny-*``, a user's
    :func:`~vtalign.extract.register_encoder`), which the Hugging Face load options do not reach."""
    return isinstance(model, str) and (model in ENCODERS or model.startswith("tiny-"))


def split_model_options(model: str) -> tuple[str, dict]:
    """A model name with load options written after it in brackets, the form a chapter parameter, a plan or
    the command line can carry in a model list: ``"org/model[dtype=bf16,device_map=auto]"``. Values of the
    yes/no options (``allow_download``, ``trust_remote_code``) are ``true`` or ``false``. A name without
    brackets, or an existing folder whose name has them, comes back whole with ``{}``; the options are
    checked by :func:`check_load_options` where the request is built.

    >>> split_model_options("org/model[dtype=bf16, allow_download=true]")
    ('org/model', {'dtype': 'bf16', 'allow_download': True})
    >>> split_model_options("minilm-l6")
    ('minilm-l6', {})
    """
    import os

    text = str(model).strip()
    if not (text.endswith("]") and "[" in text) or os.path.exists(text):
        return str(model), {}
    name, _, body = text[:-1].partition("[")
    if not name or "[" in body or "]" in body:
        raise RequestError(f"Model {model!r}: load options are written once, after the name, as "
                           "name[key=value,...], e.g. org/model[dtype=bf16,device_map=auto].")
    options = {}
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, eq, value = (s.strip() for s in part.partition("="))
        if not eq or not key or not value:
            raise RequestError(f"Model {model!r}: {part!r} is not key=value (load options: "
                               f"{', '.join(LOAD_OPTIONS)}).")
        if key not in LOAD_OPTIONS:
            close = difflib.get_close_matches(key, LOAD_OPTIONS, n=1)
            raise RequestError(f"Model {model!r}: unknown load option {key!r}"
                               + (f" (did you mean {close[0]!r}?)" if close else "")
                               + f"; the load options are {', '.join(LOAD_OPTIONS)}.")
        if key in options:
            raise RequestError(f"Model {model!r}: load option {key!r} is given twice.")
        if LOAD_OPTIONS[key] is bool:
            if value.lower() not in ("true", "false"):
                raise RequestError(f"Model {model!r}: {key} is true or false, got {value!r}.")
            options[key] = value.lower() == "true"
        else:
            options[key] = value
    return name.strip(), options


def merge_load_options(model: str, load_options: dict | None) -> tuple[str, dict | None]:
    """The model's name and its load options, from a name with options in brackets
    (:func:`split_model_options`) and those passed separately: an option given both ways with two values
    is an error, not a silent choice.

    >>> merge_load_options("org/m[dtype=bf16]", {"allow_download": True})
    ('org/m', {'allow_download': True, 'dtype': 'bf16'})
    """
    name, written = split_model_options(model)
    if not written:
        return name, load_options
    passed = dict(load_options or {})
    clash = sorted(k for k in written if k in passed and passed[k] != written[k])
    if clash:
        raise RequestError(f"Model {model!r}: load option(s) {clash} are written after the name and passed as "
                           f"load_options with other values ({ {k: passed[k] for k in clash} }); give each once.")
    return name, {**passed, **written}


def check_load_options(model, options: dict | None) -> dict:
    """The Hugging Face load options of a request (:data:`vtalign.extract.encoders.LOAD_OPTIONS`: names, types and
    values), as a dict with the defaults left out (``dtype="fp32"``, ``False``, ``None``). They apply to Hugging Face
    ids and local folders, not to registered names (whose loaders take no such options): asking for them there is
    an error. ``dtype`` is one of fp32, bf16, fp16; ``device_map`` is ``"auto"``. Whether a checkpoint's own code may
    run (``trust_remote_code`` with a pinned commit) is judged where its config is read
    (:func:`vtalign.extract.encoders.remote_code`).

    >>> check_load_options("org/model", {"dtype": "fp32", "allow_download": False, "device_map": "auto"})
    {'device_map': 'auto'}
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(LOAD_OPTIONS))
    if unknown:
        raise RequestError(f"Unknown load option(s) {unknown} for model {model}; the load options are "
                           f"{', '.join(LOAD_OPTIONS)}.")
    for key, value in options.items():
        if value is None and key in ("revision", "dtype", "device_map"):
            continue
        if not isinstance(value, LOAD_OPTIONS[key]):
            raise RequestError(f"Load option {key}={value!r} for model {model}: it takes a "
                               f"{LOAD_OPTIONS[key].__name__}.")
    if options.get("dtype") not in (None, *DTYPES):
        raise RequestError(f"Load option dtype={options['dtype']!r} for model {model}: it is one of "
                           f"{', '.join(DTYPES)}.")
    if options.get("device_map") not in (None, *DEVICE_MAPS):
        raise RequestError(f"Load option device_map={options['device_map']!r} for model {model}: it is "
                           f"{' or '.join(repr(d) for d in DEVICE_MAPS)} (accelerate spreads the model over the "
                           "visible GPUs) or left out.")
    options = {k: v for k, v in options.items() if v not in (False, None) and not (k == "dtype" and v == "fp32")}
    if options and is_registered_name(model):
        raise RequestError(f"Load options ({', '.join(sorted(options))}) apply to Hugging Face ids and local "
                           f"folders; {model} is a registered name, loaded by its own loader.")
    return options


def check_request(ds: VideoTextDataset, model, frames: int = 8, captions: int = 1, mode: str = "video",
                  seed: int = 0, *, skip_failures: bool = False, needs_videos: bool = True,
                  encoder=None, load_options: dict | None = None) -> EncoderFacts:
    """Check one extraction request before any work; returns the model's
    :class:`~vtalign.extract.encoders.EncoderFacts`. Raises :class:`RequestError` (one sentence: what
    is wrong and what to do): see the module docstring for the list.

    skip_failures : items with fewer captions than asked are then allowed (they are left out)
    needs_videos : False when only reading a cache entry (a video entry made with a ``video_root`` is
        read without one)
    encoder : an already loaded encoder for ``model`` (its native clip length is the one checked)
    load_options : Hugging Face load options (:func:`check_load_options`), used to resolve the model
    """
    name = model if isinstance(model, str) else getattr(model, "name", model)
    if not len(ds):
        raise RequestError(f"Dataset {ds.name} has no items; nothing to extract.")
    if not _is_int(seed):
        raise RequestError(f"seed={seed!r}: the caption-choice seed is an integer.")
    options = check_load_options(name, load_options)
    facts = encoder_facts(name, loaded=encoder, **options)  # a user's registered model is not loaded again
    modality = getattr(encoder, "modality", None) or facts.modality
    check_mode(modality, mode, name)
    if modality == "text":
        captions = check_count(captions, "captions", "the number of captions joined per item")
        have = [len(it.captions) for it in ds.items]
        most, fewest = max(have), min(have)
        if captions > most:
            raise RequestError(f"captions={captions}: no item of {ds.name} has that many captions (the most any "
                               f"item has is {most}); ask for 1 to {most}." if most else
                               f"captions={captions}: the items of {ds.name} have no captions.")
        if captions > fewest and not skip_failures:
            short = sum(h < captions for h in have)
            raise RequestError(f"captions={captions}: {short} of {len(have)} items of {ds.name} have fewer "
                               f"captions than that (the fewest: {fewest}); ask for at most {fewest}, or pass "
                               "--skip-failures (skip_failures=True) to leave those items out.")
        return facts
    frames = check_count(frames, "frames", "the number of frames sampled per video")
    native = getattr(encoder, "native_frames", None) if encoder is not None else facts.native_frames
    if modality == "video" and native and frames >= native and frames % native:
        raise RequestError(f"frames={frames}: n_f={frames} frames is not a multiple of the encoder's native clip "
                           f"length n_o={native} ({name}); use n_f in {{{native}, {2 * native}, {3 * native}, ...}} "
                           f"or n_f < {native}.")
    if needs_videos and all(it.video is None for it in ds.items):
        how = manifest_entry(ds.name).videos if ds.name in manifest() else ""
        raise MissingVideosError(f"[{ds.name}] was built without videos, so the {modality} model {name} has "
                                 f"nothing to encode. {how} (command line: --option video_root=/path/to/videos)")
    return facts


def check_k(k, n: int, what: str = "the dataset") -> int:
    """``k`` neighbours per item, where ``what`` has ``n`` items: 1 <= k < n (an item has n - 1 others)."""
    if not _is_int(k):
        raise RequestError(f"k={k!r}: the number of neighbours is a whole number.")
    if not 1 <= k < n:
        raise RequestError(f"k={k}: the number of neighbours must satisfy 1 <= k < N, and {what} has N={n} "
                           f"items; ask for k <= {n - 1}.")
    return int(k)
