"""The Performance chapter's comparison of the reference algorithm (fp32 similarities, full argsort) with the
exact answer: known answers on constructed features, where the exact neighbours come from rational
arithmetic (tests/naive_reference.py), and a control where the reference has nothing to get wrong."""
import numpy as np
import pandas as pd
import pytest

from naive_reference import rational_knn
from vtalign.book import performance as perf

K = 3


def near_ties(n=40, d=8, spread=3e-4, seed=0):
    """Items on one direction with a tiny spread: cosines within ~1e-7 of each other, below fp32's rounding."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=d) + spread * rng.normal(size=(n, d))).astype(np.float32)[:, None, :]


def separated(n=40, d=8, seed=1):
    """Independent Gaussian items: k-th neighbour gaps around 1e-2, far above fp32's rounding."""
    return np.random.default_rng(seed).normal(size=(n, 1, d)).astype(np.float32)


def known_side(model, neighbours):
    """A side whose neighbour lists are given (every method agrees on them)."""
    lists = np.asarray(neighbours)[None]
    return perf.ReferenceSide(model, None, lists, lists, lists, pd.DataFrame())


def test_fp32_argsort_differs_from_the_exact_answer_on_near_ties_and_the_comparison_reports_it():
    side = perf.reference_side(near_ties(), K, "near ties", q=1.0)  # q = 1: no clamp, only normalisation
    rational = rational_knn(side.prepared[:, 0].numpy(), K)
    assert perf.rows_with_other_set(side.exact[0], rational) == 0          # vtalign: the exact answer
    assert perf.rows_with_other_set(side.brute[0], rational) == 0          # and the fp64 brute force agrees
    wrong = perf.rows_with_other_set(side.reference[0], rational)
    assert wrong >= 10, wrong                                              # measured: 35 of 40 rows
    assert side.layers.rows_reference_differs.tolist() == [wrong] and side.layers.rows_fp64_differs.tolist() == [0]
    assert side.layers.median_kth_gap.iloc[0] < 1e-7                       # the gaps are below fp32's rounding

    # against a side holding the exact lists: exact scores 1, the reference loses what its wrong rows lost
    kept = sum(len(set(a) & set(b)) for a, b in zip(side.reference[0], rational))
    pairs = perf.reference_error_pairs(side, known_side("exact lists", rational))
    row = pairs.iloc[0]
    assert row.exact == 1.0 and row.fp64_brute_force == 1.0
    assert row.reference == kept / (40 * K) < 1
    assert row.difference == pytest.approx(kept / (40 * K) - 1, abs=1e-15)
    assert row.overlap_change == kept - 40 * K
    summary = perf.reference_error_summary(pairs).iloc[0]
    assert summary.pairs_differing == 1 and summary.max_abs_difference == pytest.approx(1 - kept / (40 * K))


def test_control_well_separated_features_give_the_reference_nothing_to_get_wrong():
    a = perf.reference_side(separated(seed=1), K, "a")
    b = perf.reference_side(separated(seed=2), K, "b")
    for side in (a, b):
        assert side.layers.rows_reference_differs.tolist() == [0] and side.layers.median_kth_gap.iloc[0] > 1e-4
        assert perf.rows_with_other_set(side.exact[0], rational_knn(side.prepared[:, 0].numpy(), K)) == 0
    pairs = perf.reference_error_pairs(a, b)
    assert (pairs.difference == 0).all() and (pairs.fp64_brute_force == pairs.exact).all()


def test_scores_from_neighbour_lists_equal_the_whole_reference_algorithm():
    """reference_error_pairs scores the reference's per-layer lists once; the reference recomputes them for
    every pair with dense masks (bench.reference_sweep): the same numbers, bitwise, here with the near ties."""
    two_layers = np.concatenate([near_ties(), near_ties(seed=3)], axis=1)
    x = perf.reference_side(two_layers, K, "x", q=1.0)
    y = perf.reference_side(separated(), K, "y")
    assert perf.reference_sweep_agrees(x, y, layers=2) == dict(model_x="x", model_y="y", layer_pairs=2,
                                                               identical=True)


def test_summary_known_answer_and_tie_rules():
    pairs = pd.DataFrame(dict(model_x="a", model_y="b", layer_x=[0, 0, 1, 1], layer_y=[0, 1, 0, 1],
                              reference=[0.5, 0.7, 0.7, 0.2], exact=[0.5, 0.6, 0.8, 0.2],
                              fp64_brute_force=[0.5, 0.6, 0.8, 0.2]))
    pairs["difference"] = pairs.reference - pairs.exact
    s = perf.reference_error_summary(pairs).iloc[0]
    assert s.layer_pairs == 4 and s.pairs_differing == 2
    assert s.max_abs_difference == pytest.approx(0.1) and s.largest_at in ("(0, 1)", "(1, 0)")
    assert s.exact_best_pair == "(1, 0)" and s.exact_best == 0.8
    assert s.reference_best_pair == "(0, 1)" and s.reference_best == 0.7   # equal maxima: the first, row-major
    assert s.best_difference == pytest.approx(-0.1) and s.fp64_equals_exact


def test_the_papers_printed_differences_and_which_are_below_an_error():
    paper = perf.paper_small_differences()
    fig6 = paper[paper.source.str.startswith("Figure 6")]
    assert len(fig6) == 8 and fig6.difference.min() == 0.0 and fig6.difference.max() == 0.009  # 0.000 to 0.009
    assert set(paper.evidence) == {perf.EVIDENCE_PUBLISHED}
    frame = paper[paper.quantity == "frame averaging: video minus image"].iloc[0]
    assert frame.difference == 0.014 and frame.rounding == 0.0005
    flags = perf.below_error(paper, 0.003)
    assert set(flags[flags.smaller_than_error].difference) == {0.0, 0.002}   # 0.003 itself is not below 0.003
    assert not perf.below_error(paper, 0.0).smaller_than_error.any()
    with pytest.raises(ValueError, match="error must be"):
        perf.below_error(paper, float("nan"))


def test_bad_input_is_refused_before_any_work():
    with pytest.raises(ValueError, match="1 <= k < N"):
        perf.reference_side(separated(n=5), 5)
    with pytest.raises(ValueError, match="1 <= k < N"):
        perf.fp64_brute_knn(np.zeros((4, 2)), 0)
    with pytest.raises(ValueError, match="Each model once"):
        perf.live_model_features(["minilm-l6", "minilm-l6"])
    with pytest.raises(ValueError, match="no-such-model"):
        perf.live_model_features(["minilm-l6", "no-such-model"], dataset_options={"n_clips": 4})
    a, b = perf.reference_side(separated(n=12), K), perf.reference_side(separated(n=13), K)
    with pytest.raises(ValueError, match="same items and k"):
        perf.reference_error_pairs(a, b)


def test_figure_is_legible():
    from test_figure_legibility import legibility_problems

    a = perf.reference_side(near_ties(), K, "minilm-l6", q=1.0)
    b = perf.reference_side(np.concatenate([separated(), separated(seed=4)], axis=1), K, "gemma3-270m")
    pairs = pd.concat([perf.reference_error_pairs(a, b), perf.reference_error_pairs(b, a)])
    paper = perf.below_error(perf.paper_small_differences(), float(pairs.difference.abs().max()))
    for default_error in (None, 0.0074):
        fig = perf.plot_reference_error(pairs, paper, float(pairs.difference.abs().max()), default_error=default_error)
        assert legibility_problems(fig, columns=list(pairs.columns) + list(paper.columns)) == []


def test_fp64_column_is_scored_from_its_own_lists_when_they_differ():
    exact = np.array([[1, 2], [0, 2], [0, 1], [0, 1]])
    other = np.array([[1, 3], [0, 2], [0, 1], [0, 1]])   # row 0: neighbour 3 instead of 2
    x = perf.ReferenceSide("x", None, exact[None], exact[None], other[None], pd.DataFrame())
    row = perf.reference_error_pairs(x, known_side("y", exact)).iloc[0]
    assert row.exact == 1.0 and row.reference == 1.0 and row.fp64_brute_force == 7 / 8


def test_section_parameters_are_checked_before_any_feature_is_read():
    good = dict(models=["minilm-l6", "gemma3-270m"], k=10, frames=16, check_layers=3,
                dataset_options={"n_clips": 256})
    assert perf.check_reference_parameters(**good) is None
    for change, match in ((dict(k=256), "needs more than 256 clips"), (dict(frames=0), "reference_frames"),
                          (dict(check_layers=1.5), "reference_check_layers"), (dict(k=True), "reference_k"),
                          (dict(models=["minilm-l6", "minilm-l6"]), "more than once")):
        with pytest.raises(ValueError, match=match):
            perf.check_reference_parameters(**{**good, **change})


def test_the_reference_defaults_preparation_and_its_end_to_end_column():
    """bench.reference_prepare(precise=False) is the reference code's default clamp (each item's linearly
    interpolated quantile, averaged over items; torch.quantile is its specification here), and the pairs
    table scores the reference's lists after it against the exact ones."""
    import torch

    from vtalign import bench

    x = separated(n=30, d=12, seed=5) * np.linspace(0.5, 3, 30, dtype=np.float32)[:, None, None]
    t = torch.quantile(torch.from_numpy(x).abs().flatten(start_dim=1), 0.9, dim=1).mean()
    spec = torch.nn.functional.normalize(torch.from_numpy(x).clamp(-t, t), dim=-1)
    assert torch.equal(bench.reference_prepare(x, 0.9, precise=False), spec)
    assert not torch.equal(bench.reference_prepare(x, 0.9), spec)          # the precise clamp is another one
    a = perf.reference_side(x, K, "a", q=0.9, default_preparation=True)
    b = perf.reference_side(separated(n=30, seed=6), K, "b", q=0.9, default_preparation=True)
    pairs = perf.reference_error_pairs(a, b)
    lists = [bench.reference_knn(spec[:, 0].contiguous(), K).numpy(), b.reference_default[0]]
    expected = np.mean([len(set(p) & set(q)) for p, q in zip(*lists)]) / K
    assert pairs.reference_default.iloc[0] == expected
    assert pairs.difference_default.iloc[0] == expected - pairs.exact.iloc[0]
    summary = perf.reference_error_summary(pairs).iloc[0]
    assert summary.pairs_differing_default == int(expected != pairs.exact.iloc[0])


def test_the_difference_splits_into_fp32_rounding_and_the_order_of_exactly_equal_values():
    # duplicates of well-separated items: every tie is exact, so a stable fp32 sort (equal values to the lower
    # index, the exact search's rule) has nothing to round: whatever the reference differs by is tie order
    base = separated(n=20, seed=7)
    dup = perf.reference_side(np.concatenate([base, base]), K, "duplicates", q=1.0)
    assert dup.layers.rows_rounding_differs.tolist() == [0]
    assert perf.rows_with_other_set(dup.stable[0], rational_knn(dup.prepared[:, 0].numpy(), K)) == 0
    # near ties below fp32's rounding: the stable sort does not help, rounding alone moves the sets
    near = perf.reference_side(near_ties(), K, "near ties", q=1.0)
    assert near.layers.rows_rounding_differs.iloc[0] >= 10
    def exact_lists(side):  # a side holding the rational answer, the same by every method
        lists = rational_knn(side.prepared[:, 0].numpy(), K)[None]
        return perf.ReferenceSide("exact lists", None, lists, lists, lists, pd.DataFrame(), None, lists)

    pairs = pd.concat([perf.reference_error_pairs(dup, exact_lists(dup)),
                       perf.reference_error_pairs(near, exact_lists(near))])
    assert (pairs.difference == pairs.rounding + pairs.tie_order).all()   # integers / (N k): exact in fp64
    assert pairs.rounding.iloc[0] == 0 and pairs.rounding.iloc[1] != 0
    summary = perf.reference_error_summary(pairs)
    assert summary.pairs_differing_rounding.tolist() == [0, 1]


def test_paper_differences_in_neighbour_places_of_their_own_setting():
    paper = perf.paper_small_differences()
    fig6 = paper[paper.source.str.startswith("Figure 6")]
    assert (fig6.places == fig6.difference * 512 * 5).all()
    fig2 = paper[paper.source == "Figure 2"].iloc[0]
    assert fig2.places == pytest.approx(0.014 * 1024 * 10)
