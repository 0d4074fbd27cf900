"""Managing a feature cache: what ``--check`` lists besides the entries, and what ``--prune`` and
``--drop`` remove.

- set-aside copies: a damaged entry or part file is never deleted when it is replaced; it is moved to
  ``<name>.corrupt-<UTC time>`` beside it (:func:`vtalign.extract.cache.set_aside`). ``--check`` lists
  them, ``--prune`` removes them;
- leftovers: ``.parts-removed-*`` folders of a process killed while it deleted an entry's parts;
- junk entries (``--prune``): entries whose recorded request fails validation (they can never be
  completed), and entries that are not ok and record no request at all.

Removal is in one step for every other process: the folder or file is renamed aside first (atomic),
then deleted, so no run sees half of it. An entry a live process is making (a fresh claim) is never
removed.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import time
import uuid
from pathlib import Path

from .. import paths

__all__ = ["cache_root", "set_aside_copies", "leftovers", "size_of", "set_aside_time", "remove", "is_entry",
           "idle_for"]


def cache_root(cache=None) -> Path:
    """The feature cache folder (``--cache``, else ``.cache/features`` or ``$VTALIGN_CACHE/features``)."""
    return Path(cache) if cache else paths.cache_dir("features")


def set_aside_copies(root: Path) -> list[Path]:
    """Every ``.corrupt-*`` copy under the cache: entry folders set aside beside their entry, and part files
    set aside into their entry (a copy inside a set-aside copy is part of that copy, not listed again)."""
    root = Path(root)
    found = [p for p in root.glob("*/*/*/*.corrupt-*")]
    found += [p for p in root.glob("*/*/*/*/*.corrupt-*") if ".corrupt-" not in p.parent.name]
    return sorted(found)


def leftovers(root: Path) -> list[Path]:
    """``.parts-removed-*`` folders under entries (parts a killed process was deleting) and ``.*.removing-*``
    ones (what a killed ``--prune`` or ``--drop`` was deleting)."""
    root = Path(root)
    return sorted([*root.glob("*/*/*/*/.parts-removed-*"), *root.glob("*/*/*/.*.removing-*"),
                   *root.glob("*/*/*/*/.*.removing-*")])


def size_of(path: Path) -> int:
    """Bytes in a file, or in every file under a folder."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def set_aside_time(path: Path) -> str:
    """When a ``.corrupt-<time>`` copy was set aside, as ``YYYY-MM-DD HH:MM UTC`` (its name says)."""
    stamp = Path(path).name.rsplit(".corrupt-", 1)[-1]
    try:
        return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S%f").strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return "at an unknown time"


def is_entry(path: Path, root: Path) -> bool:
    """Whether ``path`` is an entry folder of the cache at ``root`` (``<dataset>/<options>/<model>/<side>``)."""
    try:
        rel = Path(path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        return False
    return (len(rel.parts) == 4 and rel.name.startswith(("text-", "video-")) and ".corrupt-" not in rel.name
            and Path(path).is_dir())


def idle_for(path: Path) -> float:
    """Seconds since anything directly in ``path`` (or ``path`` itself, or its parts/) last changed."""
    path = Path(path)
    times = [path.stat().st_mtime]
    for child in [*path.iterdir(), *(path / "parts").glob("*")] if path.is_dir() else []:
        try:
            times.append(child.stat().st_mtime)
        except OSError:
            pass
    return time.time() - max(times)


def remove(path: Path) -> None:
    """Remove a file or folder in one step for other processes: renamed aside, then deleted."""
    path = Path(path)
    aside = path.with_name(f".{path.name}.removing-{uuid.uuid4().hex[:8]}")
    os.replace(path, aside)
    if aside.is_dir():
        shutil.rmtree(aside)
    else:
        aside.unlink()
