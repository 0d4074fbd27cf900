"""vtalign: video-text representation alignment (mutual k-NN), the reference artifact for
"Dynamic Reflections: Probing Video Representations with Text Alignment".

Core API (numpy arrays or torch tensors in)::

    mutual_knn(x, y, k, backend="auto") -> float                 # Eq. 1
    knn_indices(x, k, backend="auto") -> int array [N, k]        # nearest first, ties -> lower index
    layer_sweep(fx, fy, k, backend="auto") -> SweepResult        # .scores [Lx, Ly], .best (i, j, score)
    prepare_features(x, q=0.95)                                  # clamp |x| at quantile q, L2-normalise
    chance_level(n, k); versus_chance(scores, n); permutation_test(...); bootstrap_ci(...)
    fit_scaling_law(...), fit_grid(...), compare_forms(...)       # Eq. 2 and alternatives
    fit_table(fits), fit_uncertainty(fits), caption_gain_pairs(grid)
    correlate(...), correlation_table(...), linear_fit(...)
    pool_frames(per_frame, layer_dims, "mean:4")                 # [N, F, L, D] -> [N, L, D']
    linear_probe(x, labels, kind), knn_probe(x, labels, kind)    # frozen-feature readouts
    negative_caption_overlaps(...), paired_difference(a, b)      # Figure 6, per item

Live pipeline (videos and captions in, cached per-layer features out)::

    extract_features(dataset, model, frames=8, captions=1) -> (float32 [N, L, D], meta)
    load_features(dataset, model, frames=8, captions=1)    -> the same, from the cache only
    pair_features(fa, meta_a, fb, meta_b)                  -> rows of the items both sides have
    load_dataset(name, **options); load_encoder(name); fetch(dataset, file)

Layout: the measurement core at the top level (``checks``, ``knn``, ``triton_kernels``,
``alignment``, ``stats``, ``temporal``, ``scaling``, ``correlation``, ``pooling``, ``probes``;
``paths``, ``bench``),
the extraction pipeline in :mod:`vtalign.extract`, and what the book's chapters call in
:mod:`vtalign.book`. Imports run one way: book -> extract -> core.
"""
from . import verdicts
from ._version import __version__
from .alignment import (
    BACKENDS,
    SweepResult,
    knn_indices,
    layer_neighbours,
    layer_sweep,
    mutual_knn,
    neighbour_overlap,
    prepare_features,
    sweep_overlaps,
)
from .checks import InsufficientData
from .correlation import Correlation, LinearFit, correlate, correlation_table, figure2_regressions, linear_fit
from .extract import extract_features, fetch, load_dataset, load_encoder, load_features, pair_features
from .knn import available_backends
from .pooling import pool_frames
from .probes import knn_probe, linear_probe
from .scaling import (
    FORMS,
    ScalingFit,
    caption_gain_pairs,
    compare_forms,
    fit_grid,
    fit_scaling_law,
    fit_table,
    fit_uncertainty,
    validate_grid,
)
from .stats import (
    BootstrapResult,
    PairedDifference,
    PermutationResult,
    bootstrap_ci,
    chance_level,
    paired_difference,
    permutation_test,
    versus_chance,
)
from .temporal import negative_caption_alignment, negative_caption_overlaps

__all__ = [
    "BACKENDS", "available_backends", "SweepResult", "knn_indices", "layer_neighbours", "layer_sweep", "mutual_knn",
    "neighbour_overlap", "prepare_features", "sweep_overlaps",
    "Correlation", "LinearFit", "correlate", "correlation_table", "linear_fit", "figure2_regressions",
    "FORMS", "ScalingFit", "compare_forms", "fit_grid", "fit_scaling_law", "validate_grid", "fit_table",
    "fit_uncertainty", "caption_gain_pairs",
    "BootstrapResult", "PermutationResult", "bootstrap_ci", "chance_level", "permutation_test", "versus_chance",
    "negative_caption_alignment", "negative_caption_overlaps", "PairedDifference", "paired_difference",
    "pool_frames", "verdicts", "linear_probe", "knn_probe", "InsufficientData", "__version__",
    "fetch", "load_dataset", "load_encoder", "extract_features", "load_features", "pair_features",
]
