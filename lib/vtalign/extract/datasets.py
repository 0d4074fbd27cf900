"""Datasets: a registry from a name to a builder of (video, captions) items.

``load_dataset(name, **options)`` returns a :class:`VideoTextDataset` whose items keep a fixed
order; the video and text sides of an extraction both follow it. Names: ``vatex``, ``pvd``,
``activitynet``, ``youcook2``, ``videocomp``, ``vitatecs``, ``test_of_time``, ``synthetic_world``,
``clips``, ``kinetics400``, ``kinetics700_2020``, ``ssv2``. Datasets whose videos are not distributed take a
``video_root`` option; without one their items have captions only.

Example
-------
>>> ds = load_dataset("test_of_time")
>>> len(ds), ds.items[0].captions[0]
(180, 'A red circle appears before a green circle')
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .manifest import DataError, check_video_root, entry, fetch, sha256sum
from .sampling import reorder_negative, shuffle_words
from .synthetic import (
    TEST_OF_TIME_VERSION,
    WORLD_CAPTION_OPTIONS,
    WORLD_VERSION,
    TestOfTimeSpec,
    WorldSpec,
    test_of_time_items,
    world_items,
)
from .video import FrameSource, GeneratedVideo, VideoFile

__all__ = ["Item", "VideoTextDataset", "DATASETS", "register_dataset", "load_dataset", "caption_source",
           "reorder_negative"]


@dataclass
class Item:
    id: str
    captions: list[str]
    video: FrameSource | None = None
    label: str | None = None


@dataclass
class VideoTextDataset:
    name: str
    options: dict
    items: list[Item]
    notes: dict = field(default_factory=dict)
    # Changes whenever a generator's pixels or captions change: part of every feature cache key.
    version: str = "1"
    # Options that change only the captions: the video side's cache key leaves them out.
    caption_options: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> list[str]:
        return [it.id for it in self.items]


DATASETS: dict[str, Callable[..., VideoTextDataset]] = {}


def register_dataset(name: str):
    """Decorator: ``@register_dataset("mine")`` on a ``builder(**options) -> VideoTextDataset``."""
    def deco(builder):
        DATASETS[name] = builder
        return builder
    return deco


def load_dataset(name: str, **options) -> VideoTextDataset:
    """Build dataset ``name`` with its options (each builder's docstring lists them). Options are not
    checked here: :func:`vtalign.extract.validation.build_dataset` checks them first, with one-line errors."""
    if name not in DATASETS:
        from .errors import UnknownDatasetError
        raise UnknownDatasetError(f"Unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))} "
                                  "(python -m vtalign.extract --list).")
    return DATASETS[name](**options)


def caption_source(dataset: VideoTextDataset) -> str:
    """Which captions a built dataset holds, for a page to print: its ``notes["caption_source"]`` where the
    builder records one (VaTeX: the 5-caption files shipped here, or the official JSON with 10), else
    ``"<name>: its own captions"``.

    >>> caption_source(VideoTextDataset("x", {}, [])), caption_source(load_dataset("vatex", n_items=4))
    ('x: its own captions', 'public tokenised files vatex/val.en (5 captions a video)')
    """
    return str(dataset.notes.get("caption_source") or f"{dataset.name}: its own captions")


def _subsample(items: list[Item], n_items: int | None, seed: int) -> list[Item]:
    """``n_items`` items drawn without replacement (seeded), kept in the source order."""
    if n_items is None or n_items >= len(items):
        return items
    if n_items < 1:
        raise ValueError(f"n_items must be positive, got {n_items}.")
    keep = np.sort(np.random.default_rng(seed).choice(len(items), size=n_items, replace=False))
    return [items[i] for i in keep]


def _attach_videos(name: str, items: list[Item], video_root, pattern: str = "{id}.mp4") -> None:
    if video_root is None:
        return
    rel = [pattern.format(id=it.id) for it in items]
    root = check_video_root(name, video_root, rel)
    for it, r in zip(items, rel):
        it.video = VideoFile(root / r)


VATEX_JSON_KEYS = ("videoID", "enCap")


def _vatex_json(json_file) -> dict[str, list[str]]:
    """Video id -> English captions from an official VaTeX annotation file (``vatex_validation_v1.0.json``,
    ``vatex_public_test_english_v1.1.json``, ``vatex_training_v1.0.json``): a JSON list of
    ``{"videoID": "<youtubeid>_<start>_<end>", "enCap": [10 captions], "chCap": [...]}``. Captions are kept as
    written (stripped of surrounding spaces, in the file's order). Raises :class:`DataError` naming the file,
    the first bad record and where the official files are."""
    e = entry("vatex")
    where = f"The official files: {', '.join(e.downloads) or e.homepage}."
    path = Path(json_file).expanduser()
    if not path.is_file():
        raise DataError(f"[vatex] json_file {path} does not exist. {where}")
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"[vatex] json_file {path} is not JSON ({err}). {where}") from err
    if not isinstance(rows, list) or not rows:
        raise DataError(f"[vatex] json_file {path} must hold a non-empty list of videos "
                        f"(records with {VATEX_JSON_KEYS}), got {type(rows).__name__}. {where}")
    out: dict[str, list[str]] = {}
    for n, r in enumerate(rows):
        caps = r.get("enCap") if isinstance(r, dict) else None
        if not isinstance(r, dict) or not isinstance(r.get("videoID"), str) or not isinstance(caps, list) \
                or not caps or not all(isinstance(c, str) and c.strip() for c in caps):
            raise DataError(f"[vatex] json_file {path}: record {n} needs 'videoID' (a string) and 'enCap' (a list "
                            f"of non-empty English captions); got {str(r)[:120]}. {where}")
        if r["videoID"] in out:
            raise DataError(f"[vatex] json_file {path}: video {r['videoID']} appears twice (records {n} and an "
                            "earlier one).")
        out[r["videoID"]] = [c.strip() for c in caps]
    return out


@register_dataset("vatex")
def _vatex(split: str = "val", n_items: int | None = None, sample_seed: int = 0, video_root=None,
           caption_index: int | None = None, json_file: str | None = None):
    """VATEX English captions. Two sources, recorded in ``notes["caption_source"]``:

    - default: the public tokenised files here (5 captions a video, lower-cased): split ('val' | 'public_test');
    - ``json_file``: an official annotation file (``vatex_validation_v1.0.json`` or
      ``vatex_public_test_english_v1.1.json``, from the VaTeX download page), all its English captions (10 a
      video), as written. ``split`` is then not used; the path is recorded in the options.

    n_items (a seeded sample, as the paper's 1,024), sample_seed, video_root (files ``<id>.mp4``),
    caption_index (keep only each video's caption at this position, 0-4 in the public files, 0-9 in the
    official JSON: two indices give two annotators' captions of the same videos; the sample of videos does not
    depend on it).

    Example (the official JSON's format; a two-video file)::

        [{"videoID": "abc_000001_000011", "enCap": ["A man ...", ...10 captions], "chCap": [...]}, ...]
    """
    if json_file is None:
        if split not in ("val", "public_test"):
            raise ValueError(f"split must be 'val' or 'public_test', got {split!r}.")
        if caption_index is not None and not 0 <= caption_index < 5:
            raise ValueError(f"caption_index must be 0 to 4 (5 captions a video in the public files), "
                             f"got {caption_index}.")
        ids = fetch("vatex", f"vatex/{split}.id").read_text().splitlines()
        caps = fetch("vatex", f"vatex/{split}.en").read_text().splitlines()
        if len(ids) != len(caps):
            raise DataError(f"[vatex] {split}.id has {len(ids)} lines but {split}.en has {len(caps)}.")
        by_video: dict[str, list[str]] = {}
        for line_id, cap in zip(ids, caps):
            vid = line_id.rsplit("&", 1)[0]
            by_video.setdefault(vid, []).append(cap.strip())
        source = f"public tokenised files vatex/{split}.en (5 captions a video)"
    else:
        if caption_index is not None and not 0 <= caption_index < 10:
            raise ValueError(f"caption_index must be 0 to 9 (10 captions a video in the official JSON), "
                             f"got {caption_index}.")
        by_video = _vatex_json(json_file)
        counts = sorted({len(c) for c in by_video.values()})
        source = (f"official JSON {Path(json_file).name} ({len(by_video)} videos, "
                  f"{'/'.join(map(str, counts))} English captions a video)")
    items = _subsample([Item(v, c) for v, c in by_video.items()], n_items, sample_seed)
    if caption_index is not None:
        short = [it.id for it in items if len(it.captions) <= caption_index]
        if short:
            raise DataError(f"[vatex] {len(short)} videos have no caption {caption_index}, e.g. {short[:3]}.")
        items = [Item(it.id, [it.captions[caption_index]]) for it in items]
    _attach_videos("vatex", items, video_root)
    if json_file is None:  # the keys of entries made before json_file existed stay as they were
        options = dict(split=split, n_items=n_items, sample_seed=sample_seed)
    else:
        options = dict(json_file=str(Path(json_file).expanduser().resolve()), n_items=n_items, sample_seed=sample_seed)
    if caption_index is not None:  # absent otherwise, so that earlier cache entries keep their key
        options["caption_index"] = caption_index
    return VideoTextDataset("vatex", options, items, caption_options=("caption_index",),
                            notes={"caption_source": source,
                                   "captions_per_video": sorted({len(it.captions) for it in items})})


@register_dataset("pvd")
def _pvd(caption_set: str = "synthesised", n_items: int | None = None, sample_seed: int = 0, video_root=None):
    """The paper's 1,024 PE-Video clips. caption_set: 'synthesised' (the 10 LLM-synthesised captions,
    field ``rephrased_captions``: every row has them), 'human' or 'model' (the one original caption).
    (The file's ``captions`` field is present in one row only and is not used.)"""
    rows = [json.loads(line) for line in fetch("pvd", "pvd/pe_video_1k_captions.jsonl").read_text().splitlines()
            if line.strip()]
    items = []
    for r in rows:
        if caption_set == "synthesised":
            caps = [c.strip() for c in r["rephrased_captions"] if c.strip()]
        elif caption_set in ("human", "model"):
            caps = [r[f"{caption_set}_caption"].strip()]
        else:
            raise ValueError(f"caption_set must be synthesised, human or model, got {caption_set!r}.")
        items.append(Item(str(r["video_id"]), caps, label=r.get("category_name")))
    items = _subsample(items, n_items, sample_seed)
    _attach_videos("pvd", items, video_root)
    return VideoTextDataset("pvd", dict(caption_set=caption_set, n_items=n_items, sample_seed=sample_seed), items)


def _dense_events(source: str) -> list[tuple[str, list[str]]]:
    """(video id, event sentences in temporal order) from ActivityNet Captions or YouCook2."""
    out = []
    if source == "activitynet":
        seen = set()
        for part in ("dense_captions/anet_entities_val_1.json", "dense_captions/anet_entities_val_2.json"):
            for vid, v in json.loads(fetch("activitynet", part).read_text()).items():
                if vid in seen:  # the two validation files overlap: keep the first annotation
                    continue
                seen.add(vid)
                order = np.argsort([t[0] for t in v["timestamps"]], kind="stable")
                out.append((vid, [v["sentences"][i].strip() for i in order]))
    elif source == "youcook2":
        db = json.loads(fetch("youcook2", "dense_captions/yc2_annotations_trainval.json").read_text())["database"]
        for vid, v in db.items():
            anns = sorted(v["annotations"], key=lambda a: (a["segment"][0], a["id"]))
            out.append((vid, [a["sentence"].strip() for a in anns]))
    else:
        raise ValueError(f"source must be 'activitynet' or 'youcook2', got {source!r}.")
    return out


@register_dataset("activitynet")
def _activitynet(n_items: int | None = None, sample_seed: int = 0, video_root=None):
    """ActivityNet Captions validation; captions = the event sentences in temporal order."""
    items = _subsample([Item(v, s) for v, s in _dense_events("activitynet")], n_items, sample_seed)
    _attach_videos("activitynet", items, video_root)
    return VideoTextDataset("activitynet", dict(n_items=n_items, sample_seed=sample_seed), items)


@register_dataset("youcook2")
def _youcook2(n_items: int | None = None, sample_seed: int = 0, video_root=None):
    """YouCook2 train+val; captions = the recipe steps in temporal order."""
    items = _subsample([Item(v, s) for v, s in _dense_events("youcook2")], n_items, sample_seed)
    _attach_videos("youcook2", items, video_root)
    return VideoTextDataset("youcook2", dict(n_items=n_items, sample_seed=sample_seed), items)


@register_dataset("videocomp")
def _videocomp(source: str = "activitynet", text: str = "positive", seed: int = 0, n_items: int | None = None,
               sample_seed: int = 0, video_root=None):
    """VideoComp-style reordering: captions = [the events joined in order] (``text="positive"``)
    or [the same events joined in a seeded shuffled order] (``"negative"``), or the negative's words in a
    seeded random order (``"shuffled"``: the bag-of-words control, :func:`~vtalign.extract.sampling.shuffle_words`
    with the same seed). Videos with fewer than two distinct event sentences are excluded (counted in ``notes``)."""
    if text not in ("positive", "negative", "shuffled"):
        raise ValueError(f"text must be 'positive', 'negative' or 'shuffled', got {text!r}.")
    items, excluded = [], 0
    for vid, sents in _dense_events(source):
        if len(set(sents)) < 2:
            excluded += 1
            continue
        chosen = " ".join(sents if text == "positive" else reorder_negative(sents, seed, vid))
        items.append(Item(vid, [shuffle_words(chosen, seed, vid) if text == "shuffled" else chosen]))
    items = _subsample(items, n_items, sample_seed)
    _attach_videos(source, items, video_root)
    return VideoTextDataset("videocomp", dict(source=source, text=text, seed=seed, n_items=n_items,
                                              sample_seed=sample_seed), items,
                            notes={"excluded_fewer_than_two_events": excluded}, caption_options=("text", "seed"))


VITATECS_ASPECTS = ("Sequence", "Direction")


@register_dataset("vitatecs")
def _vitatecs(aspect: str = "Sequence", text: str = "caption", seed: int = 0, n_items: int | None = None,
              sample_seed: int = 0):
    """VITATECS temporal counterfactuals, text only: one item per line of ``<aspect>.jsonl`` (id
    ``<aspect>-<line>``, label = the source video's file name). captions = [the caption] (``text="caption"``),
    [its minimally edited temporal counterfactual] (``"counterfactual"``) or [the counterfactual's words in a
    seeded random order] (``"shuffled"``, :func:`~vtalign.extract.sampling.shuffle_words` with ``seed``: the
    bag-of-words control). aspect: 'Sequence' (event order swapped, 151 lines) or 'Direction' (action
    reversed, 3,800 lines); n_items: a seeded sample of lines (the same lines for every ``text``)."""
    if aspect not in VITATECS_ASPECTS:
        raise ValueError(f"aspect must be one of {VITATECS_ASPECTS}, got {aspect!r}.")
    if text not in ("caption", "counterfactual", "shuffled"):
        raise ValueError(f"text must be 'caption', 'counterfactual' or 'shuffled', got {text!r}.")
    lines = fetch("vitatecs", f"vitatecs/{aspect}.jsonl").read_text().splitlines()
    items = []
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        row = json.loads(line)
        item_id = f"{aspect.lower()}-{number:04d}"
        cap, counter = " ".join(row["caption"].split()), " ".join(row["counterfactual"].split())
        chosen = {"caption": cap, "counterfactual": counter}.get(text) or shuffle_words(counter, seed, item_id)
        items.append(Item(item_id, [chosen], label=row["video_name"]))
    items = _subsample(items, n_items, sample_seed)
    return VideoTextDataset("vitatecs", dict(aspect=aspect, text=text, seed=seed, n_items=n_items,
                                             sample_seed=sample_seed), items, caption_options=("text", "seed"))


@register_dataset("test_of_time")
def _test_of_time(caption: str = "true", size: int = 112, seed: int = 0, events: str = "ordered"):
    """Test of Time regenerated (180 pairs). caption: 'true' or 'flipped' (before <-> after);
    seed: the per-clip quadrant draw; events: 'ordered' (one circle after the other, as published) or
    'simultaneous' (both circles in the same frames: the null world, where no clip shows an order)."""
    if caption not in ("true", "flipped"):
        raise ValueError(f"caption must be 'true' or 'flipped', got {caption!r}.")
    if events not in ("ordered", "simultaneous"):
        raise ValueError(f"events must be 'ordered' or 'simultaneous', got {events!r}.")
    spec = TestOfTimeSpec(size=size, seed=seed, second_at=TestOfTimeSpec.first_at if events == "simultaneous"
                          else TestOfTimeSpec.second_at)
    items = [Item(i, [flip if caption == "flipped" else cap], GeneratedVideo(render, spec.n_frames, i),
                  label=cap)
             for i, cap, flip, render in test_of_time_items(spec)]
    options = dict(caption=caption, size=size, seed=seed, **({"events": events} if events != "ordered" else {}))
    return VideoTextDataset("test_of_time", options, items,
                            version=TEST_OF_TIME_VERSION, caption_options=("caption",))


@register_dataset("synthetic_world")
def _synthetic_world(**options):
    """The procedural synthetic world; options are :class:`vtalign.extract.synthetic.WorldSpec` fields."""
    for key in ("n_objects", "visible", "objects_per_caption"):
        if key in options:
            options[key] = tuple(options[key])
    spec = WorldSpec(**options)
    spec.check()
    items = [Item(i, caps, GeneratedVideo(render, spec.n_frames, i), label=label)
             for i, caps, label, render in world_items(spec)]
    return VideoTextDataset("synthetic_world", spec.as_dict(), items, version=WORLD_VERSION,
                            caption_options=WORLD_CAPTION_OPTIONS)


# A builder that takes **options declares them here (name -> (type, default)) so that they can be checked.
_synthetic_world.option_fields = WorldSpec.option_fields


@register_dataset("clips")
def _clips(captioned_only: bool = True):
    """The 12 real clips (mp4 and avi); captions = the clip's text. captioned_only=False keeps the
    two uncaptioned mmaction2 test clips too (video side only)."""
    table = fetch("clips", "clips/clips.csv")
    items = []
    with open(table, newline="") as fh:
        for row in csv.DictReader(fh):
            text = row["text"].strip()
            if captioned_only and not text:
                continue
            path = fetch("clips", f"clips/{row['file']}")
            items.append(Item(row["file"],
                              [text] if text else [], VideoFile(path), label=text or None))
    return VideoTextDataset("clips", dict(captioned_only=captioned_only), items)


VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mkv")
MISSING_RULES = ("error", "skip")


def _label_map(name: str, label_file: str | None) -> list[str] | None:
    """The dataset's class names from its manifest file (index = class id), or None where it has none."""
    if label_file is None:
        return None
    return [s.strip() for s in fetch(name, label_file).read_text().splitlines() if s.strip()]


def _list_error(name: str, path: Path, what: str) -> DataError:
    e = entry(name)
    return DataError(f"[{name}] list_file {path}: {what}. The official lists: {', '.join(e.downloads) or e.homepage}.")


def read_video_list(name: str, list_file, labels: list[str] | None, suffix: str) -> list[tuple[str, str]]:
    """(video file relative to the video folder, class name) for each video of a list file, in its order.

    Formats, told apart by the file:

    - Kinetics' official CSV (``.csv`` with a ``youtube_id`` column: ``label,youtube_id,time_start,time_end,
      split``): files ``<youtube_id>_<start:06d>_<end:06d>.mp4`` (the CVDF archives' names);
    - Something-Something v2's ``test-answers.csv`` (``<id>;<template>`` a line) or its ``-validation.json``
      (``[{"id", "template" | "label"}]``, ``[something]`` brackets dropped): files ``<id>`` + ``suffix``;
    - any other text file, mmaction2's video lists: ``<relative path> <label>`` a line (split at the last
      space; ``<id>;<label>`` where a class name has spaces), ``<label>`` a class index into ``labels`` or a
      class name (a path without a file suffix gets ``suffix``).

    Class names must be in ``labels`` where the dataset has a class list (else the error lists the strangers).

    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "test.csv")
    >>> _ = open(f, "w").write("label,youtube_id,time_start,time_end,split\\nabseiling,abc,12,22,test\\n")
    >>> read_video_list("kinetics400", f, ["abseiling"], ".mp4")
    [('abc_000012_000022.mp4', 'abseiling')]
    """
    path = Path(list_file).expanduser()
    if not path.is_file():
        raise _list_error(name, path, "does not exist")
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise _list_error(name, path, "is empty")
    out: list[tuple[str, str]] = []
    unbracket = lambda t: " ".join(t.replace("[", "").replace("]", "").split())
    with_suffix = lambda rel: rel if Path(rel).suffix.lower() in VIDEO_SUFFIXES else rel + suffix
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise _list_error(name, path, f"is not JSON ({err})") from err
        for n, r in enumerate(rows if isinstance(rows, list) else [rows]):
            label = (r.get("template") or r.get("label")) if isinstance(r, dict) else None
            if not isinstance(r, dict) or "id" not in r or not label:
                raise _list_error(name, path, f"record {n} needs 'id' and 'template' (or 'label'), got {str(r)[:100]}"
                                  " (the test split's JSON has no labels: use test-answers.csv)")
            out.append((with_suffix(str(r["id"])), unbracket(label)))
    elif path.suffix.lower() == ".csv" and "youtube_id" in lines[0]:
        rows = list(csv.DictReader(lines))
        for n, r in enumerate(rows):
            try:
                rel = f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}.mp4"
            except (KeyError, TypeError, ValueError) as err:
                raise _list_error(name, path, f"row {n + 2} needs youtube_id, time_start, time_end ({err})") from err
            if not (r.get("label") or "").strip():
                raise _list_error(name, path, f"row {n + 2} has no label (an unlabelled split cannot be scored)")
            out.append((rel, r["label"].strip().strip('"')))
    else:
        for n, line in enumerate(lines):
            rel, sep, label = line.partition(";") if ";" in line else line.rpartition(" ")
            rel, label = rel.strip(), label.strip()
            if not sep or not rel or not label:
                raise _list_error(name, path, f"line {n + 1} {line[:80]!r} is not '<video> <label>' "
                                  "(or '<id>;<label>')")
            if label.isdigit():
                if labels is None:
                    raise _list_error(name, path, f"line {n + 1} gives a class index, but {name} has no class list "
                                      "here: give class names (the official CSV)")
                if int(label) >= len(labels):
                    raise _list_error(name, path, f"line {n + 1}: class index {label} >= {len(labels)} classes")
                label = labels[int(label)]
            out.append((with_suffix(rel), unbracket(label)))
    if labels is not None:
        known = set(labels)
        strangers = sorted({lab for _, lab in out if lab not in known})
        if strangers:
            raise _list_error(name, path, f"{len(strangers)} class names are not among the {len(labels)} classes of "
                              f"{name}, e.g. {strangers[:3]}")
    ids, counts = np.unique([str(Path(r).with_suffix("")) for r, _ in out], return_counts=True)
    dup = ids[counts > 1].tolist()
    if dup:
        raise _list_error(name, path, f"{len(dup)} videos are listed twice, e.g. {dup[:3]}")
    return out


def _label_dataset(name: str, label_file: str | None, video_root, folder_of: Callable[[int, str], str],
                   template: str, n_items: int | None, sample_seed: int, list_file=None, missing: str = "error",
                   suffix: str = ".mp4") -> VideoTextDataset:
    """A labelled video set from a user's folder: every video under its class's subfolder (``list_file`` None)
    or the videos a list file names (:func:`read_video_list`), with a seeded subset of ``n_items``."""
    if missing not in MISSING_RULES:
        raise ValueError(f"missing must be one of {MISSING_RULES}, got {missing!r}.")
    if n_items is not None and n_items < 1:
        raise ValueError(f"n_items must be positive, got {n_items}.")
    labels = _label_map(name, label_file)
    if video_root is None:
        check_video_root(name, None, [])
    root = Path(video_root).expanduser()
    if not root.is_dir():
        check_video_root(name, root, [])
    if list_file is None:
        if missing != "error":
            raise ValueError("missing applies to a list_file (videos it names that the folder lacks).")
        classes = labels if labels is not None else sorted(p.name for p in root.iterdir() if p.is_dir())
        items = []
        for idx, label in enumerate(classes):
            folder = root / folder_of(idx, label)
            for f in sorted(folder.glob("*")) if folder.is_dir() else []:
                if f.suffix.lower() in VIDEO_SUFFIXES:
                    items.append(Item(f"{folder.name}/{f.stem}", [template.format(label=label)], VideoFile(f),
                                      label=label))
        if not items:
            raise DataError(f"[{name}] no videos found under {root}. {entry(name).videos}")
        items = _subsample(items, n_items, sample_seed)
        return VideoTextDataset(name, dict(n_items=n_items, sample_seed=sample_seed, video_root=str(root)), items,
                                notes={"classes_with_videos": len({it.label for it in items})})
    listed = read_video_list(name, list_file, labels, suffix)
    notes = {"listed": len(listed)}
    if missing == "skip":
        present = [(rel, lab) for rel, lab in listed if (root / rel).is_file()]
        notes["listed_but_absent"] = len(listed) - len(present)
        if not present:
            check_video_root(name, root, [rel for rel, _ in listed])
        listed = present
    items = [Item(str(Path(rel).with_suffix("")), [template.format(label=lab)], label=lab) for rel, lab in listed]
    items = _subsample(items, n_items, sample_seed)
    rel_by_id = {str(Path(rel).with_suffix("")): rel for rel, _ in listed}
    rel_of = [rel_by_id[it.id] for it in items]
    check_video_root(name, root, rel_of)  # every chosen video present, else an error naming the missing
    for it, rel in zip(items, rel_of):
        it.video = VideoFile(root / rel)
    list_path = Path(list_file).expanduser().resolve()
    notes.update(classes_with_videos=len({it.label for it in items}), subset_ids=[it.id for it in items])
    options = dict(list_file=str(list_path), list_sha256=sha256sum(list_path), n_items=n_items,
                   sample_seed=sample_seed, video_root=str(root))
    if missing != "error":
        options["missing"] = missing
    return VideoTextDataset(name, options, items, notes=notes)


def _check_list_digest(name: str, list_file, list_sha256: str | None) -> None:
    if list_sha256 is not None and list_file is not None and Path(list_file).expanduser().is_file():
        actual = sha256sum(Path(list_file).expanduser())
        if actual != list_sha256:
            raise DataError(f"[{name}] list_file {list_file} has sha256 {actual}, not the {list_sha256} recorded "
                            "with these features: the list changed, so the subset would too.")


@register_dataset("kinetics400")
def _kinetics400(video_root=None, n_items: int | None = None, sample_seed: int = 0,
                 template: str = "a video of {label}", list_file: str | None = None, list_sha256: str | None = None,
                 missing: str = "error"):
    """Kinetics-400 from a user's copy; captions from a template.

    Without ``list_file``: every video under ``<video_root>/<class name>/``. With ``list_file`` (the official
    ``test.csv``, or an mmaction2 list ``<path> <class index>``; :func:`read_video_list`): the videos it names,
    under ``video_root`` (the CVDF test archives unpack to ``<youtube_id>_<start>_<end>.mp4``). ``n_items``: a
    seeded subset (the paper: 10,000 test videos), drawn with ``sample_seed``; the chosen ids are in
    ``notes["subset_ids"]`` and in every cache entry's key and ``meta.json``. ``missing``: 'error' (a listed
    video absent from the folder stops the build, naming it) or 'skip' (absent videos are dropped before the
    subset is drawn; counted in ``notes``). ``list_sha256``: checked against the list file when given (the
    options record it, so a rebuild from recorded options refuses a changed list)."""
    _check_list_digest("kinetics400", list_file, list_sha256)
    return _label_dataset("kinetics400", "labels/kinetics400_labels.txt", video_root, lambda i, l: l,
                          template, n_items, sample_seed, list_file, missing, ".mp4")


@register_dataset("kinetics700_2020")
def _kinetics700_2020(video_root=None, n_items: int | None = None, sample_seed: int = 0,
                      template: str = "a video of {label}", list_file: str | None = None,
                      list_sha256: str | None = None, missing: str = "error"):
    """Kinetics-700-2020 from a user's copy, as :func:`_kinetics400` (no class list is pinned here: the class
    names come from the official CSV's ``label`` column, or from the class folders without a list)."""
    _check_list_digest("kinetics700_2020", list_file, list_sha256)
    return _label_dataset("kinetics700_2020", None, video_root, lambda i, l: l, template, n_items, sample_seed,
                          list_file, missing, ".mp4")


@register_dataset("ssv2")
def _ssv2(video_root=None, n_items: int | None = None, sample_seed: int = 0, template: str = "{label}",
          list_file: str | None = None, list_sha256: str | None = None, missing: str = "error"):
    """Something-Something v2 from a user's copy: without ``list_file`` every video under
    ``<video_root>/<class index>/``; with it (``test-answers.csv``, ``something-something-v2-validation.json``
    or an mmaction2 list) the videos it names, files ``<id>.webm`` under ``video_root``. ``n_items``,
    ``sample_seed``, ``missing`` and ``list_sha256`` as for :func:`_kinetics400`."""
    _check_list_digest("ssv2", list_file, list_sha256)
    return _label_dataset("ssv2", "labels/ssv2_labels.txt", video_root, lambda i, l: str(i), template,
                          n_items, sample_seed, list_file, missing, ".webm")
