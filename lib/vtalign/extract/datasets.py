"""Datasets: a registry from a name to a builder of (video, captions) items.

``load_dataset(name, **options)`` returns a :class:`VideoTextDataset` whose items keep a fixed
order; the video and text sides of an extraction both follow it. Names: ``vatex``, ``pvd``,
``activitynet``, ``youcook2``, ``videocomp``, ``vitatecs``, ``test_of_time``, ``synthetic_world``,
``clips``, ``kinetics400``, ``ssv2``. Datasets whose videos are not distributed take a
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

from .manifest import DataError, check_video_root, entry, fetch
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

__all__ = ["Item", "VideoTextDataset", "DATASETS", "register_dataset", "load_dataset", "reorder_negative"]


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


@register_dataset("vatex")
def _vatex(split: str = "val", n_items: int | None = None, sample_seed: int = 0, video_root=None,
           caption_index: int | None = None):
    """VATEX English captions (5 a video in the public files). Options: split ('val' | 'public_test'),
    n_items (a seeded sample, as the paper's 1,024), sample_seed, video_root (files ``<id>.mp4``),
    caption_index (keep only each video's caption at this position of the file, 0-4: two indices give two
    annotators' captions of the same videos; the sample of videos does not depend on it)."""
    if split not in ("val", "public_test"):
        raise ValueError(f"split must be 'val' or 'public_test', got {split!r}.")
    if caption_index is not None and not 0 <= caption_index < 5:
        raise ValueError(f"caption_index must be 0 to 4 (5 captions a video), got {caption_index}.")
    ids = fetch("vatex", f"vatex/{split}.id").read_text().splitlines()
    caps = fetch("vatex", f"vatex/{split}.en").read_text().splitlines()
    if len(ids) != len(caps):
        raise DataError(f"[vatex] {split}.id has {len(ids)} lines but {split}.en has {len(caps)}.")
    by_video: dict[str, list[str]] = {}
    for line_id, cap in zip(ids, caps):
        vid = line_id.rsplit("&", 1)[0]
        by_video.setdefault(vid, []).append(cap.strip())
    items = _subsample([Item(v, c) for v, c in by_video.items()], n_items, sample_seed)
    if caption_index is not None:
        short = [it.id for it in items if len(it.captions) <= caption_index]
        if short:
            raise DataError(f"[vatex] {len(short)} videos have no caption {caption_index}, e.g. {short[:3]}.")
        items = [Item(it.id, [it.captions[caption_index]]) for it in items]
    _attach_videos("vatex", items, video_root)
    options = dict(split=split, n_items=n_items, sample_seed=sample_seed)
    if caption_index is not None:  # absent otherwise, so that earlier cache entries keep their key
        options["caption_index"] = caption_index
    return VideoTextDataset("vatex", options, items, caption_options=("caption_index",))


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


def _label_dataset(name: str, label_file: str, video_root, folder_of: Callable[[int, str], str],
                   template: str, n_items: int | None, sample_seed: int) -> VideoTextDataset:
    labels = [s.strip() for s in fetch(name, label_file).read_text().splitlines() if s.strip()]
    if video_root is None:
        check_video_root(name, None, [])
    root = Path(video_root).expanduser()
    items = []
    for idx, label in enumerate(labels):
        folder = root / folder_of(idx, label)
        for f in sorted(folder.glob("*")) if folder.is_dir() else []:
            if f.suffix.lower() in (".mp4", ".webm", ".avi", ".mkv"):
                items.append(Item(f"{folder.name}/{f.stem}", [template.format(label=label)], VideoFile(f), label=label))
    if not items:
        raise DataError(f"[{name}] no videos found under {root}. {entry(name).videos}")
    items = _subsample(items, n_items, sample_seed)
    return VideoTextDataset(name, dict(n_items=n_items, sample_seed=sample_seed, video_root=str(root)), items,
                            notes={"classes_with_videos": len({it.label for it in items})})


@register_dataset("kinetics400")
def _kinetics400(video_root=None, n_items: int | None = None, sample_seed: int = 0,
                 template: str = "a video of {label}"):
    """Kinetics-400 from a user's copy laid out ``<class name>/<clip>.mp4``; captions from a template."""
    return _label_dataset("kinetics400", "labels/kinetics400_labels.txt", video_root, lambda i, l: l,
                          template, n_items, sample_seed)


@register_dataset("ssv2")
def _ssv2(video_root=None, n_items: int | None = None, sample_seed: int = 0, template: str = "{label}"):
    """Something-Something v2 from a user's copy laid out ``<class index>/<clip>.webm``."""
    return _label_dataset("ssv2", "labels/ssv2_labels.txt", video_root, lambda i, l: str(i), template,
                          n_items, sample_seed)
