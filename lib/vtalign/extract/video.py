"""Frame sources: video files (decord, PyAV as fallback) and in-memory generated clips.

Every source answers two questions: how many frames it has and the RGB frames at given
indices, as ``uint8 [n, H, W, 3]``. Decoding problems raise :class:`VideoDecodeError`
naming the file and both decoders' errors.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["VideoDecodeError", "FrameSource", "VideoFile", "GeneratedVideo"]


class VideoDecodeError(RuntimeError):
    """A video file could not be opened or decoded by any available decoder."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"Cannot decode {path}: {reason}")


class FrameSource:
    """Interface: ``num_frames()`` and ``frames(indices) -> uint8 [n, H, W, 3]``."""

    description = "frames"

    def num_frames(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def frames(self, indices) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


# Containers where decord's random access (seeking) returned the frames asked for on the real
# clips here. In an AVI file it returned frame 82 when asked for frame 163, so "auto" decodes
# every other container sequentially with PyAV (decord as the fallback).
DECORD_SEEKS_RELIABLY = {".mp4", ".m4v", ".mov", ".mkv", ".webm"}


class VideoFile(FrameSource):
    """A video file on disk.

    ``backend="auto"``: decord (random access) then PyAV for mp4/mov/mkv/webm; PyAV
    (sequential decoding) then decord for other containers such as AVI (see
    ``DECORD_SEEKS_RELIABLY``). ``"decord"`` or ``"pyav"`` forces one decoder.
    """

    def __init__(self, path: str | Path, backend: str = "auto"):
        if backend not in ("auto", "decord", "pyav"):
            raise ValueError(f"backend must be 'auto', 'decord' or 'pyav', got {backend!r}.")
        self.path, self.backend = Path(path), backend
        self.description = str(self.path)
        self._count: int | None = None

    def _backends(self):
        if self.backend == "auto":
            seekable = self.path.suffix.lower() in DECORD_SEEKS_RELIABLY
            return ("decord", "pyav") if seekable else ("pyav", "decord")
        return (self.backend,)

    def _run(self, what: Callable[[str], object]):
        if not self.path.is_file():
            raise VideoDecodeError(self.path, "no such file")
        errors = []
        for name in self._backends():
            try:
                return what(name)
            except Exception as err:  # any decoder failure: try the next one, report all
                errors.append(f"{name}: {type(err).__name__}: {err}".strip())
        raise VideoDecodeError(self.path, "; ".join(errors))

    def num_frames(self) -> int:
        if self._count is None:
            self._count = int(self._run(self._count_with))
            if self._count < 1:
                raise VideoDecodeError(self.path, "the video has no frames")
        return self._count

    def frames(self, indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).ravel()
        n = self.num_frames()
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"Frame indices {idx.min()}..{idx.max()} outside 0..{n - 1} of {self.path}.")
        return self._run(lambda name: self._read_with(name, idx))

    def _count_with(self, name: str) -> int:
        if name == "decord":
            import decord
            return len(decord.VideoReader(str(self.path), num_threads=1))
        import av
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            # stream.frames is a header value that some containers leave at 0: count by decoding.
            return sum(1 for _ in container.decode(stream))

    def _read_with(self, name: str, idx: np.ndarray) -> np.ndarray:
        if name == "decord":
            import decord
            reader = decord.VideoReader(str(self.path), num_threads=1)
            return reader.get_batch(idx.tolist()).asnumpy().astype(np.uint8, copy=False)
        import av
        wanted = set(idx.tolist())
        got = {}
        with av.open(str(self.path)) as container:
            for i, frame in enumerate(container.decode(container.streams.video[0])):
                if i in wanted:
                    got[i] = frame.to_ndarray(format="rgb24")
                if i >= idx.max():
                    break
        missing = wanted - got.keys()
        if missing:
            raise RuntimeError(f"frames {sorted(missing)[:5]} could not be decoded")
        return np.stack([got[i] for i in idx.tolist()])


class GeneratedVideo(FrameSource):
    """A clip rendered on demand by ``render() -> uint8 [T, H, W, 3]`` (deterministic generators)."""

    def __init__(self, render: Callable[[], np.ndarray], num_frames: int, description: str):
        self._render, self._n, self.description = render, int(num_frames), description

    def num_frames(self) -> int:
        return self._n

    def frames(self, indices) -> np.ndarray:
        clip = self._render()
        return clip[np.asarray(indices, dtype=np.int64).ravel()]
