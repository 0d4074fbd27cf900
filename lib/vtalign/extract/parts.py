"""Making an entry's parts: claims, the part loop and encoding.

An entry is made in parts of :data:`CHUNK_ITEMS` items, each written atomically to ``parts/`` as
``part-NNNNN.npz``, so an interrupted run resumes from them. Several processes (a second run, the workers of
a Ray plan) may work on one entry at once: a part is claimed first (``part-NNNNN.claim``, an exclusive create,
kept fresh by a heartbeat), computed by the claim's holder and read by everyone else. A process checks for the
completed entry before it claims a part and again after, and never makes ``parts/`` again for a completed
entry, so no part is computed twice, whatever the interleaving (the tests force each interleaving through
``hooks``). A claim is taken over when its process is gone (same host) or its heartbeat is older than
``$VTALIGN_CLAIM_STALE_S`` (default 60 s).

:func:`make_part` is the one function that encodes a part, in one process and on Ray workers alike, so both
write the same bytes.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .datasets import VideoTextDataset
from .encoders import Encoder, load_encoder
from .sampling import caption_text, image_frame_indices, video_clip_indices
from .store import atomic_save, completed, hook, remove_parts, set_aside, write_json

__all__ = ["CHUNK_ITEMS", "RunSummary", "DoneElsewhere", "part_chunks", "open_parts", "make_part", "run_parts",
           "write_part", "live_claims", "claim_stale_seconds", "ray_node", "part_done"]

CHUNK_ITEMS = 32  # items per resumable part


@dataclass
class RunSummary:
    """What one run did with its entry: reused it whole, or which parts it computed, read from disk (written
    earlier or by a concurrent run) and waited for; whether another process completed the entry meanwhile;
    the items an earlier ``skip_failures`` run left out that it retried; whether it was forced; the parts it
    computed after taking over the claim of a process that died (or of a lost node, once its heartbeat was
    stale)."""
    reused_entry: bool = False
    completed_elsewhere: bool = False
    forced: bool = False
    retried: list = field(default_factory=list)
    computed: list = field(default_factory=list)
    taken_over: list = field(default_factory=list)
    read: list = field(default_factory=list)
    waited_for: list = field(default_factory=list)

    def describe(self) -> str:
        """One clause for a summary line, e.g. ``computed 2 part(s), read 1 written earlier or by a
        concurrent run``."""
        retried = (f"retried {len(self.retried)} item(s) an earlier --skip-failures run left out; "
                   if self.retried else "")
        if self.reused_entry:
            how = "reused from the cache"
        elif self.completed_elsewhere:  # another process finished it while this one worked on it
            how = (f"completed by a concurrent run; this run computed {len(self.computed)} of its part(s) and "
                   f"read {len(self.read)}")
        else:
            how = f"computed {len(self.computed)} part(s), read {len(self.read)} written earlier or by a concurrent run"
        return retried + how


def _savez(path, **arrays) -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would otherwise append ".npz" to the name
        np.savez(fh, **arrays)


def live_claims(entry: Path) -> list[str]:
    """The live claims on an entry's parts (heartbeat fresher than :func:`claim_stale_seconds`, owner alive),
    each as ``"host H, pid P"``: a process is making those parts now."""
    out = []
    for claim in sorted(Path(entry, "parts").glob("part-*.claim")):
        try:
            fresh = time.time() - claim.stat().st_mtime <= claim_stale_seconds()
            owner = json.loads(claim.read_text())
        except (OSError, ValueError):
            continue
        if fresh and _owner_alive(claim):
            out.append(f"host {owner.get('host')}, pid {owner.get('pid')}")
    return out


def open_parts(entry: Path, req: dict, reason: str, hooks=None) -> Path:
    """Make ``entry`` ready to compute into: undo a finished result of another request (its meta.json
    removed), keep the parts of an interrupted run of this one (drop those of another), and return the
    parts folder.

    ``reason`` is what :func:`read_complete` said when the caller looked. When another process has
    completed the entry for ``req`` since then, the entry is left as it is and ``parts/`` is not made
    again (the folder returned then does not exist: :func:`make_part` makes nothing in it)."""
    parts = entry / "parts"
    if completed(entry, req):
        return parts
    if reason != "absent":
        print(f"vtalign: cache entry {entry} was {reason}; recomputing it.")
        # Only meta.json goes (the entry is incomplete without it); features.npy is replaced when the entry
        # is completed. Deleting it here could delete the one a process completing this request has just
        # written, before its meta.json.
        (entry / "meta.json").unlink(missing_ok=True)
    hook(hooks, "mkdir-parts")
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
        remove_parts(parts)  # parts of another request: never mixed in
        parts.mkdir(parents=True, exist_ok=True)
    try:
        write_json(parts / "request.json", part_req)
    except FileNotFoundError:
        pass  # parts/ removed again meanwhile: the entry was completed (checked below)
    # The entry may have been completed, and its parts/ removed, between the look above and the mkdir:
    # then that mkdir made parts/ again, and it goes (a completed entry has no parts/).
    if completed(entry, req):
        remove_parts(parts)
    return parts


class DoneElsewhere(Exception):
    """Another process completed the whole entry while this one was working on it."""


def claim_stale_seconds() -> float:
    """A claim whose heartbeat is older than this is taken over (``$VTALIGN_CLAIM_STALE_S``, default 60)."""
    return float(os.environ.get("VTALIGN_CLAIM_STALE_S", "60"))


class _Claim:
    """This process's claim on one part: ``part-NNNNN.claim`` made with an exclusive create (atomic on local
    and NFS v3+ filesystems), its modification time refreshed by a heartbeat thread while the part is
    computed. A claim whose heartbeat stopped (its process died) for :func:`claim_stale_seconds` is set
    aside and taken over; two processes racing for it cannot both win the exclusive create."""

    def __init__(self, path: Path):
        self.path, self.took_over = path, False
        self._stop = threading.Event()
        beat = max(0.2, claim_stale_seconds() / 6)
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
        replaced = False  # whether a stale claim (of a dead process, or a lost node) was taken over
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
                if age <= claim_stale_seconds() and _owner_alive(path):
                    return None
                try:  # stale: move it out of the way (only one racer succeeds), then claim anew
                    os.replace(path, path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}"))
                    replaced = True
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump({"host": socket.gethostname(), "node": ray_node(), "pid": os.getpid(), "time": time.time()},
                          fh)
            claim = cls(path)
            claim.took_over = replaced
            return claim
        return None

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)


def ray_node() -> str | None:
    """The Ray node this process runs on (a worker, or a driver connected to a cluster), else None. Recorded
    in a claim beside the host name: simulated nodes share one host, and a process id says nothing about
    another node's processes."""
    import sys

    ray = sys.modules.get("ray")  # never imported here: a process that has not loaded Ray is on no node
    try:
        return ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else None
    except Exception:  # noqa: BLE001  (no runtime context: not on a node)
        return None


def _owner_alive(claim: Path) -> bool:
    """False when the claim was made on this host and this Ray node (or outside Ray) by a process that no
    longer exists (a killed worker): its part is taken over at once. A claim made on another host or
    another Ray node is judged by its heartbeat alone (taken over once it is older than
    :func:`claim_stale_seconds`): a lost node's processes cannot be asked."""
    try:
        owner = json.loads(claim.read_text())
    except (OSError, ValueError):
        return True  # being written, or unreadable: trust the heartbeat
    if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return True
    if owner.get("node") != ray_node() and owner.get("node") is not None:
        return True  # another node's process (on a simulated cluster, the same host): the heartbeat decides
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def part_done(parts: Path, index: int, req: dict) -> bool:
    """Whether part ``index`` no longer needs making: its file is written, the entry is complete, or its
    parts folder is gone (the entry was completed and its parts removed)."""
    return (parts / f"part-{index:05d}.npz").is_file() or completed(parts.parent, req) or not parts.is_dir()


def make_part(chunk, req: dict, parts: Path, index: int, enc: Encoder | None = None, device: str = "auto",
              batch_size: int = 32, hooks=None, report: dict | None = None, load_options: dict | None = None):
    """Claim part ``index`` of an entry, encode its items and write ``part-NNNNN.npz`` atomically.

    Returns ``(part, encoder)``: ``part`` is ``(features, ids, layer_dims, failures)``, or None when a
    live process holds the claim or has just written the part (read it from disk), or when the entry has
    been completed meanwhile (read the entry). The encoder is loaded
    on first use and returned for reuse, so a worker that makes many parts loads its model once. The same
    function makes parts in one process (:func:`run_parts`) and on cluster workers
    (:mod:`vtalign.extract.cluster`), so both write the same bytes.
    """
    entry = parts.parent
    if completed(entry, req) or not parts.is_dir():  # a completed entry is read, never reopened
        return None, enc
    hook(hooks, "claim", index=index)
    claim = _Claim.take(parts / f"part-{index:05d}.claim")  # None also when parts/ was removed meanwhile
    if claim is None:
        return None, enc
    hook(hooks, "claimed", index=index)
    if report is not None:
        report["took_over"] = claim.took_over  # the part was claimed by a process now dead or lost
    # Looked at again now that the part is ours, the part file first and then the entry: a process that
    # made this part wrote its file before releasing the claim, and a completed entry's meta.json is written
    # before its parts are removed, so one look or the other sees any part made before the claim was ours.
    if (parts / f"part-{index:05d}.npz").is_file() or completed(entry, req):
        claim.release()
        return None, enc
    try:
        if enc is None:
            enc = load_encoder(req["model"], device=device, **(load_options or {}))
        feats, ids, failed = _encode_chunk(enc, chunk, req, batch_size)
        dims = enc.layer_dims
        try:
            write_part(parts / f"part-{index:05d}.npz", feats, ids, failed, dims, enc.describe())
        except FileNotFoundError:
            if parts.is_dir():
                raise
            # parts/ removed while this part was made (its claim was taken over as stale and the entry
            # completed): the part is returned from memory; the caller then finds the completed entry
    finally:
        claim.release()
    return (feats, ids, dims, failed), enc


def write_part(path: Path, feats: np.ndarray, ids: list[str], failed: list[dict], dims: list[int],
               described: dict | None) -> None:
    """One part file, written atomically: its items' features and ids, failures, layer widths and the
    description of the encoder that made it."""
    atomic_save(path, lambda tmp: _savez(tmp, features=feats, ids=np.array(ids, dtype=str),
                                         failed=json.dumps(failed), dims=json.dumps(dims),
                                         encoder=json.dumps(described, sort_keys=True, default=str)))


def run_parts(ds: VideoTextDataset, req: dict, parts: Path, summary: RunSummary, *, enc: Encoder | None = None,
              device: str = "cpu", batch_size: int = 32, skip_failures: bool = False, progress: bool = True,
              hooks=None, load_options: dict | None = None):
    """Every chunk of ``CHUNK_ITEMS`` items: read from its part file when a run (an earlier one, or another
    process working on the same entry now) wrote it, else claimed (:class:`_Claim`), encoded (the model is
    loaded at the first chunk that needs it) and written atomically. Parts claimed by a live process are
    waited for, so two runs on one request compute each part once. The parts computed, read and waited
    for are recorded in ``summary``.
    Returns ``(results, failures, encoder description)``; results are ``(features, ids, layer_dims)`` per
    chunk; the description is the loaded encoder's, else the one recorded in the parts read (None when they
    have none), so the entry records the same encoder whichever process writes it.
    Raises :class:`DoneElsewhere` when another process completed the entry meanwhile: checked before every
    part, so a completed entry is read instead of computed again."""
    from tqdm import tqdm  # plain bar: tqdm.auto warns in notebooks without ipywidgets
    chunks = part_chunks(ds)
    found: dict[int, tuple] = {}
    stream = _progress_stream() if progress else None
    bar = tqdm(total=len(ds), desc=f"{ds.name} x {req['model']} ({req['side']})", disable=not progress, unit="item",
               file=stream, mininterval=1.0)
    pending = list(range(len(chunks)))
    try:
        while pending:
            waiting = []
            for c in pending:
                if completed(parts.parent, req):
                    raise DoneElsewhere()
                part_path = parts / f"part-{c:05d}.npz"
                part = _read_part(part_path, parts) if part_path.is_file() else None
                if part is not None and (not part[3] or skip_failures):
                    found[c] = part
                    summary.read.append(c)
                    bar.update(len(chunks[c]))
                    continue
                if part is not None:  # it recorded failures and they are not to be skipped: try those items again
                    part_path.unlink(missing_ok=True)
                report = {}
                part, enc = make_part(chunks[c], req, parts, c, enc, device, batch_size, hooks, report, load_options)
                if part is None:
                    waiting.append(c)
                    continue
                found[c] = part
                summary.computed.append(c)
                if report.get("took_over"):
                    summary.taken_over.append(c)
                bar.update(len(chunks[c]))
            if waiting:  # parts another live process is computing: wait for them (or for its claim to go stale)
                summary.waited_for = sorted(set(summary.waited_for) | set(waiting))
                if completed(parts.parent, req) or not parts.is_dir():
                    raise DoneElsewhere()
                time.sleep(min(1.0, claim_stale_seconds() / 10))
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


