"""Errors of extraction, in one place.

- :class:`RequestError` and its kinds: a request that cannot be made as asked (checked before any work:
  see :mod:`vtalign.extract.validation`). Each message is one sentence saying what is wrong and what to
  do, the same for a library caller and for ``python -m vtalign.extract`` (which prints it on one line
  and exits with status 2);
- :class:`EntryBusyError`: an entry another live process is making, asked to be forced or dropped;
- :class:`ExtractionError`: items that failed while the entry was made (exit status 1), every one listed.
"""
from __future__ import annotations

from pathlib import Path

from .manifest import DataError

__all__ = ["RequestError", "UnknownModelError", "UnknownDatasetError", "MissingVideosError", "EntryBusyError",
           "ExtractionError"]


class RequestError(ValueError):
    """A request that cannot be made as asked: a count out of range, an unknown or mistyped dataset option,
    a mode the model does not have, and so on.

    ``permanent`` is True when the request itself is wrong, whatever the machine (such a request can never
    be completed, so ``--check`` reports its cache entry as invalid); False when it may work elsewhere (a
    model or a video folder that is not here)."""

    permanent = True

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # one line, whatever the pieces it was built from


class UnknownModelError(RequestError, FileNotFoundError):
    """A model name that is not registered, not a local folder and not in the Hugging Face cache here."""

    permanent = False


class UnknownDatasetError(RequestError, KeyError):
    """A dataset name that is not registered in this process (a user's own dataset may be, elsewhere)."""

    permanent = False

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class MissingVideosError(RequestError, DataError):
    """A video or image model asked for on a dataset built without its videos (no ``video_root``)."""

    permanent = False


class EntryBusyError(RequestError):
    """An entry another live process is making now, asked to be forced or dropped."""

    permanent = False


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
