"""The text-order chapter's library: known ranks, the shuffled control's seeding, and a rule that can go either way.

The end-to-end tests run the whole analysis on the real VITATECS captions with two featurisers whose answer is
known: word counts (a bag of words: shuffling changes nothing) and bigram counts (order-sensitive by
construction). No language model is loaded: a few seconds.
"""
import zlib

import numpy as np
import pandas as pd
import pytest

from vtalign import paths
from vtalign.book import claims, text_order
from vtalign.book.reordering import probe_ranks
from vtalign.extract.datasets import load_dataset
from vtalign.extract.sampling import shuffle_words
from vtalign.verdicts import CONTRADICTED, SUPPORTED

needs_data = pytest.mark.skipif(not paths.data_mirror_dirs(), reason="no local data mirror (../shared/data)")


def test_a_constructed_set_gives_the_known_rank_with_ties_against_the_probe():
    # Anchor 0 = e0; anchor j = cos(10j deg) e0 + sin(10j deg) e_j: anchor j's cosine to anchor 0 falls with j.
    n = 8
    angles = np.deg2rad(10.0 * np.arange(n))
    anchors = np.zeros((n, n + 1))
    anchors[0, 0] = 1.0
    for j in range(1, n):
        anchors[j, 0], anchors[j, j] = np.cos(angles[j]), np.sin(angles[j])
    for psi, expected in ((5.0, 1), (35.0, 4), (30.0, 4), (75.0, 8)):   # 30 deg ties anchor 3: counted against
        probes = anchors.copy()
        probes[0] = 0.0
        probes[0, 0], probes[0, n] = np.cos(np.deg2rad(psi)), np.sin(np.deg2rad(psi))
        rank, distance, nearest = probe_ranks(anchors, probes)
        assert rank[0] == expected, (psi, rank[0])
        assert distance[0] == pytest.approx(1 - np.cos(np.deg2rad(psi)))
        assert nearest[0] == pytest.approx(1 - np.cos(angles[1]))
    # Anchors in one group are not each other's rivals (a caption that appears twice).
    assert probe_ranks(anchors, probes, groups=[0, 0, 0, 0, 0, 0, 0, 1])[0][0] == 2
    with pytest.raises(ValueError, match="paired"):
        probe_ranks(anchors, probes[:3])


def test_rank_summary_and_contrast_on_known_ranks():
    idx = text_order.boot_indices(5, 500, 0)
    s = text_order.rank_summary(np.array([1, 1, 1, 2, 10]), np.zeros(5), idx)
    assert (s["top1"], s["mean_rank"], s["median_rank"]) == (0.6, 3.0, 1.0)
    assert s["top1_low"] <= 0.6 <= s["top1_high"] and s["top1_low"] < s["top1_high"]
    same = text_order.order_contrast(np.array([1, 2, 1, 1, 3]), np.array([1, 2, 1, 1, 3]), np.ones(5), np.ones(5), idx,
                                     d_near=np.full(5, 2.0))
    assert (same["order_cost"], same["order_cost_low"], same["order_cost_high"], same["rank_gap"]) == (0, 0, 0, 0)
    assert same["distance_gap_p"] == 1.0
    assert (same["order_share"], same["order_share_low"], same["order_share_high"]) == (0, 0, 0)
    # the share is a ratio of sums over pairs: (0.1 + 0.3) / (0.5 + 1.5) = 0.2
    share = text_order.order_share(np.zeros(2), np.array([0.1, 0.3]), np.array([0.5, 1.5]),
                                   text_order.boot_indices(2, 50, 0))
    assert share[0] == pytest.approx(0.2) and share[1] <= 0.2 <= share[2]
    with pytest.raises(ValueError, match="positive sum"):
        text_order.order_share(np.zeros(2), np.zeros(2), np.zeros(2), idx[:, :2] % 2)
    with pytest.raises(ValueError, match="at least 2"):
        text_order.boot_indices(1, 10, 0)


def test_layer_reading_goes_each_way_and_graded_layers_skip_the_embeddings():
    assert text_order.layer_reading(0.0, 0.0) == "bag of words"
    assert text_order.layer_reading(0.6, 0.9) == "order-sensitive"
    assert text_order.layer_reading(0.6, 0.9, margin=1.0) == "bag of words"
    assert text_order.layer_reading(0.4, 0.6) == "neither"
    assert text_order.graded_layers(2) == [1] and text_order.graded_layers(31) == list(range(1, 16))


def _synthetic_contrast(cosine: float, n: int = 60, dim: int = 512, n_layers: int = 5, seed: int = 0):
    """A constructed set with known answers: captions are random unit vectors (unrelated to each other, so the
    top-1 rate is at its ceiling for any probe near its caption); the counterfactual is its caption plus a little
    noise; the shuffled words are a unit vector at ``cosine`` to the counterfactual, turned towards a random
    direction (``cosine=1``: a bag of words, the same vector). Rows as :func:`text_order.order_tables` writes."""
    rng = np.random.default_rng(seed)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    anchors = unit(rng.normal(size=(n, dim)))
    cf = unit(anchors + 0.2 / np.sqrt(dim) * rng.normal(size=(n, dim)))       # cosine about 0.98
    away = rng.normal(size=(n, dim))
    away = unit(away - (away * cf).sum(1, keepdims=True) * cf)                  # orthogonal to the counterfactual
    sh = cosine * cf + np.sqrt(1 - cosine ** 2) * away
    idx = text_order.boot_indices(n, 300, 0)
    rows = []
    for layer in range(n_layers):
        (r_cf, d_cf, near), (r_sh, d_sh, _) = probe_ranks(anchors, cf), probe_ranks(anchors, sh)
        c = text_order.order_contrast(r_cf, r_sh, d_cf, d_sh, idx, n_permutations=50, d_near=near)
        top = text_order.rank_summary(r_cf, d_cf, idx)
        rows.append(dict(source="sequence", subset="all", model=f"cosine {cosine}", layer=layer, n_layers=n_layers, n=n,
                         top1=top["top1"], top1_low=top["top1_low"], top1_high=top["top1_high"], **c,
                         reading=text_order.layer_reading(c["order_share_low"], c["order_share_high"])))
    return pd.DataFrame(rows)


def test_order_matters_strongly_reads_contradicted_although_top1_is_at_its_ceiling():
    """The ceiling of the top-1 rule: unrelated distractors leave both the counterfactual and its shuffled words
    first (order cost 0, which the old rule read as a bag of words); the order share sees the shuffle move the
    text most of the way to another caption and grades the model against the claim. The same construction with
    the shuffle a no-op (a bag of words) grades it supported: the rule goes both ways."""
    order = _synthetic_contrast(cosine=0.4)
    assert (order.top1 == 1).all() and (order.order_cost == 0).all()            # the ceiling: top-1 cannot tell
    assert (order.order_share_low > 0.5).all() and (order.reading == "order-sensitive").all()
    bag = _synthetic_contrast(cosine=1.0)
    assert (bag.order_share == 0).all() and (bag.reading == "bag of words").all()
    for table, status in ((order, CONTRADICTED), (bag, SUPPORTED)):
        verdict = claims.bag_of_words_verdict(text_order.model_readings(table), table, 0.5)
        assert verdict.status == status, verdict.value
    both = pd.concat([order, bag], ignore_index=True)
    assert claims.bag_of_words_verdict(text_order.model_readings(both), both, 0.5).status == CONTRADICTED


def test_shuffled_words_are_seeded_by_item_and_never_the_original():
    text = "a man opens the door and then walks in"
    a, b = shuffle_words(text, 0, "x"), shuffle_words(text, 0, "x")
    assert a == b and a != text and sorted(a.split()) == sorted(text.split())
    others = {shuffle_words(text, seed, "x") for seed in range(1, 6)} | {shuffle_words(text, 0, "y")}
    assert others - {a}                                                 # another seed or item: another order
    assert shuffle_words("b a", 0, "x") == "a b"                       # two words: the only other order
    with pytest.raises(ValueError, match="two distinct"):
        shuffle_words("go go go", 0, "x")


@needs_data
def test_vitatecs_loads_pairs_and_its_shuffle_does_not_depend_on_the_sample():
    caps = load_dataset("vitatecs", aspect="Sequence", text="caption")
    cf = load_dataset("vitatecs", aspect="Sequence", text="counterfactual")
    sh = load_dataset("vitatecs", aspect="Sequence", text="shuffled", seed=3)
    assert len(caps) == 151 and caps.ids == cf.ids == sh.ids and len(set(caps.ids)) == 151
    for c, f, s in zip(caps.items, cf.items, sh.items):
        assert c.captions[0] != f.captions[0] and s.captions[0] != f.captions[0]
        assert sorted(s.captions[0].split()) == sorted(f.captions[0].split())
    sample = load_dataset("vitatecs", aspect="Sequence", text="shuffled", seed=3, n_items=20, sample_seed=1)
    assert len(sample) == 20 and all(it.captions == sh.items[sh.ids.index(it.id)].captions for it in sample.items)
    other_seed = load_dataset("vitatecs", aspect="Sequence", text="shuffled", seed=4)
    assert sum(a.captions != b.captions for a, b in zip(sh.items, other_seed.items)) > 140
    assert len(load_dataset("vitatecs", aspect="Direction", n_items=64)) == 64
    with pytest.raises(ValueError, match="aspect"):
        load_dataset("vitatecs", aspect="sequence")


def _ngram_features(name, options, model, progress=True):
    """Toy featuriser on the dataset's real texts: ``unigram`` = hashed word counts (a bag of words);
    ``bigram`` = hashed counts of adjacent word pairs (order-sensitive); projected to 256 dense dimensions
    (prepare_features clamps at a quantile, which would zero sparse counts); two identical layers, so that
    layer 1 is graded."""
    ds = load_dataset(name, **options)
    n = 2 if model == "bigram" else 1
    counts = np.zeros((len(ds), 4096))
    for row, it in enumerate(ds.items):
        words = it.captions[0].split()
        for gram in zip(*(words[i:] for i in range(n))):
            counts[row, zlib.crc32(" ".join(gram).encode()) % 4096] += 1
    dense = counts @ np.random.default_rng(0).normal(size=(4096, 256))  # linear: the same counts, the same row
    return np.repeat(dense[:, None, :], 2, axis=1).astype(np.float32), {"item_ids": ds.ids}


@needs_data
def test_the_rule_reads_a_bag_of_words_as_one_and_an_order_sensitive_model_as_the_opposite():
    ranks, contrast = text_order.order_tables(["sequence"], ["unigram", "bigram"], n_boot=300,
                                              features_of=_ngram_features, progress=False)
    bag = contrast[(contrast.model == "unigram") & (contrast.subset == "all")]
    assert (bag.order_cost == 0).all() and (bag.order_cost_high == 0).all()          # same words, same vector
    assert np.allclose(bag.distance_gap, 0) and np.allclose(bag.order_share, 0)
    assert (bag.reading == "bag of words").all()
    same = ranks[(ranks.model == "unigram") & (ranks.subset == "same words") & (ranks.probe == "counterfactual")]
    assert len(same) and (same.top1 == 1).all() and (same.mean_distance.abs() < 1e-6).all()   # identical bags
    order = contrast[(contrast.model == "bigram") & (contrast.subset == "all")]
    assert (order.reading == "order-sensitive").all() and (order.order_share_low > 0.5).all()
    readings = text_order.model_readings(contrast)
    assert readings.set_index(["model", "subset"]).loc[("unigram", "all"), "reading"] == "for"
    assert readings.set_index(["model", "subset"]).loc[("bigram", "all"), "reading"] == "against"
    one = lambda m: (readings[readings.model == m], contrast[contrast.model == m])
    assert claims.bag_of_words_verdict(*one("unigram"), 0.5).status == SUPPORTED
    assert claims.bag_of_words_verdict(*one("bigram"), 0.5).status == CONTRADICTED
    verdict = claims.bag_of_words_verdict(readings, contrast, 0.5)
    assert verdict.status == CONTRADICTED and verdict.evidence == "real data"
    assert "151 real caption pairs" in verdict.value
    assert isinstance(text_order.plot_text_order(ranks), object)
    pd.testing.assert_frame_equal(contrast, text_order.order_tables(
        ["sequence"], ["unigram", "bigram"], n_boot=300, features_of=_ngram_features, progress=False)[1])
