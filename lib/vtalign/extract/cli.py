"""Command line: ``python -m vtalign.extract --dataset D --model M [--frames ...] [--captions ...]``.

Extracts (or finds cached) per-layer features for every requested frame / caption count and
prints where each cache entry is. Every request is checked before any work
(:mod:`vtalign.extract.validation`). Exit status 0 when all succeeded; 1 when items failed (decode
errors are listed; ``--skip-failures`` keeps going without them); 2 when a request is refused
before any work (one line says what is wrong and what to do; no cache entry is made). ``--debug``
shows the traceback of an error instead.

Examples::

    python -m vtalign.extract --dataset test_of_time --model efficientnet-lite0 --frames 1 8
    python -m vtalign.extract --dataset synthetic_world --option n_clips=64 --model minilm-l6 --captions 1 5 10
    python -m vtalign.extract --list
    python -m vtalign.extract --check [--verify] [--repair]    # every cache entry's status; recompute the broken
    python -m vtalign.extract --prune [--yes]                  # remove junk entries and set-aside copies
    python -m vtalign.extract --drop PATH [--yes]              # remove one entry (a path --check prints)
    python -m vtalign.extract --dataset clips --model tiny-vit --frames 4 --force    # recompute, even if cached
    python -m vtalign.extract --dataset synthetic_world --model efficientnet-lite0 --frames 1 4 16 --cluster local
    python -m vtalign.extract --plan plan.toml --cluster ray://head:10001    # a grid of requests on a cluster
    python -m vtalign.extract --plan paper --dry-run     # the paper's 121 models: ids, loaders, GPU-hours, loadable
    python -m vtalign.extract --plan miniature           # the paper's pipeline on tiny random configs (make paper)
    python -m vtalign.extract --plan paper --option video_root=/data/vatex --allow-download   # the real one
    python -m vtalign.extract --score my/model --option video_root=/data/vatex   # place an encoder on Figs. 2, 4
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

from .cache import extract_request
from .datasets import DATASETS
from .encoders import available_encoders, encoder_facts
from .errors import ExtractionError, RequestError
from .manage import cache_root, idle_for, is_entry, leftovers, remove, set_aside_copies, set_aside_time, size_of
from .manifest import DataError
from .parts import claim_stale_seconds, live_claims
from .request import FeatureRequest, build_request, request_arguments, request_differences, request_setting
from .store import CorruptEntryError, cache_entries, check_entry, inputs_changed, meta_of, recorded_request, set_aside
from .validation import build_dataset, check_count, check_k, check_load_options, is_registered_name


def _option(text: str):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--option takes key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a bare string


def main(argv=None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    try:
        return _main(args, ap)
    except (RequestError, DataError) as err:  # a request refused before any work: one line, no traceback
        if args.debug:
            raise
        text = _one_line(err)
        if "video_root" in text and "--option video_root" not in text:
            text += " (command line: --option video_root=/path/to/videos)"
        print(f"error: {text}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001  (anything else: one line too, the traceback with --debug)
        if args.debug:
            raise
        print(f"error: {type(err).__name__}: {_one_line(err)} (run again with --debug for the traceback)",
              file=sys.stderr)
        return 1


def _load_options(args, model: str) -> dict:
    """The Hugging Face load options the flags ask for, for a Hugging Face id or local folder; a registered
    name (offline models, tiny-*, a user's loader) is loaded by its own loader, which the flags do not reach."""
    asked = dict(allow_download=args.allow_download, revision=args.revision, trust_remote_code=args.trust_remote_code,
                 dtype=args.dtype, device_map=args.device_map)
    if is_registered_name(model):
        ignored = sorted(check_load_options("a Hugging Face id", asked))
        if ignored:
            print(f"note: {model} is a registered name, loaded by its own loader in its own precision: "
                  f"{', '.join('--' + k.replace('_', '-') for k in ignored)} do(es) not apply to it", file=sys.stderr)
        return {}
    return check_load_options(model, asked)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m vtalign.extract", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", help=f"one of {sorted(DATASETS)}")
    ap.add_argument("--model", action="append", help="encoder name or Hugging Face id (repeatable)")
    ap.add_argument("--frames", type=int, nargs="+", default=[8], help="n_f values (video side)")
    ap.add_argument("--captions", type=int, nargs="+", default=[1], help="n_c values (text side)")
    ap.add_argument("--mode", choices=["video", "image", "frames"], default="video",
                    help="image models: 'video' averages n_f frames, 'image' uses the first frame, "
                         "'frames' keeps every frame's features ([N, n_f, L, D], for vtalign.pooling)")
    ap.add_argument("--seed", type=int, default=0, help="caption-choice seed")
    ap.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                    help="dataset option, value as JSON (e.g. n_clips=64, visible=[3,8], video_root=\"/data/vatex\")")
    ap.add_argument("--allow-download", action="store_true",
                    help="Hugging Face ids: download a model missing from the local Hugging Face cache")
    ap.add_argument("--revision", default=None, help="Hugging Face ids: the hub revision (commit, tag) to load")
    ap.add_argument("--trust-remote-code", action="store_true",
                    help="Hugging Face ids and folders: run the checkpoint's own modelling code (read it first; a hub "
                         "id needs --revision set to the 40-hex commit you read; its files are printed and recorded)")
    ap.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default=None,
                    help="Hugging Face ids and folders: the precision weights are loaded and run in (default fp32); "
                         "recorded in the cache key, so entries of different precisions never mix")
    ap.add_argument("--device-map", choices=["auto"], default=None,
                    help="Hugging Face ids and folders: spread one model over every visible GPU (accelerate), for "
                         "language models too large for one; on Ray give each worker the GPUs (--gpus-per-worker)")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ...; auto (default): the GPU when present")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--skip-failures", action="store_true",
                    help="leave items that fail out (listed in meta.json); a later run without it retries them")
    ap.add_argument("--force", action="store_true", help="recompute the entries even when complete ones are cached")
    ap.add_argument("--cache", default=None, help="cache folder (default .cache/features or $VTALIGN_CACHE/features)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--list", action="store_true", help="list datasets and encoder names, then exit")
    ap.add_argument("--verify", action="store_true", help="check content digests, not only shapes and sizes")
    ap.add_argument("--check", action="store_true",
                    help="list every cache entry with its request, size and status (ok / incomplete / corrupt / "
                         "stale / invalid), then exit; 1 if any is not ok")
    ap.add_argument("--repair", action="store_true", help="with --check: recompute every entry that is not ok "
                                                          "(never one whose request fails validation)")
    ap.add_argument("--prune", action="store_true",
                    help="remove junk: entries whose request fails validation, broken entries that record no "
                         "request, set-aside .corrupt-* copies and leftovers of killed runs; lists them and asks "
                         "first (--yes: without asking)")
    ap.add_argument("--drop", action="append", default=[], metavar="PATH",
                    help="remove this cache entry or set-aside copy (a path --check prints; repeatable); asks "
                         "first (--yes: without asking)")
    ap.add_argument("--yes", action="store_true", help="with --prune or --drop: remove without asking")
    ap.add_argument("--cluster", default=None, metavar="local|auto|ray://HOST:PORT",
                    help="make the parts on Ray: 'local' starts a runtime on this machine, 'auto' or an address "
                         "joins a cluster (the cache must be on storage every node sees)")
    ap.add_argument("--workers", type=int, default=None, help="with --cluster: workers per model (default: all CPUs, "
                                                              "or one per GPU)")
    ap.add_argument("--gpus-per-worker", type=float, default=None,
                    help="with --cluster: GPUs each worker holds (default 1 on a GPU device, else 0; more for "
                         "--device-map auto)")
    ap.add_argument("--plan", default=None, metavar="PLAN.toml",
                    help="with --cluster: a TOML plan of [[grid]] tables (dataset, options, models, frames, captions); "
                         "'paper': the paper's pipeline (make paper; needs the VaTeX videos, --option video_root=..., "
                         "and the weights); 'miniature': the same code on tiny random configs, offline; 'paper' with "
                         "--dry-run: list the paper's 121 models (data_manifest/paper/a2_models.csv)")
    ap.add_argument("--score", metavar="MODEL", default=None,
                    help="score your own vision encoder (an id, folder or registered name) by Figure 2's protocol "
                         "(--dataset, default vatex with 1,024 videos; --text-model, default google/gemma-2-9b-it; "
                         "--frames, --captions, --k) and place it among the published Figure 2 and 4 points, with "
                         "the caveats")
    ap.add_argument("--text-model", default=None, help="with --score: the text model (default: Gemma-2-9B-it)")
    ap.add_argument("--out", default=None, help="with --plan paper|miniature or --score: the output folder "
                                                "(default results/paper/<plan>/ or results/paper/score/<model>/)")
    ap.add_argument("--dry-run", action="store_true",
                    help="with --plan paper: list every job (model, id, loader, estimated GPU-hours, whether it "
                         "loads with what is installed and why not), then exit; nothing is loaded or computed")
    ap.add_argument("--sweeps", metavar="OUT.csv", default=None,
                    help="with --cluster: after the plan's features, sweep the layer pairs of every pair of its "
                         "representations as Ray tasks (see --pairs) and write the best pair of each")
    ap.add_argument("--pairs", choices=["cross", "all"], default="cross",
                    help="with --sweeps: 'cross' every video/image with every text representation; 'all' every two")
    ap.add_argument("--k", type=int, default=10, help="with --sweeps or --score: neighbours per item")
    ap.add_argument("--benchmark-cluster", metavar="OUT.json", default=None,
                    help="measure extraction throughput: one process vs a local Ray runtime with 1 and 2 workers "
                         "and a simulated cluster of 1, 2 and 4 one-CPU nodes (synthetic world, efficientnet-lite0), "
                         "and write the record")
    ap.add_argument("--project-plan", metavar="OUT.json", default=None,
                    help="measure the offline models' FLOPs and time per item here and project the GPU hours and "
                         "cache size of the paper's full plan (121 models, 1,024 videos, Figure 3's grid); write "
                         "the record")
    ap.add_argument("--debug", action="store_true", help="show the full traceback of an error instead of one line")
    return ap


def _main(args, ap) -> int:
    if args.dry_run:
        if args.plan != "paper":
            ap.error("--dry-run lists the paper plan: python -m vtalign.extract --plan paper --dry-run")
        from .paper_models import dry_run_lines, paper_plan
        print("\n".join(dry_run_lines(paper_plan())))
        return 0
    if args.plan in ("paper", "miniature") or args.score:
        return _paper_or_score(args, ap)
    if args.project_plan:
        from .projection import projection_record
        record = projection_record(args.project_plan)
        for name in ("estimate", "lower_bound"):
            p = record[name]
            print(f"{name:12s} {p['total_gpu_hours']:10.1f} GPU hours  cache {p['cache_bytes'] / 2**30:8.1f} GiB  "
                  + "  ".join(f"{h:.1f} h on {g} GPUs" for g, h in p["wall_hours"].items()))
        return 0
    if args.benchmark_cluster:
        from .cluster import scaleout_benchmark
        record = scaleout_benchmark(args.benchmark_cluster)
        for r in record["runs"]:
            print(f"{r['setting']:18s} {r['seconds']:7.1f} s  {r['items_per_second']:6.2f} items/s  "
                  f"overhead {r['overhead_per_part_seconds']:+.2f} s/part")
        return 0
    if (args.plan or args.sweeps) and not args.cluster:
        ap.error("--plan and --sweeps run on Ray: add --cluster local (or auto, or ray://host:port)")
    if args.cluster:
        return _run_on_cluster(args, ap)
    if args.prune or args.drop:
        return prune_cache(args.cache, args.drop, yes=args.yes, verify=args.verify)
    if args.check or args.repair:
        return check_cache(args.cache, verify=args.verify, repair=args.repair, device=args.device,
                           progress=not args.no_progress)
    if args.list:
        print("datasets:", ", ".join(sorted(DATASETS)))
        print("encoders:", ", ".join(available_encoders()), "(or any Hugging Face id / local folder)")
        return 0
    if not args.dataset or not args.model:
        ap.error("--dataset and --model are required (or --list)")
    status = 0
    # Every request is checked before any work: a bad one stops the run here (exit 2), with nothing made.
    for f in args.frames:
        check_count(f, "frames", "the number of frames sampled per video")
    for c in args.captions:
        check_count(c, "captions", "the number of captions joined per item")
    ds = build_dataset(args.dataset, dict(args.option))
    requests: dict = {}
    for model in args.model:
        # one extraction per distinct request: the request decides what a frame or caption count means for
        # this model (text: captions only; an image model in image mode: one frame). Built once, here.
        options = _load_options(args, model)
        text = encoder_facts(model, **options).modality == "text"
        settings = ([(args.frames[0], c) for c in args.captions] if text
                    else [(f, args.captions[0]) for f in args.frames])
        for frames, captions in settings:
            r = build_request(ds, model, frames, captions, args.mode, args.seed, skip_failures=args.skip_failures,
                              load_options=options)
            requests.setdefault(r.entry(args.cache), r)
    for r in requests.values():
        try:
            feats, meta, run = extract_request(r, device=args.device, batch_size=args.batch_size,
                                               skip_failures=args.skip_failures, cache_dir=args.cache,
                                               progress=not args.no_progress, verify=args.verify, force=args.force)
        except (ExtractionError, DataError) as err:
            print(f"FAILED {args.dataset} x {r.model} {r.setting}:\n{err}", file=sys.stderr)
            status = 1
            continue
        skipped = f", {len(meta['failures'])} failed item(s) left out" if meta["failures"] else ""
        print(f"{args.dataset} x {r.model} {r.setting}: features {tuple(feats.shape)}{skipped} ({run.describe()}) "
              f"-> {r.entry(args.cache)}")
    return status


# what --plan paper|miniature reads from --option: VaTeX's videos and JSON, and Figure 2's labelled retrieval set
_PAPER_OPTIONS = ("video_root", "json_file", "retrieval_dataset", "retrieval_root", "retrieval_list")


def _paper_or_score(args, ap) -> int:
    """``--plan paper|miniature`` (``make paper``) and ``--score MODEL`` (``make score``): see
    :mod:`vtalign.extract.paper_run`."""
    from .paper_run import PaperRunRefused, plan_config, run_paper, score_encoder

    options = dict(args.option)
    if args.score:
        opts = {k: v for k, v in dict(allow_download=args.allow_download, revision=args.revision,
                                       trust_remote_code=args.trust_remote_code, dtype=args.dtype).items() if v}
        text_opts = {"allow_download": True} if args.allow_download else {}
        res = score_encoder(args.score, dataset=args.dataset or "vatex", options=options, text_model=args.text_model,
                            frames=args.frames[0], captions=args.captions[0], k=args.k, mode=args.mode,
                            load_options=_load_options(args, args.score) if opts else None,
                            text_load_options=text_opts or None, device=args.device, cache_dir=args.cache,
                            out=args.out, progress=not args.no_progress)
        print(f"{args.score}: best-layer mutual k-NN alignment {res['score']:.4f} (layers {res['layer_x']}, "
              f"{res['layer_y']}; N = {res['n_items']}, k = {res['k']}, chance {res['chance']:.4f})")
        for check, same, detail in res["caveats"]:
            print(f"  {'unchecked' if same is None else 'same' if same else 'DIFFERS':9s} {check:11s} {detail}")
        for r in res["placement"].itertuples():
            print(f"  {r.figure}: above {r.below} of {r.published_points} published points "
                  f"(published {r.published_min:.3f} to {r.published_max:.3f})")
        print(("NOT COMPARABLE" + res["why"][len("not comparable"):]) if not res["comparable"] else
              "comparable with the published points (same dataset, N, text model, captions and k)")
        print(f"written: {res['out'] / 'placement.csv'}, {res['out'] / 'figure.png'}")
        return 0
    try:
        unknown = sorted(set(options) - set(_PAPER_OPTIONS))
        if unknown:
            ap.error(f"--plan {args.plan} takes --option {', '.join(_PAPER_OPTIONS)}; not {', '.join(unknown)}")
        retrieval = dict(dataset=options.get("retrieval_dataset"), video_root=options.get("retrieval_root"),
                         list_file=options.get("retrieval_list"))
        try:  # a retrieval set named wrong or half given: one line, before any work
            plan_config(args.plan, retrieval=retrieval)
        except ValueError as err:
            print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
            return 2
        run_paper(args.plan, cluster=args.cluster, workers=args.workers, device=args.device,
                  video_root=options.get("video_root"), json_file=options.get("json_file"),
                  allow_download=args.allow_download, trust_remote_code=args.trust_remote_code, dtype=args.dtype,
                  cache_dir=args.cache, out=args.out, progress=not args.no_progress, retrieval=retrieval)
    except PaperRunRefused as err:
        print(f"error: {err.lines()}", file=sys.stderr)
        return 2
    return 0


def _run_on_cluster(args, ap) -> int:
    from .cluster import load_plan, plan_requests, run_plan

    if args.plan:
        requests = load_plan(args.plan, skip_failures=args.skip_failures)
    elif args.dataset and args.model:
        for f in args.frames:
            check_count(f, "frames", "the number of frames sampled per video")
        for c in args.captions:
            check_count(c, "captions", "the number of captions joined per item")
        requests = [r for model in args.model
                    for r in plan_requests(args.dataset, [model], args.frames, args.captions, args.mode, args.seed,
                                           dict(args.option), skip_failures=args.skip_failures,
                                           load_options=_load_options(args, model))]
    else:
        ap.error("--cluster needs --plan, or --dataset and --model")
    if args.sweeps:  # k < N for every dataset of the plan, before any work
        for dataset, options in {(r.dataset, json.dumps(r.options, sort_keys=True)): None for r in requests}:
            check_k(args.k, len(build_dataset(dataset, json.loads(options))), f"dataset {dataset}")
    summary = run_plan(requests, args.cluster, args.workers, args.device, gpus_per_worker=args.gpus_per_worker,
                       batch_size=args.batch_size,
                       cache_dir=args.cache, skip_failures=args.skip_failures, progress=not args.no_progress,
                       force=args.force, verify=args.verify)
    for r in summary.itertuples():
        what = (f"{r.parts_made} of {r.parts_total} part(s) made on workers" if r.status != "reused" else "reused")
        if r.parts_resubmitted or r.parts_taken_over:  # a worker or node was lost mid-plan
            what += (f" ({r.parts_resubmitted} resubmitted after a lost worker, {r.parts_taken_over} taken over "
                     "from a lost worker's stale claim)")
        rate = f", {r.items_per_second:.1f} items/s per worker" if r.items_per_second == r.items_per_second else ""
        print(f"{r.status.upper():8s} {r.dataset} x {r.model} {r.setting}: {what}{rate}"
              + (f"\n         {r.error}" if r.error else ""))
    counts = summary.status.value_counts()
    print(f"plan: {len(summary)} request(s): {counts.get('computed', 0)} computed, {counts.get('reused', 0)} reused, "
          f"{counts.get('failed', 0)} failed.")
    if (summary.status == "failed").any():
        if args.sweeps:
            print("sweeps: not run, because some features failed (fix them, or pass --skip-failures).")
        return 1
    if args.sweeps:
        from pathlib import Path

        from .cluster_alignment import sweep_plan

        table = sweep_plan(requests, k=args.k, pairs=args.pairs, cluster=args.cluster, cache_dir=args.cache)
        Path(args.sweeps).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.sweeps, index=False)
        print(f"sweeps: {len(table)} pair(s), best layer pairs written to {args.sweeps}")
    return 0


class _Status(NamedTuple):
    status: str
    detail: str
    recorded: dict | None               # the request the entry records
    today: FeatureRequest | None = None  # the request the same arguments make today (None: not buildable here)


def _status(entry, verify: bool) -> _Status:
    """The status of one entry, its detail, the request it records and the one the same arguments make
    today; "stale" when those two differ (library, generator or model revision changed); "invalid" when
    an entry that is not ok was made for a request that fails validation (it can never be completed: its
    parts are junk, for --drop or --prune)."""
    status, detail = check_entry(entry, verify)
    req = recorded_request(entry)
    if req is None:
        return _Status(status, detail, req)
    try:
        a = request_arguments(req)
        ds = build_dataset(a["dataset"], _with_video_root(entry, req, a.pop("dataset_options")))
        # judged as leniently as any run could ask for it: with skip_failures, and without videos at hand
        today = build_request(ds, **{k: v for k, v in a.items() if k != "dataset"}, skip_failures=True,
                              needs_videos=False)
    except RequestError as err:
        if err.permanent and status != "ok":
            return _Status("invalid", f"made for a request that fails validation, so it can never be completed: "
                                      f"{_one_line(err)} Remove it with --drop {entry} (or --prune).", req)
        return _Status(status, f"{detail}; not compared with today's request ({_one_line(err)})", req)
    except Exception as err:  # e.g. a user's video_root that is not mounted here
        return _Status(status, f"{detail}; not compared with today's request ({type(err).__name__}: "
                               f"{_one_line(err)})", req)
    now = today.key
    if status == "ok":
        differs = request_differences(now, req)
        if differs:
            return _Status("stale", f"made for another request than today's (differs in {differs})"
                                    f"{_changed(differs)}", req, today)
        changed = inputs_changed(meta_of(Path(entry)) or {}, ds) if verify else []
        if changed:
            return _Status("stale", f"made from other video files: {len(changed)} changed since (full digests, "
                                    f"e.g. {changed[0]}); the next run of this request recomputes it", req, today)
        try:
            failed = len(json.loads((entry / "meta.json").read_text()).get("failures") or [])
        except (OSError, ValueError, AttributeError):
            failed = 0
        if failed:
            detail += (f"; made with --skip-failures: {failed} failed item(s) left out (a run without "
                       "--skip-failures retries them)")
    return _Status(status, detail, req, today)


def _with_video_root(entry, req: dict, options: dict) -> dict:
    """The options to rebuild an entry's dataset with: for a video entry made from files under a
    ``video_root`` that is not among the dataset's recorded options (VATEX, PVD: their entries are shared
    whichever folder holds the videos), that folder, so the files there now are compared; else as given."""
    from .validation import dataset_option_fields

    if req.get("side") != "video" or not req.get("videos") or "video_root" in options:
        return options
    folder = ((meta_of(Path(entry)) or {}).get("inputs") or {}).get("video_folder")
    try:
        accepts = "video_root" in (dataset_option_fields(req["dataset"]) or {})
    except KeyError:
        return options
    return {**options, "video_root": folder} if folder and accepts else options


def _changed(differs: list[str]) -> str:
    """What a stale entry's differing fields mean, for the fields of content identity."""
    notes = []
    if "model_revision" in differs:
        notes.append("the model's weights or revision changed (a local folder's files are digested)")
    if "videos" in differs:
        notes.append("the video files changed (name, size or content)")
    if "model" in differs:
        notes.append("the model resolves to another folder or name")
    return ": " + "; ".join(notes) if notes else ""


def check_cache(cache=None, verify: bool = False, repair: bool = False, device: str = "auto",
                progress: bool = True) -> int:
    """``--check``: one line per cache entry (status, size, request, detail), then the set-aside copies and
    leftovers; with ``repair``, recompute every entry that is not ok (damaged files are set aside, never
    deleted; an entry whose request fails validation is never retried). Exit status 0 when every entry
    is (now) ok, 1 otherwise; set-aside copies do not count."""
    broken = 0
    entries = list(cache_entries(cache))
    if not entries:
        print("no cache entries")
    for entry in entries:
        status, detail, req, today = _status(entry, verify)
        size = size_of(entry) / 2**20
        what = f"{req['dataset']} x {req['model']} {request_setting(req)}" if req else "request unknown"
        print(f"{status:10s} {size:9.1f} MiB  {what}  {entry}\n{'':10s} {detail}")
        if status == "ok":
            continue
        if not repair:
            broken += 1
            continue
        if req is None:
            print(f"{'':10s} cannot repair: neither meta.json nor parts/request.json says what it was made for; "
                  "re-run the extraction that made it, or remove it with --prune")
            broken += 1
            continue
        if status == "invalid":  # never retried: it would fail again, every time
            print(f"{'':10s} not repaired: its request fails validation")
            broken += 1
            continue
        if today is None:
            print(f"{'':10s} cannot repair: today's request for it cannot be built here (see above)")
            broken += 1
            continue
        try:
            if status == "corrupt":
                print(f"{'':10s} damaged files kept in {set_aside(entry).name}")
            extract_request(today, device=device, cache_dir=cache, progress=progress)
            made = today.entry(cache)
            if Path(made) != Path(entry):  # today's request has its own entry (a local model's files changed)
                print(f"{'':10s} not repaired in place: today's request for it has its own entry, now made "
                      f"({made}); this one was made from other model files. Remove it with --drop {entry} "
                      "(or keep it: it is valid again if those files come back)")
                broken += 1
                continue
            print(f"{'':10s} repaired")
        except (ExtractionError, DataError, CorruptEntryError, ValueError) as err:  # RequestError: before any work
            print(f"{'':10s} repair failed: {_one_line(err)}")
            broken += 1
    root = cache_root(cache)
    copies, left = set_aside_copies(root), leftovers(root)
    for path in copies:
        print(f"{'set-aside':10s} {size_of(path) / 2**20:9.1f} MiB  {path}\n{'':10s} a damaged copy kept when it "
              f"was replaced ({set_aside_time(path)}); remove it with --prune (or --drop {path})")
    for path in left:
        print(f"{'leftover':10s} {size_of(path) / 2**20:9.1f} MiB  {path}\n{'':10s} what a killed run was "
              "deleting; remove it with --prune")
    if copies or left:
        total = sum(size_of(p) for p in [*copies, *left]) / 2**20
        print(f"{len(copies)} set-aside copies and {len(left)} leftover(s), {total:.1f} MiB: --prune removes them.")
    return 1 if broken else 0


def _junk(root, verify: bool) -> list[tuple]:
    """(path, why) of everything ``--prune`` removes (see :mod:`vtalign.extract.manage`)."""
    found = []
    for entry in cache_entries(root):
        status, detail, req, _ = _status(entry, verify)
        if status == "invalid":
            found.append((entry, f"invalid: {request_setting(req)} of {req['dataset']} x {req['model']} fails "
                                 "validation"))
        elif req is None and status not in ("ok", "stale") and idle_for(entry) > claim_stale_seconds():
            found.append((entry, f"{status}, and it records no request"))
    found += [(p, f"set aside {set_aside_time(p)}") for p in set_aside_copies(root)]
    found += [(p, "leftover of a killed run") for p in leftovers(root)]
    return found


def prune_cache(cache=None, drop=(), yes: bool = False, verify: bool = False) -> int:
    """``--prune`` (no ``drop``): remove junk; ``--drop PATH``: remove those entries or set-aside copies.
    Lists what would go and asks first, unless ``yes``; an entry a live process is making is kept.
    Exit status 0 when everything listed was removed (or nothing was to be), 1 when something was kept
    (not confirmed, or busy), 2 when a PATH is not an entry or a set-aside copy of this cache."""
    root = cache_root(cache)
    if drop:
        targets = []
        for text in drop:
            path = Path(text).expanduser()
            if not path.is_absolute():
                path = Path.cwd() / path
            aside = ".corrupt-" in path.name or path in leftovers(root)
            if not path.exists() or not (is_entry(path, root) or (aside and _under(path, root))):
                raise RequestError(f"{text} is not a cache entry or a set-aside copy under {root}; --check lists "
                                   "them (add --cache FOLDER for another cache).")
            targets.append((path, "asked for"))
    else:
        targets = _junk(root, verify)
        if not targets:
            print(f"nothing to prune in {root}")
            return 0
    for path, why in targets:
        print(f"{size_of(path) / 2**20:9.1f} MiB  {path}  ({why})")
    total = sum(size_of(p) for p, _ in targets) / 2**20
    if not _confirm(f"Remove these {len(targets)} item(s), {total:.1f} MiB?", yes):
        return 1
    kept = 0
    for path, _ in targets:
        busy = live_claims(path) if path.is_dir() else []
        if busy:
            print(f"kept {path}: a run is making it now ({busy[0]}); wait for it to finish")
            kept += 1
            continue
        try:
            remove(path)
        except FileNotFoundError:
            pass  # removed meanwhile (another prune, or the run that owned a leftover)
        print(f"removed {path}")
    return 1 if kept else 0


def _under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin or not sys.stdin.isatty():
        print("nothing removed: no terminal to ask on; add --yes to remove them")
        return False
    answer = input(f"{question} [y/N] ")
    if answer.strip().lower() in ("y", "yes"):
        return True
    print("nothing removed")
    return False


if __name__ == "__main__":
    sys.exit(main())
