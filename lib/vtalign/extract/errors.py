"""Errors of a request that cannot be made as asked (checked before any work: see
:mod:`vtalign.extract.validation`).

Each message is one sentence saying what is wrong and what to do, the same for a library caller and
for ``python -m vtalign.extract`` (which prints it on one line and exits with status 2).
"""
from __future__ import annotations

from .manifest import DataError

__all__ = ["RequestError", "UnknownModelError", "UnknownDatasetError", "MissingVideosError"]


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
