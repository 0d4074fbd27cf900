"""Cached per-layer features: ``extract_features`` computes, ``load_features`` reads.

One cache entry per request (dataset and its options, model, frames or captions, seed) in
``.cache/features/<dataset>/<options digest>/<model>/<side>/``:

- ``features.npy``: float32 [N, L, D], rows in the dataset's item order (zero-padded to the
  widest layer when widths differ; ``meta["layer_dims"]`` has the true widths);
- ``meta.json``: the request, the model's revision and pooling, ``item_ids`` in row order,
  failures, library version. Written last: an entry without it is incomplete.

While running, items are processed in chunks written atomically to ``parts/``; an
interrupted run resumes from them. Several processes may work on one entry at once: each part is
claimed by one of them, and an entry is completed in one step (``meta.json`` renamed into place)
before ``parts/`` is removed in one step (renamed aside, then deleted). A process checks for the
completed entry before it claims a part and again after, and never makes ``parts/`` again for a
completed entry, so no part is computed twice, whatever the interleaving. An entry whose recorded
request differs from the new one is recomputed, never reused. A video that fails to decode is
reported at the end and raises :class:`ExtractionError` unless ``skip_failures=True``, in which
case its row is left out and listed in ``meta["failures"]``; :func:`pair_features` then keeps the
items both sides have, in one order. Such a reduced entry is reused only by runs that skip failures
too: a run without ``skip_failures`` retries its failed items (only their parts are computed again)
and puts the entry back as it was if they fail again. ``force=True`` recomputes an entry.

A request records the content identity of its inputs (:mod:`vtalign.extract.identity`): a local model
folder by its real path and a digest of its config, weight and tokenizer files (its entry folder is
``<path>@<digest>``, so other weights in the same folder make a new entry, and ``--check`` reports the
old one stale), a hub model by its resolved revision, and the video files read by their names, sizes
and partial content digests (first and last MiB); ``meta.json`` also records each file's full digest
(``inputs``), which ``verify=True`` compares. An entry made from other video files keeps the rows of
the unchanged files and recomputes only the parts with changed ones.

Every request is checked before any of this (:mod:`vtalign.extract.validation`): a bad one raises
:class:`~vtalign.extract.errors.RequestError` and makes no entry. Files are written with the mode a
plain ``open`` gives (0666 less the umask), so a cache shared by a group stays readable.

Example
-------
>>> import tempfile
>>> feats, meta = extract_features("test_of_time", "tiny-bert", captions=1, progress=False,
...                                cache_dir=tempfile.mkdtemp())
>>> feats.shape, meta["item_ids"][0]
((180, 3, 32), 'tot-red-before-green')
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from .. import paths
from .._version import __version__
from .datasets import VideoTextDataset
from .encoders import Encoder, encoder_identity, load_encoder, resolve_device
from .errors import RequestError
from .identity import canonical_model, is_local_revision, video_full_digests, video_identity
from .sampling import caption_text, image_frame_indices, video_clip_indices
from .validation import build_dataset, check_mode, check_request

__all__ = ["ExtractionError", "CorruptEntryError", "extract_features", "load_features", "feature_request",
           "request_setting", "cache_entry", "common_items", "pair_features", "file_digest", "check_entry", "cache_entries",
           "set_aside", "recorded_request", "request_arguments", "request_differences", "read_complete", "open_parts",
           "make_part", "part_chunks", "prepare_entry", "live_claims", "EntryBusyError"]

CHUNK_ITEMS = 32  # items per resumable part


class ExtractionError(RuntimeError):
    """Some items failed (decode errors, too few captions); lists every one of them."""

    def __init__(self, failures: list[dict], where: Path):
        self.failures = failures
        shown = 20
        lines = "\n".join(f"  {f['item']}: {f['source']}: {f['error']}" for f in failures[:shown])
        if len(failures) > shown:
            lines += f"\n  ... and {len(failures) - shown} more (all of them in this error's .failures)"
        super().__init__(f"{len(failures)} item(s) failed:\n{lines}\nThe other items are kept in {where}; fix the "
                         "inputs and re-run to resume, or pass skip_failures=True (--skip-failures) to leave "
                         "the failed items out (they are then listed in the cache's meta.json).")


class CorruptEntryError(ValueError):
    """A cache entry whose files are damaged (truncated, unreadable, or not what its meta.json records)."""

    def __init__(self, entry: Path, problem: str):
        self.entry, self.problem = Path(entry), problem
        super().__init__(f"Cache entry {entry} is corrupt: {problem}. Repair it with `python -m vtalign.extract "
                         f"--check --repair` (recomputes every broken entry; the damaged files are kept in a "
                         f"'.corrupt-<time>' folder beside it), or re-run the extraction, which does the same.")


def file_digest(path: Path) -> str:
    """blake2b (128 bits) of a file's bytes, read in 8 MiB blocks."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 23), b""):
            h.update(block)
    return h.hexdigest()


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _resolve_dataset(dataset, dataset_options) -> VideoTextDataset:
    if isinstance(dataset, VideoTextDataset):
        if dataset_options:
            raise RequestError("Pass dataset options when naming a dataset, not with a built VideoTextDataset.")
        return dataset
    return build_dataset(dataset, dataset_options)  # options checked first (vtalign.extract.validation)


def feature_request(ds: VideoTextDataset, model: str, frames: int = 8, captions: int = 1, mode: str = "video",
                    seed: int = 0) -> dict:
    """Everything that determines a cache entry's contents (compared field by field on reuse).

    Content identity (:mod:`vtalign.extract.identity`): a local model folder is recorded by its absolute
    real path, with a digest of its files as ``model_revision``; a hub model by its resolved revision; the
    video side records ``videos``, the identity of the video files read (names, sizes, partial content
    digests), or None when the dataset has none (generated clips are identified by ``dataset_version``,
    and a dataset built without its ``video_root`` can only read an entry, never make one)."""
    model = canonical_model(model)
    modality, revision = encoder_identity(model)
    req = {"dataset": ds.name, "dataset_options": ds.options, "dataset_version": ds.version,
           "items_digest": _digest(ds.ids), "n_items": len(ds), "model": model, "model_revision": revision,
           "modality": modality, "library_version": __version__}
    if modality == "text":
        req.update(side="text", captions=int(captions), seed=int(seed),
                   captions_digest=_digest([it.captions for it in ds.items]))
        return json.loads(json.dumps(req, default=str))
    # The video side does not depend on the captions: options that change only them are left out,
    # so every caption style of a dataset shares one extraction of its videos.
    req["dataset_options"] = {k: v for k, v in ds.options.items() if k not in ds.caption_options}
    req["videos"] = video_identity(ds)
    check_mode(modality, mode, model)
    if modality == "image":
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
    """The folder of one request's cache entry (readable path, options as a digest)."""
    root = Path(cache_root) if cache_root else paths.cache_dir("features")
    model = req["model"].replace("/", "__")
    if is_local_revision(req.get("model_revision")):  # a local folder: its path and the digest of its files
        model += "@" + req["model_revision"].split(":", 1)[1][:12]
    side = (f"text-c{req['captions']}-s{req['seed']}" if req["side"] == "text"
            else f"video-f{req['frames']}-{req['mode']}")
    return root / req["dataset"] / _digest(req["dataset_options"]) / model / side


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """This process's umask, read without changing it where Linux shows it (/proc/self/status), else
    set and put back under a lock."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _atomic_save(path: Path, write) -> None:
    """Write ``path`` through a temporary file renamed into place. The file gets the mode a plain
    ``open`` would give it (0666 less the umask), not mkstemp's 0600: a cache shared by a group stays
    readable by the group."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _savez(path, **arrays) -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would otherwise append ".npz" to the name
        np.savez(fh, **arrays)


def _save(path, array) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array)


def _write_json(path: Path, obj) -> None:
    _atomic_save(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=1, sort_keys=True, default=str)))


def check_entry(entry: Path, verify: bool = False) -> tuple[str, str]:
    """``(status, detail)`` of a cache entry folder, from its files alone.

    status: ``"ok"``; ``"absent"`` (no result and no parts); ``"incomplete"`` (parts of an interrupted run,
    no result yet); ``"corrupt"`` (meta.json unreadable, features.npy truncated or unreadable, or not the
    shape, size or, with ``verify``, the blake2b digest that meta.json records).
    """
    entry = Path(entry)
    meta_path, feat_path = entry / "meta.json", entry / "features.npy"
    if not meta_path.is_file():
        if feat_path.is_file() or (entry / "parts").is_dir():
            return "incomplete", "no meta.json: an interrupted run (parts are resumed)"
        return "absent", "no meta.json"
    try:
        meta = json.loads(meta_path.read_text())
        ids, shape = meta["item_ids"], meta["shape"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        return "corrupt", f"meta.json is unreadable ({type(err).__name__}: {err})"
    if not feat_path.is_file():
        return "corrupt", "meta.json is there but features.npy is missing"
    recorded = meta.get("arrays", {}).get("features.npy")
    if recorded and feat_path.stat().st_size != recorded["bytes"]:
        return "corrupt", f"features.npy has {feat_path.stat().st_size} bytes, meta.json records {recorded['bytes']}"
    try:
        feats = np.load(feat_path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as err:
        return "corrupt", f"features.npy cannot be read ({err})"
    if list(feats.shape) != list(shape) or feats.shape[0] != len(ids):
        return "corrupt", f"features.npy is {tuple(feats.shape)}, meta.json records {tuple(shape)} for {len(ids)} items"
    if recorded and str(feats.dtype) != recorded["dtype"]:
        return "corrupt", f"features.npy is {feats.dtype}, meta.json records {recorded['dtype']}"
    if verify:
        if not recorded:
            return "ok", "no digest recorded (made by an older vtalign); shape and size checked"
        if file_digest(feat_path) != recorded["blake2b"]:
            return "corrupt", "features.npy does not match the blake2b digest in meta.json"
    return "ok", "verified" if verify else "shape and size checked"


def set_aside(path: Path, into: Path | None = None) -> Path:
    """Move a damaged entry or part file to ``<name>.corrupt-<UTC time>`` (beside it, or in ``into``);
    nothing damaged is ever deleted."""
    path = Path(path)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    target = (Path(into) if into else path.parent) / f"{path.name}.corrupt-{stamp}"
    os.replace(path, target)
    return target


def cache_entries(cache_root: Path | None = None):
    """Every cache entry folder under the feature cache (``<dataset>/<options>/<model>/<side>``),
    set-aside ``.corrupt-*`` copies excluded, in sorted order."""
    root = Path(cache_root) if cache_root else paths.cache_dir("features")
    for entry in sorted(root.glob("*/*/*/*")):
        if entry.is_dir() and ".corrupt-" not in entry.name and entry.name.startswith(("text-", "video-")):
            yield entry


def recorded_request(entry: Path) -> dict | None:
    """The request an entry was made for, from its meta.json or, for an interrupted run, its parts."""
    for source in (entry / "meta.json", entry / "parts" / "request.json"):
        try:
            data = json.loads(source.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        req = data.get("request", data)
        if isinstance(req, dict) and "dataset" in req and "model" in req:
            return {k: v for k, v in req.items() if k != "chunk_items"}
    return None


def request_arguments(req: dict) -> dict:
    """Keyword arguments of :func:`extract_features` that reproduce a recorded request."""
    return dict(dataset=req["dataset"], dataset_options=req.get("dataset_options") or {}, model=req["model"],
                frames=int(req.get("frames", 8)), captions=int(req.get("captions", 1)),
                mode=req.get("mode", "video") if req.get("mode") in ("image", "video", "frames") else "video",
                seed=int(req.get("seed", 0)))


# Fields a request may leave unknown (present, None): the video files of a dataset built without its
# video_root, which can read an entry made with them but not check their identity.
_UNKNOWN_ALLOWED = ("videos",)


def request_differences(a: dict, b: dict) -> list[str]:
    """The fields in which two requests differ (a field missing on one side counts), sorted. ``videos``
    present as None on one side (not known there) is not a difference; missing altogether (an entry made
    before videos were identified) it is."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)
                  and not (k in _UNKNOWN_ALLOWED and ((k in a and a[k] is None) or (k in b and b[k] is None))))


def inputs_changed(meta: dict, ds: VideoTextDataset) -> list[str]:
    """The items whose video file's full content digest differs from the one ``meta.json`` records (the
    check ``verify`` adds to the partial digests in the request); [] when nothing is recorded or the
    dataset reads no video files."""
    recorded = (meta.get("inputs") or {}).get("videos")
    if not recorded:
        return []
    now = video_full_digests(ds) or {}
    return sorted(i for i in set(recorded) | set(now) if i in now and recorded.get(i) != now.get(i))


def read_complete(entry: Path, req: dict, verify: bool = False):
    """(features, meta) when ``entry`` holds a complete result for ``req``; (None, reason) otherwise.
    A damaged entry raises :class:`CorruptEntryError`."""
    status, detail = check_entry(entry, verify)
    if status in ("absent", "incomplete"):
        return None, "absent"
    if status == "corrupt":
        raise CorruptEntryError(entry, detail)
    meta = json.loads((entry / "meta.json").read_text())
    old = meta.get("request", {})
    differs = request_differences(old, req)
    if differs:
        return None, f"made for a different request (differs in {differs})"
    try:
        feats = np.load(entry / "features.npy")
    except (ValueError, OSError, EOFError) as err:  # changed since it was checked
        raise CorruptEntryError(entry, f"features.npy cannot be read ({err})") from None
    return (feats, meta), "ok"


def load_features(dataset, model: str, frames: int = 8, captions: int = 1, *, mode: str = "video", seed: int = 0,
                  dataset_options: dict | None = None, cache_dir=None, verify: bool = False):
    """Cached ``(features [N, L, D], meta)`` for a request; ``FileNotFoundError`` (with the command that
    makes it) when there is no matching complete entry, :class:`CorruptEntryError` (with the path, the
    problem and the repair command) when the entry is damaged. Shape and size are always checked;
    ``verify=True`` also checks the content digest."""
    ds = _resolve_dataset(dataset, dataset_options)
    check_request(ds, model, frames, captions, mode, seed, skip_failures=True, needs_videos=False)
    req = feature_request(ds, model, frames, captions, mode, seed)
    found, reason = read_complete(cache_entry(req, cache_dir), req, verify)
    changed = inputs_changed(found[1], ds) if found is not None and verify else []
    if changed:
        found, reason = None, f"made from other video files ({len(changed)} changed since: {changed[:3]})"
    if found is None:
        opts = " ".join(f"--option {k}={json.dumps(v)}" for k, v in (dataset_options or {}).items())
        raise FileNotFoundError(
            f"No cached features for {req['dataset']} x {model} ({cache_entry(req, cache_dir)}: {reason}). Make "
            f"them with: python -m vtalign.extract --dataset {req['dataset']} --model {model} "
            f"--frames {frames} --captions {captions} --mode {mode} --seed {seed} {opts}".rstrip())
    return found


def extract_features(dataset, model, frames: int = 8, captions: int = 1, *, mode: str = "video", seed: int = 0,
                     dataset_options: dict | None = None, device: str = "auto", batch_size: int = 32,
                     skip_failures: bool = False, cache_dir=None, progress: bool = True, encoder: Encoder | None = None,
                     verify: bool = False, force: bool = False, hooks=None):
    """Features [N, L, D] and metadata for ``dataset`` x ``model``, computed once and cached.

    Parameters
    ----------
    dataset : a registered name (with ``dataset_options``) or a built :class:`VideoTextDataset`
    model : a registered encoder name or Hugging Face id (``encoder`` may pass it already loaded)
    frames : n_f, frames a video/image encoder sees (image models with ``mode="image"``: first frame only)
    mode : image models: ``"video"`` averages the n_f frames' features, ``"image"`` takes the first frame,
        ``"frames"`` keeps every frame: features [N, n_f, L, D], pooled later by :mod:`vtalign.pooling`
    captions : n_c, captions concatenated for a text encoder (chosen by ``seed``)
    skip_failures : leave failed items out (listed in ``meta["failures"]``) instead of raising. An entry made
        so is reused only by runs that skip failures too: a run without it retries the failed items
        (the parts without failures are not computed again) and raises if they fail again, leaving the
        entry as it was
    force : recompute the entry even when a complete one is cached (it stays in place until the new one
        replaces it, and is kept when items fail)
    verify : check a cached entry's content digest before reusing it (shape and size are always checked)
    device : where the encoder runs; ``"auto"`` (default) is the GPU when one is visible. The device is
        recorded in ``meta["device"]``, not in the cache key: an entry made on a GPU serves CPU readers.

    A damaged entry (or part file of an interrupted run) is moved aside to ``<name>.corrupt-<time>``,
    said so, and recomputed.

    The request is checked before anything is read, made or decoded
    (:func:`vtalign.extract.validation.check_request`): a bad one raises
    :class:`~vtalign.extract.errors.RequestError` (a ``ValueError``) and makes no cache entry.

    hooks : for tests only: a callable ``hooks(point, **where)`` called at the points where concurrent runs
        on one entry interleave (``"open-parts"``, ``"mkdir-parts"``, ``"claim"`` and ``"claimed"`` with
        ``index``, ``"entry-written"``), so a test can pause one process there; None (default) in normal use.
    """
    ds = _resolve_dataset(dataset, dataset_options)
    name = canonical_model(model if isinstance(model, str) else model.name)  # a local folder: its real path
    enc = encoder or (model if isinstance(model, Encoder) else None)
    # the whole request is checked before anything is read, made or decoded (vtalign.extract.validation)
    check_request(ds, name, frames, captions, mode, seed, skip_failures=skip_failures, encoder=enc)
    req = feature_request(ds, name, frames, captions, mode, seed)
    entry = cache_entry(req, cache_dir)
    LAST_RUN.update(computed=[], read=[], waited_for=[], reused_entry=False, completed_elsewhere=False, retried=[],
                    forced=bool(force))
    found, reason, replaced = prepare_entry(ds, entry, req, verify, skip_failures, force)
    if found is not None and verify and inputs_changed(found[1], ds):  # same ends and sizes, other contents
        changed = inputs_changed(found[1], ds)
        print(f"vtalign: cache entry {entry} was made from other video files ({len(changed)} changed, "
              f"e.g. {changed[0]}; found by --verify); recomputing it.")
        (entry / "meta.json").unlink(missing_ok=True)  # incomplete from now; features.npy replaced when done
        found, reason = None, "absent"
    if found is not None:
        LAST_RUN["reused_entry"] = True
        return found
    device = resolve_device(device)
    if CLUSTER["cluster"] and enc is None and _rebuildable(ds):  # the parts are made on Ray, assembled below
        from .cluster import Request, run_plan

        run_plan([Request(ds.name, name, frames, captions, mode, seed, dict(ds.options))], CLUSTER["cluster"],
                 CLUSTER["workers"], device=device, batch_size=batch_size, skip_failures=skip_failures,
                 cache_dir=cache_dir, progress=progress, assemble=False)
    # the full digests of the video files read, recorded in meta.json for --verify (read before decoding)
    inputs = _video_inputs(ds) if req.get("videos") else None
    _hook(hooks, "open-parts", entry=entry)
    parts = open_parts(entry, req, reason, hooks)
    try:
        results, failures, described = _run_parts(ds, name, req, parts, enc, device, batch_size, skip_failures,
                                                   progress, hooks)
    except _DoneElsewhere:
        found, reason = read_complete(entry, req, verify)
        if found is None:
            raise RuntimeError(f"Another process removed {entry}'s parts without completing it ({reason}); re-run.")
        LAST_RUN["completed_elsewhere"] = True
        if found[1].get("failures") and not skip_failures:  # completed by a run that skipped failures
            raise ExtractionError(found[1]["failures"], entry)
        return found
    try:
        return _write_entry(entry, req, name, results, failures, described, skip_failures, device, hooks, inputs)
    except ExtractionError as err:
        if replaced is not None and _put_back(entry, replaced):  # the entry this run set out to replace
            _remove_parts(parts)
            raise ExtractionError(err.failures, entry) from None
        raise


def _video_inputs(ds: VideoTextDataset) -> dict:
    """What ``meta["inputs"]`` records of the video files read: their full content digests (compared under
    ``verify``) and the folder holding them (``--check`` rebuilds a dataset whose ``video_root`` is not one
    of its options from there, to compare the files there now)."""
    from .video import VideoFile
    folders = [str(it.video.path.parent) for it in ds.items if isinstance(it.video, VideoFile)]
    return {"videos": video_full_digests(ds), "video_folder": os.path.commonpath(folders) if folders else None}


def prepare_entry(ds: VideoTextDataset, entry: Path, req: dict, verify: bool = False, skip_failures: bool = False,
                  force: bool = False):
    """Look at ``entry`` before a run makes ``req``: ``(found, reason, replaced)``.

    ``found`` is ``(features, meta)`` of a complete entry to reuse, else None with ``reason`` for
    :func:`open_parts`. A corrupt entry is set aside (kept as ``<name>.corrupt-<time>``). A complete
    entry is not reused when ``force`` is set, nor when it was made with ``skip_failures`` (it lists
    failed items) and this run does not skip them: its ``meta.json`` then goes (the entry is incomplete
    from that moment) and, for a retry, every part without a failed item is written back from its
    features, so only the parts with failed items are computed again, to the same bytes a clean run
    makes. ``replaced`` is the meta of that entry (its features.npy stays until a new one replaces
    it): :func:`_put_back` restores it when the run fails."""
    parts = entry / "parts"
    if force:
        status, problem = check_entry(entry)
        if status == "corrupt":
            print(f"vtalign: cache entry {entry} was corrupt ({problem}); moved it to {set_aside(entry).name}.")
            return None, "absent", None
        busy = live_claims(entry)
        if busy:
            raise EntryBusyError(f"Cache entry {entry} is being made now ({busy[0]}); --force (force=True) "
                                 "would remove its parts under that run: wait for it to finish, then force.")
        replaced = _meta_of(entry) if status == "ok" else None
        (entry / "meta.json").unlink(missing_ok=True)
        _remove_parts(parts)
        if status != "absent":
            print(f"vtalign: recomputing cache entry {entry} (force).")
        return None, "absent", replaced
    try:
        found, reason = read_complete(entry, req, verify)
    except CorruptEntryError as err:
        kept = set_aside(entry)
        print(f"vtalign: cache entry {entry} was corrupt ({err.problem}); moved it to {kept.name} and recomputing it.")
        return None, "absent", None
    if found is None:
        return _changed_videos(ds, entry, req, reason, skip_failures)
    if skip_failures or not found[1].get("failures"):
        return found, reason, None
    feats, meta = found
    failed = {f["item"] for f in meta["failures"]}
    LAST_RUN["retried"] = sorted(failed)
    print(f"vtalign: cache entry {entry} was made with skip_failures (--skip-failures), {len(failed)} failed "
          "item(s) left out; retrying them.")
    return None, "absent", _rows_back(ds, entry, req, feats, meta, failed)


def _changed_videos(ds: VideoTextDataset, entry: Path, req: dict, reason: str, skip_failures: bool):
    """An entry made for this request but from other video files (its request differs in ``videos`` alone):
    the rows of the items whose file is unchanged (its full content digest, recorded in ``meta.json``) are
    kept, and only the parts with changed files (or items that failed) are computed again. Anything else:
    ``(None, reason, None)``, and the entry is recomputed."""
    meta = _meta_of(entry)
    recorded = ((meta or {}).get("inputs") or {}).get("videos")
    if (not recorded or request_differences(meta.get("request", {}), req) != ["videos"]
            or check_entry(entry)[0] != "ok"):
        return None, reason, None
    now = video_full_digests(ds) or {}
    redo = {i for i, d in now.items() if recorded.get(i) != d} | {f["item"] for f in meta.get("failures") or []}
    print(f"vtalign: cache entry {entry} was made from other video files ({len(redo)} item(s) changed or failed); "
          "recomputing their parts.")
    try:
        feats = np.load(entry / "features.npy")
    except (ValueError, OSError, EOFError):
        return None, reason, None
    _rows_back(ds, entry, req, feats, meta, redo)
    return None, "absent", None  # made from other files: never put back when this run fails


def _rows_back(ds: VideoTextDataset, entry: Path, req: dict, feats: np.ndarray, meta: dict, redo: set) -> dict:
    """Remove ``entry``'s meta.json (incomplete from then on) and write back, as parts of ``req``, every
    part none of whose items is in ``redo``, from the entry's features: only the other parts are computed
    again, to the bytes a clean run makes. Returns ``meta``."""
    failed = set(redo)
    (entry / "meta.json").unlink(missing_ok=True)
    parts = open_parts(entry, req, "absent")
    row = {item: r for r, item in enumerate(meta["item_ids"])}
    for c, chunk in enumerate(part_chunks(ds)):
        ids = [it.id for it in chunk]
        path = parts / f"part-{c:05d}.npz"
        if any(i in failed or i not in row for i in ids) or path.is_file() or not parts.is_dir():
            continue
        try:
            _write_part(path, feats[[row[i] for i in ids]], ids, [], meta["layer_dims"], meta.get("encoder"))
        except FileNotFoundError:
            break  # parts/ removed meanwhile: another process completed the entry (seen by the part loop)
    return meta


def _meta_of(entry: Path) -> dict | None:
    try:
        return json.loads((entry / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def _put_back(entry: Path, meta: dict) -> bool:
    """Restore the ``meta.json`` of an entry a failed run set out to replace, when its features.npy is still
    the one that meta records and no other run has completed the entry meanwhile."""
    recorded = meta.get("arrays", {}).get("features.npy")
    feat_path = entry / "features.npy"
    if (entry / "meta.json").exists() or not recorded or not feat_path.is_file():
        return False
    if feat_path.stat().st_size != recorded["bytes"] or file_digest(feat_path) != recorded["blake2b"]:
        return False
    _write_json(entry / "meta.json", meta)
    return True


class EntryBusyError(RequestError):
    """An entry another live process is making now, asked to be forced or dropped."""

    permanent = False


def live_claims(entry: Path) -> list[str]:
    """The live claims on an entry's parts (heartbeat fresher than :func:`_claim_stale_seconds`, owner alive),
    each as ``"host H, pid P"``: a process is making those parts now."""
    out = []
    for claim in sorted(Path(entry, "parts").glob("part-*.claim")):
        try:
            fresh = time.time() - claim.stat().st_mtime <= _claim_stale_seconds()
            owner = json.loads(claim.read_text())
        except (OSError, ValueError):
            continue
        if fresh and _owner_alive(claim):
            out.append(f"host {owner.get('host')}, pid {owner.get('pid')}")
    return out


def _hook(hooks, point: str, **where) -> None:
    """Call a test's ``hooks`` (see :func:`extract_features`) at ``point``; nothing when there are none."""
    if hooks is not None:
        hooks(point, **where)


# Where extract_features makes a missing entry's parts: in this process (``None``), or on the Ray
# cluster that :func:`vtalign.extract.cluster.use_cluster` names (the chapters' ``cluster`` parameter).
CLUSTER: dict = {"cluster": None, "workers": None}


def _rebuildable(ds: VideoTextDataset) -> bool:
    """Whether a Ray worker can rebuild ``ds`` from its name and options (a registered dataset whose
    options give back the same items); other datasets are made in this process."""
    from .datasets import DATASETS, load_dataset

    if ds.name not in DATASETS:
        return False
    try:
        return load_dataset(ds.name, **ds.options).ids == ds.ids
    except Exception:  # noqa: BLE001  (options that do not rebuild it: make it here)
        return False


def open_parts(entry: Path, req: dict, reason: str, hooks=None) -> Path:
    """Make ``entry`` ready to compute into: undo a finished result of another request (its meta.json
    removed), keep the parts of an interrupted run of this one (drop those of another), and return the
    parts folder.

    ``reason`` is what :func:`read_complete` said when the caller looked. When another process has
    completed the entry for ``req`` since then, the entry is left as it is and ``parts/`` is not made
    again (the folder returned then does not exist: :func:`make_part` makes nothing in it)."""
    parts = entry / "parts"
    if _completed(entry, req):
        return parts
    if reason != "absent":
        print(f"vtalign: cache entry {entry} was {reason}; recomputing it.")
        # Only meta.json goes (the entry is incomplete without it); features.npy is replaced when the entry
        # is completed. Deleting it here could delete the one a process completing this request has just
        # written, before its meta.json.
        (entry / "meta.json").unlink(missing_ok=True)
    _hook(hooks, "mkdir-parts")
    parts.mkdir(parents=True, exist_ok=True)
    part_req = {**req, "chunk_items": CHUNK_ITEMS}
    try:
        recorded = json.loads((parts / "request.json").read_text())
    except FileNotFoundError:
        recorded = part_req  # none recorded yet: ours is written below
    except ValueError:
        recorded = None      # unreadable: its parts cannot be told apart from another request's
    if recorded != part_req:
        print(f"vtalign: {parts} holds partial results of another request; starting this one afresh.")
        _remove_parts(parts)  # parts of another request: never mixed in
        parts.mkdir(parents=True, exist_ok=True)
    try:
        _write_json(parts / "request.json", part_req)
    except FileNotFoundError:
        pass  # parts/ removed again meanwhile: the entry was completed (checked below)
    # The entry may have been completed, and its parts/ removed, between the look above and the mkdir:
    # then that mkdir made parts/ again, and it goes (a completed entry has no parts/).
    if _completed(entry, req):
        _remove_parts(parts)
    return parts


def _completed(entry: Path, req: dict) -> bool:
    """Whether ``entry`` holds a finished result for ``req`` now: its meta.json (written last, by an atomic
    rename, and before parts/ is removed) records this request. One failed open while it is absent."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
    except (OSError, ValueError):  # absent (the usual case while parts are made), or unreadable: not a result
        return False
    return isinstance(meta, dict) and not request_differences(meta.get("request", {}), req)


def _remove_parts(parts: Path) -> None:
    """Remove a parts folder in one step: renamed aside (atomic: no process sees it half removed, or
    claims a part in it and keeps it alive), then deleted. Already gone: nothing to do."""
    aside = parts.with_name(f".{parts.name}-removed-{uuid.uuid4().hex[:8]}")
    try:
        os.replace(parts, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


class _DoneElsewhere(Exception):
    """Another process completed the whole entry while this one was working on it."""


def _claim_stale_seconds() -> float:
    """A claim whose heartbeat is older than this is taken over (``$VTALIGN_CLAIM_STALE_S``, default 60)."""
    return float(os.environ.get("VTALIGN_CLAIM_STALE_S", "60"))


class _Claim:
    """This process's claim on one part: ``part-NNNNN.claim`` made with an exclusive create (atomic on local
    and NFS v3+ filesystems), its modification time refreshed by a heartbeat thread while the part is
    computed. A claim whose heartbeat stopped (its process died) for :func:`_claim_stale_seconds` is set
    aside and taken over; two processes racing for it cannot both win the exclusive create."""

    def __init__(self, path: Path):
        self.path = path
        self._stop = threading.Event()
        beat = max(0.2, _claim_stale_seconds() / 6)
        self._thread = threading.Thread(target=self._beat, args=(beat,), daemon=True)
        self._thread.start()

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                os.utime(self.path)
            except OSError:
                return

    @classmethod
    def take(cls, path: Path) -> "_Claim | None":
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)  # the umask applies
            except FileNotFoundError:
                return None  # parts/ was removed: the entry was completed (or restarted) meanwhile
            except FileExistsError:
                try:
                    age = time.time() - path.stat().st_mtime
                except FileNotFoundError:
                    continue  # released meanwhile: try again
                if age <= _claim_stale_seconds() and _owner_alive(path):
                    return None
                try:  # stale: move it out of the way (only one racer succeeds), then claim anew
                    os.replace(path, path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}"))
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}, fh)
            return cls(path)
        return None

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)


def _owner_alive(claim: Path) -> bool:
    """False when the claim was made on this host by a process that no longer exists (a killed worker):
    its part is taken over at once instead of after the heartbeat goes stale."""
    try:
        owner = json.loads(claim.read_text())
    except (OSError, ValueError):
        return True  # being written, or unreadable: trust the heartbeat
    if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return True
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# What the last extract_features call in this process did with each part (for summaries and tests):
# parts computed, read from disk and waited for; whether the entry was reused whole, or completed by
# another process while this one worked on it.
LAST_RUN: dict = {"computed": [], "read": [], "waited_for": [], "reused_entry": False, "completed_elsewhere": False,
                  "retried": [], "forced": False}


def _read_part(part_path: Path, parts: Path):
    """``(features, ids, dims, failed, encoder description or None)`` of a part file, or None (a damaged
    one is set aside). Parts made by an older vtalign have no description."""
    try:
        with np.load(part_path, allow_pickle=False) as z:
            return (z["features"].copy(), [str(s) for s in z["ids"]], json.loads(str(z["dims"])),
                    json.loads(str(z["failed"])), json.loads(str(z["encoder"])) if "encoder" in z.files else None)
    except FileNotFoundError:
        return None
    except Exception as err:  # a damaged part (zip, npy or json inside): set aside and recompute
        kept = set_aside(part_path, into=parts.parent)  # out of parts/, which is removed when done
        print(f"vtalign: part file {part_path} was unreadable ({type(err).__name__}); moved it to "
              f"{kept.name} and recomputing it.")
        return None


def part_chunks(ds: VideoTextDataset) -> list[list]:
    """The dataset's items cut into the resumable parts of ``CHUNK_ITEMS`` items, in order."""
    return [ds.items[i:i + CHUNK_ITEMS] for i in range(0, len(ds), CHUNK_ITEMS)]


def make_part(chunk, req: dict, parts: Path, index: int, name: str, enc: Encoder | None = None,
              device: str = "auto", batch_size: int = 32, hooks=None):
    """Claim part ``index`` of an entry, encode its items and write ``part-NNNNN.npz`` atomically.

    Returns ``(part, encoder)``: ``part`` is ``(features, ids, layer_dims, failures)``, or None when a
    live process holds the claim or has just written the part (read it from disk), or when the entry has
    been completed meanwhile (read the entry). The encoder is loaded
    on first use and returned for reuse, so a worker that makes many parts loads its model once. The same
    function makes parts in one process (:func:`extract_features`) and on cluster workers
    (:mod:`vtalign.extract.cluster`), so both write the same bytes.
    """
    entry = parts.parent
    if _completed(entry, req) or not parts.is_dir():  # a completed entry is read, never reopened
        return None, enc
    _hook(hooks, "claim", index=index)
    claim = _Claim.take(parts / f"part-{index:05d}.claim")  # None also when parts/ was removed meanwhile
    if claim is None:
        return None, enc
    _hook(hooks, "claimed", index=index)
    # Looked at again now that the part is ours, the part file first and then the entry: a process that
    # made this part wrote its file before releasing the claim, and a completed entry's meta.json is written
    # before its parts are removed, so one look or the other sees any part made before the claim was ours.
    if (parts / f"part-{index:05d}.npz").is_file() or _completed(entry, req):
        claim.release()
        return None, enc
    try:
        if enc is None:
            enc = load_encoder(name, device=device)
        feats, ids, failed = _encode_chunk(enc, chunk, req, batch_size)
        dims = enc.layer_dims
        try:
            _write_part(parts / f"part-{index:05d}.npz", feats, ids, failed, dims, enc.describe())
        except FileNotFoundError:
            if parts.is_dir():
                raise
            # parts/ removed while this part was made (its claim was taken over as stale and the entry
            # completed): the part is returned from memory; the caller then finds the completed entry
    finally:
        claim.release()
    return (feats, ids, dims, failed), enc


def _write_part(path: Path, feats: np.ndarray, ids: list[str], failed: list[dict], dims: list[int],
                described: dict | None) -> None:
    """One part file, written atomically: its items' features and ids, failures, layer widths and the
    description of the encoder that made it."""
    _atomic_save(path, lambda tmp: _savez(tmp, features=feats, ids=np.array(ids, dtype=str),
                                          failed=json.dumps(failed), dims=json.dumps(dims),
                                          encoder=json.dumps(described, sort_keys=True, default=str)))


def _run_parts(ds: VideoTextDataset, name: str, req: dict, parts: Path, enc: Encoder | None, device: str,
               batch_size: int, skip_failures: bool, progress: bool, hooks=None):
    """Every chunk of ``CHUNK_ITEMS`` items: read from its part file when a run (an earlier one, or another
    process working on the same entry now) wrote it, else claimed (:class:`_Claim`), encoded (the model is
    loaded at the first chunk that needs it) and written atomically. Parts claimed by a live process are
    waited for, so two runs on one request compute each part once.
    Returns ``(results, failures, encoder description)``; results are ``(features, ids, layer_dims)`` per
    chunk; the description is the loaded encoder's, else the one recorded in the parts read (None when they
    have none), so the entry records the same encoder whichever process writes it.
    Raises :class:`_DoneElsewhere` when another process completed the entry meanwhile: checked before every
    part, so a completed entry is read instead of computed again."""
    from tqdm import tqdm  # plain bar: tqdm.auto warns in notebooks without ipywidgets
    chunks = part_chunks(ds)
    found: dict[int, tuple] = {}
    stream = _progress_stream() if progress else None
    bar = tqdm(total=len(ds), desc=f"{ds.name} x {name} ({req['side']})", disable=not progress, unit="item",
               file=stream, mininterval=1.0)
    pending = list(range(len(chunks)))
    try:
        while pending:
            waiting = []
            for c in pending:
                if _completed(parts.parent, req):
                    raise _DoneElsewhere()
                part_path = parts / f"part-{c:05d}.npz"
                part = _read_part(part_path, parts) if part_path.is_file() else None
                if part is not None and (not part[3] or skip_failures):
                    found[c] = part
                    LAST_RUN["read"].append(c)
                    bar.update(len(chunks[c]))
                    continue
                if part is not None:  # it recorded failures and they are not to be skipped: try those items again
                    part_path.unlink(missing_ok=True)
                part, enc = make_part(chunks[c], req, parts, c, name, enc, device, batch_size, hooks)
                if part is None:
                    waiting.append(c)
                    continue
                found[c] = part
                LAST_RUN["computed"].append(c)
                bar.update(len(chunks[c]))
            if waiting:  # parts another live process is computing: wait for them (or for its claim to go stale)
                LAST_RUN["waited_for"] = sorted(set(LAST_RUN["waited_for"]) | set(waiting))
                if _completed(parts.parent, req) or not parts.is_dir():
                    raise _DoneElsewhere()
                time.sleep(min(1.0, _claim_stale_seconds() / 10))
            pending = waiting
    finally:
        bar.close()
        if stream is not None:
            stream.close()
    ordered = [found[c] for c in range(len(chunks))]
    described = enc.describe() if enc is not None else next((r[4] for r in ordered if r[4:] and r[4]), None)
    return [r[:3] for r in ordered], [f for r in ordered for f in r[3]], described


def _progress_stream():
    """Where extraction progress bars go: the file named by ``VTALIGN_PROGRESS_FILE`` when set (the book
    runner shows it in the terminal, so the executed chapters stay free of bars), else stderr (None)."""
    path = os.environ.get("VTALIGN_PROGRESS_FILE")
    return open(path, "a", buffering=1, encoding="utf-8") if path else None


def _write_entry(entry: Path, req: dict, name: str, results, failures: list[dict], described: dict | None,
                 skip_failures: bool, device: str = "cpu", hooks=None, inputs: dict | None = None):
    """Assemble the chunks into ``features.npy`` and ``meta.json`` (written last, by an atomic rename: the
    entry is complete from that moment) and then remove the parts (in one step, :func:`_remove_parts`)."""
    parts = entry / "parts"
    if failures and not skip_failures:
        raise ExtractionError(failures, parts)
    done, _ = read_complete(entry, req)  # another process on the same request wrote it first: keep theirs
    if done is not None and (skip_failures or not done[1].get("failures")):
        _remove_parts(parts)  # theirs removes them too; whichever comes first
        return done
    kept = [r for r in results if len(r[1])]
    if not kept:
        raise ExtractionError(failures, parts) if failures else ValueError(f"Dataset {req['dataset']} has no items.")
    dims = kept[0][2]
    features = np.concatenate([r[0] for r in kept]).astype(np.float32, copy=False)
    meta = {"request": req, "item_ids": [i for r in kept for i in r[1]], "failures": failures,
            "shape": list(features.shape), "layer_dims": dims, "device": device,
            # every part may have come from disk: then as their maker described it (older parts: from its identity)
            "encoder": described or {"model": name, "modality": req["modality"], "revision": req["model_revision"]}}
    if inputs:
        meta["inputs"] = inputs  # what --verify compares: the full content digests of the files read
    _atomic_save(entry / "features.npy", lambda tmp: _save(tmp, features))
    feat_path = entry / "features.npy"
    meta["arrays"] = {"features.npy": {"shape": list(features.shape), "dtype": str(features.dtype),
                                       "bytes": feat_path.stat().st_size, "blake2b": file_digest(feat_path)}}
    _write_json(entry / "meta.json", meta)  # last: an entry without it is incomplete
    _hook(hooks, "entry-written", entry=entry)
    _remove_parts(parts)
    for left in entry.glob(".parts-removed-*"):  # of a process that died while deleting them
        shutil.rmtree(left, ignore_errors=True)
    return features, meta


def _encode_chunk(enc: Encoder, items, req: dict, batch_size: int):
    """Encode one chunk of items: (features [n_ok, L, D], ok ids, failures)."""
    failures, ok_ids = [], []
    if req["side"] == "text":
        texts = []
        for it in items:
            try:
                texts.append(caption_text(it.captions, req["captions"], req["seed"], it.id))
                ok_ids.append(it.id)
            except ValueError as err:
                failures.append({"item": it.id, "source": "captions", "error": str(err)})
        out = [enc.encode(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
        feats = np.concatenate(out) if out else np.zeros((0, 0, 0), np.float32)
        return feats, ok_ids, failures
    # Video side: decode each item's frames, encode everything in batches, average per item.
    if enc.modality == "video":  # a bad n_f for this encoder is a usage error, not a per-item failure
        video_clip_indices(req["frames"], req["frames"], enc.native_frames)
    units, owners = [], []
    for it in items:
        source = it.video.description if it.video is not None else "(no video)"
        try:
            if it.video is None:
                raise ValueError("this dataset was built without videos; pass its video_root option")
            n = it.video.num_frames()
            if enc.modality == "image":
                idx = image_frame_indices(n, req["frames"], req["mode"])
                units.extend(it.video.frames(idx))          # one unit = one frame
                owners.extend([len(ok_ids)] * len(idx))
            else:
                clips = video_clip_indices(n, req["frames"], enc.native_frames)
                flat = it.video.frames(clips.ravel())
                frames = flat.reshape(*clips.shape, *flat.shape[1:])
                units.extend(frames)                         # one unit = one n_o-frame clip
                owners.extend([len(ok_ids)] * clips.shape[0])
            ok_ids.append(it.id)
        except Exception as err:  # decode errors of every kind are reported, never dropped silently
            failures.append({"item": it.id, "source": source, "error": f"{type(err).__name__}: {err}"})
    if not ok_ids:
        return np.zeros((0, 0, 0), np.float32), ok_ids, failures
    encoded = np.concatenate([enc.encode(np.stack(batch)) for batch in _same_shape_batches(units, batch_size)])
    owners = np.asarray(owners)
    if req["mode"] == "frames":  # every sampled frame kept, in time order: [n_ok, F, L, D]
        return np.stack([encoded[owners == j] for j in range(len(ok_ids))]).astype(np.float32), ok_ids, failures
    feats = np.stack([encoded[owners == j].mean(axis=0) for j in range(len(ok_ids))]).astype(np.float32)
    return feats, ok_ids, failures


def _same_shape_batches(units: list[np.ndarray], batch_size: int):
    """Consecutive runs of at most ``batch_size`` units of one shape (videos differ in resolution)."""
    batch: list[np.ndarray] = []
    for u in units:
        if batch and (len(batch) == batch_size or u.shape != batch[0].shape):
            yield batch
            batch = []
        batch.append(u)
    if batch:
        yield batch


def common_items(extractions: list[tuple[np.ndarray, dict]]) -> list[tuple[np.ndarray, dict]]:
    """Restrict every (features, meta) to the items all of them have, in the first one's order."""
    others = [set(m["item_ids"]) for _, m in extractions[1:]]
    ids = [i for i in extractions[0][1]["item_ids"] if all(i in o for o in others)]
    if not ids:
        raise ValueError("The feature sets share no item ids: were they extracted from the same dataset?")
    out = []
    for f, m in extractions:
        pos = {i: r for r, i in enumerate(m["item_ids"])}
        out.append((f[[pos[i] for i in ids]], {**m, "item_ids": ids}))
    return out


def pair_features(fa: np.ndarray, meta_a: dict, fb: np.ndarray, meta_b: dict):
    """Rows of two extractions restricted to the items both have, in ``meta_a``'s order.

    Returns ``(fa', fb', ids)``. Raises when no item is shared; when the sides have different
    item sets (failures skipped on one side) the dropped ids are those missing from ``ids``.
    """
    (fa, meta), (fb, _) = common_items([(fa, meta_a), (fb, meta_b)])
    return fa, fb, meta["item_ids"]
