"""The caption side of test-time scaling on real captions: the text-only analogue of the paper's caption axis.

A video with many captions is a natural experiment. Each video's distinct captions are split by a seeded
sampler into two disjoint sides, A and B (no caption on both sides). Side A's first n captions are encoded
by one language model and side B's by another (or the same); each caption is encoded once, and a side's
n caption embeddings are averaged per video (:func:`side_features`). Mutual k-NN alignment (Eq. 1)
between the two sides, best over layer pairs as the paper reports it, then shows whether more captions
converge on the same video for real annotators' text. This is *not* the paper's video-text measurement
(Figures 3, 7 and 8 pair captions with a vision model); the second side here is text too.

Curves (one score per n, items = videos):

- ``one_sided``: A's first n against all of B (fixed), the analogue of the paper, whose video side is fixed
  while captions grow. **The graded curve.** Side B is the fixed reference, so a rise can only come from what
  side A's added captions share with the video's held-out captions;
- ``shuffled_video`` (the graded curve's control): side A's first n captions of *another* video (a seeded
  derangement: one fixed other video per row, for every n) against all of this video's side B: the same count
  of real captions averaged the same way, without the pairing to the video. A rise that comes from averaging
  itself (fewer outliers, a smoother geometry) would show here too; without such an effect it stays near chance;
- ``symmetric``: A's first n against B's first n (n up to the smaller side). *Description only*: both sides
  average more captions at once, so it rises whenever each side's noise falls, and its rise does not separate
  side A's gain from side B's;
- ``original``: PVD's original detailed caption on side A against all of B (one point, the dashed line
  of Figure 8, right);
- ``repeated`` (description): A's first caption repeated n times against B's first caption repeated n times.
  Averaged embeddings of one caption are that caption's embedding, so it is flat *by construction* under
  averaging: it checks the code path (the count itself adds nothing), not the data;
- ``other_videos`` (description): A's first caption plus n - 1 first captions of *other* videos (seeded), and
  the same on side B with other draws. It dilutes the video's own caption, so it falls *by construction*; it
  cannot fail and grades nothing.

What could fail the graded rule (:func:`captions_verdict`): side A's captions after the first adding nothing that
the held-out captions share (the one-sided curve stays flat: not resolved) or drifting off the video (it falls:
contradicted), or averaging alone raising the score (the control rises as much: not resolved). The tests build
each of these worlds.

Intervals come from one resample of videos per bootstrap draw shared by every cell
(:func:`vtalign.scaling.grid_draws`), so differences between cells (gains, real minus null) are paired.

Example
-------
>>> split_captions(["a", "b", "c", "d", "e"], 2, 2, seed=0, item_id="v1")
(['a', 'e'], ['b', 'd'])
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..alignment import layer_neighbours, prepare_features, sweep_from_neighbours
from ..checks import InsufficientData
from ..extract.datasets import Item, VideoTextDataset, caption_source, load_dataset
from ..extract.features import extract_features
from ..extract.manifest import fetch
from ..extract.sampling import item_rng
from ..scaling import compare_slice_forms, fit_slices, lowest_aicc, slice_fit_table
from ..verdicts import (
    CONTRADICTED,
    NOT_TESTABLE,
    SUPPORTED,
    UNRESOLVED,
    Interval,
    Verdict,
    claim_status,
    form_status,
)

__all__ = ["SOURCES", "CURVES", "NULLS", "CONTROL", "COMBINE", "CaptionSplit", "distinct_captions", "split_captions",
           "load_split", "pvd_caption_sets", "pool_dataset", "pool_index", "concat_dataset", "encode_pool",
           "mean_rows", "side_rows", "side_features", "score_sides", "measure_curves", "cell_intervals", "gains",
           "null_separations", "original_leads", "fit_curves", "captions_verdict", "pvd_captions_verdict",
           "beats_original_verdict", "eq2_form_verdict", "plot_curves"]

SOURCES = ("vatex", "pvd")
CURVES = ("symmetric", "one_sided", "shuffled_video", "original", "repeated", "other_videos")
NULLS = ("repeated", "other_videos")   # of the symmetric curve: description (flat / falling by construction)
CONTROL = "shuffled_video"             # of the graded one-sided curve
COMBINE = ("mean", "concatenate")
CHAPTER = "caption_scaling"


@dataclass
class CaptionSplit:
    """Each video's captions split into two disjoint sides.

    ids : [N] video ids, in the dataset's order
    captions : [N] lists of each video's distinct captions (the pool each side indexes into)
    a, b : [N, n_a] and [N, n_b] int arrays: positions in ``captions[i]`` of side A's and side B's captions,
        in the sampler's order (side A's first n captions are ``a[i, :n]``)
    original : [N] PVD's original caption (``None`` for VaTeX)
    dropped : videos left out for having fewer than ``n_a + n_b`` distinct captions
    options : what built it (source, caption set, sample, split seed, sizes)
    caption_source : which caption files ran (:func:`vtalign.extract.datasets.caption_source`: VaTeX's 5-caption
        files shipped here or the official JSON with 10), for the page to print
    """
    ids: list[str]
    captions: list[list[str]]
    a: np.ndarray
    b: np.ndarray
    original: list[str] | None
    dropped: int
    options: dict = field(default_factory=dict)
    caption_source: str = ""

    def __len__(self) -> int:
        return len(self.ids)


def distinct_captions(captions: list[str]) -> list[str]:
    """An item's captions stripped, empty ones dropped, and exact duplicates removed (first kept, order kept),
    so that two sides never hold the same text.

    >>> distinct_captions([" a dog ", "a dog", "", "a cat"])
    ['a dog', 'a cat']
    """
    out: list[str] = []
    for c in captions:
        c = c.strip()
        if c and c not in out:
            out.append(c)
    return out


def _split_positions(n_captions: int, n_a: int, n_b: int, seed: int, item_id: str) -> tuple[np.ndarray, np.ndarray]:
    if n_a < 1 or n_b < 1:
        raise ValueError(f"Both sides need at least one caption, got n_a={n_a}, n_b={n_b}.")
    if n_captions < n_a + n_b:
        raise ValueError(f"Item {item_id!r} has {n_captions} distinct captions; a split of {n_a} + {n_b} needs "
                         f"{n_a + n_b}.")
    order = item_rng(seed, item_id).permutation(n_captions)
    return order[:n_a], order[n_a:n_a + n_b]


def split_captions(captions: list[str], n_a: int, n_b: int, seed: int, item_id: str) -> tuple[list[str], list[str]]:
    """Two disjoint sides of one item's distinct captions: a seeded permutation (the seed and the item's
    id, not its position: :func:`vtalign.extract.sampling.item_rng`), its first ``n_a`` for side A and the
    next ``n_b`` for side B. No caption text is on both sides (duplicates are removed first,
    :func:`distinct_captions`); the same seed and id give the same split.

    >>> a, b = split_captions(list("abcdefghij"), 5, 5, 0, "v"); sorted(a + b) == list("abcdefghij")
    True
    """
    caps = distinct_captions(captions)
    ia, ib = _split_positions(len(caps), n_a, n_b, seed, item_id)
    return [caps[i] for i in ia], [caps[i] for i in ib]


def pvd_caption_sets() -> dict[str, int]:
    """How many of PVD's videos carry each caption set in the data file: ``rephrased_captions`` (a list of 10,
    the set the project's ``pvd`` dataset calls synthesised), ``captions`` (a second set of 10 as one
    newline-separated string), and the original ``model_caption`` / ``human_caption``. The chapter compares
    two synthesised sets only where both exist for the videos measured."""
    rows = [json.loads(line) for line in fetch("pvd", "pvd/pe_video_1k_captions.jsonl").read_text().splitlines()
            if line.strip()]
    def count(test):
        return int(sum(bool(test(r)) for r in rows))
    return {"videos": len(rows),
            "rephrased_captions (10 a video)": count(lambda r: len(distinct_captions(r.get("rephrased_captions")
                                                                                      or [])) >= 10),
            "captions (10 a video)": count(lambda r: isinstance(r.get("captions"), str)
                                           and len(distinct_captions(r["captions"].split("\n"))) >= 10),
            "model_caption": count(lambda r: str(r.get("model_caption") or "").strip()),
            "human_caption": count(lambda r: str(r.get("human_caption") or "").strip())}


def load_split(source: str, n_a: int, n_b: int, split_seed: int = 0, n_items: int | None = 1024,
               sample_seed: int = 0, original: str = "model") -> CaptionSplit:
    """The videos of ``source`` ("vatex": the validation split's 5 English captions a video in these files;
    "pvd": the 10 synthesised captions, with the original ``model`` or ``human`` caption) with their captions
    split ``n_a`` + ``n_b`` by :func:`split_captions`. ``n_items`` videos are sampled (seeded, as the
    datasets do) *before* videos with too few distinct captions are left out (counted in ``dropped``)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}.")
    if original not in ("model", "human"):
        raise ValueError(f"original must be 'model' or 'human', got {original!r}.")
    if source == "vatex":
        ds = load_dataset("vatex", split="val", n_items=n_items, sample_seed=sample_seed)
        originals = None
    else:
        ds = load_dataset("pvd", caption_set="synthesised", n_items=n_items, sample_seed=sample_seed)
        orig = load_dataset("pvd", caption_set=original, n_items=n_items, sample_seed=sample_seed)
        originals = {it.id: it.captions[0] for it in orig.items}
    ids, caps, a, b, kept_orig, dropped = [], [], [], [], [], 0
    for it in ds.items:
        pool = distinct_captions(it.captions)
        if len(pool) < n_a + n_b:
            dropped += 1
            continue
        ia, ib = _split_positions(len(pool), n_a, n_b, split_seed, it.id)
        ids.append(it.id)
        caps.append(pool)
        a.append(ia)
        b.append(ib)
        if originals is not None:
            kept_orig.append(originals[it.id])
    if len(ids) < 2:
        raise InsufficientData(f"{len(ids)} {source} videos have {n_a + n_b} distinct captions; need 2 or more.")
    options = dict(source=source, caption_set="val" if source == "vatex" else "synthesised", n_items=n_items,
                   sample_seed=sample_seed, split_seed=split_seed, n_a=n_a, n_b=n_b,
                   original=original if source == "pvd" else None)
    return CaptionSplit(ids, caps, np.array(a, dtype=np.int64), np.array(b, dtype=np.int64),
                        kept_orig if originals is not None else None, dropped, options, caption_source(ds))


def pool_dataset(split: CaptionSplit) -> VideoTextDataset:
    """One item per caption to encode: every distinct caption of every video (id ``<video>#<position>``) and
    PVD's original (``<video>#orig``). The split's sides index into it, so one encoding serves every split
    seed, side size and curve. Its cache options name the source and sample, not the split."""
    items = []
    for vid, caps in zip(split.ids, split.captions):
        items += [Item(f"{vid}#{j}", [c]) for j, c in enumerate(caps)]
    if split.original is not None:
        items += [Item(f"{vid}#orig", [c]) for vid, c in zip(split.ids, split.original)]
    o = split.options
    options = dict(source=o["source"], caption_set=o["caption_set"], n_items=o["n_items"],
                   sample_seed=o["sample_seed"], original=o["original"])
    return VideoTextDataset("caption_pool", options, items)


def encode_pool(split: CaptionSplit, model: str, progress: bool = True) -> tuple[np.ndarray, dict, dict]:
    """Per-layer features [M, L, D] of every caption of :func:`pool_dataset` by ``model`` (one caption an item,
    through :func:`vtalign.extract.extract_features`: cached, so a second run reads them), its metadata, and
    the row of each pool id."""
    feats, meta = extract_features(pool_dataset(split), model, captions=1, progress=progress)
    return feats, meta, {item: i for i, item in enumerate(meta["item_ids"])}


def pool_index(split: CaptionSplit) -> dict:
    """The row of each pool id in :func:`pool_dataset`'s item order, without encoding anything (for
    ``combine="concatenate"``, which encodes whole sides instead of single captions)."""
    return {it.id: i for i, it in enumerate(pool_dataset(split).items)}


def concat_dataset(split: CaptionSplit, rows: np.ndarray) -> VideoTextDataset:
    """One side of one cell as the paper builds it (Sec. 3): each video's captions at pool ``rows`` [N, n]
    joined into one string, stripped and separated by single spaces as
    :func:`vtalign.extract.sampling.caption_text` joins them (one caption repeated n times is that caption n
    times). One item a video, id the video's; the cache options carry a digest of the texts, so each
    distinct side is one cache entry, shared by every curve that uses it.

    >>> sp = CaptionSplit(["v"], [["a cat", "a dog"]], np.array([[0]]), np.array([[1]]), None, 0,
    ...                   dict(source="x", n_items=1, sample_seed=0, caption_set="", original=None))
    >>> concat_dataset(sp, np.array([[0, 0, 1]])).items[0].captions
    ['a cat a cat a dog']
    """
    from ..extract.request import digest
    texts = [it.captions[0] for it in pool_dataset(split).items]
    rows = np.asarray(rows)
    joined = [" ".join(texts[r].strip() for r in row) for row in rows]
    o = split.options
    options = dict(source=o["source"], n_items=o["n_items"], sample_seed=o["sample_seed"], texts=digest(joined))
    return VideoTextDataset("caption_concat", options, [Item(v, [t]) for v, t in zip(split.ids, joined)])


def mean_rows(features: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Average of the feature rows each video's side takes: features [M, L, D], rows [N, n] int -> [N, L, D],
    ``out[i] = mean_j features[rows[i, j]]``.

    >>> f = np.arange(6, dtype=float).reshape(3, 1, 2)   # rows [0, 1], [2, 3], [4, 5]
    >>> mean_rows(f, np.array([[0, 2], [1, 1]]))[:, 0].tolist()
    [[2.0, 3.0], [2.0, 3.0]]
    """
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] < 1:
        raise ValueError(f"rows must be [N, n] with n >= 1, got shape {rows.shape}.")
    return np.asarray(features, dtype=np.float64)[rows].mean(axis=1).astype(np.float32)


def _other_videos(n_videos: int, n_others: int, seed: int) -> np.ndarray:
    """[N, n_others] distinct video indices, none equal to its row's own (seeded; ``n_others`` < N)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_videos, n_others), dtype=np.int64)
    for i in range(n_videos):
        pick = rng.choice(n_videos - 1, size=n_others, replace=False)
        out[i] = pick + (pick >= i)  # skip the video itself
    return out


def derangement(n_videos: int, seed: int) -> np.ndarray:
    """[N] a seeded permutation with no fixed point: each video's stand-in, another video (a random cycle
    through all videos, so every video stands in for exactly one other).

    >>> d = derangement(5, 0); sorted(d.tolist()) == list(range(5)) and bool((d != np.arange(5)).all())
    True
    """
    if n_videos < 2:
        raise ValueError(f"a derangement needs at least 2 videos, got {n_videos}.")
    order = np.random.default_rng(seed).permutation(n_videos)
    out = np.empty(n_videos, dtype=np.int64)
    out[order] = np.roll(order, -1)
    return out


def side_rows(split: CaptionSplit, index: dict, curve: str, n: int, side: str, null_seed: int = 0) -> np.ndarray:
    """The pool rows [N, n] (or [N, n_b] for the fixed side) averaged into one side of one cell of ``curve``
    (:data:`CURVES`, see the module docstring). ``index`` maps pool ids to rows (:func:`encode_pool`).
    ``other_videos`` draws the other videos with ``null_seed`` (side A) and ``null_seed + 1`` (side B);
    ``shuffled_video`` takes side A from :func:`derangement` ``(N, null_seed)``."""
    if curve not in CURVES:
        raise ValueError(f"curve must be one of {CURVES}, got {curve!r}.")
    if side not in ("a", "b"):
        raise ValueError(f"side must be 'a' or 'b', got {side!r}.")
    pos = split.a if side == "a" else split.b
    row = np.array([[index[f"{vid}#{p}"] for p in ps] for vid, ps in zip(split.ids, pos)], dtype=np.int64)
    limit = {"symmetric": pos.shape[1], "one_sided": split.a.shape[1],
             "shuffled_video": split.a.shape[1]}.get(curve, len(split) - 1)
    if not 1 <= n <= limit:
        raise ValueError(f"n = {n} is out of range for the {curve} curve (1 to {limit} here).")
    if curve == "symmetric" or (curve == "one_sided" and side == "a"):
        return row[:, :n]
    if curve == "shuffled_video" and side == "a":
        return row[derangement(len(split), null_seed), :n]
    if curve in ("one_sided", "shuffled_video", "original") and side == "b":
        return row
    if curve == "original":
        if split.original is None:
            raise ValueError("The original-caption curve needs PVD's original captions; this split has none.")
        return np.array([[index[f"{vid}#orig"]] for vid in split.ids], dtype=np.int64)
    if curve == "repeated":
        return np.repeat(row[:, :1], n, axis=1)
    others = _other_videos(len(split), n - 1, null_seed + (side == "b"))  # other_videos
    return np.concatenate([row[:, :1], row[others, 0]], axis=1)


def side_features(features: np.ndarray, meta: dict, rows: np.ndarray, q: float = 0.95) -> np.ndarray:
    """One side ready for the kNN search: the averaged caption features (:func:`mean_rows`) clamped and
    L2-normalised as every chapter prepares features (:func:`vtalign.prepare_features`)."""
    return prepare_features(mean_rows(features, rows), q=q, layer_dims=meta.get("layer_dims"))


def score_sides(nx: np.ndarray, ny: np.ndarray) -> tuple[float, int, int, np.ndarray]:
    """Best layer pair of two sides' neighbour lists ([Lx, N, k], [Ly, N, k]): (score, layer_a, layer_b,
    per-video overlap / k at that pair, [N]). Ties go to the lowest layers (:func:`vtalign.best_pair`)."""
    sweep = sweep_from_neighbours(nx, ny)
    i, j, score = sweep.best
    return float(score), int(i), int(j), sweep.overlaps[i, j] / sweep.k


def measure_curves(split: CaptionSplit, pools: dict, model_a: str, model_b: str, k: int = 10, curves=CURVES,
                   null_seed: int = 0, label: str = "", combine: str = "mean",
                   progress: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """Every cell of ``curves`` for one (side A model, side B model) pair.

    pools : ``{model: (features, meta, index)}`` from :func:`encode_pool` (``combine="mean"``: each side the
        average of its captions' features), or ``{model: (None, None, pool_index(split))}`` with
        ``combine="concatenate"``: each side's captions joined into one string and encoded whole
        (:func:`concat_dataset`, through :func:`vtalign.extract.extract_features`, cached), as the paper does
    Returns a table (dataset, model_a, model_b, curve, n_captions, score, layer_a, layer_b, n_items, k) and the
    per-video scores of its cells [cells, N] in the table's order (for :func:`vtalign.scaling.grid_draws`).
    Neighbour lists are computed once per distinct side.
    """
    if combine not in COMBINE:
        raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}.")
    neighbours: dict = {}

    def lists(model, rows):
        key = (model, rows.tobytes(), rows.shape)
        if key not in neighbours:
            if combine == "mean":
                f, meta, _ = pools[model]
                prepared = side_features(f, meta, rows)
            else:
                f, meta = extract_features(concat_dataset(split, rows), model, captions=1, progress=progress)
                if meta["item_ids"] != list(split.ids):
                    raise ValueError("the concatenated side's features are not in the split's video order.")
                prepared = prepare_features(f, layer_dims=meta.get("layer_dims"))
            neighbours[key] = layer_neighbours(prepared, k)
        return neighbours[key]

    n_sym, n_one = min(split.a.shape[1], split.b.shape[1]), split.a.shape[1]
    counts = {"symmetric": range(1, n_sym + 1), "one_sided": range(1, n_one + 1),
              "shuffled_video": range(1, n_one + 1), "original": [1],
              "repeated": range(1, n_sym + 1), "other_videos": range(1, n_sym + 1)}
    rows, items = [], []
    for curve in curves:
        if curve == "original" and split.original is None:
            continue
        for n in counts[curve]:
            ra = side_rows(split, pools[model_a][2], curve, n, "a", null_seed)
            rb = side_rows(split, pools[model_b][2], curve, n, "b", null_seed)
            score, la, lb, per_item = score_sides(lists(model_a, ra), lists(model_b, rb))
            rows.append(dict(dataset=label or split.options["source"], model_a=model_a, model_b=model_b, curve=curve,
                             n_captions=n, score=score, layer_a=la, layer_b=lb, n_items=len(split), k=k,
                             combine=combine))
            items.append(per_item)
    return pd.DataFrame(rows), np.stack(items)


def cell_intervals(table: pd.DataFrame, draws: np.ndarray, confidence: float = 0.95) -> pd.DataFrame:
    """``table`` with each cell's percentile interval (``low``, ``high``) from bootstrap ``draws`` [B, cells]."""
    q = (1 - confidence) / 2
    low, high = np.quantile(draws, [q, 1 - q], axis=0)
    return table.assign(low=low, high=high)


def _cell(table: pd.DataFrame, curve: str, n: int) -> int:
    hit = np.flatnonzero((table.curve == curve).to_numpy() & (table.n_captions == n).to_numpy())
    if hit.size != 1:
        raise InsufficientData(f"no single {curve} cell at n = {n}.")
    return int(hit[0])


def _interval(table, draws, i, j, how, confidence=0.95) -> Interval:
    """Cell i minus cell j, with the percentile interval of the paired draws."""
    q = (1 - confidence) / 2
    d = draws[:, i] - draws[:, j]
    lo, hi = np.quantile(d, [q, 1 - q])
    return Interval(float(table.score.iloc[i] - table.score.iloc[j]), float(lo), float(hi), how)


def gains(table: pd.DataFrame, draws: np.ndarray,
          curves=("one_sided", CONTROL, "symmetric") + NULLS) -> pd.DataFrame:
    """First-to-last gain of each curve (score at its largest n minus at n = 1) with its paired 95% interval
    over videos: columns curve, n_from, n_to, gain, low, high, direction (+1 above zero, -1 below, 0 neither).

    >>> t = pd.DataFrame(dict(curve=["symmetric"] * 2, n_captions=[1, 2], score=[0.2, 0.3]))
    >>> g = gains(t, np.array([[0.2, 0.3], [0.1, 0.3], [0.2, 0.2]]), curves=("symmetric",))
    >>> g[["n_to", "gain"]].round(3).values.tolist()
    [[2.0, 0.1]]
    """
    out = []
    for curve in curves:
        counts = sorted(table.n_captions[table.curve == curve])
        if len(counts) < 2:
            continue
        gi = _interval(table, draws, _cell(table, curve, counts[-1]), _cell(table, curve, counts[0]),
                       "paired bootstrap over videos")
        out.append(dict(curve=curve, n_from=counts[0], n_to=counts[-1], gain=gi.estimate, low=gi.low, high=gi.high,
                        direction=1 if gi.low > 0 else -1 if gi.high < 0 else 0))
    return pd.DataFrame(out, columns=["curve", "n_from", "n_to", "gain", "low", "high", "direction"])


def null_separations(table: pd.DataFrame, draws: np.ndarray, real: str = "one_sided",
                     nulls=(CONTROL,)) -> pd.DataFrame:
    """The real curve's first-to-last gain minus each null's (or control's) over the same counts, with the
    paired interval (the same videos resampled in every draw): columns null, n_to, difference, low, high,
    direction. By default the graded pair: the one-sided curve against its shuffled-video control; the
    symmetric curve against :data:`NULLS` is description."""
    counts = sorted(table.n_captions[table.curve == real])
    if len(counts) < 2:
        raise InsufficientData(f"the {real} curve has {len(counts)} count(s); a gain needs two.")
    lo_r, hi_r = _cell(table, real, counts[0]), _cell(table, real, counts[-1])
    out = []
    for null in nulls:
        if not (table.curve == null).any():
            continue
        lo_n, hi_n = _cell(table, null, counts[0]), _cell(table, null, counts[-1])
        real_gain, null_gain = draws[:, hi_r] - draws[:, lo_r], draws[:, hi_n] - draws[:, lo_n]
        d = real_gain - null_gain
        s = table.score.to_numpy()
        est = float((s[hi_r] - s[lo_r]) - (s[hi_n] - s[lo_n]))
        lo, hi = np.quantile(d, [0.025, 0.975])
        out.append(dict(null=null, n_to=counts[-1], difference=est, low=float(lo), high=float(hi),
                        direction=1 if lo > 0 else -1 if hi < 0 else 0))
    return pd.DataFrame(out, columns=["null", "n_to", "difference", "low", "high", "direction"])


def original_leads(table: pd.DataFrame, draws: np.ndarray) -> pd.DataFrame:
    """Like with like for Figure 8's dashed line: n synthesised captions on side A minus the original caption on
    side A, each against the same side B (all of it), same videos, k and model; the paired 95% interval over
    videos for every n of the one-sided curve. Columns n_captions, lead, low, high, direction."""
    if not (table.curve == "original").any():
        raise InsufficientData("no original-caption cell (PVD only).")
    j = _cell(table, "original", 1)
    out = []
    for n in sorted(table.n_captions[table.curve == "one_sided"]):
        d = _interval(table, draws, _cell(table, "one_sided", n), j, "paired bootstrap over videos")
        out.append(dict(n_captions=n, lead=d.estimate, low=d.low, high=d.high,
                        direction=1 if d.low > 0 else -1 if d.high < 0 else 0))
    return pd.DataFrame(out, columns=["n_captions", "lead", "low", "high", "direction"])


def fit_curves(table: pd.DataFrame, curves=("symmetric", "one_sided")) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Eq. 2's caption term and the alternatives a one-dimensional slice can tell apart
    (:data:`vtalign.scaling.SLICE_FORMS`: ``a - C n^-beta``, exponential, log-linear), fitted to each
    ``curves`` curve with enough counts, as the test_time_scaling chapter fits Figure 8's slices. Returns the
    fits, the AICc comparison and Eq. 2's parameters with intervals; curves with too few counts for a
    three-parameter form (4 or more distinct n) are left out, and :class:`InsufficientData` when none has."""
    sub = table[table.curve.isin(list(curves))]
    named = sub.assign(model=sub.dataset + " " + sub.model_a + "/" + sub.model_b + " " + sub.curve)
    enough = named.groupby("model").n_captions.nunique()
    named = named[named.model.isin(enough.index[enough >= 4])]
    if named.empty:
        most = int(enough.max()) if len(enough) else 0
        raise InsufficientData(f"no curve has 4 or more caption counts (the most: {most}); "
                               "Eq. 2's term has 3 parameters.")
    slices = named[["model", "n_captions", "score"]]
    fits = fit_slices(slices, "captions")
    return fits, compare_slice_forms(slices, "captions", fits), slice_fit_table(slices, "captions", fits=fits)


# --------------------------------------------------------------------------- #
# Verdicts (evidence: real data)
# --------------------------------------------------------------------------- #
def _curve_ok(gain_row, seps: pd.DataFrame) -> int:
    """+1: the gain is above zero and above every control's beyond the paired intervals; -1: the gain is below
    zero beyond its interval; 0 otherwise."""
    if gain_row is None:
        return 0
    if gain_row.direction < 0:
        return -1
    return 1 if gain_row.direction > 0 and len(seps) and (seps.direction > 0).all() else 0


def _real(key: str, status: str, rule: str, value: str, control: str = "") -> Verdict:
    return Verdict(key, "real data", status, rule, value, control)


def _text_only(combine: str = "mean") -> str:
    return ("text-only analogue: two disjoint sets of one video's captions, not video against text; "
            + ("averaged caption embeddings, not the paper's concatenation" if combine == "mean"
               else "captions concatenated as the paper does"))


_GRADED_RULE = ("each one-sided curve (side A's first n captions against all of side B, held fixed as the paper "
                "holds the video) must gain from n = 1 to its largest n with the paired 95% bootstrap interval over "
                "videos above zero, and gain more than its shuffled-video control (side A's n captions taken from "
                "another video, the same count averaged the same way) beyond the paired interval; contradicted when "
                "the gain lies below zero. What could fail it: added captions that share nothing more with the "
                "video's held-out captions (flat), captions that drift off the video (a fall), or averaging alone "
                "raising the score (the control rises as much). The symmetric curve (both sides growing) and the "
                "repeated-caption and other-videos nulls, flat and falling by construction, are description only")


def captions_verdict(results: dict, key: str = "fig3_captions", curve: str = "one_sided", combine: str = "mean",
                     datasets=("vatex",), figure: str = "Figure 3 (VaTeX)") -> Verdict:
    """"Alignment grows with captions", on real captions, graded on the ``curve`` of the entries of ``results``
    whose label starts with one of ``datasets`` (Figure 3 is VaTeX; Figure 8, PVD): for every (dataset, model
    pair), the first-to-last gain must lie above zero *and* above its control's gain (:func:`null_separations`:
    the one-sided curve minus the shuffled-video control, paired 95% interval over videos above zero). Supported
    when every curve does, contradicted when any gain lies below zero, else not resolved
    (:func:`vtalign.verdicts.claim_status`); not testable when no entry is of ``datasets``.

    results : ``{label: (gains table, separations table)}`` (:func:`gains`, :func:`null_separations`)
    """
    mine = {label: v for label, v in results.items() if label.split(" ", 1)[0] in datasets}
    if not mine:
        return _real(key, NOT_TESTABLE, "", f"{figure} is measured on {' or '.join(datasets)}; this run has no "
                     f"{' or '.join(datasets)} curve (-p datasets to add it), and another dataset's text-only curve "
                     "is not counted for it", _text_only(combine))
    n_for = n_against = n = 0
    parts = []
    for label, (g, seps) in mine.items():
        row = next(iter(g[g.curve == curve].itertuples()), None)
        if row is None:
            parts.append(f"{label}: no gain (one caption a side)")
            continue
        ok = _curve_ok(row, seps)
        n, n_for, n_against = n + 1, n_for + (ok > 0), n_against + (ok < 0)
        control = g[g.curve == CONTROL]
        control_text = "".join(f"; control {c.gain:+.4f} [{c.low:+.4f}, {c.high:+.4f}]" for c in control.itertuples())
        sep_text = ", ".join(f"minus control {s.difference:+.4f} [{s.low:+.4f}, {s.high:+.4f}]"
                             for s in seps.itertuples())
        parts.append(f"{label}: {curve} 1 -> {int(row.n_to)} captions {row.gain:+.4f} [{row.low:+.4f}, "
                     f"{row.high:+.4f}]" + (f" ({sep_text}{control_text})" if sep_text or control_text else ""))
    return _real(key, claim_status(n_for, n_against, n), _GRADED_RULE, "; ".join(parts), _text_only(combine))


def pvd_captions_verdict(results: dict, combine: str = "mean") -> Verdict:
    """Figure 8's "alignment grows with synthesised captions" on PVD's real synthesised captions: the rule of
    :func:`captions_verdict` on the one-sided curves of the PVD entries of ``results``."""
    return captions_verdict(results, key="fig8_captions", combine=combine, datasets=("pvd",),
                            figure="Figure 8 (PVD)")


def beats_original_verdict(leads: dict, at_least: int = 3, combine: str = "mean") -> Verdict:
    """Figure 8's "3 or more synthesised captions beat the original": *not testable here*, with the measured
    leads (:func:`original_leads`) as description. In text the only reference for both is side B, and side B is
    itself cut from the original caption (Sec. A.3: Gemini splits the detailed caption into 10 captions), so the
    original is compared with its own fragments: content favours it, the fragments' shared style favours the
    synthesised captions, and no video breaks the tie. A status could not say which. ``leads``:
    ``{label: leads table}``."""
    parts = []
    for label, t in leads.items():
        counted = t[t.n_captions >= at_least]
        parts.append(f"{label}: " + (", ".join(f"{int(r.n_captions)} vs original {r.lead:+.4f} [{r.low:+.4f}, "
                                                f"{r.high:+.4f}]" for r in counted.itertuples())
                                     or f"no count of {at_least} or more"))
    return _real("fig8_beats_original", NOT_TESTABLE, "",
                 "no fair test in text: the reference side B (held-out synthesised captions) is cut from the original "
                 "caption itself, so the original is measured against its own fragments (content favours it, style "
                 "favours the synthesised captions) and no video side breaks the tie; measured as description, n "
                 "synthesised captions on side A minus the original on side A, each against the same side B, paired "
                 "95% bootstrap interval over videos: " + ("; ".join(parts) or "no PVD curve"), _text_only(combine))


def eq2_form_verdict(forms: pd.DataFrame, key: str = "fig8_eq2_form", combine: str = "mean",
                     curve: str | None = "one_sided") -> Verdict:
    """Eq. 2's caption term against the slice alternatives by AICc on the fitted real ``curve`` curves
    (:func:`fit_curves`; ``model`` names ending in the curve's name; ``None``: every curve), per curve: supported
    when Eq. 2 is best by ΔAICc > 10 (:func:`vtalign.verdicts.form_status`); contradicted when another form is
    better by ΔAICc > 10 *and* fits the points more closely (a lower residual sum of squares: on 5 points AICc's
    small-sample penalty alone puts a two-parameter form 18 ahead of a three-parameter one); otherwise not resolved.
    Combined over curves: contradicted if any curve is, supported if all are.

    >>> f = pd.DataFrame(dict(model="c one_sided", form=["eq2_additive_power", "log_linear"], delta_aicc=[12.0, 0.0],
    ...                       rss=[0.001, 0.002]))
    >>> eq2_form_verdict(f).status   # log-linear ahead only by the penalty: it fits worse
    'not resolved'
    """
    if curve is not None:
        forms = forms[forms.model.str.endswith(f" {curve}")]
    if forms.empty:
        return _real(key, NOT_TESTABLE, "", f"no {curve or ''} curve with 4 or more caption counts was fitted",
                     _text_only(combine))
    statuses, parts = [], []
    for model, sub in forms.groupby("model", sort=False):
        eq2_row = sub[sub.form == "eq2_additive_power"].iloc[0]
        others = sub[sub.form != "eq2_additive_power"]
        eq2, other = float(eq2_row.delta_aicc), float(others.delta_aicc.min())
        status = form_status(eq2, other)
        beaten_by_fit = others[(others.delta_aicc < eq2 - 10) & (others.rss < eq2_row.rss)]
        if status == CONTRADICTED and beaten_by_fit.empty:
            status = UNRESOLVED
        statuses.append(status)
        winners = lowest_aicc(sub.assign(model=model))[model]
        parts.append(f"{model}: lowest AICc {', '.join(winners)}; Eq. 2 ΔAICc {eq2:.1f}"
                     + (f", beaten with a closer fit by {', '.join(beaten_by_fit.form)}" if len(beaten_by_fit) else ""))
    status = (CONTRADICTED if CONTRADICTED in statuses else SUPPORTED if statuses and set(statuses) == {SUPPORTED}
              else UNRESOLVED)
    return _real(key, status, f"per {curve or 'fitted'} curve: Eq. 2's term best by ΔAICc > 10 over the exponential "
                 "and log-linear forms (supported); another form better by ΔAICc > 10 with a lower residual sum of "
                 "squares (contradicted)",
                 "; ".join(parts), "5 or fewer counts a curve; " + _text_only(combine))


def plot_curves(table: pd.DataFrame):
    """One panel per dataset and model pair: score against captions per side for each curve, with its 95%
    interval (``low``/``high`` of :func:`cell_intervals`); the original caption as a dashed line."""
    import matplotlib.pyplot as plt
    groups = list(table.groupby(["dataset", "model_a", "model_b"], sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups) + 0.6, 3.4), squeeze=False)
    styles = {"one_sided": ("C1", "s", "A: n vs B: all (graded)"),
              "shuffled_video": ("C2", "d", "control: A from another video vs B: all"),
              "symmetric": ("C0", "o", "A: n vs B: n"),
              "repeated": ("0.45", "x", "null: one caption repeated"),
              "other_videos": ("C3", "v", "null: other videos' captions")}
    for ax, ((dataset, ma, mb), sub) in zip(axes[0], groups):
        for curve, (color, marker, name) in styles.items():
            c = sub[sub.curve == curve].sort_values("n_captions")
            if c.empty:
                continue
            ax.plot(c.n_captions, c.score, marker=marker, color=color, label=name)
            ax.fill_between(c.n_captions, c.low, c.high, color=color, alpha=0.2, linewidth=0)
        orig = sub[sub.curve == "original"]
        if len(orig):
            ax.axhline(orig.score.iloc[0], color="k", linestyle="--", linewidth=1, label="original caption vs B: all")
        ax.set_title(f"{dataset}: {ma}" + ("" if ma == mb else f" / {mb}"))
        ax.set_xlabel("captions per side (n)")
        ax.set_xticks(sorted(sub.n_captions.unique()))
    axes[0][0].set_ylabel("mutual k-NN alignment")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.12), frameon=False)
    fig.tight_layout()
    return fig
