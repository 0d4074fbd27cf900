"""The paper's pipeline in one command (``make paper``), and "score your own encoder" (``--score``).

Two plans, the same code:

- ``paper``: every loadable row of ``data_manifest/paper/a2_models.csv`` (:mod:`~vtalign.extract.paper_models`)
  x VaTeX (1,024 videos, seeded) x Figure 3's grid (frame counts x caption counts, read from the digitised
  ``fig3_vatex_scaling_frames_digitized.csv``). It needs the videos and the weights; with either missing it is
  refused before any work (:class:`PaperRunRefused`, listing what is missing). Nothing here has run it.
- ``miniature``: one tiny random-initialised config (:data:`~vtalign.extract.encoders.TINY_FAMILIES`) per loader
  the paper's rows use, in the settings those rows have, x 32 synthetic-world clips x a 2 x 2 grid. It runs
  offline in about a minute. Its numbers are plumbing on random weights: never evidence, never compared.

Steps (:func:`run_paper`): the jobs (:func:`paper_jobs`), their requests through the extraction plan machinery
(:func:`~vtalign.extract.cluster.plan_requests`; made in this process, or on Ray with ``cluster``), then the
analysis from the feature cache: per vision representation the best-layer mutual k-NN alignment with the text
model(s) (:func:`alignment_table`), Figure 2's points, Figure 3's grid, Eq. 2 fits (:func:`eq2_fits`, Table 1),
Figure 4 (:func:`fig4_tables`: the published downstream numbers against this run's alignment; downstream scores
are not measured here), Figure 7 (:func:`fig7_tables`, the gain from more captions), Figure 10
(:func:`fig10_matrix`), Figures 11 and 12 (:func:`matrix_table`: vision x text at one caption and at all
captions) and the tables beside the published numbers, as CSVs under ``results/paper/<plan>/`` (the book layer
draws their PNGs: :func:`vtalign.book.paper_pipeline.draw_figures`), with
the VaTeX caption source that ran (5-caption files here or the official 10-caption JSON) in ``run.json``. What
cannot be built from the plan's features is a row of ``not_built.csv`` with its reason. A job that cannot load
or fails is a row of ``jobs.csv`` with its reason, never dropped. Resumable: the feature cache reuses every finished
entry, and the analysis is recomputed from it.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import paths
from ..alignment import layer_neighbours, prepare_features, sweep_from_neighbours
from ..stats import chance_level
from .cache import extract_request, load_request
from .cluster import plan_requests, run_plan
from .encoders import TINY_FAMILIES
from .errors import ExtractionError, RequestError
from .manifest import DataError
from .paper_models import loadability, read_models

__all__ = ["PLANS", "PAPER_TEXT", "FIG2_TEXT", "MINIATURE", "PaperRunRefused", "paper_grid", "plan_config",
           "paper_jobs", "missing_for_paper", "fig2_frames", "alignment_table", "eq2_fits", "compare_published",
           "retrieval_table", "fig2_fits",
           "caption_gains", "fig7_tables", "fig10_matrix", "matrix_table", "fig4_tables", "FIG4_LABELS",
           "NOT_BUILT_COLUMNS", "run_paper", "score_caveats", "score_encoder", "EVIDENCE"]

PLANS = ("paper", "miniature")
PAPER_TEXT = "gemma2_9b_it"                          # Figure 2's text model (a2_models.csv label)
FIG2_TEXT = ("gemma2_9b_it", "llama_7b", "gemma_7b")  # Figure 2's three regression lines
PAPER_N, PAPER_K, PAPER_CAPTIONS = 1024, 10, 1       # Sec. 3: 1,024 VaTeX videos, k = 10; Figure 2: one caption
RETRIEVAL_N = 10_000                                 # Sec. 5: 10,000-video test subsets of Kinetics-400 and SSv2
RETRIEVAL_PANELS = {"kinetics400": "k400", "ssv2": "ssv2", "synthetic_world": ""}  # dataset -> Figure 2's panel
MINIATURE = dict(n_clips=32, size=32, frames=(1, 4), captions=(1, 2), k=5)
EVIDENCE = {"paper": "real checkpoints on VaTeX, measured by this pipeline",
            "miniature": "plumbing: tiny random-initialised configs on the synthetic world (never evidence about the "
                         "paper's models; not compared with published numbers)"}
_NEVER = "no: the miniature runs random-weight tiny configs on the synthetic world (plumbing, not evidence)"
_MODEL_TYPE = {"video": "native_video", "image": "image_on_image", "image-on-video": "image_on_video"}


class PaperRunRefused(RequestError):
    """The paper plan cannot run here: ``missing`` lists what is lacking, one line each; ``str()`` is one line
    (as every :class:`RequestError`), :meth:`lines` the list to print."""

    permanent = False

    def __init__(self, missing: list[str]):
        self.missing = list(missing)
        super().__init__(self.lines())

    def lines(self) -> str:
        items = "\n".join(f"  - {m}" for m in self.missing)
        return (f"The paper plan cannot run here: {len(self.missing)} thing(s) missing (nothing was loaded or "
                f"computed).\n{items}\nOn a machine with the VaTeX videos and network: make paper "
                "VIDEO_ROOT=/path/to/vatex ALLOW_DOWNLOAD=1 (or fill the Hugging Face cache first). Offline here: "
                "make paper PLAN=miniature.")


def paper_grid() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Figure 3's grid: (frame counts, caption counts) of the digitised Figure 3 table.

    >>> paper_grid()
    ((1, 2, 4, 8, 12, 16, 32, 48), (1, 2, 4, 10))
    """
    grid = pd.read_csv(paths.paper_csv("fig3_vatex_scaling_frames_digitized"))
    frames, captions = (tuple(sorted(int(v) for v in grid[c].unique())) for c in ("n_frames", "n_captions"))
    return frames, captions


def plan_config(plan: str, video_root=None, json_file=None, retrieval: dict | None = None) -> dict:
    """Dataset, options, grid and k of a plan, and the labelled set of Figure 2's retrieval axis. ``paper``:
    VaTeX, 1,024 seeded videos (``video_root`` holds ``<id>.mp4``; ``json_file`` the official 10-caption JSON
    when given), Figure 3's grid, k = 10; ``retrieval`` (``dataset`` kinetics400 or ssv2, ``video_root``,
    ``list_file``): the paper's 10,000-video seeded test subset, or None (Figure 2's x-axis is then not built).
    ``miniature``: :data:`MINIATURE`, retrieval on the same synthetic clips (their class labels).

    >>> plan_config("miniature")["frames"], plan_config("miniature")["options"]
    ((1, 4), {'n_clips': 32, 'size': 32})
    >>> plan_config("paper", retrieval=dict(dataset="ssv2", video_root="/v", list_file="/l.json"))["retrieval"]
    {'dataset': 'ssv2', 'options': {'video_root': '/v', 'list_file': '/l.json', 'n_items': 10000, 'sample_seed': 0}}
    """
    if plan == "paper":
        frames, captions = paper_grid()
        options = {"n_items": PAPER_N, "sample_seed": 0}
        if video_root:
            options["video_root"] = str(video_root)
        if json_file:
            options["json_file"] = str(json_file)
        return dict(dataset="vatex", options=options, frames=frames, captions=captions, k=PAPER_K,
                    retrieval=_retrieval_config(retrieval))
    if plan == "miniature":
        m = MINIATURE
        options = {"n_clips": m["n_clips"], "size": m["size"]}
        return dict(dataset="synthetic_world", options=options, frames=m["frames"], captions=m["captions"], k=m["k"],
                    retrieval=dict(dataset="synthetic_world", options=dict(options)))
    raise ValueError(f"plan must be one of {PLANS}, got {plan!r}.")


def _retrieval_config(retrieval: dict | None) -> dict | None:
    """The paper plan's retrieval set from the user's ``dataset``, ``video_root`` and ``list_file``: a clear error
    names what is missing before any work."""
    if not retrieval or not retrieval.get("dataset"):
        return None
    name = retrieval["dataset"]
    if not RETRIEVAL_PANELS.get(name):  # the miniature's own clips are no panel of Figure 2
        raise ValueError(f"the retrieval set must be one of {sorted(k for k, v in RETRIEVAL_PANELS.items() if v)} "
                         f"(Figure 2's panels), got {name!r}.")
    missing = [k for k in ("video_root", "list_file") if not retrieval.get(k)]
    if missing:
        raise ValueError(f"retrieval on {name} needs {' and '.join(missing)} (make paper RETRIEVAL={name} "
                         "RETRIEVAL_ROOT=<folder of the test videos> RETRIEVAL_LIST=<the official test list>).")
    return dict(dataset=name, options=dict(video_root=str(retrieval["video_root"]),
                                           list_file=str(retrieval["list_file"]), n_items=RETRIEVAL_N,
                                           sample_seed=0))


_NO_TINY = {"clip": " (a full CLIP checkpoint; its vision tower's loader runs as tiny-clip, and "
                     "tests/test_hf_families.py loads a tiny full checkpoint from a folder)",
            "gemma3": " (the Gemma 3 multimodal checkpoint; its text tower's config runs as tiny-gemma3, and "
                      "tests/test_hf_families.py loads a tiny multimodal checkpoint from a folder)",
            "videomae_v2": " (remote code: tests/test_remote_code.py loads a local module following its interface)"}


def _tiny_for(loader: str) -> str | None:
    """The first tiny config whose model type is ``loader`` (``tiny-llama`` for ``llama``), or None."""
    return next((f"tiny-{name}" for name, fam in TINY_FAMILIES.items() if fam.model_type == loader), None)


def _job(label, model, side, setting, loader, loadable, why, cfg, stands_for="", revision="", remote=False,
         native=""):
    frames = (1,) if setting == "image" else cfg["frames"]
    return dict(label=label, model=model, side=side, setting=setting, family_loader=loader,
                mode="image" if setting == "image" else "video", frames=" ".join(map(str, frames)) if side == "vision"
                else "", captions=" ".join(map(str, cfg["captions"])) if side == "language" else "",
                native_frames=native, stands_for=stands_for, revision=revision, needs_remote_code=remote,
                loadable="yes" if loadable else "no", why_not=why)


def paper_jobs(plan: str, models: pd.DataFrame | None = None, **loadability_options) -> pd.DataFrame:
    """One row per (model, setting) job of a plan, every row kept (``loadable`` no with ``why_not``).

    Columns: label, model (the id or folder loaded), side, setting, family_loader, mode, frames and captions
    (the counts, space-separated), native_frames, stands_for (the paper rows a tiny job stands for), revision,
    needs_remote_code, loadable, why_not.
    ``paper``: the 121 rows of ``a2_models.csv``, loadability decided now
    (:func:`~vtalign.extract.paper_models.loadability`). ``miniature``: per loader the paper's rows use, the
    tiny config of that model type in each setting those rows have; a loader with no tiny config is one row
    saying so.

    >>> jobs = paper_jobs("miniature")
    >>> int((jobs.loadable == "yes").sum()), sorted(jobs[jobs.side == "language"].model)[1:3]
    (16, ['tiny-bloom', 'tiny-gemma'])
    """
    models = read_models() if models is None else models
    cfg = plan_config(plan)
    rows = []
    if plan == "paper":
        for _, r in models.iterrows():
            ok, why = loadability(r, **loadability_options)
            rows.append(_job(r.label, r.hf_id, r.side, r.setting, r.family_loader, ok, why, cfg, revision=r.revision,
                             remote=r.needs_remote_code == "yes", native=r.native_frames))
        return pd.DataFrame(rows)
    for loader, sub in models.groupby("family_loader", sort=False):
        labels = ", ".join(sub.label.unique())
        tiny = _tiny_for(loader) if loader else None
        if tiny is None:
            ok, reason = loadability(sub.iloc[0], **loadability_options)
            why = (f"no registered tiny-* config of loader {loader!r}"
                   + (_NO_TINY.get(loader, "") if ok else f"; its paper rows do not load here: {reason}")
                   if loader else "these paper rows have no loader (no public checkpoint, or not in transformers)")
            rows.append(_job(f"({loader or 'no loader'})", "", sub.side.iloc[0], "", loader, False, why, cfg,
                             stands_for=labels))
            continue
        for setting in dict.fromkeys(sub.setting):
            rows.append(_job(tiny, tiny, sub.side.iloc[0], setting, loader, True, "", cfg, stands_for=labels,
                             native="1" if setting != "video" else ""))
    return pd.DataFrame(rows)


def _text_models(plan: str, jobs: pd.DataFrame) -> list[str]:
    """Labels of the text models Figure 2 uses: the paper's three LLMs; in the miniature the tiny configs of
    their loaders (Gemma 2 first: it stands for Gemma-2-9B-it)."""
    if plan == "paper":
        return [t for t in FIG2_TEXT if t in set(jobs.label)]
    models = read_models().set_index("label")
    return list(dict.fromkeys(_tiny_for(models.loc[t, "family_loader"]) for t in FIG2_TEXT))


def missing_for_paper(jobs: pd.DataFrame, video_root=None, allow_download: bool = False,
                      in_cache=None, json_file=None, retrieval: dict | None = None) -> list[str]:
    """What the paper plan lacks here, one line each: the VaTeX videos (``video_root``: a folder holding
    ``<videoID>.mp4`` for each of the 1,024 sampled videos), and without
    ``allow_download`` each loadable model whose ``config.json`` is not in the local Hugging Face cache
    (``in_cache(hf_id, revision)`` decides; default: :func:`huggingface_hub.try_to_load_from_cache`).
    ``retrieval`` (:func:`plan_config`'s): the labelled set of Figure 2's x-axis, built once to check its videos
    and list. Empty: nothing missing (weights are then checked when each model loads; a failure is recorded).

    >>> missing_for_paper(pd.DataFrame([dict(label="a", model="x/y", revision="", loadable="yes")]),
    ...                   in_cache=lambda i, r: False)[1]
    'weights of a (x/y): not in the local Hugging Face cache'
    """
    out = []
    if not video_root:
        out.append("VaTeX videos: no video_root given (VIDEO_ROOT=/path/to/vatex or --option video_root=...; files "
                   "<videoID>.mp4; the official download page is in data_manifest/datasets.toml)")
    elif not Path(video_root).is_dir():
        out.append(f"VaTeX videos: video_root {video_root} is not a folder")
    else:
        from .validation import build_dataset

        try:  # the dataset checks that every sampled video is there
            build_dataset("vatex", plan_config("paper", video_root, json_file)["options"])
        except DataError as err:
            out.append(f"VaTeX videos: {' '.join(str(err).split())}")
    if retrieval:
        from .validation import build_dataset

        try:  # every one of the 10,000 sampled test videos present, the list readable
            build_dataset(retrieval["dataset"], retrieval["options"])
        except (DataError, ValueError, OSError) as err:
            out.append(f"retrieval set ({retrieval['dataset']}): {' '.join(str(err).split())}")
    if allow_download:
        return out
    in_cache = in_cache or _in_hf_cache
    loadable = jobs[jobs.loadable == "yes"].drop_duplicates(["model", "revision"])
    for r in loadable.itertuples():
        if not in_cache(r.model, r.revision or None):
            out.append(f"weights of {r.label} ({r.model}): not in the local Hugging Face cache")
    return out


def _in_hf_cache(repo_id: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001  (an id the hub library rejects is not cached)
        return False
    return isinstance(found, str)


def fig2_frames(setting: str, native, grid: tuple[int, ...]) -> int:
    """The frame count of a vision representation's Figure 2 point: 1 for an image model on images; a video
    model's native frame count, or the largest grid count below it; an image model on video averages
    8 frames (the paper does not state how many; assumed), or the largest grid count below 8.

    >>> fig2_frames("video", "16", (1, 2, 4, 8, 12, 16, 32, 48)), fig2_frames("image-on-video", "1", (1, 4))
    (16, 4)
    """
    if setting == "image":
        return 1
    target = int(native) if setting == "video" and str(native).isdigit() else 8
    below = [f for f in grid if f <= target]
    return max(below) if below else min(grid)


@dataclass
class _Neighbours:
    """Per-representation kNN lists, computed once and reused by every pair."""
    k: int
    cache_dir: object = None
    found: dict = field(default_factory=dict)

    def __call__(self, request):
        if request not in self.found:
            feats, meta = load_request(request, self.cache_dir)
            prepared = prepare_features(feats, q=0.95, layer_dims=meta.get("layer_dims"))
            self.found[request] = (list(meta["item_ids"]), layer_neighbours(prepared, self.k, name=request.model))
        return self.found[request]


def alignment_table(pairs, k: int, cache_dir=None, neighbours=None) -> pd.DataFrame:
    """Best-layer mutual k-NN alignment of each (vision request, text request, extra columns) pair, from the
    cache (the reference preparation, q = 0.95; every layer pair swept; ties: the first in row-major order).

    Returns one row per pair: the extra columns, frames, captions, score, layer_x, layer_y, n_items, k, chance.
    Raises ``ValueError`` when two representations hold other items (a sweep pairs items by position).
    ``neighbours``: a :class:`_Neighbours` of the same k to share kNN lists between calls (default: a new one).
    """
    nb = neighbours or _Neighbours(k, cache_dir)
    rows = []
    for vision, text, extra in pairs:
        ids_x, nx = nb(vision)
        ids_y, ny = nb(text)
        if ids_x != ids_y:
            raise ValueError(f"{vision.model} and {text.model} hold other items; re-extract them on the same items.")
        i, j, score = sweep_from_neighbours(nx, ny).best
        rows.append({**extra, "frames": vision.frames, "captions": text.captions, "score": score, "layer_x": i,
                     "layer_y": j, "n_items": len(ids_x), "k": k, "chance": chance_level(len(ids_x), k)})
    return pd.DataFrame(rows)


def eq2_fits(grid: pd.DataFrame) -> pd.DataFrame:
    """Eq. 2 fitted to each vision model's Figure 3 grid (columns label, n_frames, n_captions, score).

    One row per label: status (``fitted`` or ``not fitted: <reason>``), r2, s_inf, c_f, alpha, c_c, beta
    (NaN when not fitted: Eq. 2 has 5 parameters, so a 2 x 2 grid's 4 points cannot fit it).
    """
    from ..scaling import InsufficientData, fit_scaling_law

    rows = []
    for label, sub in grid.groupby("label", sort=False):
        row = dict(label=label, n_points=len(sub), status="fitted", r2=np.nan)
        row.update(dict.fromkeys(("s_inf", "c_f", "alpha", "c_c", "beta"), np.nan))
        try:
            fit = fit_scaling_law(sub.n_frames, sub.n_captions, sub.score)
            row.update(r2=fit.r2, **fit.params)
        except (InsufficientData, RuntimeError, ValueError) as err:
            row["status"] = f"not fitted: {' '.join(str(err).split())}"
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------------- #
# Figures 4, 7, 10, 11 and 12 from the plan's features (Table 1: eq2_fits and table1_compare above)
# --------------------------------------------------------------------------------------------------------------- #
# Figure 4's model names -> a2_models.csv labels, and how sure that match is ("" where the A.2 list has no row).
FIG4_LABELS = {"4DS-S": ("", "no row in the A.2 list"), "4DS-B": ("", "no row in the A.2 list"),
               "4DS-L": ("", "no row in the A.2 list"), "4DS-G": ("", "no row in the A.2 list"),
               "4DS-e": ("4ds_e", "same name"),
               "VideoMAE-B": ("videomae_base_k400", "uncertain: the self-supervised K400 ViT-B is assumed"),
               "VideoMAE-L": ("", "no ViT-L VideoMAE row in the A.2 list"),
               "VideoMAE-H": ("videomae_huge_finetuned_kinetics",
                              "uncertain: the A.2 list's only ViT-H VideoMAE is fine-tuned on Kinetics labels"),
               "VJEPA-H": ("vjepa_huge", "same name (V-JEPA v1)")}
FIG4_LOWER_IS_BETTER = ("re10k_camera_pose", "scannet_depth")  # errors, as the paper's Figure 4 axes say
FIG7_PRINTED = "fig7_fit_printed"
NOT_BUILT_COLUMNS = ["evidence", "figure", "part", "reason"]


def _not_built(evidence: str, figure: str, part: str, reason: str) -> dict:
    return dict(evidence=evidence, figure=figure, part=part, reason=" ".join(str(reason).split()))


def caption_gains(grid: pd.DataFrame, one: int = 1, many: int | None = None) -> pd.DataFrame:
    """Figure 7's pairs, the test_time_scaling chapter's definition (:func:`vtalign.scaling.caption_gain_pairs`):
    per label and frame count, the score with ``one`` caption and with ``many`` (default: the grid's largest
    count), and ``gain`` = many / one - 1.

    grid : columns label, n_frames, n_captions, score. Returns label, n_frames, one_caption, all_captions,
    many, gain (empty when no frame count has both counts).

    >>> g = pd.DataFrame(dict(label="m", n_frames=[1, 1], n_captions=[1, 10], score=[0.1, 0.16]))
    >>> caption_gains(g)[["many", "gain"]].round(6).values.tolist()
    [[10.0, 0.6]]
    """
    from ..scaling import caption_gain_pairs

    cols = ["label", "n_frames", "one_caption", "all_captions", "many", "gain"]
    if grid.empty:
        return pd.DataFrame(columns=cols)
    many = many or int(grid.n_captions.max())
    pairs = caption_gain_pairs(grid.rename(columns={"label": "model"}), one, many).rename(columns={"model": "label"})
    return pairs.assign(many=many, gain=pairs.all_captions / pairs.one_caption - 1)[cols]


def fig7_tables(plan: str, grid: pd.DataFrame, published_grid: pd.DataFrame | None = None,
                printed: pd.DataFrame | None = None) -> tuple[dict, list[dict]]:
    """Figure 7 from the plan's Figure 3 grid: ``fig7_pairs`` (:func:`caption_gains` of this run),
    ``fig7_compare`` (per model: this run's mean gain over frame counts beside the same quantity of the
    digitised Figure 3 grid, 1 -> 10 captions: the paper's data re-analysed, as Figure 7's points are not
    published) and ``fig7_fit`` (this run's line all-captions = slope x one-caption + intercept beside the
    printed one). Returns (tables, not_built rows)."""
    from ..checks import InsufficientData
    from ..correlation import linear_fit

    evidence = EVIDENCE[plan]
    published_grid = (pd.read_csv(paths.paper_csv("fig3_vatex_scaling_frames_digitized")).rename(
        columns={"model": "label"}) if published_grid is None else published_grid)
    printed = pd.read_csv(paths.paper_csv(FIG7_PRINTED)) if printed is None else printed
    pairs = caption_gains(grid[["label", "n_frames", "n_captions", "score"]])
    pairs.insert(0, "evidence", evidence)
    pub = caption_gains(published_grid, 1, 10).groupby("label", sort=False).gain.mean().rename("published_gain")
    mine = pairs.groupby("label", sort=False).agg(this_run_gain=("gain", "mean"), this_run_many=("many", "first"),
                                                  frame_counts=("n_frames", "size"))
    both = mine.join(pub, how="outer").reset_index().rename(columns={"index": "label"})
    if plan == "miniature":
        both["comparable"] = _NEVER
    else:
        both["comparable"] = np.where(both.this_run_gain.notna() & both.published_gain.notna()
                                      & (both.this_run_many == 10), "yes: 1 -> 10 captions, mean over frame counts",
                                      "no: not run here, or not 10 captions")
    both.insert(0, "published_evidence", "the paper's Figure 3 (digitised), re-analysed: Figure 7's points are "
                                         "not published")
    both.insert(1, "this_run_evidence", evidence)
    p = printed.iloc[0]
    rows, not_built = [], []
    try:
        fit = linear_fit(pairs.one_caption, pairs.all_captions)
        mine_fit = dict(slope=fit.slope, intercept=fit.intercept, r=fit.r)
    except (InsufficientData, ValueError) as err:
        mine_fit = dict.fromkeys(("slope", "intercept", "r"), np.nan)
        not_built.append(_not_built(evidence, "Figure 7", "this run's line", err))
    mine_fit["relative_gain"] = float(pairs.gain.mean()) if len(pairs) else np.nan
    gain = pd.read_csv(paths.paper_csv("printed_numbers")).set_index("quantity").value["fig7_caption_gain"]
    published = dict(slope=p.slope, intercept=p.intercept, r=p.r, relative_gain=float(gain))
    for q in ("slope", "intercept", "r", "relative_gain"):
        rows.append(dict(evidence=evidence, quantity=q, published=published[q], this_run=mine_fit[q],
                         comparable=_NEVER if plan == "miniature" else
                         "yes: same quantity (1 vs 10 captions)" if int(pairs.many.max() if len(pairs) else 0) == 10
                         else "no: the grid has no 10-caption point"))
    not_built.append(_not_built(evidence, "Figure 7", "published per-model points",
                                "the paper prints only the fit (y = 1.6x - 0.018, r = 0.998); per-model values "
                                "beside this run's are the digitised Figure 3 grid re-analysed"))
    return dict(fig7_pairs=pairs, fig7_compare=both, fig7_fit=pd.DataFrame(rows)), not_built


def fig10_matrix(neighbours: dict[str, np.ndarray], backend: str = "auto") -> pd.DataFrame:
    """Figure 10 as a CSV table: :func:`vtalign.alignment.cross_model_matrix` of ``neighbours``
    (name -> [layers, N, k] kNN lists of the same items), with the row names as a first column
    ``representation``.

    >>> nb = {"a": np.array([[[1], [0], [3], [2]]]), "b": np.array([[[1], [2], [3], [0]]])}
    >>> fig10_matrix(nb).values.tolist()
    [['a', 1.0, 0.5], ['b', 0.5, 1.0]]
    """
    from ..alignment import cross_model_matrix

    m = cross_model_matrix(neighbours, backend)
    return m.rename_axis("representation").reset_index()


def matrix_table(long: pd.DataFrame) -> pd.DataFrame:
    """Figures 11 and 12 in the paper's layout: rows ``<vision> (<its best score>) <its layers>``, columns
    ``<text> (<its best score>) <its layers>``, cells ``<score> (<layer_i>, <layer_j>)``.

    long : columns vision, text, score, layer_x, layer_y, n_layers_x, n_layers_y (one row per pair).

    >>> long = pd.DataFrame(dict(vision=["v", "v"], text=["a", "b"], score=[0.25, 0.5], layer_x=[1, 2],
    ...                          layer_y=[3, 0], n_layers_x=4, n_layers_y=[5, 6]))
    >>> matrix_table(long).values.tolist()
    [['v (0.500) 4', '0.250 (1, 3)', '0.500 (2, 0)']]
    >>> list(matrix_table(long).columns)
    ['vision', 'a (0.250) 5', 'b (0.500) 6']
    """
    def name(side, layers):
        best = long.groupby(side, sort=False).score.max()
        n = long.groupby(side, sort=False)[layers].first()
        return {k: f"{k} ({best[k]:.3f}) {int(n[k])}" for k in best.index}

    rows, cols = name("vision", "n_layers_x"), name("text", "n_layers_y")
    cell = long.assign(cell=[f"{s:.3f} ({int(i)}, {int(j)})" for s, i, j in zip(long.score, long.layer_x,
                                                                                  long.layer_y)])
    wide = cell.pivot(index="vision", columns="text", values="cell")
    wide = wide.loc[list(rows), list(cols)].rename(index=rows, columns=cols)
    wide.columns.name = None
    return wide.rename_axis("vision").reset_index()


def fig4_tables(plan: str, fig2: pd.DataFrame, published: pd.DataFrame | None = None,
                printed: pd.DataFrame | None = None, n_boot: int = 2000, seed: int = 0) -> tuple[dict, list[dict]]:
    """Figure 4 with this run's alignments: the downstream scores cannot be measured here, so each task's
    x is the paper's published downstream number and y the alignment this run measured (its Figure 2 point)
    for the same model; Pearson r per task over the models both have (:func:`vtalign.correlation.correlate`),
    beside the printed r.

    ``paper``: Figure 4's models matched to a2_models.csv labels by :data:`FIG4_LABELS` (native video
    setting). ``miniature``: the plan's native-video representations paired with Figure 4's rows in order,
    which exercises the code and means nothing. Returns (dict(fig4_points, fig4_correlations), not_built rows).
    """
    from ..checks import InsufficientData
    from ..correlation import correlate

    evidence = EVIDENCE[plan]
    published = pd.read_csv(paths.paper_csv("fig4_downstream_digitized")) if published is None else published
    printed = pd.read_csv(paths.paper_csv("fig4_printed_pearson")) if printed is None else printed
    tasks = [c for c in published.columns if c not in ("model", "alignment")]
    video = fig2[fig2.setting == "video"].drop_duplicates("label")
    if plan == "miniature":
        labels = list(video.label) + [""] * max(0, len(published) - len(video))
        match = dict(zip(published.model, zip(labels, ["plumbing: paired in order, means nothing"] * len(labels))))
    else:
        match = {m: FIG4_LABELS.get(m, ("", "not in FIG4_LABELS")) for m in published.model}
    by_label = video.set_index("label").alignment
    pts = published.rename(columns={"alignment": "published_alignment", **{t: f"published_{t}" for t in tasks}})
    pts.insert(1, "label", [match[m][0] for m in published.model])
    pts.insert(2, "match", [match[m][1] for m in published.model])
    pts["this_run_alignment"] = [by_label.get(lab, np.nan) if lab else np.nan for lab in pts.label]
    pts.insert(0, "evidence", f"downstream: published (digitised); alignment: {evidence}")
    rows, not_built = [], []
    have = pts[pts.this_run_alignment.notna()]
    pub_r = printed.set_index("task")
    for t in tasks:
        row = dict(evidence=evidence, task=t, lower_is_better=t in FIG4_LOWER_IS_BETTER, n=len(have),
                   status="computed", this_run_pearson_r=np.nan, this_run_pearson_p=np.nan, ci_low=np.nan,
                   ci_high=np.nan)
        try:
            c = correlate(have[f"published_{t}"], have.this_run_alignment, n_boot=n_boot, seed=seed)
            row.update(this_run_pearson_r=c.pearson_r, this_run_pearson_p=c.pearson_p, ci_low=c.ci_low,
                       ci_high=c.ci_high)
        except (InsufficientData, ValueError) as err:
            row["status"] = f"not computed: {' '.join(str(err).split())}"
            not_built.append(_not_built(evidence, "Figure 4", f"r for {t}", err))
        row["published_pearson_r"] = pub_r.pearson_r.get(t, np.nan)
        row["published_p_value"] = pub_r.p_value.get(t, np.nan)
        row["comparable"] = (_NEVER if plan == "miniature" else
                             f"yes: the paper's {len(published)} models" if len(have) == len(published) else
                             f"no: {len(have)} of the paper's {len(published)} models measured here")
        rows.append(row)
    not_built.append(_not_built(evidence, "Figure 4", "downstream scores",
                                "the six downstream results (frozen-feature decoders trained on SSv2, Kinetics, "
                                "Perception Test, RealEstate10k, ScanNet, Waymo) cannot be measured here; the "
                                "published ones are used as x"))
    return dict(fig4_points=pts, fig4_correlations=pd.DataFrame(rows)), not_built


def _matrix_pairs(vision, text_reqs: dict, captions_of) -> list:
    """(vision request, text request, extra) for every vision representation x text model at the caption
    count ``captions_of(text requests by count)`` picks."""
    out = []
    for job, req in vision:
        for t, by_c in text_reqs.items():
            c = captions_of(by_c)
            if c in by_c:
                out.append((req, by_c[c], dict(vision=f"{job.label} ({job.setting})", label=job.label,
                                              setting=job.setting, text=t)))
    return out


def _matrix_long(pairs, k, nb, cache_dir, evidence) -> pd.DataFrame:
    cols = ["evidence", "vision", "label", "setting", "text", "frames", "captions", "score", "layer_x", "layer_y",
            "n_layers_x", "n_layers_y", "n_items", "k", "chance"]
    if not pairs:
        return pd.DataFrame(columns=cols)
    long = alignment_table(pairs, k, cache_dir, neighbours=nb)
    long["n_layers_x"] = [nb(v)[1].shape[0] for v, _, _ in pairs]
    long["n_layers_y"] = [nb(t)[1].shape[0] for _, t, _ in pairs]
    long.insert(0, "evidence", evidence)
    return long[cols]


def retrieval_table(plan: str, cfg: dict, jobs: pd.DataFrame, ret_made: dict, failed: dict, cache_dir=None,
                    n_null: int = 5, seed: int = 0) -> tuple[pd.DataFrame, list[dict]]:
    """Figure 2's x-axis: the paper's retrieval metric (:func:`vtalign.probes.retrieval_accuracy`: weighted k-NN,
    k = 8, temperature 0.07, leave-one-out) of each vision job's last layer (raw features, its true width, as the
    live downstream chapter computes it) on the plan's labelled set, with ``chance`` the mean over ``n_null``
    seeded permutations of the labels (the features kept, their tie to the classes removed).

    Returns (one row per vision job planned: evidence, label, setting, frames, dataset, n_items, classes,
    retrieval_accuracy, chance, status; ``not_built`` rows for what could not be measured)."""
    from ..probes import RETRIEVAL_K, RETRIEVAL_TEMPERATURE, retrieval_accuracies
    from .validation import build_dataset

    evidence = EVIDENCE[plan]
    cols = ["evidence", "label", "setting", "frames", "dataset", "n_items", "classes", "retrieval_accuracy", "chance",
            "status"]
    ret = cfg.get("retrieval")
    if not ret:
        return pd.DataFrame(columns=cols), [_not_built(
            evidence, "Figure 2", "x-axis: retrieval accuracy",
            "no labelled test set was given: make paper RETRIEVAL=kinetics400 (or ssv2) RETRIEVAL_ROOT=<videos> "
            f"RETRIEVAL_LIST=<the official test list> measures it on a seeded {RETRIEVAL_N:,}-video subset")]
    label_of = {it.id: it.label for it in build_dataset(ret["dataset"], ret["options"]).items}
    rng = np.random.default_rng(seed)
    rows, not_built = [], []
    for i, request in ret_made.items():
        job = jobs.loc[i]
        row = dict(evidence=evidence, label=job.label, setting=job.setting, frames=request.frames,
                   dataset=ret["dataset"], n_items=np.nan, classes=np.nan, retrieval_accuracy=np.nan, chance=np.nan,
                   status="measured")
        if request in failed:
            row["status"] = f"failed: {failed[request]}"
            not_built.append(_not_built(evidence, "Figure 2", f"retrieval of {job.label} ({job.setting})",
                                        failed[request]))
            rows.append(row)
            continue
        feats, meta = load_request(request, cache_dir)
        last = feats.shape[1] - 1
        width = (meta.get("layer_dims") or [feats.shape[2]] * feats.shape[1])[last]
        y = np.array([str(label_of[item]) for item in meta["item_ids"]])
        sets = [y] + [rng.permutation(y) for _ in range(n_null)]
        acc = retrieval_accuracies(feats[:, last, :width], sets, RETRIEVAL_K, RETRIEVAL_TEMPERATURE)
        row.update(n_items=len(y), classes=len(set(y)), retrieval_accuracy=acc[0], chance=float(np.mean(acc[1:])))
        rows.append(row)
    return pd.DataFrame(rows, columns=cols), not_built


def fig2_fits(plan: str, cfg: dict, align: pd.DataFrame, retrieval: pd.DataFrame, vision, text_labels,
              n_boot: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, list[dict]]:
    """Figure 2's regression lines: per text model, Pearson r of alignment (one caption, each vision job's Figure 2
    frame count) on retrieval accuracy over the vision jobs that have both (:func:`vtalign.correlation.correlate`,
    bootstrap interval over models), beside the r printed in Figure 2's legend for that language model and panel.
    Returns (rows: evidence, text, panel, n, pearson_r, ci_low, ci_high, published_r, comparable; not_built)."""
    from ..checks import InsufficientData
    from ..correlation import correlate

    evidence = EVIDENCE[plan]
    cols = ["evidence", "text", "panel", "n", "pearson_r", "ci_low", "ci_high", "published_r", "comparable"]
    if retrieval.empty or retrieval.retrieval_accuracy.isna().all():
        return pd.DataFrame(columns=cols), []
    panel = RETRIEVAL_PANELS[cfg["retrieval"]["dataset"]]
    legend = pd.read_csv(paths.paper_csv("fig2_printed_legend_r"))
    x = retrieval.set_index(["label", "setting"]).retrieval_accuracy
    frames = {(job.label, job.setting): fig2_frames(job.setting, job.native_frames, _counts(job.frames))
              for _, job in vision}
    rows, not_built = [], []
    for t in text_labels:
        a = align[(align.text == t) & (align.captions == 1)]
        a = a[[frames.get((lab, st)) == f for lab, st, f in zip(a.label, a.setting, a.frames)]]
        both = a.assign(x=[x.get((lab, st), np.nan) for lab, st in zip(a.label, a.setting)]).dropna(subset=["x"])
        pub = legend[(legend.llm == t.replace("_", "-")) & (legend.panel == panel)].r
        row = dict(evidence=evidence, text=t, panel=panel or "(own clips)", n=len(both), pearson_r=np.nan,
                   ci_low=np.nan, ci_high=np.nan, published_r=float(pub.iloc[0]) if len(pub) else np.nan,
                   comparable=_NEVER if plan == "miniature" else
                   "yes: same metric, panel and language model" if len(pub) else "no: no printed r for this pair")
        try:
            c = correlate(both.x, both.score, n_boot=n_boot, seed=seed)
            row.update(pearson_r=c.pearson_r, ci_low=c.ci_low, ci_high=c.ci_high)
        except (InsufficientData, ValueError) as err:
            not_built.append(_not_built(evidence, "Figure 2", f"regression line for {t}", err))
        rows.append(row)
    return pd.DataFrame(rows, columns=cols), not_built


def _refuse(plan: str, jobs: pd.DataFrame, video_root, allow_download: bool, in_cache=None, json_file=None,
            retrieval: dict | None = None) -> None:
    missing = missing_for_paper(jobs, video_root, allow_download, in_cache, json_file, retrieval)
    if missing:
        raise PaperRunRefused(missing)


def _load_options(job, allow_download: bool, trust_remote_code: bool, dtype: str | None) -> dict:
    if str(job.model).startswith("tiny-"):
        return {}
    opts = dict(allow_download=allow_download, revision=job.revision or None,
                trust_remote_code=bool(trust_remote_code and job.needs_remote_code), dtype=dtype, device_map=None)
    return {k: v for k, v in opts.items() if v}


def _counts(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in str(text).split())


def run_paper(plan: str = "miniature", *, cluster: str | None = None, workers: int | None = None,
              device: str = "auto", video_root=None, json_file=None, allow_download: bool = False,
              trust_remote_code: bool = False, dtype: str | None = None, cache_dir=None, out=None,
              progress: bool = False, jobs: pd.DataFrame | None = None, in_cache=None, log=print,
              retrieval: dict | None = None) -> dict:
    """Run a plan end to end and write its tables; returns ``{name: DataFrame}`` of what was written.

    ``out`` (default ``results/paper/<plan>/``) receives: ``jobs.csv`` (every job: status computed / reused /
    failed / not loadable, with the reason), ``alignment.csv`` (every vision representation x Figure 2's text
    models at one caption, and Figure 3's grid with the first text model), ``fig2_points.csv``,
    ``fig3_grid.csv``, ``eq2_fits.csv``, ``fig2_compare.csv``, ``fig3_compare.csv``, ``table1_compare.csv``
    (this run beside the published/digitised numbers where the labels match; the miniature is never compared),
    Figures 4, 7, 10, 11 and 12: ``fig4_points.csv`` and ``fig4_correlations.csv`` (the published downstream
    numbers against this run's alignment), ``fig7_pairs.csv``, ``fig7_compare.csv``, ``fig7_fit.csv``,
    ``fig10_matrix.csv``, ``fig11_long.csv`` / ``fig11_matrix.csv``, ``fig12_long.csv`` / ``fig12_matrix.csv``,
    and ``not_built.csv`` (what cannot be built from the plan's features,
    with why). ``report.md`` and ``run.json`` (plan, dataset, caption source, grid, k, seconds, when).
    ``fig2_retrieval.csv`` and ``fig2_fits.csv``: Figure 2's x-axis, the paper's retrieval metric on a labelled
    set (``retrieval``: ``dataset`` kinetics400 or ssv2, ``video_root``, ``list_file``; the miniature uses its
    own clips' classes), and its regression lines (alignment on retrieval, r per text model beside the printed r).
    ``cluster``: make the features on Ray (``local``, ``auto``, ``ray://host:port``).
    The paper plan is refused before any work when the videos or weights are missing (:class:`PaperRunRefused`).
    """
    start = time.perf_counter()
    cfg = plan_config(plan, video_root, json_file, retrieval)
    jobs = paper_jobs(plan) if jobs is None else jobs.copy()
    if plan == "paper":
        _refuse(plan, jobs, video_root, allow_download, in_cache, json_file, cfg["retrieval"])
    out = Path(out) if out is not None else paths.results_dir(f"paper/{plan}")
    out.mkdir(parents=True, exist_ok=True)
    jobs["status"] = np.where(jobs.loadable == "yes", "pending", "not loadable")
    jobs["reason"] = jobs.why_not
    jobs["entries"] = 0
    made: dict[int, list] = {}
    for i, job in jobs[jobs.loadable == "yes"].iterrows():
        try:
            made[i] = plan_requests(cfg["dataset"], [job.model], _counts(job.frames) or (1,),
                                    _counts(job.captions) or (1,), job["mode"], 0, cfg["options"],
                                    load_options=_load_options(job, allow_download, trust_remote_code, dtype))
        except (RequestError, DataError, OSError) as err:
            jobs.loc[i, ["status", "reason"]] = ["failed", " ".join(str(err).split())]
    ret = cfg["retrieval"]
    ret_made: dict[int, object] = {}  # vision job -> its request on the retrieval set (Figure 2's frame count)
    for i in made if ret else ():
        job = jobs.loc[i]
        if job.side != "vision":
            continue
        f = fig2_frames(job.setting, job.native_frames, _counts(job.frames))
        try:
            ret_made[i] = plan_requests(ret["dataset"], [job.model], (f,), (1,), job["mode"], 0, ret["options"],
                                        load_options=_load_options(job, allow_download, trust_remote_code, dtype))[0]
        except (RequestError, DataError, OSError) as err:
            jobs.loc[i, "reason"] = f"retrieval not planned: {' '.join(str(err).split())}"
    # the miniature's retrieval entries are its Figure 2 entries (same clips): one request each
    requests = list(dict.fromkeys([r for rs in made.values() for r in rs] + list(ret_made.values())))
    log(f"{plan}: {len(jobs)} job(s), {len(made)} planned as {len(requests)} cache entries "
        f"({cfg['dataset']}, {len(next(iter(requests)).data) if requests else 0} items)")
    failed: dict = {}
    if cluster:
        summary = run_plan(requests, cluster, workers, device, cache_dir=cache_dir, progress=progress)
        for r, s in zip(requests, summary.itertuples()):
            if s.status == "failed":
                failed[r] = " ".join(str(s.error).split())
    else:
        for r in requests:
            try:
                extract_request(r, device=device, cache_dir=cache_dir, progress=progress)
            except (ExtractionError, DataError, RequestError, OSError, RuntimeError) as err:
                failed[r] = f"{type(err).__name__}: {' '.join(str(err).split())}"
    for i, rs in made.items():
        bad = [failed[r] for r in rs if r in failed]
        jobs.loc[i, "entries"] = len(rs) - len(bad)
        jobs.loc[i, ["status", "reason"]] = (["failed", bad[0]] if bad else ["done", ""])
    tables = _analyse(plan, cfg, jobs, made, failed, cache_dir, ret_made)
    tables["jobs"] = jobs
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    source = _caption_source(cfg, requests)
    seconds = time.perf_counter() - start
    (out / "report.md").write_text(_report(plan, cfg, tables, seconds, source))
    record = dict(plan=plan, evidence=EVIDENCE[plan], dataset=cfg["dataset"], caption_source=source,
                  tables=sorted(f"{n}.csv" for n in tables),
                  options={k: v for k, v in cfg["options"].items() if k != "video_root"}, frames=list(cfg["frames"]),
                  captions=list(cfg["captions"]), k=cfg["k"], seconds=round(seconds, 1), cluster=cluster,
                  finished=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    (out / "run.json").write_text(json.dumps(record, indent=1))
    log(f"{plan}: wrote {len(tables)} tables and report.md to {out} in {seconds:.1f} s")
    return tables


def _analyse(plan, cfg, jobs, made, failed, cache_dir, ret_made=None) -> dict:
    ok = {i: [r for r in rs if r not in failed] for i, rs in made.items()}
    nb = _Neighbours(cfg["k"], cache_dir)
    text_labels = _text_models(plan, jobs)
    text = {}
    for t in text_labels:
        idx = jobs.index[(jobs.label == t) & (jobs.status == "done")]
        if len(idx):
            text[t] = {r.captions: r for r in ok[idx[0]]}
    vision = [(i, jobs.loc[i]) for i in ok if jobs.loc[i, "side"] == "vision" and jobs.loc[i, "status"] == "done"]
    pairs = []
    for i, job in vision:
        for t, by_c in text.items():
            for r in ok[i]:
                for c, tr in by_c.items():
                    if c == 1 or (t == text_labels[0] and job.setting != "image"):
                        pairs.append((r, tr, dict(label=job.label, setting=job.setting, text=t)))
    align = alignment_table(pairs, cfg["k"], cache_dir, neighbours=nb) if pairs else pd.DataFrame(
        columns=["label", "setting", "text", "frames", "captions", "score", "layer_x", "layer_y", "n_items", "k",
                 "chance"])
    evidence = EVIDENCE[plan]
    align.insert(0, "evidence", evidence)
    first = text_labels[0] if text_labels else None
    fig2 = []
    for i, job in vision:
        f = fig2_frames(job.setting, job.native_frames, _counts(job.frames))
        hit = align[(align.label == job.label) & (align.setting == job.setting) & (align.text == first)
                    & (align.frames == f) & (align.captions == 1)]
        if len(hit):
            fig2.append(dict(evidence=evidence, label=job.label, setting=job.setting,
                             model_type=_MODEL_TYPE[job.setting], frames=f, text=first,
                             alignment=float(hit.score.iloc[0])))
    fig2 = pd.DataFrame(fig2, columns=["evidence", "label", "setting", "model_type", "frames", "text", "alignment"])
    retrieval, ret_not_built = retrieval_table(plan, cfg, jobs, ret_made or {}, failed, cache_dir)
    fig2 = fig2.merge(retrieval[["label", "setting", "retrieval_accuracy"]], on=["label", "setting"], how="left")
    grid = align[(align.text == first) & (align.setting != "image")]
    grid = grid.rename(columns={"frames": "n_frames", "captions": "n_captions"})[
        ["evidence", "label", "setting", "n_frames", "n_captions", "score"]]
    fits = eq2_fits(grid.assign(label=grid.label + " (" + grid.setting + ")")) if len(grid) else pd.DataFrame(
        columns=["label", "n_points", "status"])
    fits.insert(0, "evidence", evidence)
    fig2_fit, fit_not_built = fig2_fits(plan, cfg, align, retrieval, vision, text_labels)
    tables = dict(alignment=align, fig2_points=fig2, fig2_retrieval=retrieval, fig2_fits=fig2_fit, fig3_grid=grid,
                  eq2_fits=fits, **compare_published(plan, fig2, grid, fits,
                                                     RETRIEVAL_PANELS.get((cfg["retrieval"] or {}).get("dataset"))
                                                     or "k400"))
    tables["not_built"] = pd.concat([tables["not_built"], pd.DataFrame(ret_not_built + fit_not_built,
                                                                       columns=NOT_BUILT_COLUMNS)], ignore_index=True)
    tables.update(_more_figures(plan, cfg, jobs, ok, vision, nb, cache_dir, tables))
    return tables


def _more_figures(plan, cfg, jobs, ok, vision, nb, cache_dir, tables) -> dict:
    """Figures 4, 7, 10, 11 and 12 (their tables, and ``not_built`` rows for what cannot be built) from the
    plan's features and the tables already made."""
    evidence = EVIDENCE[plan]
    not_built = [tables["not_built"]]
    # each vision job's Figure 2 representation (one frame count); every done text model's requests by count
    reps = []
    for i, job in vision:
        f = fig2_frames(job.setting, job.native_frames, _counts(job.frames))
        reps += [(job, r) for r in ok[i] if r.frames == f][:1]
    text_jobs = jobs[(jobs.side == "language") & (jobs.status == "done")]
    text = {t.label: {r.captions: r for r in ok[i]} for i, t in text_jobs.iterrows()}
    loader = dict(zip(text_jobs.label, text_jobs.family_loader.astype(str)))
    gemma = {t: by_c for t, by_c in text.items() if loader[t].startswith("gemma")}
    fig11 = _matrix_long(_matrix_pairs(reps, text, lambda by_c: 1), cfg["k"], nb, cache_dir, evidence)
    fig12 = _matrix_long(_matrix_pairs(reps, gemma, max), cfg["k"], nb, cache_dir, evidence)
    out = {}
    for name, long in (("fig11", fig11), ("fig12", fig12)):
        wide = matrix_table(long) if len(long) else pd.DataFrame(columns=["vision"])
        wide.insert(0, "evidence", evidence)
        out.update({f"{name}_long": long, f"{name}_matrix": wide})
    for fig, what in (("Figure 11", "one caption, every text model"), ("Figure 12", "all captions, Gemma models")):
        not_built.append(pd.DataFrame([_not_built(evidence, fig, "published matrix", f"the paper's {fig} ({what}) "
                                                  "is not digitised in this repository: this run's matrix is "
                                                  "built, nothing is compared")]))
    # Figure 10: the native video representations and the first text model at one caption
    first = _text_models(plan, jobs)[:1]
    named = {f"{job.label} ({job.setting})": r for job, r in reps if job.setting == "video"}
    named.update({f"{t} (1 caption)": text[t][1] for t in first if t in text and 1 in text[t]})
    if len({tuple(nb(r)[0]) for r in named.values()}) > 1:
        raise ValueError("Figure 10's representations hold other items; re-extract them on the same items.")
    m = fig10_matrix({n: nb(r)[1] for n, r in named.items()}) if len(named) >= 2 else pd.DataFrame(
        columns=["representation"])
    m.insert(0, "evidence", evidence)
    out["fig10_matrix"] = m
    not_built.append(pd.DataFrame([_not_built(evidence, "Figure 10", "published matrix; 4DS-e, TRAJAN, "
                                              "VideoMAEv2-g K710, V-JEPA v1", "the matrix is not digitised in this "
                                              "repository; those models have no loadable checkpoint here "
                                              "(a2_models.csv)")]))
    f7, nb7 = fig7_tables(plan, tables["fig3_grid"])
    f4, nb4 = fig4_tables(plan, tables["fig2_points"])
    out.update(f7)
    out.update(f4)
    out["not_built"] = pd.concat([*not_built, pd.DataFrame(nb7 + nb4, columns=NOT_BUILT_COLUMNS)],
                                 ignore_index=True)[NOT_BUILT_COLUMNS]
    return out


def compare_published(plan, fig2, grid, fits, panel: str = "k400") -> dict:
    """This run's points beside the published/digitised ones: ``fig2_compare`` (Figure 2's ``panel``: k400 or
    ssv2, the set retrieval ran on; matched by label and model type; alignment, and retrieval accuracy where
    this run measured it), ``fig3_compare`` (by label, frames, captions), ``table1_compare`` (Eq. 2's
    VaTeX parameters, by label), and ``not_built`` (Table 1's PVD rows: the plan runs VaTeX only). Every published
    row is kept; ``comparable`` says yes (and on what) or no (and why). The miniature is never matched (its rows
    carry why)."""
    pub2 = pd.read_csv(paths.paper_csv("fig2_alignment_vs_retrieval_digitized"))
    pub2 = pub2[pub2.panel == panel][["model", "model_type", "alignment_gemma2_9b_it", "retrieval_accuracy"]].rename(
        columns={"model": "label", "alignment_gemma2_9b_it": "published_alignment",
                 "retrieval_accuracy": "published_retrieval_accuracy"})
    pub3 = pd.read_csv(paths.paper_csv("fig3_vatex_scaling_frames_digitized")).rename(
        columns={"model": "label", "score": "published_score"})
    pub1 = pd.read_csv(paths.paper_csv("table1_scaling_law_params"))
    pvd = sorted(pub1[pub1.dataset != "vatex"].model)
    pub1 = pub1[pub1.dataset == "vatex"].rename(columns={"model": "label"})
    if plan == "miniature":
        c2 = pub2.assign(this_run_alignment=np.nan, this_run_retrieval_accuracy=np.nan, comparable=_NEVER)
        c3 = pub3.assign(this_run_score=np.nan, comparable=_NEVER)
        c1 = pub1.assign(this_run_status="", comparable=_NEVER)
    else:
        mine = fig2.reindex(columns=["label", "model_type", "alignment", "retrieval_accuracy"]).rename(
            columns={"alignment": "this_run_alignment", "retrieval_accuracy": "this_run_retrieval_accuracy"})
        c2 = pub2.merge(mine, on=["label", "model_type"], how="left")
        c2["comparable"] = np.where(c2.this_run_alignment.notna(), "yes: same model, VaTeX, Gemma-2-9B-it, one "
                                    "caption, k = 10 (frames: fig2_frames rule)", "no: not run here")
        g = grid.assign(label=grid.label)[["label", "n_frames", "n_captions", "score"]]
        c3 = pub3.merge(g.rename(columns={"score": "this_run_score"}).drop_duplicates(["label", "n_frames",
                                                                                        "n_captions"]),
                        on=["label", "n_frames", "n_captions"], how="left")
        c3["comparable"] = np.where(c3.this_run_score.notna(), "yes: same grid point", "no: not run here")
        f = fits.drop(columns=["evidence"], errors="ignore")
        f = f.assign(label=f.label.astype(str).str.replace(r" \(.*\)$", "", regex=True))
        f = f[f.label.isin(pub1.label)].drop_duplicates("label")
        c1 = pub1.merge(f.add_prefix("this_run_").rename(columns={"this_run_label": "label"}), on="label", how="left")
        c1["comparable"] = np.where(c1.get("this_run_status", pd.Series("", index=c1.index)).eq("fitted"),
                                    "yes: Eq. 2 on the same grid", "no: not fitted here")
    for t in (c2, c3, c1):
        t.insert(0, "published_evidence", "published (digitised or printed in the paper)")
        t.insert(1, "this_run_evidence", EVIDENCE[plan])
    not_built = pd.DataFrame([_not_built(EVIDENCE[plan], "Table 1", f"PVD rows ({len(pvd)}: {', '.join(pvd)})",
                                         "the plan runs VaTeX only (PVD's videos and its 10-caption grid are not "
                                         "in the plan)")], columns=NOT_BUILT_COLUMNS)
    return dict(fig2_compare=c2, fig3_compare=c3, table1_compare=c1, not_built=not_built)


def _caption_source(cfg: dict, requests) -> str:
    """Which captions the plan's dataset held (VaTeX: the 5-caption files here or the official 10-caption
    JSON), from the dataset the requests were built on (built again when there were none)."""
    from .datasets import caption_source
    from .validation import build_dataset

    built = next((r.built for r in requests if r.built is not None), None)
    return caption_source(built or build_dataset(cfg["dataset"], cfg["options"]))


def _report(plan: str, cfg: dict, tables: dict, seconds: float, source: str = "") -> str:
    jobs, align, fits = tables["jobs"], tables["alignment"], tables["eq2_fits"]
    counts = jobs.status.value_counts()
    lines = [f"# The paper's pipeline: plan `{plan}`", "",
             f"Evidence: {EVIDENCE[plan]}.", "",
             f"Dataset {cfg['dataset']} ({', '.join(f'{k}={v}' for k, v in cfg['options'].items())}), frames "
             f"{list(cfg['frames'])}, captions {list(cfg['captions'])}, k = {cfg['k']}; run in {seconds:.1f} s.", "",
             f"Captions: {source}.", "",
             f"Jobs: {len(jobs)}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".", ""]
    if len(align):
        best = align.loc[align.score.idxmax()]
        lines += [f"Alignment: {len(align)} pair(s) swept; highest {best.score:.3f} ({best.label} {best.setting}, "
                  f"{best.frames} frames x {best.text}, {best.captions} caption(s)); chance "
                  f"{align.chance.iloc[0]:.3f}.",
                  ""]
    fitted = int((fits.status == "fitted").sum()) if len(fits) else 0
    lines += [f"Eq. 2: {fitted} of {len(fits)} grid(s) fitted"
              + (f" ({fits.status.iloc[0]})" if len(fits) and fitted == 0 else "") + ".", ""]
    for name in ("fig2_compare", "fig3_compare", "table1_compare"):
        t = tables[name]
        n = int(t.comparable.str.startswith("yes").sum())
        lines.append(f"- {name}.csv: {n} of {len(t)} published point(s) matched by this run.")
    lines += ["", "Tables: " + ", ".join(f"{n}.csv ({len(t)} rows)" for n, t in tables.items()) + ".",
              "", f"Figures (PNG): `python -m vtalign.book.paper_pipeline --plan {plan}` draws them from these "
              "tables (`make paper` runs it)."]
    nb = tables.get("not_built")
    if nb is not None and len(nb):
        lines += ["", "Not built (each with its reason in not_built.csv):"]
        lines += [f"- {r.figure}, {r.part}: {r.reason}" for r in nb.itertuples()]
    failed = jobs[jobs.status.isin(["failed", "not loadable"])]
    if len(failed):
        lines += ["", "Not run (each with its reason in jobs.csv):"]
        lines += [f"- {r.label} {r.setting}: {r.status}: {r.reason}" for r in failed.itertuples()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------------------- #
# Score your own encoder
# --------------------------------------------------------------------------------------------------------------- #
def score_caveats(dataset: str, options: dict, n_items: int, text_model: str, captions: int, k: int,
                  model: str) -> list[tuple[str, bool, str]]:
    """``(check, same_as_paper, detail)`` for each condition of Figure 2's protocol: dataset VaTeX, 1,024 videos,
    text model Gemma-2-9B-it, one caption, k = 10, trained weights (a ``tiny-*`` config is random-initialised:
    False; any other model's weights are not checked: None, which does not by itself make it not comparable).

    >>> [c for c, same, _ in score_caveats("synthetic_world", {}, 32, "tiny-gemma2", 1, 5, "tiny-vit") if not same]
    ['dataset', 'N', 'text model', 'k', 'weights']
    """
    paper_text = read_models().set_index("label").loc[PAPER_TEXT, "hf_id"]
    return [("dataset", dataset == "vatex", f"{dataset} (the paper: VaTeX)"),
            ("N", n_items == PAPER_N, f"{n_items} videos (the paper: {PAPER_N})"),
            ("text model", text_model == paper_text, f"{text_model} (the paper: {paper_text})"),
            ("captions", captions == PAPER_CAPTIONS, f"{captions} caption(s) a video (Figure 2: {PAPER_CAPTIONS})"),
            ("k", k == PAPER_K, f"k = {k} (the paper: {PAPER_K})"),
            ("weights", False if str(model).startswith("tiny-") else None,
             "random-initialised tiny config" if str(model).startswith("tiny-") else
             "not checked: taken as the checkpoint holds them (its identity is in the cache key)")]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_")[-80:] or "model"


def score_encoder(model: str, *, dataset: str = "vatex", options: dict | None = None, text_model: str | None = None,
                  frames: int = 8, captions: int = PAPER_CAPTIONS, k: int = PAPER_K, mode: str = "video",
                  load_options: dict | None = None, text_load_options: dict | None = None, device: str = "auto",
                  cache_dir=None, out=None, progress: bool = False) -> dict:
    """Put one encoder (an id, a local folder or a registered name) through Figure 2's protocol and place it
    among the published Figure 2 and Figure 4 points.

    Extracts (or reuses) its features and the text model's on ``dataset``, sweeps every layer pair (mutual
    k-NN, best pair), and ranks the score among the digitised Figure 2 alignments (Gemma-2-9B-it, VaTeX, one
    caption; Kinetics-400 panel) and Figure 4's. Writes ``placement.csv`` and ``figure.png`` under ``out``
    (default ``results/paper/score/<model>/``). Returns dict(score, layer_x, layer_y, n_items, k, chance,
    caveats, comparable, placement, out). ``comparable`` is True only when every caveat holds.
    """
    from .validation import build_dataset

    text_model = text_model or read_models().set_index("label").loc[PAPER_TEXT, "hf_id"]
    options = dict(options or {})
    if dataset == "vatex":
        options.setdefault("n_items", PAPER_N)
    build_dataset(dataset, options)  # bad options: a clear error before any work
    vis = plan_requests(dataset, [model], (frames,), (captions,), mode, 0, options, load_options=load_options)
    txt = plan_requests(dataset, [text_model], (frames,), (captions,), mode, 0, options,
                        load_options=text_load_options)
    if vis[0].side == "text":
        raise RequestError(f"{model} is a text model; --score places vision encoders on Figures 2 and 4.")
    for r in (*vis, *txt):
        extract_request(r, device=device, cache_dir=cache_dir, progress=progress)
    row = alignment_table([(vis[0], txt[0], dict(label=str(model)))], k, cache_dir).iloc[0]
    caveats = score_caveats(dataset, options, int(row.n_items), str(text_model), captions, k, str(model))
    comparable = all(same is not False for _, same, _ in caveats)
    why = "comparable" if comparable else "not comparable: " + "; ".join(
        f"{c}: {d}" for c, same, d in caveats if same is False)
    pub2 = pd.read_csv(paths.paper_csv("fig2_alignment_vs_retrieval_digitized"))
    pub2 = pub2[pub2.panel == "k400"]
    pub4 = pd.read_csv(paths.paper_csv("fig4_downstream_digitized"))
    placement = pd.DataFrame([
        dict(figure="Figure 2 (Gemma-2-9B-it, VaTeX, k400 panel)", published_points=len(pub2),
             below=int((pub2.alignment_gemma2_9b_it < row.score).sum()),
             published_min=pub2.alignment_gemma2_9b_it.min(), published_max=pub2.alignment_gemma2_9b_it.max()),
        dict(figure="Figure 4 (self-supervised video models x Gemma-2-9B-it, VaTeX; caption count not stated, and "
                    "its alignments lie below Figure 2's)",
             published_points=len(pub4), below=int((pub4.alignment < row.score).sum()),
             published_min=pub4.alignment.min(), published_max=pub4.alignment.max())])
    placement.insert(0, "model", str(model))
    placement.insert(1, "score", float(row.score))
    placement["evidence"] = "this encoder measured here" + ("" if comparable else " (not comparable)")
    placement["comparable"] = why
    out = Path(out) if out is not None else paths.results_dir(f"paper/score/{_slug(model)}")
    out.mkdir(parents=True, exist_ok=True)
    placement.to_csv(out / "placement.csv", index=False)
    _score_figure(out / "figure.png", float(row.score), pub2, pub4, str(model), comparable)
    return dict(score=float(row.score), layer_x=int(row.layer_x), layer_y=int(row.layer_y), n_items=int(row.n_items),
                k=k, chance=float(row.chance), caveats=caveats, comparable=comparable, why=why,
                placement=placement, out=out)


def _score_figure(path: Path, score: float, pub2: pd.DataFrame, pub4: pd.DataFrame, model: str,
                  comparable: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].scatter(pub2.alignment_gemma2_9b_it, pub2.retrieval_accuracy, s=14, c="grey",
                    label="published (digitised), Kinetics-400 panel")
    axes[0].set(xlabel="alignment with Gemma-2-9B-it (VaTeX, 1 caption)", ylabel="retrieval accuracy",
                title="Figure 2")
    axes[1].scatter(pub4.alignment, pub4.kinetics, s=14, c="grey", label="published (digitised)")
    axes[1].set(xlabel="alignment (Figure 4)", ylabel="Kinetics-700-2020 accuracy", title="Figure 4")
    tag = f"{model}: {score:.3f}" + ("" if comparable else " (NOT COMPARABLE)")
    for ax in axes:
        ax.axvline(score, color="tab:red", linestyle="--" if not comparable else "-", label=tag)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
