"""Deterministic generators: Test of Time (regenerated) and the procedural synthetic world.

Both render clips on demand from a per-item random generator seeded by ``(seed, index)``,
so any item can be re-rendered alone and every run gives identical pixels and captions.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["COLOURS", "TestOfTimeSpec", "test_of_time_items", "test_of_time_id", "test_of_time_events", "WorldSpec",
           "world_clip", "world_items", "world_scene", "world_labels", "WORLD_TASKS", "WORLD_CAPTION_OPTIONS",
           "narration", "render_shape"]

# Bump when a generator's output changes: the versions are part of every feature cache key,
# so features of the old pixels or captions are recomputed rather than reused.
TEST_OF_TIME_VERSION = "3"
WORLD_VERSION = "2"

COLOURS = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 230), "yellow": (240, 215, 40),
    "purple": (150, 60, 190), "orange": (245, 140, 30), "white": (240, 240, 240), "pink": (245, 130, 190),
    "cyan": (40, 215, 225), "brown": (140, 90, 40),
}
WORLD_COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "pink")
BACKGROUNDS = {
    "black": (12, 12, 12), "gray": (128, 128, 128), "dark blue": (20, 30, 95), "brown": (105, 70, 40),
    "light green": (175, 215, 165), "sky blue": (150, 200, 240),
}
SHAPES = ("circle", "square", "triangle", "diamond")
SIZES = {"small": 0.09, "large": 0.17}  # radius as a fraction of the frame side


def render_shape(canvas: np.ndarray, shape: str, cx: float, cy: float, r: float, colour) -> None:
    """Paint a filled ``shape`` of radius ``r`` pixels centred at (cx, cy) on ``canvas`` [H, W, 3] in place."""
    h, w = canvas.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
    if shape == "circle":
        mask = dx * dx + dy * dy <= r * r
    elif shape == "square":
        mask = (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    elif shape == "diamond":
        mask = np.abs(dx) + np.abs(dy) <= r
    elif shape == "triangle":  # apex up
        mask = (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    else:
        raise ValueError(f"Unknown shape {shape!r}; known: {SHAPES}.")
    canvas[mask] = colour


# --------------------------------------------------------------------------- #
# Test of Time
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class TestOfTimeSpec:
    """Test of Time, regenerated from Sec. 8: 10 colours -> 45 colour pairs {c1, c2}, each with its four
    captions (preposition before/after x colour order) = 180 (video, caption) pairs.

    Each clip: ``n_frames`` frames of a black square; the circle that comes first is visible for
    ``duration`` frames from ``first_at``, the other for as long from ``second_at``, side by side in
    one quadrant; the quadrant and which side the first circle takes are drawn per clip (seeded).
    Equal durations and a random side keep the order of events out of any time-average and any
    single position, so only the order in time tells "c1 before c2" from "c2 before c1".
    """
    __test__ = False  # not a pytest class
    size: int = 112
    n_frames: int = 30
    first_at: int = 5      # windows [5, 15) and [15, 25) mirror each other on 30 frames, so any
    second_at: int = 15    # mirror-symmetric frame sample (uniform interpolation is one) sees both
    duration: int = 10     # circles equally often
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange", "white", "pink", "cyan",
                                "brown")
    seed: int = 0


def test_of_time_id(c1: str, preposition: str, c2: str) -> str:
    """The id of the Test of Time item captioned "A {c1} circle appears {preposition} a {c2} circle"."""
    return f"tot-{c1}-{preposition}-{c2}"


def test_of_time_events(item_id: str) -> tuple[frozenset, tuple[str, str]]:
    """``(colour pair, (first colour, second colour))`` of a :func:`test_of_time_id`.

    >>> pair, order = test_of_time_events("tot-red-after-green")
    >>> sorted(pair), order
    (['green', 'red'], ('green', 'red'))
    """
    _, c1, preposition, c2 = item_id.split("-")
    return frozenset((c1, c2)), ((c1, c2) if preposition == "before" else (c2, c1))


def test_of_time_items(spec: TestOfTimeSpec = TestOfTimeSpec()):
    """Yield ``(id, caption, flipped_caption, render)`` for the 180 pairs, in a fixed order.

    The flipped caption swaps "before" and "after" (the same words, the wrong order of events).
    """
    from itertools import combinations
    for a, b in combinations(spec.colours, 2):
        for c1, c2 in ((a, b), (b, a)):
            for prep in ("before", "after"):
                first, second = (c1, c2) if prep == "before" else (c2, c1)
                item_id = test_of_time_id(c1, prep, c2)
                draw = np.random.default_rng([spec.seed, *map(ord, item_id)])
                quadrant, first_left = int(draw.integers(4)), bool(draw.integers(2))

                def render(first=first, second=second, quadrant=quadrant, first_left=first_left):
                    clip = np.zeros((spec.n_frames, spec.size, spec.size, 3), dtype=np.uint8)
                    qx, qy = (quadrant % 2) * 0.5, (quadrant // 2) * 0.5
                    r = spec.size * 0.07
                    sides = (0.15, 0.35) if first_left else (0.35, 0.15)
                    for colour, dx, start in ((first, sides[0], spec.first_at), (second, sides[1], spec.second_at)):
                        cx, cy = (qx + dx) * spec.size, (qy + 0.25) * spec.size
                        for t in range(start, min(start + spec.duration, spec.n_frames)):
                            render_shape(clip[t], "circle", cx, cy, r, COLOURS[colour])
                    return clip

                other = "after" if prep == "before" else "before"
                yield (item_id, f"A {c1} circle appears {prep} a {c2} circle",
                       f"A {c1} circle appears {other} a {c2} circle", render)


# --------------------------------------------------------------------------- #
# Synthetic world
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class WorldSpec:
    """Parameters of the synthetic world (defaults: the informative regime, small enough for CI).

    n_objects objects per clip, each visible only for ``visible`` (min, max) frames of
    ``n_frames`` and moving with probability ``p_moving``; ``n_captions`` annotators per clip,
    each naming the background and ``objects_per_caption`` (min, max) objects with colour,
    shape and size (``caption_style="appearance"``), or one or two facts about motion and
    timing (``"motion"``: a regime frame-averaged image features barely see), or narrating every
    object in the order it appears (``"narrated"``: "First a small red circle appears, then ...,
    and finally ..."), the VideoComp-style caption. With ``reorder_seed`` set (narrated only), each
    narration tells the same events in a seeded other order (a reorder equal to the original is
    redrawn): the temporal-reorder negative.

    Null worlds (each removes one effect by construction, everything else unchanged):
    ``visible=(n_frames, n_frames)`` shows every object in every frame, so extra frames add no object;
    ``annotators="identical"`` has every annotator say the first annotator's caption, so extra captions
    add no fact; ``narration_order="shuffled"`` narrates the events in a seeded order unrelated to when
    they appear, so the order a narration tells carries no information about the clip.
    """
    n_clips: int = 256
    n_frames: int = 32
    size: int = 128
    n_objects: tuple[int, int] = (5, 6)
    visible: tuple[int, int] = (2, 6)
    p_moving: float = 0.5
    n_captions: int = 10
    objects_per_caption: tuple[int, int] = (2, 3)
    caption_style: str = "appearance"
    seed: int = 0
    reorder_seed: int | None = None
    annotators: str = "independent"
    narration_order: str = "appearance"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def option_fields(cls) -> dict:
        """Every field as ``name -> (type, default)``: the options the synthetic_world dataset takes."""
        import typing
        from dataclasses import fields
        hints = typing.get_type_hints(cls)
        return {f.name: (hints[f.name], f.default) for f in fields(cls)}

    def check(self) -> None:
        """Raise ``ValueError`` (one sentence: what is wrong, what is allowed) for a world that cannot be
        made as specified; the dataset builder calls it before rendering anything."""
        for name in ("n_clips", "n_frames", "size", "n_captions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for name, low in (("n_objects", 1), ("visible", 1), ("objects_per_caption", 1)):
            lo, hi = getattr(self, name)
            if not low <= lo <= hi:
                raise ValueError(f"{name}=({lo}, {hi}) must be a (min, max) pair with {low} <= min <= max.")
        if self.visible[1] > self.n_frames:
            raise ValueError(f"visible={self.visible} must lie within 1..n_frames={self.n_frames}.")
        if not 0 <= self.p_moving <= 1:
            raise ValueError(f"p_moving is a probability, between 0 and 1, got {self.p_moving}.")
        styles = ("appearance", "motion", "narrated")
        if self.caption_style not in styles:
            raise ValueError(f"caption_style must be one of {', '.join(styles)}, got {self.caption_style!r}.")
        if self.caption_style in ("motion", "narrated") and self.n_objects[0] < 2:
            raise ValueError(f"caption_style={self.caption_style!r} tells of two objects or more: n_objects "
                             f"must start at 2 or more, got {self.n_objects}.")
        if self.annotators not in ("independent", "identical"):
            raise ValueError(f"annotators must be 'independent' or 'identical', got {self.annotators!r}.")
        if self.narration_order not in ("appearance", "shuffled"):
            raise ValueError(f"narration_order must be 'appearance' or 'shuffled', got {self.narration_order!r}.")
        if self.reorder_seed is not None and self.caption_style != "narrated":
            raise ValueError("reorder_seed reorders narrated events; use it with caption_style='narrated'.")


_DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
_TEMPLATES = (
    "On a {bg} background there {be} {objs}.",
    "{Objs} {appear} against a {bg} backdrop.",
    "A {bg} scene with {objs}.",
    "I see {objs} on {bg}.",
    "The video shows {objs} over a plain {bg} background.",
)


def _describe(obj: dict, with_motion: bool) -> str:
    text = f"a {obj['size']} {obj['colour']} {obj['shape']}"
    if with_motion and obj["motion"] != "still":
        text += f" moving {obj['motion']}"
    return text


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


# Options that change only the captions: the video side of a feature cache key leaves them out,
# so every caption style shares one extraction of the clips.
WORLD_CAPTION_OPTIONS = ("n_captions", "objects_per_caption", "caption_style", "reorder_seed", "annotators",
                         "narration_order")
_CONNECTIVES = ("First", "then", "and finally")


def narration(phrases: list[str]) -> str:
    """Event phrases told in the given order: "First A, then B, then C and finally D."

    >>> narration(["a red circle appears", "a blue square appears"])
    'First a red circle appears and finally a blue square appears.'
    """
    if len(phrases) < 2:
        raise ValueError("A narration needs at least two events.")
    middle = "".join(f", then {p}" for p in phrases[1:-1])
    return f"First {phrases[0]}{middle} and finally {phrases[-1]}."


def world_scene(spec: WorldSpec, index: int) -> dict:
    """Scene ``index`` of the world: background, objects (sorted by the frame they appear at: shape,
    colour, size, start, length, motion, x, y), captions and the label of the first object."""
    return _world_scene(spec, index)


def _world_scene(spec: WorldSpec, index: int) -> dict:
    if spec.annotators not in ("independent", "identical"):
        raise ValueError(f"annotators must be 'independent' or 'identical', got {spec.annotators!r}.")
    if spec.narration_order not in ("appearance", "shuffled"):
        raise ValueError(f"narration_order must be 'appearance' or 'shuffled', got {spec.narration_order!r}.")
    rng = np.random.default_rng([spec.seed, index])
    n = int(rng.integers(spec.n_objects[0], spec.n_objects[1] + 1))
    bg = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    objects = []
    for _ in range(n):
        length = int(rng.integers(spec.visible[0], spec.visible[1] + 1))
        start = int(rng.integers(0, spec.n_frames - length + 1))
        size = list(SIZES)[int(rng.integers(len(SIZES)))]
        motion = list(_DIRECTIONS)[int(rng.integers(4))] if rng.random() < spec.p_moving else "still"
        objects.append(dict(shape=SHAPES[int(rng.integers(len(SHAPES)))],
                            colour=WORLD_COLOURS[int(rng.integers(len(WORLD_COLOURS)))], size=size,
                            start=start, length=length, motion=motion,
                            x=float(rng.uniform(0.25, 0.75)), y=float(rng.uniform(0.25, 0.75))))
    objects.sort(key=lambda o: o["start"])
    captions = []
    for _ in range(spec.n_captions):
        if spec.caption_style == "appearance":
            m = int(rng.integers(spec.objects_per_caption[0], min(spec.objects_per_caption[1], n) + 1))
            chosen = sorted(rng.choice(n, size=m, replace=False).tolist())
            parts = [_describe(objects[i], with_motion=bool(rng.random() < 0.3)) for i in chosen]
            template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
            objs = _join(parts)
            captions.append(template.format(bg=bg, objs=objs, Objs=objs[0].upper() + objs[1:],
                                            be="is" if m == 1 else "are", appear="appears" if m == 1 else "appear"))
        elif spec.caption_style == "motion":
            i, j = sorted(rng.choice(n, size=2, replace=False).tolist())
            motion = objects[i]["motion"]
            facts = [f"The {objects[i]['shape']} is {motion if motion == 'still' else 'moving ' + motion}.",
                     f"A {objects[i]['shape']} shows up before a {objects[j]['shape']}."]
            captions.append(" ".join(facts[: int(rng.integers(1, 3))]))
        elif spec.caption_style == "narrated":
            phrases = [_describe(o, with_motion=bool(rng.random() < 0.5)) + " appears" for o in objects]
            if spec.narration_order == "shuffled":
                order = np.random.default_rng([spec.seed, index, len(captions), 7]).permutation(n)
                phrases = [phrases[i] for i in order]
            captions.append(narration(phrases))
        else:
            raise ValueError(f"caption_style must be 'appearance', 'motion' or 'narrated', got {spec.caption_style!r}.")
    if spec.annotators == "identical":
        captions = [captions[0]] * len(captions)
    if spec.reorder_seed is not None:
        if spec.caption_style != "narrated":
            raise ValueError("reorder_seed reorders narrated events; use it with caption_style='narrated'.")
        captions = [_reordered(c, spec.reorder_seed, f"world-{spec.seed}-{index:05d}-{j}")
                    for j, c in enumerate(captions)]
    first = objects[0]
    label = f"{first['shape']} {first['motion']}"
    return dict(background=bg, objects=objects, captions=captions, label=label)


def _reordered(caption: str, seed: int, key: str) -> str:
    """The narration ``caption`` with its events in a seeded other order (connectives stay in place)."""
    from .sampling import reorder_negative
    body = caption[len("First "):-1]
    head, _, last = body.rpartition(" and finally ")
    phrases = [*head.split(", then "), last]
    return narration(reorder_negative(phrases, seed, key))


# Downstream tasks the world's metadata answers (name -> (kind, semantic?)); see world_labels.
WORLD_TASKS = {
    "background": ("class", True),
    "first_shape": ("class", True),
    "colours_present": ("multilabel", True),
    "first_position": ("regression", False),
    "first_motion": ("class", False),
    "first_left_of_last": ("class", False),
    "object_count": ("class", False),
}


def world_labels(spec: WorldSpec, indices=None) -> dict[str, np.ndarray]:
    """Ground truth of the :data:`WORLD_TASKS` for clips ``indices`` (default: all), from the scene
    metadata. Semantic: the background, the shape of the object that appears first, which of the
    world's colours appear (0/1 per colour). Non-semantic: the first object's (x, y) centre, its motion
    (still/left/right/up/down), whether the object that appears first lies left of the one that
    appears last (needs the order of events), and the number of objects. Also ``"id"``."""
    indices = range(spec.n_clips) if indices is None else indices
    rows = [(i, _world_scene(spec, i)) for i in indices]
    first = [sc["objects"][0] for _, sc in rows]
    last = [sc["objects"][-1] for _, sc in rows]
    return {
        "id": np.array([f"world-{spec.seed}-{i:05d}" for i, _ in rows]),
        "background": np.array([sc["background"] for _, sc in rows]),
        "first_shape": np.array([o["shape"] for o in first]),
        "colours_present": np.array([[int(any(o["colour"] == c for o in sc["objects"])) for c in WORLD_COLOURS]
                                     for _, sc in rows]),
        "first_position": np.array([[o["x"], o["y"]] for o in first]),
        "first_motion": np.array([o["motion"] for o in first]),
        "first_left_of_last": np.array([int(a["x"] < b["x"]) for a, b in zip(first, last)]),
        "object_count": np.array([len(sc["objects"]) for _, sc in rows]),
    }


def world_clip(spec: WorldSpec, index: int) -> np.ndarray:
    """Render clip ``index``: uint8 [n_frames, size, size, 3]."""
    scene = _world_scene(spec, index)
    s = spec.size
    clip = np.empty((spec.n_frames, s, s, 3), dtype=np.uint8)
    clip[:] = BACKGROUNDS[scene["background"]]
    for obj in scene["objects"]:
        dx, dy = _DIRECTIONS.get(obj["motion"], (0, 0))
        for k in range(obj["length"]):
            frac = k / max(obj["length"] - 1, 1) - 0.5  # moves 0.3 of the frame over its window
            cx, cy = (obj["x"] + 0.3 * frac * dx) * s, (obj["y"] + 0.3 * frac * dy) * s
            render_shape(clip[obj["start"] + k], obj["shape"], cx, cy, SIZES[obj["size"]] * s,
                         COLOURS[obj["colour"]])
    return clip


def world_items(spec: WorldSpec = WorldSpec()):
    """Yield ``(id, captions, label, render)`` for each clip of the world."""
    if spec.visible[1] > spec.n_frames or spec.visible[0] < 1:
        raise ValueError(f"visible={spec.visible} must lie within 1..n_frames={spec.n_frames}.")
    for i in range(spec.n_clips):
        scene = _world_scene(spec, i)
        yield (f"world-{spec.seed}-{i:05d}", scene["captions"], scene["label"],
               lambda i=i: world_clip(spec, i))


# named test_*, but not pytest tests
test_of_time_items.__test__ = test_of_time_id.__test__ = test_of_time_events.__test__ = False
