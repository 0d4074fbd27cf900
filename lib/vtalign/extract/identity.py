"""Content identity: what a cache key records about the inputs that determine the features.

- A **local model folder** is named by its absolute real path (so ``cd A; --model mm`` and
  ``cd B; --model mm`` are two models) and identified by a digest of its files
  (:func:`local_model_revision`): blake2b over the sorted (name, size, content) of the folder's
  config, weight and tokenizer files (:data:`MODEL_FILE_SUFFIXES`, top level). Saving other
  weights into the same folder changes it. Within one process the digest is memoised on the
  files' (name, size, mtime_ns, inode), so asking again is a ``stat`` per file.
- A **hub model** is identified by its resolved revision (the snapshot's commit hash), as before.
- The **video files** a dataset reads (:func:`video_identity`): each item's file name, size and a
  partial content digest (blake2b of the size, the first and the last MiB): a replaced file
  is caught when its size or either end changes, which re-encoding, trimming or swapping a clip
  does. A change confined to the middle of a file larger than 2 MiB is caught only by the full
  digests (:func:`video_full_digests`), which ``meta.json`` records and ``verify=True`` (``--verify``)
  compares. Generated clips (the synthetic worlds) are identified by their generator version.

Digests are remembered, within a process and across processes, on each file's stat signature: name, size,
modification time, status-change time (ctime) and inode. Any write to a file changes its ctime, which no
user tool can set back, so a remembered digest is used only for bytes that have not been written since.
The memo lives in ``.cache/digests/`` (one small JSON file per folder, :func:`vtalign.paths.cache_dir`);
deleting it costs one re-read, and a memo that cannot be written (a read-only cache) is skipped.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from .. import paths

__all__ = ["MODEL_FILE_SUFFIXES", "canonical_model", "local_model_revision", "is_local_revision",
           "video_identity", "video_full_digests", "file_digest", "PARTIAL_BYTES"]

# Files of a model folder that determine its features: config, weights, tokenizer, remote code.
MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".bin", ".pt", ".pth", ".gguf", ".model", ".txt", ".tiktoken",
                       ".py", ".msgpack", ".h5", ".ckpt")
LOCAL_PREFIX = "local-blake2b:"
PARTIAL_BYTES = 1 << 20  # the partial video digest reads this much at each end of a file

_MODEL_MEMO: dict[str, tuple[tuple, str]] = {}


def _is_registered(name: str) -> bool:
    from .encoders import _OFFLINE_IDENTITY, ENCODERS, TINY_FAMILIES
    return name in ENCODERS or name in _OFFLINE_IDENTITY or (name.startswith("tiny-") and name[5:] in TINY_FAMILIES)


def canonical_model(name):
    """The name a request records for ``name``: a local model folder (not a registered name) becomes its
    absolute real path; anything else is returned as given."""
    if not isinstance(name, str) or not name or _is_registered(name):
        return name
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def _model_files(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".") and e.name.endswith(MODEL_FILE_SUFFIXES)
                       and e.is_file()), key=lambda e: e.name)


def _signature(path_or_entry, name: str) -> list:
    """What a remembered digest is keyed on: name, size, mtime, ctime (changed by every write) and inode."""
    st = path_or_entry.stat()
    return [name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _memo_path(folder: Path) -> Path:
    return paths.cache_dir("digests") / f"{hashlib.blake2b(str(folder).encode(), digest_size=10).hexdigest()}.json"


def _read_memo(folder: Path) -> dict:
    """``{key: [signature, digest]}`` remembered for files of ``folder`` by earlier processes ({} if none)."""
    try:
        data = json.loads(_memo_path(folder).read_text())
    except (OSError, ValueError):
        return {}
    return data.get("files", {}) if isinstance(data, dict) and data.get("folder") == str(folder) else {}


def _write_memo(folder: Path, files: dict) -> None:
    """Remember digests for later processes: written atomically; a cache that cannot be written is skipped."""
    try:
        target = _memo_path(folder)
        fd, tmp = tempfile.mkstemp(prefix=".memo.", dir=target.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump({"folder": str(folder), "files": files}, fh)
        os.replace(tmp, target)
    except OSError:
        pass


def local_model_revision(folder) -> str:
    """``"local-blake2b:<32 hex>"``: a digest of a local model folder's config, weight and tokenizer files
    (their names, sizes and bytes). Remembered (in this process and in ``.cache/digests``) on the files'
    stat signatures (:func:`_signature`): a changed, added or removed file is digested again."""
    folder = Path(folder).expanduser().resolve()
    files = _model_files(folder)
    sig = [_signature(e, e.name) for e in files]
    known = _MODEL_MEMO.get(str(folder))
    if known is not None and known[0] == sig:
        return known[1]
    remembered = _read_memo(folder).get("model folder")
    if remembered and remembered[0] == sig:
        _MODEL_MEMO[str(folder)] = (sig, remembered[1])
        return remembered[1]
    h = hashlib.blake2b(digest_size=16)
    for e in files:
        h.update(f"{e.name}\0{e.stat().st_size}\0".encode())
        with open(e.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 23), b""):
                h.update(block)
    digest = LOCAL_PREFIX + h.hexdigest()
    _MODEL_MEMO[str(folder)] = (sig, digest)
    _write_memo(folder, {"model folder": [sig, digest]})
    return digest


def is_local_revision(revision) -> bool:
    return isinstance(revision, str) and revision.startswith(LOCAL_PREFIX)


def file_digest(path) -> str:
    """blake2b (128 bits) of a file's bytes, read in 8 MiB blocks."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 23), b""):
            h.update(block)
    return h.hexdigest()


def _partial_digest(path: Path, size: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(PARTIAL_BYTES))
        if size > PARTIAL_BYTES:
            fh.seek(max(PARTIAL_BYTES, size - PARTIAL_BYTES))
            h.update(fh.read(PARTIAL_BYTES))
    return h.hexdigest()


def _video_path(item):
    from .video import VideoFile
    return item.video.path if isinstance(item.video, VideoFile) else None


def _files(ds) -> list[tuple[str, Path]]:
    return [(it.id, p) for it in ds.items if (p := _video_path(it)) is not None]


def _digests(files: list[tuple[str, Path]], kind: str, digest_of, fresh: bool = False) -> dict[str, str]:
    """``{item id: digest_of(path, size)}``, each remembered per folder on the file's stat signature (see the
    module docstring) unless ``fresh``; a missing or unreadable file gives ``"missing"``."""
    out, folders = {}, {}
    for item_id, path in files:
        folder = path.parent
        if folder not in folders:
            folders[folder] = [_read_memo(folder), False]
        memo = folders[folder]
        key = f"{kind}:{path.name}"
        try:
            sig = _signature(path, path.name)
        except OSError:
            out[item_id] = "missing"
            continue
        known = memo[0].get(key)
        if fresh or not known or known[0] != sig:
            try:
                known = [sig, digest_of(path, sig[1])]
            except OSError:
                out[item_id] = "missing"
                continue
            memo[0][key], memo[1] = known, True
        out[item_id] = known[1]
    for folder, (memo, changed) in folders.items():
        if changed:
            _write_memo(folder, memo)
    return out


def video_identity(ds) -> dict | None:
    """The identity of the video files ``ds`` reads: ``{"files": n, "digest": ..., "method": ...}``, a digest
    over each file's (item id, file name, size, partial content digest; a missing file as size -1), or None
    when no item has a video file (no videos attached, or generated clips)."""
    files = _files(ds)
    if not files:
        return None
    partial = _digests(files, "partial", _partial_digest)
    h = hashlib.blake2b(digest_size=16)
    for item_id, path in files:
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        if size < 0 or partial[item_id] == "missing":
            h.update(f"{item_id}\0{path.name}\0-1\n".encode())
        else:
            h.update(f"{item_id}\0{path.name}\0{size}\0{partial[item_id]}\n".encode())
    return {"files": len(files), "digest": h.hexdigest(),
            "method": f"name, size, blake2b of the first and last {PARTIAL_BYTES >> 20} MiB"}


def video_full_digests(ds, fresh: bool = False) -> dict[str, str] | None:
    """``{item id: blake2b of the whole file}`` of the video files ``ds`` reads (a missing or unreadable file:
    ``"missing"``), or None when it reads none. Recorded in ``meta.json``; ``verify`` compares them, read
    afresh (``fresh=True``: not from the memo)."""
    files = _files(ds)
    if not files:
        return None
    return _digests(files, "full", lambda path, size: file_digest(path), fresh)