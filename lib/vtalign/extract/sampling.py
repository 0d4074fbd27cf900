"""Frame and caption sampling exactly as the paper's Section 3 describes.

Frames: ``n_f`` indices by uniform linear interpolation over the video's frames, each
position rounded to the nearest frame (halves round up). A video encoder with native clip
length ``n_o`` gets ``n_f / n_o`` consecutive sub-clips when ``n_f`` is a multiple of ``n_o``,
and, when ``n_f < n_o``, one clip in which each of the ``n_f`` frames is repeated to fill
``n_o`` slots (nearest-neighbour interpolation). Image encoders: ``mode="image"`` is the
first frame only; ``mode="video"`` is every sampled frame, features averaged over time;
``mode="frames"`` keeps every sampled frame's features (pooled later by :mod:`vtalign.pooling`).

Captions: ``n_c`` of an item's captions drawn by a seeded permutation (seed and item id),
the first ``n_c`` of it taken, so the captions chosen for ``n_c`` are a prefix of those for
``n_c + 1``; joined with single spaces into one string.
"""
from __future__ import annotations

import zlib

import numpy as np

__all__ = ["frame_indices", "video_clip_indices", "image_frame_indices", "choose_captions",
           "caption_text", "item_rng", "reorder_negative", "shuffle_words"]


def frame_indices(num_frames: int, n_f: int) -> np.ndarray:
    """Indices of ``n_f`` frames by uniform linear interpolation over ``num_frames`` frames.

    ``index_j = floor(j * (num_frames - 1) / (n_f - 1) + 1/2)`` for ``j = 0 .. n_f - 1``
    (``n_f = 1`` gives the first frame). A video shorter than ``n_f`` frames repeats frames.

    Example
    -------
    >>> frame_indices(10, 4).tolist()     # positions 0, 3, 6, 9
    [0, 3, 6, 9]
    >>> frame_indices(10, 3).tolist()     # positions 0, 4.5, 9: the half rounds up
    [0, 5, 9]
    >>> frame_indices(3, 5).tolist()      # positions 0, .5, 1, 1.5, 2
    [0, 1, 1, 2, 2]
    """
    if num_frames < 1:
        raise ValueError(f"The video has {num_frames} frames; it needs at least one.")
    if n_f < 1:
        raise ValueError(f"n_f must be a positive number of frames, got {n_f}.")
    if n_f == 1:
        return np.zeros(1, dtype=np.int64)
    # Exact rational arithmetic: floor((2 j (T-1) + (n_f-1)) / (2 (n_f-1))).
    j = np.arange(n_f, dtype=np.int64)
    return (2 * j * (num_frames - 1) + (n_f - 1)) // (2 * (n_f - 1))


def video_clip_indices(num_frames: int, n_f: int, n_o: int) -> np.ndarray:
    """Frame indices for a video encoder with native clip length ``n_o``: int array [n_clips, n_o].

    ``n_f >= n_o`` must be a multiple of ``n_o``: the ``n_f`` sampled frames are cut into
    ``n_f / n_o`` consecutive sub-clips (encode each, average the representations).
    ``n_f < n_o``: one clip, the sampled frame ``floor(s * n_f / n_o)`` in slot ``s``.

    Example
    -------
    >>> video_clip_indices(10, 4, 2).tolist()
    [[0, 3], [6, 9]]
    >>> video_clip_indices(10, 2, 4).tolist()   # frames 0 and 9, each twice
    [[0, 0, 9, 9]]
    """
    if n_o < 1:
        raise ValueError(f"n_o (the encoder's native clip length) must be positive, got {n_o}.")
    idx = frame_indices(num_frames, n_f)
    if n_f >= n_o:
        if n_f % n_o:
            raise ValueError(f"n_f={n_f} frames is not a multiple of the encoder's native clip length "
                             f"n_o={n_o}; use n_f in {{{n_o}, {2 * n_o}, {3 * n_o}, ...}} or n_f < {n_o}.")
        return idx.reshape(n_f // n_o, n_o)
    slots = (np.arange(n_o) * n_f) // n_o
    return idx[slots][None, :]


def image_frame_indices(num_frames: int, n_f: int, mode: str = "video") -> np.ndarray:
    """Frames an image encoder sees: ``mode="image"`` the first frame, ``"video"`` or ``"frames"`` ``n_f`` frames.

    >>> image_frame_indices(30, 8, "image").tolist()
    [0]
    """
    if mode == "image":
        return np.zeros(1, dtype=np.int64)
    if mode in ("video", "frames"):
        return frame_indices(num_frames, n_f)
    raise ValueError(f"mode must be 'image' (first frame), 'video' (n_f frames averaged) or 'frames' (n_f frames "
                     f"kept), got {mode!r}.")


def item_rng(seed: int, item_id: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the item's id (not on its position)."""
    return np.random.default_rng([int(seed), zlib.crc32(str(item_id).encode("utf-8"))])


def choose_captions(captions: list[str], n_c: int, seed: int, item_id: str) -> list[str]:
    """``n_c`` of an item's captions: a prefix of a seeded permutation (see the module docstring).

    >>> caps = ["a", "b", "c", "d"]
    >>> one, two = choose_captions(caps, 1, 0, "v1"), choose_captions(caps, 2, 0, "v1")
    >>> two[:1] == one and len(set(two)) == 2
    True
    """
    if n_c < 1:
        raise ValueError(f"n_c must be at least 1, got {n_c}.")
    if len(captions) < n_c:
        raise ValueError(f"Item {item_id!r} has {len(captions)} captions; n_c={n_c} asks for more. "
                         "Lower n_c or use a dataset with more captions per item.")
    order = item_rng(seed, item_id).permutation(len(captions))
    return [captions[i] for i in order[:n_c]]


def caption_text(captions: list[str], n_c: int, seed: int, item_id: str) -> str:
    """The one string encoded for an item: its chosen captions, stripped, joined by spaces."""
    return " ".join(c.strip() for c in choose_captions(captions, n_c, seed, item_id))


def reorder_negative(sentences: list[str], seed: int, item_id: str) -> list[str]:
    """The same sentences in a seeded shuffled order that differs from the original.

    A permutation whose sentence sequence equals the original is redrawn (draws continue
    from the same item generator, so the result is deterministic).

    >>> reorder_negative(["a", "b", "c"], 0, "v") != ["a", "b", "c"]
    True
    """
    if len(set(sentences)) < 2:
        raise ValueError(f"Item {item_id!r} has fewer than two distinct sentences; no reordering differs.")
    return _another_order(sentences, seed, item_id)


def _another_order(items: list, seed: int, item_id: str) -> list:
    """``items`` in an order drawn from :func:`item_rng` (seed, item id) that differs from theirs (a draw
    equal to the original is redrawn from the same generator). The caller checks that one exists."""
    rng = item_rng(seed, item_id)
    while True:
        shuffled = [items[i] for i in rng.permutation(len(items))]
        if shuffled != items:
            return shuffled


def shuffle_words(text: str, seed: int, item_id: str) -> str:
    """The text's words (split on whitespace) in a seeded random order that differs from theirs, joined by
    single spaces: a bag-of-words control, same words, no order. Drawn from :func:`item_rng` (seed, item id),
    so one item gets the same shuffle wherever it is; a draw equal to the original word sequence is redrawn.
    A text with fewer than two distinct words has no other order and is an error.

    >>> shuffle_words("a man opens the door", 0, "v") != "a man opens the door"
    True
    >>> sorted(shuffle_words("a man opens the door", 0, "v").split()) == sorted("a man opens the door".split())
    True
    """
    words = text.split()
    if len(set(words)) < 2:
        raise ValueError(f"Item {item_id!r}: {text!r} has fewer than two distinct words; no shuffle differs.")
    return " ".join(_another_order(words, seed, item_id))
