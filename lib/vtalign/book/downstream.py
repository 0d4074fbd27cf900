"""Figures 2, 4 and 10 measured live: vision variants, tasks with known answers, alignment with text.

The paper regresses alignment on downstream performance over many vision models (Figure 2),
correlates it with each downstream task (Figure 4) and compares models with one another
(Figure 10). Offline, the "models" are variants built from what installs: each EfficientNet,
trained and with random weights, pooled over time in several ways from one cached extraction
of per-frame features (:mod:`vtalign.pooling`). The tasks come from the synthetic world's scene
metadata (:data:`vtalign.extract.synthetic.WORLD_TASKS`), so their answers are known.

Steps, each a function the chapter calls:

1. :func:`representations`: every vision variant and text model's features on the same items;
2. :func:`neighbour_lists`: each representation's per-layer kNN sets, computed once;
3. :func:`alignment_table` (best layer pair with each text model) and :func:`cross_model_matrix`;
4. :func:`downstream_scores`: frozen readouts (:mod:`vtalign.probes`) of every variant on every task,
   at its last layer and at the layer its alignment with each text model picked;
   :func:`retrieval_scores`: the paper's own x-axis of Figure 2, weighted k-NN retrieval accuracy
   (:func:`vtalign.probes.retrieval_accuracy`, k = 8, leave-one-out) on a labelled set: the synthetic world's
   class tasks here, or a user's Kinetics / SSv2 subset (:func:`dataset_labels`);
5. :func:`figure2_points` and :func:`task_correlations`: what Figures 2 and 4 plot.

A user's own models slot in as further rows (any Hugging Face id as a vision model), and a user's
own downstream numbers (e.g. the paper's K400/SSv2 accuracies) replace the probes through
:func:`downstream_from_csv`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..alignment import cross_model_matrix, layer_neighbours, prepare_features, sweep_from_neighbours
from ..correlation import correlate, linear_fit
from ..extract.cache import common_items
from ..extract.datasets import load_dataset
from ..extract.encoders import encoder_identity
from ..extract.features import extract_features
from ..extract.synthetic import WORLD_TASKS, WorldSpec, world_labels
from ..pooling import parse_pooling, pool_frames
from ..probes import RETRIEVAL_K, RETRIEVAL_TEMPERATURE, chance_score, knn_probes, linear_probes, retrieval_accuracies
from ..stats import chance_level

__all__ = ["Variant", "Representation", "vision_variants", "representations", "neighbour_lists", "alignment_table",
           "cross_model_matrix", "world_task_labels", "downstream_scores", "downstream_scores_with_null",
           "downstream_from_csv", "figure2_points",
           "figure2_fits", "task_correlations", "duplicate_share", "dataset_labels", "retrieval_tasks",
           "retrieval_scores", "retrieval_margins", "retrieval_by_task"]

POOLING_TYPES = {"first": "image_on_image", "mean": "image_on_video", "segments": "order_aware",
                 "clips": "native_video"}


@dataclass(frozen=True)
class Variant:
    """A vision "model" of the study: an encoder and how its frames are pooled over time.

    ``pooling``: ``"first"``, ``"mean:<n>"``, ``"segments:<s>"`` (image models, from per-frame features)
    or ``"clips"`` (video models: their own clips, averaged). ``model_type`` is Figure 2's marker.
    """
    model: str
    pooling: str

    @property
    def name(self) -> str:
        return f"{self.model} | {self.pooling}"

    @property
    def model_type(self) -> str:
        return POOLING_TYPES[self.pooling.partition(":")[0]]


@dataclass
class Representation:
    """One side of the study: raw features [N, L, D] (zero-padded; ``layer_dims`` true widths) of
    ``item_ids``, from a vision ``variant`` or a text model."""
    name: str
    side: str
    features: np.ndarray
    layer_dims: list[int]
    item_ids: list[str]
    variant: Variant | None = None


def vision_variants(models, poolings) -> list[Variant]:
    """Every (model, pooling) of image models; one ``"clips"`` variant for each video model."""
    for p in poolings:
        parse_pooling(p)
    out = []
    for m in models:
        modality = encoder_identity(m)[0]
        if modality == "text":
            raise ValueError(f"{m} is a text model; list it among the text models.")
        out.extend([Variant(m, p) for p in poolings] if modality == "image" else [Variant(m, "clips")])
    return out


def representations(dataset: str, variants: list[Variant], text_models, captions: int = 1, cached_frames: int = 16,
                    caption_seed: int = 0, dataset_options: dict | None = None,
                    progress: bool = True) -> dict[str, Representation]:
    """Features of every variant and text model on the items all of them have, in one order.

    Image models are extracted once per model with ``mode="frames"`` (``cached_frames`` frames kept)
    and pooled in memory for each of their variants; video models with ``frames=cached_frames``.
    """
    ds = load_dataset(dataset, **(dataset_options or {}))
    found: list[tuple[str, str, Variant | None, np.ndarray, dict]] = []
    for model in dict.fromkeys(v.model for v in variants):
        mine = [v for v in variants if v.model == model]
        if mine[0].pooling == "clips":
            feats, meta = extract_features(ds, model, frames=cached_frames, progress=progress)
            found.append((mine[0].name, "video", mine[0], feats, meta))
            continue
        per_frame, meta = extract_features(ds, model, frames=cached_frames, mode="frames", progress=progress)
        for v in mine:
            pooled, dims = pool_frames(per_frame, meta["layer_dims"], v.pooling)
            found.append((v.name, "video", v, pooled, {**meta, "layer_dims": dims}))
        del per_frame
    for text in text_models:
        feats, meta = extract_features(ds, text, captions=captions, seed=caption_seed, progress=progress)
        found.append((text, "text", None, feats, meta))
    aligned = common_items([(f, m) for *_, f, m in found])
    return {name: Representation(name, side, f, list(m.get("layer_dims") or [f.shape[2]] * f.shape[1]),
                                 m["item_ids"], variant)
            for (name, side, variant, _, _), (f, m) in zip(found, aligned)}


def neighbour_lists(reps: dict[str, Representation], k: int = 10, per_layer: bool | None = None,
                    backend: str = "auto") -> dict[str, np.ndarray]:
    """Each representation's kNN sets per layer [L, N, k], after the reference preparation
    (clamp at the 0.95 quantile, L2-normalise; ``per_layer`` as in :func:`vtalign.prepare_features`)."""
    return {name: layer_neighbours(prepare_features(r.features, layer_dims=r.layer_dims, per_layer=per_layer),
                                   k, backend)
            for name, r in reps.items()}


def alignment_table(reps: dict[str, Representation], neighbours: dict[str, np.ndarray],
                    backend: str = "auto") -> pd.DataFrame:
    """Best-layer-pair alignment of every vision variant with every text model.

    Columns: vision, model, pooling, model_type, text, score, layer_x, layer_y, n_layers_x, n_items, k, chance.
    """
    rows = []
    for v in (r for r in reps.values() if r.side == "video"):
        for t in (r for r in reps.values() if r.side == "text"):
            i, j, score = sweep_from_neighbours(neighbours[v.name], neighbours[t.name], backend).best
            n, k = neighbours[v.name].shape[1:]
            rows.append(dict(vision=v.name, model=v.variant.model, pooling=v.variant.pooling,
                             model_type=v.variant.model_type, text=t.name, score=score, layer_x=i, layer_y=j,
                             n_layers_x=len(v.layer_dims), n_items=n, k=k, chance=chance_level(n, k)))
    return pd.DataFrame(rows)


def world_task_labels(item_ids, dataset_options: dict | None = None) -> dict[str, np.ndarray]:
    """:func:`vtalign.extract.synthetic.world_labels` of the synthetic-world clips ``item_ids``, in that order."""
    # the options as the dataset reads them
    spec = WorldSpec(**load_dataset("synthetic_world", **(dataset_options or {})).options)
    indices = [int(str(i).rsplit("-", 1)[1]) for i in item_ids]
    labels = world_labels(spec, indices)
    if list(labels["id"]) != list(item_ids):
        raise ValueError("The item ids are not clips of this synthetic world (seed or options differ).")
    return labels


def downstream_scores(reps: dict[str, Representation], alignment: pd.DataFrame, labels: dict[str, np.ndarray],
                      tasks=None, knn_k: int = 20, temperature: float = 0.07, n_folds: int = 5,
                      seed: int = 0, aligned_layers: bool = True) -> pd.DataFrame:
    """Frozen readouts of every vision variant on every task, at its last layer and at each layer its
    alignment picked (one per text model; a layer picked by several is scored once).

    Columns: vision, model, pooling, model_type, task, kind, semantic, probe (``linear`` / ``knn``),
    layer_choice (``last`` or ``aligned``), text (the text model whose alignment picked the layer; empty
    for ``last``), layer, score, chance. Probes read the raw features of one layer (real width only).
    ``aligned_layers=False`` scores the last layers only.
    """
    return _readouts(reps, alignment, [(labels, aligned_layers)], tasks, knn_k, temperature, n_folds, seed)[0]


def downstream_scores_with_null(reps: dict[str, Representation], alignment: pd.DataFrame,
                                labels: dict[str, np.ndarray], null_labels: dict[str, np.ndarray], tasks=None,
                                knn_k: int = 20, temperature: float = 0.07, n_folds: int = 5,
                                seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`downstream_scores` of ``labels`` (last and aligned layers) and of ``null_labels`` (last layers
    only), the same numbers as two calls, computed together: the features of a layer are the same in both
    worlds, so each fold's standardisation, ridge decomposition and neighbours are found once for both
    (:func:`vtalign.probes.linear_probes`, :func:`vtalign.probes.knn_probes`)."""
    return tuple(_readouts(reps, alignment, [(labels, True), (null_labels, False)], tasks, knn_k, temperature,
                           n_folds, seed))


def _readouts(reps, alignment, worlds, tasks, knn_k, temperature, n_folds, seed) -> list[pd.DataFrame]:
    """One frame of :func:`downstream_scores` per ``(labels, aligned_layers)`` of ``worlds``; every layer a
    variant needs in any world is read out once, for all the worlds' label sets together."""
    tasks = list(tasks or WORLD_TASKS)
    unknown = [t for t in tasks if t not in WORLD_TASKS]
    if unknown:
        raise ValueError(f"Unknown task(s) {unknown}; the world answers {list(WORLD_TASKS)}.")
    rows: list[list[dict]] = [[] for _ in worlds]
    for v in (r for r in reps.values() if r.side == "video"):
        last = len(v.layer_dims) - 1
        picks = list(alignment[alignment.vision == v.name][["text", "layer_x"]].itertuples(index=False))
        choices = [[("last", "", last)] + ([("aligned", t, int(layer)) for t, layer in picks] if aligned else [])
                   for _, aligned in worlds]
        scored: list[dict[int, list[dict]]] = [{} for _ in worlds]
        for layer in dict.fromkeys(layer for mine in choices for *_, layer in mine):
            x = v.features[:, layer, :v.layer_dims[layer]]
            needing = [w for w, mine in enumerate(choices) if any(c[2] == layer for c in mine)]
            sets = [(worlds[w][0][task], WORLD_TASKS[task][0]) for w in needing for task in tasks]
            linear = iter(linear_probes(x, sets, n_folds, seed))
            knn = iter(knn_probes(x, sets, knn_k, temperature, n_folds, seed))
            for w in needing:
                scored[w][layer] = [dict(task=task, kind=kind, semantic=semantic, probe=probe, score=next(found),
                                         chance=chance_score(worlds[w][0][task], kind))
                                    for task, (kind, semantic) in ((t, WORLD_TASKS[t]) for t in tasks)
                                    for probe, found in (("linear", linear), ("knn", knn))]
        for w, mine in enumerate(choices):
            for choice, text, layer in mine:
                rows[w].extend(dict(vision=v.name, model=v.variant.model, pooling=v.variant.pooling,
                                    model_type=v.variant.model_type, layer_choice=choice, text=text, layer=layer, **r)
                               for r in scored[w][layer])
    return [pd.DataFrame(r) for r in rows]


def dataset_labels(dataset: str, dataset_options: dict | None = None, item_ids=None) -> np.ndarray:
    """The class label of each item of a labelled dataset (``Item.label``: Kinetics / SSv2 classes, the labelled
    ``clips``), in the order of ``item_ids`` (default: the dataset's). Raises before any feature is computed
    when an item has no label or when no class has two items (leave-one-out retrieval would have nothing to
    find).

    >>> dataset_labels("test_of_time")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: test_of_time: each of its 180 items has a class of its own, so leave-one-out retrieval ...
    """
    ds = load_dataset(dataset, **(dataset_options or {}))
    by_id = {it.id: it.label for it in ds.items}
    ids = list(ds.ids if item_ids is None else item_ids)
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise ValueError(f"{len(unknown)} item ids are not items of {dataset}, e.g. {unknown[:3]}.")
    missing = [i for i in ids if by_id[i] is None]
    if missing:
        raise ValueError(f"{dataset} has no class label for {len(missing)} of its {len(ids)} items (e.g. "
                         f"{missing[:3]}): the retrieval metric needs a labelled set (kinetics400, kinetics700_2020 "
                         "or ssv2 with video_root and list_file, the synthetic world), or pass downstream_csv.")
    labels = np.array([by_id[i] for i in ids], dtype=object)
    if np.unique(labels.astype(str), return_counts=True)[1].max() < 2:
        raise ValueError(f"{dataset}: each of its {len(ids)} items has a class of its own, so leave-one-out "
                         "retrieval has nothing to find; use a set where classes repeat.")
    return labels


def retrieval_tasks(tasks=None) -> list[str]:
    """The synthetic world's tasks that retrieval scores: the semantic single-label classes (the analogue of an
    action class), or those of ``tasks`` (each must be a class task of the world).

    >>> retrieval_tasks()
    ['background', 'first_shape']
    """
    if not tasks:
        return [t for t, (kind, semantic) in WORLD_TASKS.items() if kind == "class" and semantic]
    bad = [t for t in tasks if WORLD_TASKS.get(t, ("",))[0] != "class"]
    if bad:
        raise ValueError(f"Retrieval scores single-label class tasks; {bad} are not among "
                         f"{[t for t, (k, _) in WORLD_TASKS.items() if k == 'class']}.")
    return list(tasks)


def retrieval_scores(reps: dict[str, Representation], labels: dict[str, np.ndarray], k: int = RETRIEVAL_K,
                     temperature: float = RETRIEVAL_TEMPERATURE, seed: int = 0, n_null: int = 5) -> pd.DataFrame:
    """The paper's retrieval metric for every vision variant at its last layer, on each labelled task.

    ``labels``: task name -> [N] classes of the representations' items (in their order). For each (variant,
    task): :func:`vtalign.probes.retrieval_accuracy` (weighted k-NN, leave-one-out, raw features of the last
    layer, its true width) as ``score``, and as ``chance`` the mean of the same retrieval over ``n_null`` seeded
    permutations of the labels over the items (``seed``): the features kept, their tie to the labels removed; a
    measured null, not a formula.
    Rows in :func:`downstream_scores`' long form (probe ``retrieval``, kind ``class``, semantic, layer_choice
    ``last``), so :func:`figure2_points` takes them with ``probe="retrieval"``.
    """
    rng = np.random.default_rng(seed)
    n = len(next(iter(reps.values())).item_ids)
    if n_null < 1:
        raise ValueError(f"n_null must be at least 1, got {n_null}.")
    shuffled = {task: [rng.permutation(np.asarray(y)).astype(str) for _ in range(n_null)] for task, y in labels.items()}
    for task, y in labels.items():
        if len(y) != n:
            raise ValueError(f"labels of {task!r} describe {len(y)} items, the representations {n}.")
    rows = []
    tasks = list(labels)
    sets = [np.asarray(labels[t]).astype(str) for t in tasks] + [z for t in tasks for z in shuffled[t]]
    for v in (r for r in reps.values() if r.side == "video"):
        last = len(v.layer_dims) - 1
        acc = retrieval_accuracies(v.features[:, last, :v.layer_dims[last]], sets, k, temperature)  # neighbours once
        for i, task in enumerate(tasks):
            null = acc[len(tasks) + i * n_null: len(tasks) + (i + 1) * n_null]
            rows.append(dict(vision=v.name, model=v.variant.model, pooling=v.variant.pooling,
                             model_type=v.variant.model_type, layer_choice="last", text="", layer=last, task=task,
                             kind="class", semantic=True, probe="retrieval", score=acc[i], chance=float(np.mean(null)),
                             k=k, temperature=temperature))
    return pd.DataFrame(rows)


def retrieval_margins(retrieval: pd.DataFrame, n_items: int, alpha: float = 0.05) -> pd.DataFrame:
    """:func:`retrieval_scores`' rows with each variant's margin over its own measured chance: ``margin`` =
    z standard errors of an accuracy at chance, sqrt(c (1 - c) / N) over the N queries (the binomial rule of
    :func:`vtalign.book.claims.readouts_above_chance`), z two-sided at ``alpha`` Bonferroni-corrected over the
    variants of the task; ``above`` when score > chance + margin, ``below`` when score < chance - margin.

    >>> rows = pd.DataFrame(dict(vision=["a", "b"], task="t", score=[0.9, 0.2], chance=[0.25, 0.25]))
    >>> retrieval_margins(rows, 100)[["margin", "above", "below"]].round(3).values.tolist()
    [[0.097, True, False], [0.097, False, False]]
    """
    from scipy.stats import norm

    if n_items < 1:
        raise ValueError(f"n_items must be positive, got {n_items}.")
    out = retrieval.copy()
    variants = out.groupby("task").vision.transform("nunique").clip(lower=1)
    z = norm.ppf(1 - alpha / 2 / variants)
    out["margin"] = z * np.sqrt(out.chance * (1 - out.chance) / n_items)
    out["above"] = out.score > out.chance + out.margin
    out["below"] = out.score < out.chance - out.margin
    return out


def retrieval_by_task(marked: pd.DataFrame) -> pd.DataFrame:
    """One row per task of :func:`retrieval_margins`' rows: variants, the measured chance's range over them
    (chance_low, chance_high), the widest margin, the best score and its variant, how many variants beat their
    chance by the margin (above) and how many fall below it by the margin (below)."""
    rows = []
    for task, t in marked.groupby("task", sort=False):
        best = t.loc[t.score.idxmax()]
        rows.append(dict(task=task, variants=len(t), chance_low=float(t.chance.min()),
                         chance_high=float(t.chance.max()), margin=float(t.margin.max()), best=float(best.score),
                         best_vision=best.vision, above=int(t.above.sum()), below=int(t.below.sum())))
    return pd.DataFrame(rows)


def downstream_from_csv(path, variants: list[Variant]) -> pd.DataFrame:
    """A user's downstream numbers in :func:`downstream_scores`' long form, so the same figures follow.

    The CSV has one row per vision model (``model`` = a variant's name ``"<model> | <pooling>"`` or a
    model name, which then applies to all its variants) and one column per task (higher is better;
    a column whose name is in ``semantic_tasks`` of the chapter counts as semantic).
    """
    table = pd.read_csv(path)
    if "model" not in table.columns:
        raise ValueError(f"{path}: needs a 'model' column (a vision model or variant name); "
                         f"it has {list(table.columns)}.")
    tasks = [c for c in table.columns if c != "model"]
    rows = []
    for v in variants:
        match = table[table.model.isin([v.name, v.model])]
        if match.empty:
            raise ValueError(f"{path}: no row for vision variant {v.name!r} (or model {v.model!r}).")
        for task in tasks:
            rows.append(dict(vision=v.name, model=v.model, pooling=v.pooling, model_type=v.model_type,
                             layer_choice="last", text="", layer=-1, task=task, kind="given", semantic=True,
                             probe="given", score=float(match.iloc[0][task]), chance=np.nan))
    return pd.DataFrame(rows)


def figure2_points(alignment: pd.DataFrame, downstream: pd.DataFrame, probe: str = "knn",
                   layer_choice: str = "last") -> pd.DataFrame:
    """One point per (vision variant, text model): its alignment and its mean score over the semantic
    tasks (``probe`` readout at ``layer_choice``; ``aligned`` takes the layer that text model picked).

    Columns: vision, model_type, text, alignment, semantic_score.
    """
    sem = downstream[downstream.semantic.astype(bool) & downstream.probe.isin([probe, "given"])
                     & (downstream.layer_choice == layer_choice)]
    if sem.empty:
        raise ValueError(f"No semantic-task scores with probe={probe!r} at layer_choice={layer_choice!r}.")
    if layer_choice == "last":
        per_vision = sem.groupby("vision").score.mean()
        y = alignment.vision.map(per_vision)
    else:
        per_pair = sem.groupby(["vision", "text"]).score.mean()
        y = pd.Series([per_pair.get((v, t), np.nan) for v, t in zip(alignment.vision, alignment.text)],
                      index=alignment.index)
    return alignment[["vision", "model_type", "text"]].assign(alignment=alignment.score, semantic_score=y.values)


def figure2_fits(points: pd.DataFrame, n_boot: int = 10000, n_permutations: int = 10000, seed: int = 0) -> pd.DataFrame:
    """Per text model, the least-squares line of alignment on the semantic score, with Pearson r, its
    bootstrap CI and permutation p-value. Columns: text, n, slope, intercept, pearson_r, ci_low,
    ci_high, pearson_p, permutation_p, spearman_r."""
    rows = []
    for text, sub in points.groupby("text", sort=False):
        fit = linear_fit(sub.semantic_score, sub.alignment)
        c = correlate(sub.semantic_score, sub.alignment, n_boot=n_boot, seed=seed, n_permutations=n_permutations)
        rows.append(dict(text=text, n=fit.n, slope=fit.slope, intercept=fit.intercept, pearson_r=c.pearson_r,
                         ci_low=c.ci_low, ci_high=c.ci_high, pearson_p=c.pearson_p, permutation_p=c.permutation_p,
                         spearman_r=c.spearman_r))
    return pd.DataFrame(rows)


def task_correlations(alignment: pd.DataFrame, downstream: pd.DataFrame, text: str, probe: str = "linear",
                      layer_choice: str = "last", n_boot: int = 10000, n_permutations: int = 10000,
                      seed: int = 0) -> pd.DataFrame:
    """Figure 4, live: across vision variants, Pearson r of the alignment with ``text`` and each task's
    score, with its bootstrap CI and permutation p-value.

    Columns: task, semantic, n, pearson_r, ci_low, ci_high, pearson_p, permutation_p, spearman_r.
    """
    a = alignment[alignment.text == text].set_index("vision").score
    if a.empty:
        raise ValueError(f"No alignment with text model {text!r}; it has {sorted(alignment.text.unique())}.")
    sub = downstream[downstream.probe.isin([probe, "given"]) & (downstream.layer_choice == layer_choice)]
    if layer_choice == "aligned":
        sub = sub[sub.text == text]
    rows = []
    for task, t in sub.groupby("task", sort=False):
        s = t.set_index("vision").score.reindex(a.index)
        c = correlate(a.values, s.values, n_boot=n_boot, seed=seed, n_permutations=n_permutations)
        rows.append(dict(task=task, semantic=bool(t.semantic.iloc[0]), n=c.n, pearson_r=c.pearson_r, ci_low=c.ci_low,
                         ci_high=c.ci_high, pearson_p=c.pearson_p, permutation_p=c.permutation_p,
                         spearman_r=c.spearman_r))
    return pd.DataFrame(rows)


def duplicate_share(rep: Representation) -> float:
    """Share of items whose features (every layer) are bitwise equal to another item's. Such items
    tie with each other in every layer of every model that sees the same input (e.g. first frames
    showing only the background), and the tie rule (lower index) then picks the same neighbours in
    all of them, which makes those models agree more than their features do."""
    flat = np.ascontiguousarray(rep.features.reshape(len(rep.features), -1))
    rows = flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).ravel()
    _, inverse, counts = np.unique(rows, return_inverse=True, return_counts=True)
    return float((counts[inverse] > 1).mean())
