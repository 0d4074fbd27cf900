"""The language models' order blindness on real temporal counterfactuals (Figure 5, Sec. 8, text side).

The paper (Sec. 8) finds that language models rank "the same words but ordered differently first ... more
akin to a bag-of-words than being temporally sensitive, at least at the shallower layers". Here that is asked
of real captions with the offline language models, per model and layer:

- **anchors**: real captions (VITATECS Sequence or Direction, or an ActivityNet Captions / YouCook2 paragraph);
- **probes**, each paired with its anchor: the *counterfactual* (VITATECS's minimally edited temporal
  counterfactual, or the paragraph with its events reordered), the *shuffled* control (the counterfactual's
  words in a seeded random order: the same bag of words, no order) and, on VaTeX, a *paraphrase* control
  (another annotator's caption of the same video);
- **rank** (:func:`vtalign.book.reordering.probe_ranks`): 1 when the probe is nearer (cosine, prepared
  features) to its anchor than every other anchor of the set; otherwise 1 + the number of other anchors at
  least as near (ties count against the probe).

Why not the top-1 rate. The other anchors of a set are captions of *other* videos, unrelated distractors: nearly
any model puts the counterfactual *and* its shuffled words nearer to the caption than all of them (the top-1 rate
sits at its ceiling of 1 for both), so a top-1 criterion reads "bag of words" by construction. It is kept as a
description only.

The graded measure is the **order share** (:func:`order_share`): how far shuffling the counterfactual's words
moves the text away from the caption, as a share of the distance from the caption to its nearest *other*
caption, ``mean(d_shuffled - d_counterfactual) / mean(d_nearest_other)`` over pairs (cosine distances of
prepared features), with a 95% bootstrap interval over pairs. A bag of words gives exactly 0 (the same words,
the same embedding); a representation in which order matters as much as content gives about 1 or more (the word
salad is as far as another video's caption). It has no ceiling. The rule (:func:`layer_reading`) reads a layer as
*bag of words* when the share's interval lies below a stated margin, *order-sensitive* when it lies above it,
*neither* when it straddles it. The paper puts no number on "more akin to a bag-of-words than being temporally
sensitive", so the claim is graded at every margin of a stated range (the chapter's ``margins``, default a
quarter, a half and three quarters of the way to another caption;
:func:`vtalign.book.claims.bag_of_words_over_margins`) and holds or fails only where all agree; the tables show
the layers read at the middle one. (A margin must sit above what an order-blind representation gives: shuffling
also moves punctuation and sentence-initial tokens, so the decoders' token-embedding layer, blind to order, reads
about 0.1 on VITATECS.) The tests check that the rule reads an order-sensitive encoder as order-sensitive where the
top-1 rule read it as a bag of words, and a bag of words as one.

Example
-------
>>> layer_reading(share_low=0.01, share_high=0.04)
'bag of words'
>>> layer_reading(share_low=0.6, share_high=0.9)
'order-sensitive'
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..alignment import prepare_features
from ..extract.cache import common_items
from ..extract.datasets import load_dataset
from ..extract.features import extract_features
from ..stats import paired_difference
from .reordering import probe_ranks

__all__ = ["SOURCES", "PROBES", "READINGS", "order_sets", "boot_indices", "rank_summary", "order_share",
           "order_contrast", "layer_reading", "graded_layers", "model_readings", "read_at", "margin_sensitivity",
           "cached_features", "source_ranks", "order_tables", "plot_text_order"]

# Source name -> what its anchors are (the table's and figure's label).
SOURCES = {
    "sequence": "VITATECS Sequence (event order swapped)",
    "direction": "VITATECS Direction (action reversed)",
    "activitynet": "ActivityNet Captions paragraphs (events reordered)",
    "youcook2": "YouCook2 paragraphs (steps reordered)",
    "vatex": "VaTeX captions (paraphrase control)",
}
PROBES = ("counterfactual", "shuffled", "paraphrase")
BAG_OF_WORDS, ORDER_SENSITIVE, NEITHER = ("bag of words", "order-sensitive", "neither")
READINGS = (BAG_OF_WORDS, ORDER_SENSITIVE, NEITHER)


def order_sets(source: str, n_items: int | None = None, seed: int = 0, sample_seed: int = 0,
               reorder_seed: int = 0) -> tuple[tuple[str, dict], dict[str, tuple[str, dict]]]:
    """The datasets of one source: ``((name, options) of the anchors, {probe: (name, options)})``.

    ``seed`` draws the shuffled control's word order; ``reorder_seed`` the paragraphs' event order (the live
    VideoComp chapter's, so its cached entries are reused); ``n_items`` a seeded sample (``sample_seed``)
    of pairs, the same for anchors and probes.

    >>> anchors, probes = order_sets("sequence")
    >>> anchors[0], anchors[1]["text"], probes["shuffled"][1]["text"], sorted(probes)
    ('vitatecs', 'caption', 'shuffled', ['counterfactual', 'shuffled'])
    """
    if source in ("sequence", "direction"):
        base = dict(aspect=source.capitalize(), n_items=n_items, sample_seed=sample_seed)
        return (("vitatecs", dict(base, text="caption")),
                {"counterfactual": ("vitatecs", dict(base, text="counterfactual")),
                 "shuffled": ("vitatecs", dict(base, text="shuffled", seed=seed))})
    if source in ("activitynet", "youcook2"):
        base = dict(source=source, n_items=n_items, sample_seed=sample_seed)
        return (("videocomp", dict(base, text="positive", seed=reorder_seed)),
                {"counterfactual": ("videocomp", dict(base, text="negative", seed=reorder_seed)),
                 "shuffled": ("videocomp", dict(base, text="shuffled", seed=reorder_seed))})
    if source == "vatex":
        base = dict(split="val", n_items=n_items, sample_seed=sample_seed)
        return ("vatex", dict(base, caption_index=0)), {"paraphrase": ("vatex", dict(base, caption_index=1))}
    raise ValueError(f"source must be one of {list(SOURCES)}, got {source!r}.")


def boot_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, n] item indices drawn with replacement (seeded): one draw shared by every statistic of a set,
    so that differences between probes are paired.

    >>> boot_indices(3, 2, 0).shape
    (2, 3)
    """
    if n < 2:
        raise ValueError(f"a bootstrap over pairs needs at least 2 pairs, got {n}.")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _ci(stat: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    q = (1 - confidence) / 2
    low, high = np.quantile(stat, [q, 1 - q])
    return float(low), float(high)


def rank_summary(rank: np.ndarray, distance: np.ndarray, idx: np.ndarray, nearest: np.ndarray | None = None) -> dict:
    """Top-1 rate (share of rank 1), mean and median rank, mean distance, each with its 95% bootstrap interval
    over pairs (``idx`` from :func:`boot_indices`); with ``nearest`` (each caption's distance to its nearest other
    caption, [N]) also ``distance_share`` = mean distance / mean nearest-other distance, with its interval (how far
    the probe is from its caption, as a share of how far the nearest other caption is).

    >>> s = rank_summary(np.array([1, 1, 2, 4]), np.zeros(4), boot_indices(4, 200, 0))
    >>> s["top1"], s["mean_rank"], s["median_rank"], s["n"]
    (0.5, 2.0, 1.5, 4)
    """
    rank = np.asarray(rank)
    top = (rank == 1).astype(float)
    out = dict(n=int(rank.size), top1=float(top.mean()))
    out["top1_low"], out["top1_high"] = _ci(top[idx].mean(1))
    out["mean_rank"] = float(rank.mean())
    out["mean_rank_low"], out["mean_rank_high"] = _ci(rank[idx].mean(1))
    out["median_rank"] = float(np.median(rank))
    out["median_rank_low"], out["median_rank_high"] = _ci(np.median(rank[idx], axis=1))
    out["mean_distance"] = float(np.mean(distance))
    if nearest is not None:
        out["distance_share"], out["distance_share_low"], out["distance_share_high"] = order_share(
            np.zeros_like(np.asarray(distance, dtype=float)), distance, nearest, idx)
    return out


def order_share(d_cf: np.ndarray, d_sh: np.ndarray, d_near: np.ndarray, idx: np.ndarray,
                confidence: float = 0.95) -> tuple[float, float, float]:
    """How far shuffling the words moves a text, as a share of the distance to an unrelated caption: over pairs,
    ``sum(d_sh - d_cf) / sum(d_near)`` (a ratio of means), and its percentile interval over the bootstrap draws
    ``idx`` [B, N] (numerator and denominator resampled together).

    d_cf, d_sh : [N] cosine distance of the counterfactual and of its shuffled words to their caption
    d_near : [N] distance of the caption to its nearest other caption of the set (must be positive)

    0 for a bag of words (d_sh = d_cf); 1 when the shuffled words are as far as the nearest other caption.

    >>> order_share(np.zeros(4), np.full(4, 0.1), np.full(4, 0.5), boot_indices(4, 50, 0))
    (0.2, 0.2, 0.2)
    """
    d_cf, d_sh, d_near = (np.asarray(x, dtype=float) for x in (d_cf, d_sh, d_near))
    if not (d_cf.shape == d_sh.shape == d_near.shape and d_cf.ndim == 1):
        raise ValueError(f"d_cf, d_sh and d_near must be [N] arrays of one length, got {d_cf.shape}, {d_sh.shape}, "
                         f"{d_near.shape}.")
    if not np.all(np.isfinite(d_near)) or d_near.sum() <= 0:
        raise ValueError("d_near must be finite with a positive sum: every caption needs another caption in its set "
                         "that is not identical to it.")
    gap = d_sh - d_cf
    draws = gap[idx].sum(1) / d_near[idx].sum(1)
    return (float(gap.sum() / d_near.sum()), *_ci(draws, confidence))


def order_contrast(rank_cf: np.ndarray, rank_sh: np.ndarray, d_cf: np.ndarray, d_sh: np.ndarray, idx: np.ndarray,
                   n_permutations: int = 2000, seed: int = 0, d_near: np.ndarray | None = None) -> dict:
    """Counterfactual against its shuffled words, paired over pairs: ``order_cost`` = top-1 rate of the
    counterfactual minus that of its shuffled words (at its ceiling with unrelated distractors: description
    only); ``rank_gap`` = mean rank of the shuffled words minus that of the counterfactual; ``distance_gap`` = mean
    cosine distance (to the caption) of the shuffled words minus that of the counterfactual, with a sign-flip
    p-value; with ``d_near`` (each caption's distance to its nearest other caption) the graded ``order_share``
    (:func:`order_share`). Each with its 95% bootstrap interval (``idx``). An order-blind representation gives 0
    for all of them.

    >>> c = order_contrast(np.array([1, 1, 1, 1]), np.array([1, 3, 2, 5]), np.zeros(4), np.ones(4),
    ...                    boot_indices(4, 200, 0), n_permutations=100)
    >>> c["order_cost"], c["rank_gap"], c["distance_gap"]
    (0.75, 1.75, 1.0)
    """
    cost = (np.asarray(rank_cf) == 1).astype(float) - (np.asarray(rank_sh) == 1).astype(float)
    gap = np.asarray(rank_sh, dtype=float) - np.asarray(rank_cf, dtype=float)
    out = dict(order_cost=float(cost.mean()))
    out["order_cost_low"], out["order_cost_high"] = _ci(cost[idx].mean(1))
    out["rank_gap"] = float(gap.mean())
    out["rank_gap_low"], out["rank_gap_high"] = _ci(gap[idx].mean(1))
    dist = np.asarray(d_sh, dtype=float) - np.asarray(d_cf, dtype=float)
    out["distance_gap"] = float(dist.mean())
    out["distance_gap_low"], out["distance_gap_high"] = _ci(dist[idx].mean(1))
    out["distance_gap_p"] = paired_difference(d_sh, d_cf, n_boot=10, n_permutations=n_permutations,
                                              seed=seed).p_value
    if d_near is not None:
        out["order_share"], out["order_share_low"], out["order_share_high"] = order_share(d_cf, d_sh, d_near, idx)
    return out


def layer_reading(share_low: float, share_high: float, margin: float = 0.5) -> str:
    """One layer graded on the bag-of-words claim from the order share's interval (:func:`order_share`):
    ``"bag of words"`` when it lies below ``margin`` (shuffling the words moves the text less than ``margin`` of
    the way to the nearest other caption), ``"order-sensitive"`` when it lies above ``margin``, ``"neither"`` when
    it straddles it. The share has no ceiling, so either answer can come out (tests/test_text_order.py builds both).

    >>> layer_reading(0.0, 0.05), layer_reading(0.6, 0.8), layer_reading(0.4, 0.6)
    ('bag of words', 'order-sensitive', 'neither')
    """
    if share_low > margin:
        return ORDER_SENSITIVE
    if share_high < margin:
        return BAG_OF_WORDS
    return NEITHER


def graded_layers(n_layers: int) -> list[int]:
    """The shallower half of a model's layers, where the paper places its claim: layers 1 to ceil((L - 1) / 2).
    Layer 0 (the token embeddings: order-blind by construction in a decoder, whose mean over tokens ignores
    position) is a control, never graded.

    >>> graded_layers(7), graded_layers(19)
    ([1, 2, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9])
    """
    if n_layers < 2:
        raise ValueError(f"a model needs at least 2 layers (embeddings and one block), got {n_layers}.")
    return list(range(1, math.ceil((n_layers - 1) / 2) + 1))


def model_readings(contrast: pd.DataFrame) -> pd.DataFrame:
    """Per (source, subset, model): how many of its graded layers (:func:`graded_layers`) read each way, and the
    model's reading: ``for`` the claim when more than half its graded layers read "bag of words", ``against``
    when more than half read "order-sensitive" or "reordering not nearest", else ``neither``.
    ``contrast``: rows of :func:`order_tables` (columns source, subset, model, layer, n_layers, reading)."""
    rows = []
    for (source, subset, model), sub in contrast.groupby(["source", "subset", "model"], sort=False):
        graded = sub[sub.layer.isin(graded_layers(int(sub.n_layers.iloc[0])))]
        n_for = int((graded.reading == BAG_OF_WORDS).sum())
        n_against = int((graded.reading == ORDER_SENSITIVE).sum())
        half = len(graded) / 2
        rows.append(dict(source=source, subset=subset, model=model, graded_layers=len(graded), bag_of_words=n_for,
                         against=n_against, reading="for" if n_for > half else "against" if n_against > half
                         else "neither"))
    return pd.DataFrame(rows)


def read_at(contrast: pd.DataFrame, margin: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(model readings, contrast)`` with every layer re-read at ``margin`` (:func:`layer_reading` on the order
    shares already measured, then :func:`model_readings`)."""
    read = contrast.assign(reading=[layer_reading(lo, hi, margin)
                                    for lo, hi in zip(contrast.order_share_low, contrast.order_share_high)])
    return model_readings(read), read


def margin_sensitivity(contrast: pd.DataFrame, source: str, margins=(0.1, 0.25, 0.5, 0.75)) -> pd.DataFrame:
    """The rule read at each of ``margins``: per margin, the claim's status
    (:func:`vtalign.book.claims.bag_of_words_verdict`) and each model's reading on ``source``'s pairs, from the
    order shares already measured. Columns margin, status, then one per model.

    >>> c = pd.DataFrame(dict(source="s", subset="all", model="m", layer=[1], n_layers=2, n=5, top1=1.0,
    ...                       order_share=[0.3], order_share_low=[0.2], order_share_high=[0.4]))
    >>> margin_sensitivity(c, "s", (0.1, 0.5)).values.tolist()
    [[0.1, 'contradicted', 'against'], [0.5, 'supported', 'for']]
    """
    from .claims import bag_of_words_verdict
    rows = []
    for margin in margins:
        models, read = read_at(contrast, margin)
        models = models[(models.source == source) & (models.subset == "all")]
        rows.append(dict(margin=margin, status=bag_of_words_verdict(models, read, margin, source).status,
                         **dict(zip(models.model, models.reading))))
    return pd.DataFrame(rows)


def cached_features(name: str, options: dict, model: str, progress: bool = True) -> tuple[np.ndarray, dict]:
    """One caption per item of dataset ``name`` encoded by ``model``: ``(features [N, L, D], meta)`` from the
    feature cache (:func:`vtalign.extract.extract_features`, made there when missing)."""
    return extract_features(name, model, captions=1, dataset_options=options, progress=progress)


def source_ranks(source: str, model: str, n_items: int | None = None, seed: int = 0, sample_seed: int = 0,
                 reorder_seed: int = 0, per_layer: bool | None = None, progress: bool = True,
                 features_of=cached_features) -> dict:
    """Per layer, every probe's rank and distance for one source and model, from cached features
    (``features_of(name, options, model, progress)``, by default :func:`cached_features`), prepared by
    :func:`vtalign.prepare_features`.

    Returns ``dict(ranks={probe: int [L, N]}, distances={probe: [L, N]}, nearest [L, N] (each caption's distance
    to its nearest other caption), item_ids, same_words [N] bool (the counterfactual's words are a reordering of
    the caption's; all False where there is none), n_layers)``.
    Anchors with the same text are one group (:func:`probe_ranks`): a duplicated caption is not its own rival.
    """
    (a_name, a_opts), probes = order_sets(source, n_items, seed, sample_seed, reorder_seed)
    names = list(probes)
    loaded = common_items([features_of(a_name, a_opts, model, progress)]
                          + [features_of(*probes[p], model, progress) for p in names])
    meta = loaded[0][1]
    ids = list(meta["item_ids"])
    text_of = lambda name, opts: {it.id: it.captions[0] for it in load_dataset(name, **opts).items}  # noqa: E731
    texts = text_of(a_name, a_opts)
    probe_texts = text_of(*probes["counterfactual"]) if "counterfactual" in probes else {}
    groups = pd.factorize(pd.Series([texts[i] for i in ids]))[0]
    prep = [prepare_features(f, layer_dims=m.get("layer_dims"), per_layer=per_layer) for f, m in loaded]
    anchors = prep[0]
    ranks, distances = {}, {}
    for p, feats in zip(names, prep[1:]):
        out = [probe_ranks(anchors[:, layer], feats[:, layer], groups) for layer in range(anchors.shape[1])]
        ranks[p] = np.stack([o[0] for o in out])
        distances[p] = np.stack([o[1] for o in out])
        nearest = np.stack([o[2] for o in out])   # the anchors' own: the same for every probe
    same = np.array([bool(probe_texts) and sorted(texts[i].split()) == sorted(probe_texts[i].split()) for i in ids])
    return dict(ranks=ranks, distances=distances, nearest=nearest, item_ids=ids, same_words=same,
                n_layers=int(anchors.shape[1]))


def order_tables(sources, models, n_items: dict | None = None, seed: int = 0, sample_seed: int = 0,
                 reorder_seed: int = 0, n_boot: int = 2000, boot_seed: int = 0, margin: float = 0.5,
                 min_subset: int = 20, per_layer: bool | None = None, progress: bool = True,
                 features_of=cached_features):
    """The chapter's two tables over ``sources`` x ``models`` x layers.

    ``ranks``: one row per (source, subset, model, layer, probe) with :func:`rank_summary`'s columns.
    ``contrast``: one row per (source, subset, model, layer) with :func:`order_contrast`'s columns (the graded
    ``order_share`` among them), the counterfactual's top-1 interval (description), and ``reading``
    (:func:`layer_reading` on the order share with ``margin``); sources without a shuffled probe (the paraphrase
    control) have none. ``subset``: ``all`` pairs, and ``same words`` (the
    counterfactual reorders the caption's words exactly) where at least ``min_subset`` pairs, not all, are so.
    ``n_items``: source -> pairs sampled (None or absent: all). ``features_of``: as :func:`source_ranks`.
    """
    rank_rows, contrast_rows = [], []
    for source in sources:
        for model in models:
            r = source_ranks(source, model, (n_items or {}).get(source), seed, sample_seed, reorder_seed,
                             per_layer, progress, features_of)
            subsets = {"all": np.ones(len(r["item_ids"]), bool)}
            if min_subset <= r["same_words"].sum() < len(r["same_words"]):   # a proper subset only
                subsets["same words"] = r["same_words"]
            for subset, mask in subsets.items():
                idx = boot_indices(int(mask.sum()), n_boot, boot_seed)
                for layer in range(r["n_layers"]):
                    key = dict(source=source, subset=subset, model=model, layer=layer, n_layers=r["n_layers"])
                    summaries = {}
                    for probe in r["ranks"]:
                        summaries[probe] = rank_summary(r["ranks"][probe][layer][mask],
                                                        r["distances"][probe][layer][mask], idx,
                                                        r["nearest"][layer][mask])
                        rank_rows.append(dict(key, probe=probe, **summaries[probe]))
                    if "shuffled" in r["ranks"]:
                        c = order_contrast(*(r[k][p][layer][mask] for k in ("ranks", "distances")
                                             for p in ("counterfactual", "shuffled")), idx, seed=boot_seed,
                                           d_near=r["nearest"][layer][mask])
                        cf = summaries["counterfactual"]
                        contrast_rows.append(dict(key, n=cf["n"], top1=cf["top1"], top1_low=cf["top1_low"],
                                                  top1_high=cf["top1_high"], **c,
                                                  reading=layer_reading(c["order_share_low"], c["order_share_high"],
                                                                        margin)))
    return pd.DataFrame(rank_rows), pd.DataFrame(contrast_rows)


_PROBE_LABEL = {"shuffled": "shuffled words (bag-of-words control)"}
_PROBE_STYLE = {"counterfactual": dict(color="#4c72b0", ls="-", marker="o"),
                "shuffled": dict(color="#dd8452", ls="--", marker="s"),
                "paraphrase": dict(color="#55a868", ls="-.", marker="^")}


def plot_text_order(ranks: pd.DataFrame, subset: str = "all"):
    """Distance share (each probe's mean distance to its caption as a share of the caption's nearest other
    caption, :func:`rank_summary`; 95% bootstrap band) against layer depth, one row of panels per source and one
    column per model; one line per probe (counterfactual, shuffled words, paraphrase). The graded order share is
    the gap between the shuffled and the counterfactual lines. Dotted: 1, the nearest other caption's distance."""
    ranks = ranks[ranks.subset == subset]
    sources, models = list(dict.fromkeys(ranks.source)), list(dict.fromkeys(ranks.model))
    fig, axes = plt.subplots(len(sources), len(models), figsize=(7.5, 1.9 * len(sources) + 1.0), squeeze=False,
                             sharex=True)
    handles = {}
    for i, source in enumerate(sources):
        for j, model in enumerate(models):
            ax = axes[i][j]
            sub = ranks[(ranks.source == source) & (ranks.model == model)]
            for probe, p in sub.groupby("probe", sort=False):
                depth = p.layer / max(int(p.n_layers.iloc[0]) - 1, 1)
                style = _PROBE_STYLE.get(probe, {})
                (line,) = ax.plot(depth, p.distance_share, ms=3, lw=1.3, label=_PROBE_LABEL.get(probe, probe),
                                  **style)
                ax.fill_between(depth, p.distance_share_low, p.distance_share_high, color=style.get("color"),
                                alpha=0.2, lw=0)
                handles[probe] = line
            ax.axhline(1.0, color="#333333", ls=":", lw=1.0)
            ax.set_ylim(bottom=0)
            if i == 0:
                ax.set_title(model, fontsize=10.5)
            if j == 0:
                ax.set_ylabel(f"{source}\ndistance share", fontsize=9.5)
            if i == len(sources) - 1:
                ax.set_xlabel("layer depth (0 = embeddings)", fontsize=9.5)
    fig.legend(list(handles.values()), [_PROBE_LABEL.get(k, k) for k in handles], loc="lower center",
               ncol=len(handles), frameon=False, fontsize=9.5)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
