"""The paper's 121 models as data: ``data_manifest/paper/a2_models.csv``, one row per model and setting.

Appendix A.2 counts 85 vision models and variants (an image model once on images and once on video),
6 more video models for video-video alignment (A.5) and 30 language models. The paper prints no
checkpoint ids; the CSV gives each row one, where it comes from (``id_source``) and whether it is
certain (``id_certain``: ``yes`` only where the paper or the prior work it starts from, Huh et al.
2024, names the checkpoint, or exactly one public checkpoint fits what the paper says). See
``data_manifest/paper/provenance.csv``.

Whether a row **loads** with what is installed is not stored: :func:`loadability` decides it when
asked, from the loaders registered in :data:`vtalign.extract.encoders.HF_FAMILIES` at that moment, the
packages a loader needs, and whether the checkpoint runs its own code (then a pinned revision is
required). So the answer changes as families are added, with no edit to the CSV. The CSV's
``why_not`` holds only what no loader can fix (no public checkpoint, a format transformers does not
read); :func:`paper_plan` adds the computed reasons.

``python -m vtalign.extract --plan paper --dry-run`` prints every job (:func:`dry_run_lines`) with
its estimated GPU-hours from the committed projection record (:mod:`vtalign.extract.projection`).
"""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from .. import paths

__all__ = ["COLUMNS", "SETTINGS", "ID_SOURCES", "LOADER_PACKAGES", "read_models", "check_counts", "loadability",
           "paper_plan", "job_gpu_hours", "dry_run_lines"]

COLUMNS = ("model", "label", "family", "list_variant", "hf_id", "alt_id", "id_source", "id_certain", "revision",
           "family_loader", "needs_remote_code", "side", "setting", "native_frames", "token_pooling", "layers",
           "why_not", "notes")
SETTINGS = {"vision": ("image", "image-on-video", "video"), "language": ("text",)}
HUH = "Huh et al. 2024 model list (minyoungg/platonic-rep tasks.py @ 9101e00); the paper starts from their models"
ID_SOURCES = ("paper (text or figure label)", HUH, "model card / org naming", "inferred — uncertain")
# Loaders (model types) that need a package beyond transformers: the checkpoint's own library.
LOADER_PACKAGES = {"timm_wrapper": "timm"}
_HEX40 = re.compile(r"[0-9a-f]{40}")
_LABEL = re.compile(r"[a-z0-9_]+")


def read_models(path: str | Path | None = None) -> pd.DataFrame:
    """The model list (default ``data_manifest/paper/a2_models.csv``), every row checked.

    Returns a DataFrame with :data:`COLUMNS` (all strings; empty cells are ``""``). Raises
    ``ValueError`` naming the row and column of the first problem: a missing or extra column, a value
    outside its vocabulary (side, setting, id_source, yes/no columns, pooling), an uncertain source
    marked certain, a revision that is not a 40-hex commit, a repeated (model, setting) or (label,
    setting), or a row that has neither a loader nor a reason it cannot have one. ``label`` is the name
    the published tables (``fig2_*.csv``, Figures 5, 6, 8) give the model, in their style for the rest.

    >>> read_models().shape
    (121, 18)
    """
    path = Path(path) if path is not None else paths.paper_data_dir() / "a2_models.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if tuple(df.columns) != COLUMNS:
        missing = [c for c in COLUMNS if c not in df.columns]
        extra = [c for c in df.columns if c not in COLUMNS]
        raise ValueError(f"{path.name}: columns must be {list(COLUMNS)} in that order (missing {missing}, "
                         f"extra {extra}).")
    for i, row in df.iterrows():
        _check_row(row, f"{path.name} row {i + 2} ({row['model'] or 'unnamed'}, {row['setting']})")
    for key in (["model", "setting"], ["label", "setting"]):
        dup = df[df.duplicated(key, keep=False)]
        if len(dup):
            raise ValueError(f"{path.name}: ({', '.join(key)}) repeated: "
                             f"{sorted(set(zip(dup[key[0]], dup.setting)))}")
    return df


def _check_row(row, where: str) -> None:
    def bad(col, why):
        raise ValueError(f"{where}: {col} = {row[col]!r}: {why}")

    if not row["model"] or not row["family"] or not row["list_variant"]:
        bad("model", "model, family and list_variant must all be given")
    if not _LABEL.fullmatch(row["label"]):
        bad("label", "the published tables' label style: lower case, digits and underscores")
    if row["side"] not in SETTINGS:
        bad("side", f"must be one of {list(SETTINGS)}")
    if row["setting"] not in SETTINGS[row["side"]]:
        bad("setting", f"a {row['side']} model's setting is one of {list(SETTINGS[row['side']])}")
    for col in ("id_certain", "needs_remote_code"):
        if row[col] not in ("yes", "no"):
            bad(col, "must be yes or no")
    if row["id_source"] not in ID_SOURCES:
        bad("id_source", f"must be one of {list(ID_SOURCES)}")
    if row["id_source"] == "inferred — uncertain" and row["id_certain"] != "no":
        bad("id_certain", "an inferred id is not certain: say no")
    if row["revision"] and not _HEX40.fullmatch(row["revision"]):
        bad("revision", "a pinned revision is a full 40-hex commit hash (or empty)")
    if row["native_frames"] and not (row["native_frames"].isdigit() and int(row["native_frames"]) >= 1):
        bad("native_frames", "a positive whole number of frames, or empty")
    if row["side"] == "vision" and row["token_pooling"] not in ("cls", "mean"):
        bad("token_pooling", "vision models pool the class token (cls) or the mean over tokens (mean)")
    if row["side"] == "language" and (row["token_pooling"] != "mean" or row["native_frames"]):
        bad("token_pooling", "language models average over tokens (mean) and have no native_frames")
    if not row["layers"]:
        bad("layers", "say which layers the paper sweeps (e.g. 'all (24)'), or 'not stated ...'")
    if not row["why_not"] and not (row["family_loader"] and row["hf_id"]):
        bad("family_loader", "a row with no why_not needs an hf_id and a family_loader (an HF_FAMILIES key)")
    if row["needs_remote_code"] == "yes" and not row["family_loader"]:
        bad("needs_remote_code", "remote code is run by a loader: name its family_loader")


def check_counts(models: pd.DataFrame, model_list: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows per (family, variant) of ``models`` against the ``count`` column of ``a2_model_list.csv``.

    Returns the table ``family, variant, listed, rows`` of every (family, variant) where the two
    differ, after raising ``ValueError`` if any does (so a returned table is always empty).

    >>> check_counts(read_models()).empty
    True
    """
    model_list = pd.read_csv(paths.paper_csv("a2_model_list")) if model_list is None else model_list
    listed = model_list.groupby(["family", "variant"])["count"].sum()
    rows = models.groupby(["family", "list_variant"]).size().rename_axis(["family", "variant"])
    table = pd.concat([listed.rename("listed"), rows.rename("rows")], axis=1).fillna(0).astype(int)
    diff = table[table.listed != table.rows].reset_index()
    if len(diff):
        raise ValueError("a2_models.csv does not match the counts of a2_model_list.csv (Appendix A.2) for: "
                         + "; ".join(f"{r.family} {r.variant}: {r.listed} listed, {r.rows} rows"
                                     for r in diff.itertuples()))
    return diff


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _transformers_model_types() -> tuple[set[str], str]:
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    return set(CONFIG_MAPPING_NAMES), transformers.__version__


def loadability(row, families: Iterable[str] | None = None, installed: Callable[[str], bool] = _installed,
                 known_types: Iterable[str] | None = None, transformers_version: str | None = None
                 ) -> tuple[bool, str]:
    """``(loads, why_not)`` for one row (a mapping with the CSV's columns), decided now.

    ``families``: the loader keys to accept (default: :data:`~vtalign.extract.encoders.HF_FAMILIES` as it
    is at this moment); ``installed(package)`` says whether a package imports; ``known_types``: the
    model types the installed transformers has (default: read from it). Rules, first that applies:
    the CSV's own ``why_not`` (nothing to load) -> no; a ``family_loader`` that is not a key of
    ``families`` -> no; a loader's package (:data:`LOADER_PACKAGES`) not installed -> no; a checkpoint
    that runs its own code (``needs_remote_code``) without a pinned ``revision`` -> no; else yes, ``""``.

    >>> loadability({"why_not": "", "family_loader": "dinov2", "needs_remote_code": "no", "revision": ""},
    ...             families={"dinov2"})
    (True, '')
    >>> loadability({"why_not": "", "family_loader": "x", "needs_remote_code": "no", "revision": ""},
    ...             families={"dinov2"}, known_types={"dinov2"}, transformers_version="5.23.0")[1].split(" and ")[0]
    "model type 'x' has no loader in HF_FAMILIES"
    """
    if row["why_not"]:
        return False, row["why_not"]
    loader = row["family_loader"]
    if families is None:
        from .encoders import HF_FAMILIES
        families = HF_FAMILIES
    if loader not in set(families):
        if known_types is None or transformers_version is None:
            types, version = _transformers_model_types()
            known_types = types if known_types is None else known_types
            transformers_version = transformers_version or version
        if loader in set(known_types):
            return False, (f"model type {loader!r} has no loader in HF_FAMILIES (transformers "
                           f"{transformers_version} has the model type; no loader is registered for it yet)")
        return False, (f"model type {loader!r} has no loader in HF_FAMILIES and is not in transformers "
                       f"{transformers_version}: needs the checkpoint's own code and a registered loader")
    package = LOADER_PACKAGES.get(loader)
    if package and not installed(package):
        return False, f"loader {loader!r} needs the {package} package, which is not installed"
    if row["needs_remote_code"] == "yes" and not row["revision"]:
        return False, ("runs the checkpoint's own code: needs a pinned revision (a full commit hash), none "
                       "recorded in a2_models.csv")
    return True, ""


def _projection_record() -> dict:
    path = paths.bench_dir("scaleout") / "projection.json"
    if not path.is_file():
        raise FileNotFoundError(f"No projection record at {path}: run python -m vtalign.extract --project-plan "
                                f"{path} first.")
    return json.loads(path.read_text())


def job_gpu_hours(models: pd.DataFrame, record: dict | None = None) -> pd.Series:
    """Estimated GPU-hours of each row's feature extraction, by the projection's own arithmetic.

    Each row is one model in one setting over the paper's grid: an image model on images, one frame
    per video; on video (and video models) every frame count of Figure 3; a language model every
    caption count. :func:`vtalign.extract.projection.project_plan` is run on that one model
    (``count`` 1; sizes from ``a2_model_list.csv``) with the efficiency, GPU rate and caption length
    of ``record`` (default: the committed ``bench/scaleout/projection.json``). Sweeps are pairs of
    models, so they are not in a row's hours (:func:`dry_run_lines` adds their total).
    Summed over the 121 rows this equals the projection's ``extraction_gpu_hours`` (a test checks it).
    """
    from .projection import project_plan

    record = _projection_record() if record is None else record
    sizes = pd.read_csv(paths.paper_csv("a2_model_list")).set_index(["family", "variant"])
    common = dict(efficiency=record["efficiency"], gpu_flops=record["gpu"]["matmul_flops"],
                  sweep_seconds=record["gpu"]["sweep_seconds"], sweep_pairs=record["gpu"]["sweep_pairs"],
                  caption_tokens=record["tokens_per_caption"], n_items=record["n_items"],
                  captions=tuple(record["captions"]))
    hours = []
    for row in models.itertuples():
        size = sizes.loc[(row.family, row.list_variant)]
        one = pd.DataFrame([dict(family=row.family, variant=row.list_variant, count=1,
                                 side="text" if row.side == "language" else "vision",
                                 setting="text" if row.side == "language" else "video",
                                 params_m=size.params_m, layers=size.layers, width=size.width,
                                 tokens_per_frame=size.tokens_per_frame)])
        frames = (1,) if row.setting == "image" else tuple(record["frames"])
        hours.append(project_plan(one, frames=frames, **common)["extraction_gpu_hours"])
    return pd.Series(hours, index=models.index, name="gpu_hours")


def paper_plan(models: pd.DataFrame | None = None, record: dict | None = None, **loadability_options) -> pd.DataFrame:
    """The model list with ``loadable`` (yes/no), the computed ``why_not``, ``gpu_hours`` and
    ``fp32_gib`` (the weights' size in fp32, ``params_m`` of ``a2_model_list.csv`` x 4 bytes) per row."""
    models = read_models() if models is None else models
    decided = [loadability(row, **loadability_options) for _, row in models.iterrows()]
    params = pd.read_csv(paths.paper_csv("a2_model_list")).set_index(["family", "variant"])["params_m"]
    fp32_gib = [params[(f, v)] * 1e6 * 4 / 2**30 for f, v in zip(models.family, models.list_variant)]
    return models.assign(loadable=["yes" if ok else "no" for ok, _ in decided], why_not=[w for _, w in decided],
                         gpu_hours=job_gpu_hours(models, record), fp32_gib=fp32_gib)


def dry_run_lines(plan: pd.DataFrame, record: dict | None = None) -> list[str]:
    """What ``--plan paper --dry-run`` prints: one line per job (model, setting, id, loader, estimated
    GPU-hours, whether it loads here and why not), then the totals and where the estimate comes from."""
    from .projection import project_plan

    record = _projection_record() if record is None else record
    lines = [f"{'#':>3}  {'model':44s} {'setting':14s} {'id (? = uncertain)':60s} {'loader':16s} {'GPU-h':>7s} "
             f"{'fp32 GiB':>8s}  loads here"]
    for i, r in enumerate(plan.itertuples(), 1):
        ident = (r.hf_id or "(none)") + ("" if r.id_certain == "yes" else " ?")
        loads = "yes" if r.loadable == "yes" else f"no: {r.why_not}"
        if r.loadable == "yes" and r.needs_remote_code == "yes":
            loads += f" (runs its own code: --trust-remote-code --revision {r.revision})"
        lines.append(f"{i:3d}  {r.model:44s} {r.setting:14s} {ident:60s} {r.family_loader or '-':16s} "
                     f"{r.gpu_hours:7.3f} {r.fp32_gib:8.1f}  {loads}")
    ok = plan.loadable == "yes"
    common = dict(efficiency=record["efficiency"], gpu_flops=record["gpu"]["matmul_flops"],
                  sweep_seconds=record["gpu"]["sweep_seconds"], sweep_pairs=record["gpu"]["sweep_pairs"],
                  caption_tokens=record["tokens_per_caption"], n_items=record["n_items"],
                  frames=tuple(record["frames"]), captions=tuple(record["captions"]))
    sweeps = project_plan(pd.read_csv(paths.paper_csv("a2_model_list")), **common)["sweep_gpu_hours"]
    lines += [
        f"{len(plan)} jobs ({(plan.side == 'vision').sum()} vision, {(plan.side == 'language').sum()} language); "
        f"{int(ok.sum())} load with what is installed, {int((~ok).sum())} do not; "
        f"{int((plan.id_certain != 'yes').sum())} ids uncertain (?).",
        f"estimated extraction GPU-hours: {plan.gpu_hours.sum():.1f} for all jobs, {plan.gpu_hours[ok].sum():.1f} "
        f"for the loadable ones; layer sweeps of the full plan: {sweeps:.2f} GPU-hours more.",
        f"estimate: projection record bench/scaleout/projection.json (commit {record.get('git_commit', '?')[:7]}): "
        f"forward FLOPs 2 x params x tokens at {record['efficiency']:.0%} of the {record['gpu']['device']}'s "
        f"measured fp32 matmul rate, {record['n_items']} videos, frames {record['frames']}, captions "
        f"{record['captions']}; fp32, one device; an order-of-magnitude estimate.",
        f"fp32 GiB: the weights alone in fp32 (parameters from a2_model_list.csv, approximate); "
        f"{int((plan.fp32_gib > 80e9 / 2**30).sum())} jobs exceed one 80 GB GPU that way (bf16 halves it; or "
        f"spread one model over several GPUs).",
        "loads here: the installed software can load it; the weights still come from the hub (--allow-download), "
        "and gated models (Llama, Gemma, DINOv3) need their licence accepted there first.",
    ]
    return lines
