"""One extraction request, built and checked once: :class:`FeatureRequest`.

A request names a dataset (with its options), a model, and a frame or caption count. It is built once,
by :func:`build_request`, which checks it (:mod:`vtalign.extract.validation`) and records its content
identity (:mod:`vtalign.extract.identity`) in ``key``: everything that determines the cache entry's
contents, stored as ``meta["request"]`` and compared field by field before an entry is reused. The same
object then travels everywhere the request goes: :func:`vtalign.extract.extract_features`, the command
line, the Ray plans of :mod:`vtalign.extract.cluster` (pickled without its dataset, which a worker
rebuilds from the name and options) and ``--check``.

Example
-------
>>> r = build_request("test_of_time", "tiny-bert", captions=1)
>>> r.side, r.setting, r.entry("/cache").parts[-2:]
('text', 'captions=1', ('tiny-bert', 'text-c1-s0'))
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import paths
from .._version import __version__
from .datasets import VideoTextDataset, load_dataset
from .encoders import EncoderFacts, encoder_facts
from .errors import RequestError
from .identity import canonical_model, is_local_revision, video_identity
from .validation import build_dataset, check_load_options, check_mode, check_request, merge_load_options

__all__ = ["FeatureRequest", "build_request", "feature_request", "request_setting", "cache_entry",
           "request_differences", "request_arguments", "digest"]


def digest(obj) -> str:
    """sha256 (first 12 hex digits) of an object's JSON form: the options folder of a cache entry."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class FeatureRequest:
    """A checked request and its identity; equal (and hashed) by what it asks for and by its identity.

    dataset, options : the registered dataset's name and its options
    model : the model as recorded (a local folder: its absolute real path)
    frames, captions, mode, seed : as :func:`vtalign.extract.extract_features`
    load_options : Hugging Face load options (``allow_download``, ``revision``, ``trust_remote_code``, ``dtype``,
        ``device_map``), carried to every process that loads the model. ``key`` records what changes the
        features: a pinned revision through the resolved ``model_revision``, ``dtype`` (when not fp32),
        ``device_map`` and, for a checkpoint with its own code, ``remote_code`` (its files' digests);
        ``allow_download`` changes nothing and is not recorded
    key : the identity that determines the entry's contents (``meta["request"]``)
    identity : a digest of ``key`` (two requests for one model at two revisions differ here)
    checked : how leniently it was checked, ``(skip_failures, needs_videos)``; :meth:`for_run` checks a
        request built only to read an entry again before anything is made from it
    """
    dataset: str
    model: str
    frames: int = 8
    captions: int = 1
    mode: str = "video"
    seed: int = 0
    options: dict = field(default_factory=dict, hash=False)
    load_options: dict = field(default_factory=dict, hash=False, repr=False)
    key: dict = field(default_factory=dict, compare=False, hash=False, repr=False)
    identity: str = field(default="", repr=False)
    checked: tuple = field(default=(False, True), compare=False, hash=False, repr=False)
    built: VideoTextDataset | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def data(self) -> VideoTextDataset:
        """The dataset's items; rebuilt from its name and options where the request was unpickled."""
        if self.built is None:
            object.__setattr__(self, "built", load_dataset(self.dataset, **self.options))
        return self.built

    @property
    def side(self) -> str:
        return self.key["side"]

    @property
    def setting(self) -> str:
        return request_setting(self.key)

    def entry(self, cache_root=None) -> Path:
        """The folder of this request's cache entry under ``cache_root`` (default: the project's cache)."""
        return cache_entry(self.key, cache_root)

    def arguments(self) -> dict:
        return dict(frames=self.frames, captions=self.captions, mode=self.mode, seed=self.seed)

    def for_run(self, skip_failures: bool = False) -> "FeatureRequest":
        """This request checked as strictly as a run that makes its entry checks it: again only when it
        was checked more leniently (built to read, or with ``skip_failures``)."""
        lenient, needs_videos = self.checked
        if (lenient and not skip_failures) or not needs_videos:
            check_request(self.data, self.model, **self.arguments(), skip_failures=skip_failures,
                          load_options=self.load_options)
            return replace(self, checked=(bool(skip_failures), True))
        return self

    def __reduce__(self):  # pickled (to Ray workers) without its dataset: rebuilt there from name and options
        return (FeatureRequest, (self.dataset, self.model, self.frames, self.captions, self.mode, self.seed,
                                 self.options, self.load_options, self.key, self.identity, self.checked))


def build_request(dataset, model, frames: int = 8, captions: int = 1, mode: str = "video", seed: int = 0, *,
                  dataset_options: dict | None = None, skip_failures: bool = False, needs_videos: bool = True,
                  encoder=None, load_options: dict | None = None) -> FeatureRequest:
    """Check a request and record its identity, once (see the module docstring).

    dataset : a registered name (with ``dataset_options``) or a built :class:`VideoTextDataset`
    model : a registered name, Hugging Face id or local folder, or a loaded
        :class:`~vtalign.extract.encoders.Encoder` (``encoder`` may pass one for ``model``): a model a user
        registered is then named by its own facts, not loaded again to be named. A name may carry its load
        options in brackets, ``"org/model[dtype=bf16,device_map=auto]"``
        (:func:`vtalign.extract.validation.split_model_options`): the form chapter parameters and model lists use
    skip_failures, needs_videos, load_options : as :func:`vtalign.extract.validation.check_request`

    Raises :class:`~vtalign.extract.errors.RequestError` before any work for a bad request.
    """
    from .encoders import Encoder

    if isinstance(dataset, VideoTextDataset):
        if dataset_options:
            raise RequestError("Pass dataset options when naming a dataset, not with a built VideoTextDataset.")
        ds = dataset
    else:
        ds = build_dataset(dataset, dataset_options)  # options checked first
    enc = encoder or (model if isinstance(model, Encoder) else None)
    if isinstance(model, str):
        model, load_options = merge_load_options(model, load_options)
    name = canonical_model(model if isinstance(model, str) else getattr(model, "name", model))
    facts = check_request(ds, name, frames, captions, mode, seed, skip_failures=skip_failures,
                          needs_videos=needs_videos, encoder=enc, load_options=load_options)  # as the key records them
    options = check_load_options(name, load_options)
    key = feature_request(ds, name, frames, captions, mode, seed, facts=facts, load_options=options)
    return FeatureRequest(ds.name, name, int(frames), int(captions), mode, int(seed), dict(ds.options),
                          options, key, digest(key),
                          (bool(skip_failures), bool(needs_videos)), ds)


def feature_request(ds: VideoTextDataset, model: str, frames: int = 8, captions: int = 1, mode: str = "video",
                    seed: int = 0, *, facts: EncoderFacts | None = None, load_options: dict | None = None) -> dict:
    """Everything that determines a cache entry's contents (compared field by field on reuse): the
    ``key`` of a :class:`FeatureRequest`.

    Content identity (:mod:`vtalign.extract.identity`): a local model folder is recorded by its absolute
    real path, with a digest of its files as ``model_revision``; a hub model by its resolved revision; the
    video side records ``videos``, the identity of the video files read (names, sizes, partial content
    digests), or None when the dataset has none (generated clips are identified by ``dataset_version``,
    and a dataset built without its ``video_root`` can only read an entry, never make one).
    ``facts`` : the model's facts when known (a loaded encoder's), else looked up without loading it.
    ``load_options`` (checked, defaults left out): ``dtype`` other than fp32 and ``device_map`` are recorded, so an
    entry made in bf16 is never taken for an fp32 one (and an fp32 key is as it was before either existed); a
    checkpoint's own code is recorded as ``remote_code``, its files' digests."""
    model = canonical_model(model)
    load_options = dict(load_options or {})
    facts = facts or encoder_facts(model, **load_options)
    req = {"dataset": ds.name, "dataset_options": ds.options, "dataset_version": ds.version,
           "items_digest": digest(ds.ids), "n_items": len(ds), "model": model, "model_revision": facts.revision,
           "modality": facts.modality, "library_version": __version__}
    for name in ("dtype", "device_map"):
        if load_options.get(name) not in (None, "fp32"):
            req[name] = load_options[name]
    if facts.remote_code:
        req["remote_code"] = dict(facts.remote_code)
    if facts.modality == "text":
        req.update(side="text", captions=int(captions), seed=int(seed),
                   captions_digest=digest([it.captions for it in ds.items]))
        return json.loads(json.dumps(req, default=str))
    # The video side does not depend on the captions: options that change only them are left out,
    # so every caption style of a dataset shares one extraction of its videos.
    req["dataset_options"] = {k: v for k, v in ds.options.items() if k not in ds.caption_options}
    req["videos"] = video_identity(ds)
    check_mode(facts.modality, mode, model)
    if facts.modality == "image":
        req.update(side="video", mode=mode, frames=1 if mode == "image" else int(frames))
    else:
        req.update(side="video", mode="clips", frames=int(frames))
    return json.loads(json.dumps(req, default=str))  # the form meta.json stores (tuples become lists)


def request_setting(req: dict) -> str:
    """The count a request is about, as the summaries print it: ``captions=5`` for a text request
    (``seed=`` too when not 0), ``frames=8`` for a video one (`` mode=`` too for an image model's
    ``image`` or ``frames`` mode)."""
    if req.get("side") == "text":
        return f"captions={req.get('captions')}" + (f" seed={req['seed']}" if req.get("seed") else "")
    mode = req.get("mode")
    return f"frames={req.get('frames')}" + (f" mode={mode}" if mode not in (None, "video", "clips") else "")


def cache_entry(req: dict, cache_root: Path | None = None) -> Path:
    """The folder of one request's cache entry (readable path, options as a digest). A local model folder
    and a Hugging Face id are followed by ``@`` and their weights' digest or resolved commit; a precision other
    than fp32 and a ``device_map`` end the last part (``text-c5-s0-bf16``), so they never share an fp32 entry.

    >>> key = dict(dataset="vatex", dataset_options={}, model="org/model", side="text", captions=5, seed=0)
    >>> [cache_entry({**key, "model_revision": c}, "/c").parts[-2] for c in ("0123456789abcdef", "fedcba9876543210")]
    ['org__model@0123456789ab', 'org__model@fedcba987654']
    >>> cache_entry({**key, "model_revision": "0123456789abcdef", "dtype": "bf16"}, "/c").name
    'text-c5-s0-bf16'
    """
    root = Path(cache_root) if cache_root else paths.cache_dir("features")
    model = req["model"].replace("/", "__")
    revision = str(req.get("model_revision") or "")
    if is_local_revision(revision):  # a local folder: its path and the digest of its files
        model += "@" + revision.split(":", 1)[1][:12]
    elif "/" in req["model"] and revision not in ("", "unresolved"):  # a hub id: each resolved commit its own
        model += "@" + revision[:12]                                  # entry, so pinned revisions never collide
    side = (f"text-c{req['captions']}-s{req['seed']}" if req["side"] == "text"
            else f"video-f{req['frames']}-{req['mode']}")
    if req.get("dtype"):
        side += f"-{req['dtype']}"
    if req.get("device_map"):
        side += f"-devicemap_{req['device_map']}"
    return root / req["dataset"] / digest(req["dataset_options"]) / model / side


# Fields a request may leave unknown (present, None): the video files of a dataset built without its
# video_root, which can read an entry made with them but not check their identity.
_UNKNOWN_ALLOWED = ("videos",)


def request_differences(a: dict, b: dict) -> list[str]:
    """The fields in which two requests differ (a field missing on one side counts), sorted. ``videos``
    present as None on one side (not known there) is not a difference; missing altogether (an entry made
    before videos were identified) it is."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)
                  and not (k in _UNKNOWN_ALLOWED and ((k in a and a[k] is None) or (k in b and b[k] is None))))


def request_arguments(req: dict) -> dict:
    """Keyword arguments of :func:`build_request` that reproduce a recorded request: its load options too (the
    precision and placement it records; for a hub checkpoint with its own code, the commit it was made with).
    Trust in a checkpoint's own code is never given here: rebuilding such a request is refused (not permanently)
    until the caller passes ``trust_remote_code`` itself."""
    load = {k: req[k] for k in ("dtype", "device_map") if req.get(k)}
    if req.get("remote_code") and not is_local_revision(str(req.get("model_revision") or "")):
        load["revision"] = req.get("model_revision")
    return dict(dataset=req["dataset"], dataset_options=req.get("dataset_options") or {}, model=req["model"],
                frames=int(req.get("frames", 8)), captions=int(req.get("captions", 1)),
                mode=req.get("mode", "video") if req.get("mode") in ("image", "video", "frames") else "video",
                seed=int(req.get("seed", 0)), load_options=load)
