"""vtalign: video-text representation alignment (mutual k-NN), the reference artifact for
"Dynamic Reflections: Probing Video Representations with Text Alignment".

Core API (numpy arrays or torch tensors in)::

    mutual_knn(x, y, k, backend="auto") -> float                 # Eq. 1
    knn_indices(x, k, backend="auto") -> int array [N, k]        # nearest first, ties -> lower index
    layer_sweep(fx, fy, k, backend="auto") -> SweepResult        # .scores [Lx, Ly], .best (i, j, score)
    prepare_features(x, q=0.95)                                  # clamp |x| at quantile q, L2-normalise
    chance_level(n, k); permutation_test(...); bootstrap_ci(...)
    fit_scaling_law(...), fit_grid(...), compare_forms(...)       # Eq. 2 and alternatives
    correlate(...), correlation_table(...), linear_fit(...)

Live pipeline (videos and captions in, cached per-layer features out)::

    extract_features(dataset, model, frames=8, captions=1) -> (float32 [N, L, D], meta)
    load_features(dataset, model, frames=8, captions=1)    -> the same, from the cache only
    pair_features(fa, meta_a, fb, meta_b)                  -> rows of the items both sides have
    load_dataset(name, **options); load_encoder(name); fetch(dataset, file)
"""
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
from .knn import available_backends
from .correlation import Correlation, LinearFit, correlate, correlation_table, linear_fit
from .scaling import FORMS, ScalingFit, compare_forms, fit_grid, fit_scaling_law, validate_grid
from .stats import BootstrapResult, PermutationResult, bootstrap_ci, chance_level, permutation_test
from .temporal import negative_caption_alignment
from .data import fetch
from .datasets import load_dataset
from .encoders import load_encoder
from .features import extract_features, load_features, pair_features

__version__ = "0.1.0"

__all__ = [
    "BACKENDS", "available_backends", "SweepResult", "knn_indices", "layer_neighbours", "layer_sweep", "mutual_knn",
    "neighbour_overlap", "prepare_features", "sweep_overlaps",
    "Correlation", "LinearFit", "correlate", "correlation_table", "linear_fit",
    "FORMS", "ScalingFit", "compare_forms", "fit_grid", "fit_scaling_law", "validate_grid",
    "BootstrapResult", "PermutationResult", "bootstrap_ci", "chance_level", "permutation_test",
    "negative_caption_alignment", "__version__",
    "fetch", "load_dataset", "load_encoder", "extract_features", "load_features", "pair_features",
]
