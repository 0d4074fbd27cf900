"""One request's cache entry, reused or made in this process: :func:`extract_request`.

The entry (:mod:`vtalign.extract.store`) of a :class:`~vtalign.extract.request.FeatureRequest` is reused
when it is complete and made for the same request (its content identity included); otherwise it is made
in parts (:mod:`vtalign.extract.parts`), resumed from the parts an interrupted run left, and assembled.
Several processes may work on one entry at once: each part is computed once, whatever the interleaving.

- A damaged entry or part file is set aside (``<name>.corrupt-<time>``), said so, and recomputed.
- A video that fails to decode is reported at the end and raises
  :class:`~vtalign.extract.errors.ExtractionError` unless ``skip_failures=True``, in which case its row is
  left out and listed in ``meta["failures"]``; :func:`pair_features` then keeps the items both sides have,
  in one order. Such a reduced entry is reused only by runs that skip failures too: a run without
  ``skip_failures`` retries its failed items (only their parts are computed again) and puts the entry
  back as it was if they fail again.
- ``force=True`` recomputes an entry. An entry made from other video files keeps the rows of the unchanged
  files and recomputes only the parts with changed ones.

The public front door, :func:`vtalign.extract.extract_features`, builds the request and calls
:func:`extract_request`, with the parts made on Ray when :func:`vtalign.extract.use_cluster` says so
(this module never imports the cluster code: the caller passes ``make_parts``).

Example
-------
>>> import tempfile
>>> from vtalign.extract.request import build_request
>>> run = extract_request(build_request("test_of_time", "tiny-bert", captions=1), progress=False,
...                       cache_dir=tempfile.mkdtemp())
>>> run.features.shape, run.meta["item_ids"][0], run.summary.describe()
((180, 3, 32), 'tot-red-before-green', 'computed 6 part(s), read 0 written earlier or by a concurrent run')
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from .datasets import VideoTextDataset
from .encoders import Encoder, resolve_device
from .errors import EntryBusyError, ExtractionError
from .identity import file_digest, video_full_digests
from .parts import DoneElsewhere, RunSummary, live_claims, open_parts, part_chunks, run_parts, write_part
from .request import FeatureRequest, request_differences
from .store import (
    CorruptEntryError,
    check_entry,
    hook,
    inputs_changed,
    meta_of,
    read_complete,
    remove_parts,
    set_aside,
    video_inputs,
    write_entry,
    write_json,
)

__all__ = ["Extraction", "extract_request", "load_request", "prepare_entry", "Preparation", "common_items",
           "pair_features"]


class Extraction(NamedTuple):
    """What :func:`extract_request` gives: the features [N, L, D] (float32), the entry's meta, and the
    :class:`~vtalign.extract.parts.RunSummary` of what this run did."""
    features: np.ndarray
    meta: dict
    summary: RunSummary


def extract_request(request: FeatureRequest, *, device: str = "auto", batch_size: int = 32,
                    skip_failures: bool = False, cache_dir=None, progress: bool = True,
                    encoder: Encoder | None = None, verify: bool = False, force: bool = False,
                    make_parts: Callable[[FeatureRequest], None] | None = None, hooks=None) -> Extraction:
    """The features of ``request``, from its cache entry or computed into it (see the module docstring).

    skip_failures, force, verify, device : as :func:`vtalign.extract.extract_features`
    encoder : the loaded encoder for the request's model (else loaded at the first part to compute)
    Raises :class:`~vtalign.extract.errors.ExtractionError` when items fail (unless ``skip_failures``), with
    the run's summary as its ``summary``.

    make_parts : called with the request when its entry has to be made, before the parts are looked for
        here (:mod:`vtalign.extract.cluster` makes them on Ray); every part it leaves missing is made here
    hooks : for tests only: a callable ``hooks(point, **where)`` called at the points where concurrent runs
        on one entry interleave (``"open-parts"``, ``"mkdir-parts"``, ``"claim"`` and ``"claimed"`` with
        ``index``, ``"entry-written"``), so a test can pause one process there; None (default) in normal use.
    """
    request = request.for_run(skip_failures)  # a request built to read is checked as a run checks it
    ds, req = request.data, request.key
    entry = request.entry(cache_dir)
    prepared = prepare_entry(request, entry, verify, skip_failures, force)
    summary = RunSummary(forced=bool(force), retried=list(prepared.retried))
    if prepared.found is not None:
        summary.reused_entry = True
        return Extraction(*prepared.found, summary)
    device = resolve_device(device)
    if make_parts is not None:
        make_parts(request)
    # the full digests of the video files read, recorded in meta.json for --verify (read before decoding)
    inputs = video_inputs(ds) if req.get("videos") else None
    hook(hooks, "open-parts", entry=entry)
    parts = open_parts(entry, req, prepared.reason, hooks)
    try:
        results, failures, described = run_parts(ds, req, parts, summary, enc=encoder, device=device,
                                                 batch_size=batch_size, skip_failures=skip_failures,
                                                 progress=progress, hooks=hooks, load_options=request.load_options)
    except DoneElsewhere:
        found, reason = read_complete(entry, req, verify)
        if found is None:
            raise RuntimeError(f"Another process removed {entry}'s parts without completing it ({reason}); re-run.")
        summary.completed_elsewhere = True
        if found[1].get("failures") and not skip_failures:  # completed by a run that skipped failures
            raise _with_summary(ExtractionError(found[1]["failures"], entry), summary)
        return Extraction(*found, summary)
    try:
        return Extraction(*write_entry(entry, req, results, failures, described, skip_failures, device, hooks,
                                       inputs), summary)
    except ExtractionError as err:
        # put back the entry this run set out to replace
        if prepared.replaced is not None and _put_back(entry, prepared.replaced):
            remove_parts(parts)
            raise _with_summary(ExtractionError(err.failures, entry), summary) from None
        raise _with_summary(err, summary)


def _with_summary(err: ExtractionError, summary: RunSummary) -> ExtractionError:
    """The error, with what the run did before it (``err.summary``): which parts it computed and retried."""
    err.summary = summary
    return err


def load_request(request: FeatureRequest, cache_dir=None, verify: bool = False) -> tuple[np.ndarray, dict]:
    """Cached ``(features [N, L, D], meta)`` of a request; ``FileNotFoundError`` (with the command that
    makes it) when there is no matching complete entry, :class:`~vtalign.extract.store.CorruptEntryError`
    (with the path, the problem and the repair command) when the entry is damaged. Shape and size are
    always checked; ``verify=True`` also checks the content digests, of the features and of the video
    files read."""
    entry = request.entry(cache_dir)
    found, reason = read_complete(entry, request.key, verify)
    changed = inputs_changed(found[1], request.data) if found is not None and verify else []
    if changed:
        found, reason = None, f"made from other video files ({len(changed)} changed since: {changed[:3]})"
    if found is None:
        opts = " ".join(f"--option {k}={json.dumps(v)}" for k, v in request.options.items())
        raise FileNotFoundError(
            f"No cached features for {request.dataset} x {request.model} ({entry}: {reason}). Make them with: "
            f"python -m vtalign.extract --dataset {request.dataset} --model {request.model} "
            f"--frames {request.frames} --captions {request.captions} --mode {request.mode} "
            f"--seed {request.seed} {opts}".rstrip())
    return found


class Preparation(NamedTuple):
    """What :func:`prepare_entry` found: ``found`` is ``(features, meta)`` of a complete entry to reuse, else
    None with ``reason`` for :func:`~vtalign.extract.parts.open_parts`; ``replaced`` is the meta of a complete
    entry this run sets out to replace (put back if the run fails); ``retried`` the items an earlier
    ``skip_failures`` run left out that this run tries again."""
    found: tuple | None
    reason: str
    replaced: dict | None = None
    retried: list = []


def prepare_entry(request: FeatureRequest, entry: Path, verify: bool = False, skip_failures: bool = False,
                  force: bool = False) -> Preparation:
    """Look at ``entry`` before a run makes ``request`` (one process or a Ray plan alike).

    A complete entry for the request is reused, unless ``force`` is set; or it was made with
    ``skip_failures`` (it lists failed items) and this run does not skip them; or, under ``verify``, the
    full digests of its video files differ from the files now. Its ``meta.json`` then goes (the entry is
    incomplete from that moment) and, for a retry, every part without a failed item is written back from
    its features, so only the parts with failed items are computed again, to the same bytes a clean run
    makes (its features.npy stays until a new one replaces it: :func:`_put_back` restores it when the run
    fails). A corrupt entry is set aside (kept as ``<name>.corrupt-<time>``)."""
    ds, req = request.data, request.key
    parts = entry / "parts"
    if force:
        status, problem = check_entry(entry)
        if status == "corrupt":
            print(f"vtalign: cache entry {entry} was corrupt ({problem}); moved it to {set_aside(entry).name}.")
            return Preparation(None, "absent")
        busy = live_claims(entry)
        if busy:
            raise EntryBusyError(f"Cache entry {entry} is being made now ({busy[0]}); --force (force=True) "
                                 "would remove its parts under that run: wait for it to finish, then force.")
        replaced = meta_of(entry) if status == "ok" else None
        (entry / "meta.json").unlink(missing_ok=True)
        remove_parts(parts)
        if status != "absent":
            print(f"vtalign: recomputing cache entry {entry} (force).")
        return Preparation(None, "absent", replaced)
    try:
        found, reason = read_complete(entry, req, verify)
    except CorruptEntryError as err:
        kept = set_aside(entry)
        print(f"vtalign: cache entry {entry} was corrupt ({err.problem}); moved it to {kept.name} and recomputing it.")
        return Preparation(None, "absent")
    if found is None:
        return _changed_videos(ds, entry, req, reason)
    changed = inputs_changed(found[1], ds) if verify else []
    if changed:  # same ends and sizes, other contents: found by the full digests only
        print(f"vtalign: cache entry {entry} was made from other video files ({len(changed)} changed, "
              f"e.g. {changed[0]}; found by --verify); recomputing it.")
        (entry / "meta.json").unlink(missing_ok=True)  # incomplete from now; features.npy replaced when done
        return Preparation(None, "absent")
    if skip_failures or not found[1].get("failures"):
        return Preparation(found, reason)
    feats, meta = found
    failed = {f["item"] for f in meta["failures"]}
    print(f"vtalign: cache entry {entry} was made with skip_failures (--skip-failures), {len(failed)} failed "
          "item(s) left out; retrying them.")
    return Preparation(None, "absent", _rows_back(ds, entry, req, feats, meta, failed), sorted(failed))


def _changed_videos(ds: VideoTextDataset, entry: Path, req: dict, reason: str) -> Preparation:
    """An entry made for this request but from other video files (its request differs in ``videos`` alone):
    the rows of the items whose file is unchanged (its full content digest, recorded in ``meta.json``) are
    kept, and only the parts with changed files (or items that failed) are computed again. Anything else:
    the entry is recomputed."""
    meta = meta_of(entry)
    recorded = ((meta or {}).get("inputs") or {}).get("videos")
    if (not recorded or request_differences(meta.get("request", {}), req) != ["videos"]
            or check_entry(entry)[0] != "ok"):
        return Preparation(None, reason)
    now = video_full_digests(ds) or {}
    redo = {i for i, d in now.items() if recorded.get(i) != d} | {f["item"] for f in meta.get("failures") or []}
    print(f"vtalign: cache entry {entry} was made from other video files ({len(redo)} item(s) changed or failed); "
          "recomputing their parts.")
    try:
        feats = np.load(entry / "features.npy")
    except (ValueError, OSError, EOFError):
        return Preparation(None, reason)
    _rows_back(ds, entry, req, feats, meta, redo)
    return Preparation(None, "absent")  # made from other files: never put back when this run fails


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
            write_part(path, feats[[row[i] for i in ids]], ids, [], meta["layer_dims"], meta.get("encoder"))
        except FileNotFoundError:
            break  # parts/ removed meanwhile: another process completed the entry (seen by the part loop)
    return meta


def _put_back(entry: Path, meta: dict) -> bool:
    """Restore the ``meta.json`` of an entry a failed run set out to replace, when its features.npy is still
    the one that meta records and no other run has completed the entry meanwhile."""
    recorded = meta.get("arrays", {}).get("features.npy")
    feat_path = entry / "features.npy"
    if (entry / "meta.json").exists() or not recorded or not feat_path.is_file():
        return False
    if feat_path.stat().st_size != recorded["bytes"] or file_digest(feat_path) != recorded["blake2b"]:
        return False
    write_json(entry / "meta.json", meta)
    return True


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
