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
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["MODEL_FILE_SUFFIXES", "canonical_model", "local_model_revision", "is_local_revision",
           "video_identity", "video_full_digests", "file_digest", "PARTIAL_BYTES"]

# Files of a model folder that determine its features: config, weights, tokenizer, remote code.
MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".bin", ".pt", ".pth", ".gguf", ".model", ".txt", ".tiktoken",
                       ".py", ".msgpack", ".h5", ".ckpt")
LOCAL_PREFIX = "local-blake2b:"
PARTIAL_BYTES = 1 << 20  # the partial video digest reads this much at each end of a file

_MODEL_MEMO: dict[str, tuple[tuple, str]] = {}
_PARTIAL_MEMO: dict[str, tuple[tuple, str]] = {}


def _is_registered(name: str) -> bool:
    from .encoders import ENCODERS, TINY_FAMILIES, _OFFLINE_IDENTITY
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


def local_model_revision(folder) -> str:
    """``"local-blake2b:<32 hex>"``: a digest of a local model folder's config, weight and tokenizer files
    (their names, sizes and bytes). Memoised within the process on the files' stat signature (name, size,
    mtime_ns, inode): a changed, added or removed file is digested again."""
    folder = Path(folder).expanduser().resolve()
    files = _model_files(folder)
    sig = tuple((e.name, e.stat().st_size, e.stat().st_mtime_ns, e.stat().st_ino) for e in files)
    known = _MODEL_MEMO.get(str(folder))
    if known is not None and known[0] == sig:
        return known[1]
    h = hashlib.blake2b(digest_size=16)
    for e in files:
        h.update(f"{e.name}\0{e.stat().st_size}\0".encode())
        with open(e.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 23), b""):
                h.update(block)
    digest = LOCAL_PREFIX + h.hexdigest()
    _MODEL_MEMO[str(folder)] = (sig, digest)
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


def video_identity(ds) -> dict | None:
    """The identity of the video files ``ds`` reads: ``{"files": n, "digest": ..., "method": ...}``, a digest
    over each file's (item id, file name, size, partial content digest; a missing file as size -1), or None
    when no item has a video file (no videos attached, or generated clips)."""
    files = _files(ds)
    if not files:
        return None
    h = hashlib.blake2b(digest_size=16)
    for item_id, path in files:
        try:
            st = path.stat()
        except OSError:
            h.update(f"{item_id}\0{path.name}\0-1\n".encode())
            continue
        sig = (st.st_size, st.st_mtime_ns, st.st_ino)
        known = _PARTIAL_MEMO.get(str(path))
        if known is None or known[0] != sig:
            try:
                known = (sig, _partial_digest(path, st.st_size))
            except OSError:
                known = (sig, "unreadable")
            _PARTIAL_MEMO[str(path)] = known
        h.update(f"{item_id}\0{path.name}\0{st.st_size}\0{known[1]}\n".encode())
    return {"files": len(files), "digest": h.hexdigest(),
            "method": f"name, size, blake2b of the first and last {PARTIAL_BYTES >> 20} MiB"}


def video_full_digests(ds) -> dict[str, str] | None:
    """``{item id: blake2b of the whole file}`` of the video files ``ds`` reads (a missing or unreadable file:
    ``"missing"``), or None when it reads none. Recorded in ``meta.json``, compared under ``verify``."""
    files = _files(ds)
    if not files:
        return None
    out = {}
    for item_id, path in files:
        try:
            out[item_id] = file_digest(path)
        except OSError:
            out[item_id] = "missing"
    return out
