"""A feature cache entry on disk: read, checked, written, set aside.

An entry is a folder (:func:`vtalign.extract.request.cache_entry` names it) holding

- ``features.npy``: float32 [N, L, D], rows in the dataset's item order (zero-padded to the widest layer
  when widths differ; ``meta["layer_dims"]`` has the true widths);
- ``meta.json``: the request (:class:`~vtalign.extract.request.FeatureRequest` ``key``), ``item_ids`` in row
  order, failures, the encoder's description, the full digests of the video files read (``inputs``) and
  the size and blake2b digest of ``features.npy`` (``arrays``). Written last, by an atomic rename: an
  entry without it is incomplete;
- while it is being made, ``parts/`` (:mod:`vtalign.extract.parts`), removed in one step once the entry is
  complete.

Nothing damaged is deleted: it is set aside as ``<name>.corrupt-<UTC time>`` (:func:`set_aside`). Files are
written with the mode a plain ``open`` gives (0666 less the umask), so a cache shared by a group stays
readable.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

import numpy as np

from .. import paths
from .datasets import VideoTextDataset
from .errors import ExtractionError
from .identity import file_digest, video_full_digests
from .request import request_differences

__all__ = ["CorruptEntryError", "check_entry", "set_aside", "cache_entries", "recorded_request", "read_complete",
           "completed", "inputs_changed", "video_inputs", "meta_of", "write_entry", "remove_parts", "write_json",
           "atomic_save", "hook"]


class CorruptEntryError(ValueError):
    """A cache entry whose files are damaged (truncated, unreadable, or not what its meta.json records)."""

    def __init__(self, entry: Path, problem: str):
        self.entry, self.problem = Path(entry), problem
        super().__init__(f"Cache entry {entry} is corrupt: {problem}. Repair it with `python -m vtalign.extract "
                         f"--check --repair` (recomputes every broken entry; the damaged files are kept in a "
                         f"'.corrupt-<time>' folder beside it), or re-run the extraction, which does the same.")


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


def atomic_save(path: Path, write) -> None:
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


def _save(path, array) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array)


def write_json(path: Path, obj) -> None:
    atomic_save(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=1, sort_keys=True, default=str)))


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


def inputs_changed(meta: dict, ds: VideoTextDataset) -> list[str]:
    """The items whose video file's full content digest differs from the one ``meta.json`` records (the
    check ``verify`` adds to the partial digests in the request); [] when nothing is recorded or the
    dataset reads no video files."""
    recorded = (meta.get("inputs") or {}).get("videos")
    if not recorded:
        return []
    now = video_full_digests(ds, fresh=True) or {}  # --verify: read every file again
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


def video_inputs(ds: VideoTextDataset) -> dict:
    """What ``meta["inputs"]`` records of the video files read: their full content digests (compared under
    ``verify``) and the folder holding them (``--check`` rebuilds a dataset whose ``video_root`` is not one
    of its options from there, to compare the files there now)."""
    from .video import VideoFile
    folders = [str(it.video.path.parent) for it in ds.items if isinstance(it.video, VideoFile)]
    return {"videos": video_full_digests(ds), "video_folder": os.path.commonpath(folders) if folders else None}


def meta_of(entry: Path) -> dict | None:
    try:
        return json.loads((entry / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def completed(entry: Path, req: dict) -> bool:
    """Whether ``entry`` holds a finished result for ``req`` now: its meta.json (written last, by an atomic
    rename, and before parts/ is removed) records this request. One failed open while it is absent."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
    except (OSError, ValueError):  # absent (the usual case while parts are made), or unreadable: not a result
        return False
    return isinstance(meta, dict) and not request_differences(meta.get("request", {}), req)


def remove_parts(parts: Path) -> None:
    """Remove a parts folder in one step: renamed aside (atomic: no process sees it half removed, or
    claims a part in it and keeps it alive), then deleted. Already gone: nothing to do."""
    aside = parts.with_name(f".{parts.name}-removed-{uuid.uuid4().hex[:8]}")
    try:
        os.replace(parts, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def write_entry(entry: Path, req: dict, results, failures: list[dict], described: dict | None,
                skip_failures: bool, device: str = "cpu", hooks=None, inputs: dict | None = None):
    """Assemble the parts' ``(features, ids, layer_dims)`` into ``features.npy`` and ``meta.json`` (written
    last, by an atomic rename: the entry is complete from that moment), then remove the parts (in one
    step, :func:`remove_parts`). Returns ``(features, meta)``; the entry another process completed first
    for the same request is kept and returned instead."""
    parts = entry / "parts"
    if failures and not skip_failures:
        raise ExtractionError(failures, parts)
    done, _ = read_complete(entry, req)  # another process on the same request wrote it first: keep theirs
    if done is not None and (skip_failures or not done[1].get("failures")):
        remove_parts(parts)  # theirs removes them too; whichever comes first
        return done
    kept = [r for r in results if len(r[1])]
    if not kept:
        raise ExtractionError(failures, parts) if failures else ValueError(f"Dataset {req['dataset']} has no items.")
    dims = kept[0][2]
    features = np.concatenate([r[0] for r in kept]).astype(np.float32, copy=False)
    meta = {"request": req, "item_ids": [i for r in kept for i in r[1]], "failures": failures,
            "shape": list(features.shape), "layer_dims": dims, "device": device,
            # every part may have come from disk: then as their maker described it (older parts: from its identity)
            "encoder": described or {"model": req["model"], "modality": req["modality"],
                                     "revision": req["model_revision"]}}
    if inputs:
        meta["inputs"] = inputs  # what --verify compares: the full content digests of the files read
    atomic_save(entry / "features.npy", lambda tmp: _save(tmp, features))
    feat_path = entry / "features.npy"
    meta["arrays"] = {"features.npy": {"shape": list(features.shape), "dtype": str(features.dtype),
                                       "bytes": feat_path.stat().st_size, "blake2b": file_digest(feat_path)}}
    write_json(entry / "meta.json", meta)  # last: an entry without it is incomplete
    hook(hooks, "entry-written", entry=entry)
    remove_parts(parts)
    for left in entry.glob(".parts-removed-*"):  # of a process that died while deleting them
        shutil.rmtree(left, ignore_errors=True)
    return features, meta




def hook(hooks, point: str, **where) -> None:
    """Call a test's ``hooks(point, **where)`` at one of the points where concurrent runs on one entry
    interleave (see :func:`vtalign.extract.cache.extract_request`); nothing when there are none."""
    if hooks is not None:
        hooks(point, **where)
