"""The planted and the null world of every live check, in one place.

A live chapter measures a generated world in which the paper's effect is *planted*, and beside it a
*null* world in which that effect is absent by construction and everything else is unchanged. The
same rule runs on both; a check counts only when it finds the effect in the planted world and not in
the null one (:func:`vtalign.verdicts.method_check`). Each check's null is defined here, with the
sentence a chapter prints to say what it removed.
"""
from __future__ import annotations

import numpy as np

from ..extract.synthetic import WorldSpec

__all__ = ["WORLDS", "NULLS", "check_world", "label", "world_options", "null_labels"]

WORLDS = ("planted", "null")

# check -> what its null world removes (printed by the chapters)
NULLS = {
    "scaling": "every object is visible in every frame (extra frames show nothing new) and every annotator "
               "gives the same caption (extra captions say nothing new)",
    "narration": "each narration tells the events in a random order, unrelated to when they appear, so the "
                 "order a caption tells carries no information about its clip",
    "test_of_time": "both circles appear in the same frames, so no clip shows an order of events",
    "downstream": "every task's labels are permuted across clips, so no label depends on its clip",
}


def check_world(world: str) -> str:
    """``world`` if it is a known world; a clear error otherwise."""
    if world not in WORLDS:
        raise ValueError(f"world must be one of {WORLDS}, got {world!r}.")
    return world


def label(world: str) -> str:
    """How tables name a world: "planted world", "null world" (a bare "null" reads back as a missing value
    in pandas and most CSV readers); any other name, e.g. a real dataset's, as it is.

    >>> label("null"), label("vatex")
    ('null world', 'vatex')
    """
    return f"{world} world" if world in WORLDS else world


def world_options(world: str, check: str, options: dict | None = None) -> dict:
    """Dataset options of ``world`` for ``check`` (a key of :data:`NULLS`), on top of ``options``.

    >>> world_options("null", "scaling", {"n_clips": 48, "n_frames": 16})["visible"]
    (16, 16)
    >>> world_options("planted", "narration", {"n_clips": 48})
    {'n_clips': 48}
    """
    options = dict(options or {})
    if check not in NULLS:
        raise ValueError(f"Unknown check {check!r}; known: {list(NULLS)}.")
    if check_world(world) == "planted" or check == "downstream":
        return options
    if check == "scaling":
        n = int(options.get("n_frames", WorldSpec.n_frames))
        return {**options, "visible": (n, n), "annotators": "identical"}
    if check == "narration":
        return {**options, "narration_order": "shuffled"}
    return {**options, "events": "simultaneous"}


def null_labels(labels: dict[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """Task labels with their rows permuted across clips by one seeded permutation (the ``id`` kept in
    place): each task keeps its label distribution, and so its chance level, but no label depends on
    its clip.

    >>> out = null_labels({"id": np.array(["a", "b", "c"]), "t": np.array([0, 1, 2])}, seed=1)
    >>> out["id"].tolist(), sorted(out["t"].tolist())
    (['a', 'b', 'c'], [0, 1, 2])
    """
    n = len(labels["id"])
    perm = np.random.default_rng([seed, 20261201]).permutation(n)
    return {key: (value if key == "id" else np.asarray(value)[perm]) for key, value in labels.items()}
