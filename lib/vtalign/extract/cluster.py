"""Extraction at scale on Ray: a plan of requests cut into item parts, made by workers that each load
their model once, written to a cache that every node sees.

The unit of work is a part (:data:`vtalign.extract.parts.CHUNK_ITEMS` items of one request), made by
:func:`vtalign.extract.parts.make_part`: the very function a single process uses, so a part made on a
worker is byte for byte the part a single process makes. Parts go to Ray actors, one pool per model,
each actor holding its loaded encoder (and the GPU it asked for, ``num_gpus``); a part is claimed with
an exclusive create and a heartbeat before it is made, so two plans (or a plan and a single-process
run) on the same entry never make a part twice. When a request's parts are all written, the driver
assembles the entry with :func:`vtalign.extract.cache.extract_request`, which finds every part on disk:
failures are reported once, with the same list and exit codes as a single-process run.

Faults: a killed worker loses only the part it was making. Ray restarts the actor and retries the
part (``max_restarts``, ``max_task_retries``); the dead worker's claim is taken over at once when its
process is gone (same host) or when its heartbeat goes stale. A failure inside a part (a video that
does not decode) is not an exception: it is recorded in the part and reported at the end, not retried.

Entry points: :func:`run_plan`, ``python -m vtalign.extract ... --cluster local`` (a local Ray runtime
on this machine's CPUs and GPUs), ``--cluster auto`` or ``--cluster ray://host:port`` (an existing
cluster), and ``--plan plan.toml`` (see :func:`load_plan`).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from .cache import extract_request, load_request, prepare_entry
from .datasets import DATASETS, load_dataset
from .encoders import encoder_facts, resolve_device
from .errors import RequestError
from .parts import CHUNK_ITEMS, claim_stale_seconds, make_part, open_parts, part_chunks, part_done, ray_node
from .request import FeatureRequest, build_request, request_differences
from .store import check_entry, meta_of
from .validation import build_dataset, check_load_options

__all__ = ["load_plan", "plan_requests", "connect", "run_plan", "use_cluster", "parts_maker", "scaleout_benchmark"]


def plan_requests(dataset: str, models, frames=(8,), captions=(1,), mode: str = "video", seed: int = 0,
                  options: dict | None = None, skip_failures: bool = False,
                  load_options: dict | None = None) -> list[FeatureRequest]:
    """The grid models x frames x captions as requests, one per distinct cache entry (a text model takes
    only the caption counts, a video or image model only the frame counts). Every request is built and
    checked once (:func:`vtalign.extract.request.build_request`) before it is planned: a bad one raises
    :class:`~vtalign.extract.errors.RequestError`. ``load_options`` (Hugging Face ids and local folders:
    ``allow_download``, ``revision``, ``trust_remote_code``, ``dtype``, ``device_map``) go with every request to its
    workers."""
    out, seen = [], set()
    ds = build_dataset(dataset, options)
    for model in models:
        text = encoder_facts(model, **check_load_options(model, load_options)).modality == "text"
        for f, c in ([(frames[0], c) for c in captions] if text else [(f, captions[0]) for f in frames]):
            r = build_request(ds, model, f, c, mode, seed, skip_failures=skip_failures, load_options=load_options)
            if r.entry() not in seen:
                seen.add(r.entry())
                out.append(r)
    return out


def load_plan(path, skip_failures: bool = False) -> list[FeatureRequest]:
    """Requests from a TOML plan file: one ``[[grid]]`` table per dataset, e.g.::

        [[grid]]
        dataset = "synthetic_world"
        options = { n_clips = 256, size = 128 }
        models = ["efficientnet-lite0", "minilm-l6"]
        load_options = {}       # optional, for Hugging Face ids: { revision = "<40-hex commit>", trust_remote_code
                                # = true, dtype = "bf16", device_map = "auto" }: recorded in each entry's key
        frames = [1, 2, 4, 8, 16]
        captions = [1, 2, 5, 10]
        mode = "video"          # optional; seed too
    """
    import tomllib

    data = tomllib.loads(Path(path).read_text())
    grids = data.get("grid")
    if not grids:
        raise ValueError(f"{path}: no [[grid]] table; each names a dataset, its models and frame/caption counts.")
    out = []
    for number, g in enumerate(grids, 1):
        missing = [k for k in ("dataset", "models") if k not in g]
        if missing:
            raise RequestError(f"{path}: [[grid]] {number} lacks {missing}.")
        try:
            out += plan_requests(g["dataset"], g["models"], g.get("frames", [8]), g.get("captions", [1]),
                                 g.get("mode", "video"), g.get("seed", 0), g.get("options", {}), skip_failures,
                                 g.get("load_options"))
        except RequestError as err:
            raise type(err)(f"{path}, [[grid]] {number}: {err}") from err
    return out


def _is_address(cluster) -> bool:
    """``"auto"``, ``"ray://host:port"`` (Ray Client) or ``"host:port"`` (the head's GCS address, as
    ``ray start --head`` prints it)."""
    text = str(cluster)
    return text == "auto" or text.startswith("ray://") or (":" in text and text.rsplit(":", 1)[1].isdigit())


def connect(cluster: str = "local", workers: int | None = None):
    """Start or join Ray: ``"local"`` starts a runtime on this machine (``workers`` CPUs, default all);
    ``"auto"`` joins the cluster this node belongs to; ``"host:port"`` (the head's address, as ``ray start
    --head`` prints it) or ``"ray://host:port"`` (Ray Client) a remote one."""
    import ray

    if ray.is_initialized():
        return ray
    quiet = dict(include_dashboard=False, logging_level="ERROR", log_to_driver=False, configure_logging=False)
    if cluster == "local":
        ray.init(num_cpus=workers or os.cpu_count(), **quiet)
    elif _is_address(cluster):
        ray.init(address=cluster, **{k: v for k, v in quiet.items() if k != "include_dashboard"})
    else:
        raise ValueError(f"cluster must be 'local', 'auto', 'host:port' or 'ray://host:port', got {cluster!r}.")
    return ray


def plan_workers(resources: dict, workers: int | None, gpus: float, what: str = "worker") -> int:
    """How many actors (or concurrent tasks) a plan runs, from the cluster's total ``resources``: ``workers``
    when given, else one per GPU when each asks for ``gpus`` > 0, else one per CPU. Raises
    :class:`~vtalign.extract.errors.RequestError` before anything starts when the cluster cannot hold them:
    Ray would keep them pending for resources that never come, and the plan would wait forever.

    >>> plan_workers({"CPU": 4.0, "GPU": 2.0}, None, 1.0), plan_workers({"CPU": 4.0}, None, 0.0)
    (2, 4)
    """
    have_gpus, have_cpus = resources.get("GPU", 0.0), resources.get("CPU", 0.0)
    if gpus:
        if have_gpus < gpus:
            raise RequestError(f"Each {what} asks for {gpus:g} GPU, but the cluster has "
                               f"{'no GPU' if not have_gpus else f'{have_gpus:g} GPU(s)'}: start the workers with "
                               "GPUs (ray start --num-gpus N), or run on CPUs (--device cpu; gpus_per_worker=0).")
        n = int(have_gpus // gpus) if workers is None else int(workers)
        if n * gpus > have_gpus:
            raise RequestError(f"{n} {what}s with {gpus:g} GPU each need {n * gpus:g} GPUs; the cluster has "
                               f"{have_gpus:g}: ask for --workers {int(have_gpus // gpus)} or fewer.")
        return n
    n = max(1, int(have_cpus)) if workers is None else int(workers)
    if n > have_cpus:
        raise RequestError(f"{n} {what}s with one CPU each need {n} CPUs; the cluster has {have_cpus:g}: ask for "
                           f"--workers {int(have_cpus)} or fewer." if have_cpus >= 1 else
                           f"The cluster has no CPU for a {what}: add a node (ray start --address ...).")
    return n


# Where a missing entry's parts are made by vtalign.extract.extract_features: in this process (cluster None),
# or on the Ray cluster that use_cluster names (the chapters' ``cluster`` parameter).
_ROUTE: dict = {"cluster": None, "workers": None}


def use_cluster(cluster: str | None, workers: int | None = None) -> None:
    """Make every missing cache entry's parts on Ray from now on: :func:`vtalign.extract.extract_features`
    (and so every chapter) sends them to ``cluster`` (``"local"``, ``"auto"``, ``"ray://host:port"``) and
    assembles the entry from the parts as usual. ``None``: back to this process. Datasets a worker cannot
    rebuild from their name and options are still made here."""
    if cluster is not None and cluster != "local" and not _is_address(cluster):
        raise ValueError(f"cluster must be None, 'local', 'auto', 'host:port' or 'ray://host:port', got {cluster!r}.")
    _ROUTE.update(cluster=cluster, workers=workers)


def parts_maker(request: FeatureRequest, *, device: str = "auto", batch_size: int = 32, skip_failures: bool = False,
                cache_dir=None, progress: bool = True, encoder=None):
    """What :func:`vtalign.extract.cache.extract_request` calls to make a missing entry's parts on the
    cluster :func:`use_cluster` names: a callable, or None when they are made in the calling process (no
    cluster set, an encoder already loaded there, or a dataset a worker cannot rebuild)."""
    cluster, workers = _ROUTE["cluster"], _ROUTE["workers"]
    if cluster is None or encoder is not None or not _rebuildable(request):
        return None

    def make_parts(r: FeatureRequest) -> None:
        run_plan([r], cluster, workers, device=device, batch_size=batch_size, skip_failures=skip_failures,
                 cache_dir=cache_dir, progress=progress, assemble=False)

    return make_parts


def _rebuildable(request: FeatureRequest) -> bool:
    """Whether a Ray worker can rebuild the request's dataset from its name and options (a registered
    dataset whose options give back the same items); other datasets are made in this process."""
    if request.dataset not in DATASETS:
        return False
    try:
        return load_dataset(request.dataset, **request.options).ids == request.data.ids
    except Exception:  # noqa: BLE001  (options that do not rebuild it: make it here)
        return False


RESUBMISSIONS = 2  # a part whose worker was lost goes to the pool's other workers, up to this many rounds


def _part_maker_class(ray):
    @ray.remote(max_restarts=3, max_task_retries=3)
    class PartMaker:
        """Holds one loaded encoder; makes parts of any request for its model."""

        def __init__(self, model: str, device: str, batch_size: int):
            self.model, self.device, self.batch_size = model, device, batch_size
            self.encoder, self.datasets, self.loads = None, {}, 0

        def make(self, request: FeatureRequest, index: int, parts: str) -> dict:
            key = (request.dataset, repr(sorted(request.options.items())))
            if key not in self.datasets:  # the request arrives without its dataset: rebuilt once per worker
                self.datasets[key] = load_dataset(request.dataset, **request.options)
            chunk = part_chunks(self.datasets[key])[index]
            start, waited, folder = time.perf_counter(), False, Path(parts)
            report: dict = {}
            while True:
                loaded = self.encoder is not None
                part, self.encoder = make_part(chunk, request.key, folder, index, self.encoder, self.device,
                                               self.batch_size, report=report, load_options=request.load_options)
                self.loads += int(not loaded and self.encoder is not None)
                if part is not None or part_done(folder, index, request.key):
                    break
                # claimed by another process: wait until it writes the part, or its heartbeat goes stale (a
                # lost node's worker) and the claim is taken over here
                waited = True
                time.sleep(min(1.0, claim_stale_seconds() / 10))
            took_over = part is not None and bool(report.get("took_over"))
            return dict(index=index, made=part is not None, took_over=took_over, waited=waited, items=len(chunk),
                        seconds=time.perf_counter() - start, pid=os.getpid(), node=ray_node(),
                        encoder_loads=self.loads)

        def node(self) -> str | None:
            return ray_node()

        def pid(self) -> int:
            return os.getpid()

    return PartMaker


def run_plan(requests: list[FeatureRequest], cluster: str = "local", workers: int | None = None,
             device: str = "auto", gpus_per_worker: float | None = None, batch_size: int = 32, cache_dir=None,
             skip_failures: bool = False, progress: bool = True, on_submitted=None,
             assemble: bool = True, force: bool = False, verify: bool = False) -> pd.DataFrame:
    """Make every request's cache entry on Ray; returns one row per request: dataset, model, frames,
    captions, setting (the count the request is about, as :func:`~vtalign.extract.request.request_setting`
    prints it: ``captions=1`` for a text model, ``frames=8`` for a video one), status (``reused`` / ``computed`` /
    ``failed``), parts_made (on workers), parts_resubmitted (tasks sent to another worker of the pool after
    theirs was lost and Ray's own retries were spent), parts_taken_over (parts a worker made after the claim
    of a lost worker went stale: a node lost mid-plan), parts_made_by_driver, parts_total, nodes (how many nodes
    made parts), workers_used and encoder_loads (each worker loads its model once: equal unless a worker was
    restarted), seconds, items_per_second (per worker, while busy), error.

    A worker that finds its part claimed by another process waits until that process writes it, or until
    the claim's heartbeat is older than ``$VTALIGN_CLAIM_STALE_S`` (a lost node: its claims are judged by
    their heartbeat alone) and takes it over.

    Models go one after another: a pool of ``workers`` actors loads the model once each, makes every
    missing part of that model's requests, and is released before the next model's pool starts (actors
    hold their CPU or GPU while they live, so pools of several models at once could wait on each other).

    workers : actors per model (default: the cluster's CPUs, or its GPUs when each worker asks for one;
        more than the cluster holds is a :class:`~vtalign.extract.errors.RequestError` before anything
        starts, see :func:`plan_workers`)
    gpus_per_worker : GPU share each actor requests (default: 1 when ``device`` resolves to CUDA, else 0)
    on_submitted : called with each model's actor handles once its parts are queued (tests kill one)
    assemble : write each entry from its parts here, with the same code as one process
        (:func:`vtalign.extract.cache.extract_request`, which finds every part on disk); ``False``: leave
        that to the caller, as :func:`vtalign.extract.extract_features` does when :func:`use_cluster` sends
        its parts here
    force : recompute every entry even when a complete one is cached. An entry made with ``skip_failures``
        is reused only when ``skip_failures`` is set here too; otherwise its failed items are retried
        (:func:`vtalign.extract.cache.prepare_entry`).
    verify : check a cached entry's content digests (features and video files) before reusing it
    """
    from tqdm import tqdm

    device = resolve_device(device)
    gpus = (1.0 if device.startswith("cuda") else 0.0) if gpus_per_worker is None else gpus_per_worker
    # every request was checked when it was built; a run that makes entries checks it as strictly as
    # skip_failures says, before any work (and before Ray starts): a bad one raises RequestError
    requests = [r.for_run(skip_failures) for r in requests]
    ray = None
    if any(_may_need_work(r, cache_dir, force, skip_failures, verify) for r in requests):
        # the cluster is joined and its resources checked before any entry is touched: a plan it cannot
        # hold (GPUs asked for and none there, more workers than CPUs) stops here, with nothing started
        ray = connect(cluster, workers)
        workers = plan_workers(ray.cluster_resources(), workers, gpus)
    rows: dict[int, dict] = {}
    work: dict[str, list] = {}
    for position, r in enumerate(requests):
        ds, req, entry = r.data, r.key, r.entry(cache_dir)
        found, reason, *_ = prepare_entry(r, entry, verify, skip_failures=skip_failures, force=force)
        sizes = [len(chunk) for chunk in part_chunks(ds)]   # items per part
        n_parts = len(sizes)
        base = dict(dataset=r.dataset, model=r.model, frames=r.frames, captions=r.captions,
                    setting=r.setting, parts_total=n_parts)
        if found is not None:
            rows[position] = dict(base, status="reused", parts_made=0, parts_resubmitted=0, parts_taken_over=0,
                                  parts_made_by_driver=0,
                                  nodes=0, workers_used=0, encoder_loads=0, seconds=0.0,
                                  items_per_second=float("nan"), error="")
            continue
        parts = open_parts(entry, req, reason)
        todo = [c for c in range(n_parts) if not (parts / f"part-{c:05d}.npz").is_file()]
        work.setdefault(r.model, []).append((position, r, parts, todo, sizes, base))
    if not work:  # every entry reused: no cluster needed
        return pd.DataFrame([rows[p] for p in range(len(requests))])
    if ray is None:  # an entry looked complete but was not reusable (e.g. made from other video files)
        ray = connect(cluster, workers)
        workers = plan_workers(ray.cluster_resources(), workers, gpus)
    Maker = _part_maker_class(ray)
    # one bar over every item of every part the plan makes, with the rate per worker (per GPU on GPUs)
    total = sum(sizes[c] for items in work.values() for *_, todo, sizes, _ in items for c in todo)
    per = "GPU" if gpus else "worker"
    bar = tqdm(total=total, desc=f"plan on {cluster} ({workers} {per}(s) per model)", unit="item",
               disable=not progress)
    plan_start = time.perf_counter()
    for model, items in work.items():
        pool = [Maker.options(num_cpus=0 if gpus else 1, num_gpus=gpus).remote(model, device, batch_size)
                for _ in range(workers)]
        jobs, submitted = [], {}  # submitted: future -> (part index, items, actor, attempt)
        for position, r, parts, todo, sizes, base in items:
            futures = []
            for i, c in enumerate(todo):
                future = pool[i % workers].make.remote(r, c, str(parts))
                submitted[future] = (c, sizes[c], i % workers, 1)
                futures.append(future)
            jobs.append((position, r, parts, futures, base, time.perf_counter()))
        if on_submitted is not None:
            on_submitted({model: pool})
        for position, r, parts, futures, base, start in jobs:
            made, taken_over, resubmitted, busy, items_done, error = 0, 0, 0, 0.0, 0, ""
            nodes, loads = set(), {}
            remaining = list(futures)
            while remaining:
                done, remaining = ray.wait(remaining, num_returns=1)
                c, n_items, actor, attempt = submitted.pop(done[0])
                try:
                    out = ray.get(done[0])
                except Exception as err:  # noqa: BLE001  (its worker was lost and Ray's own retries are spent)
                    if attempt < RESUBMISSIONS * workers:  # to the next worker of the pool (a live one, or restarted)
                        nxt = (actor + 1) % workers
                        future = pool[nxt].make.remote(r, c, str(parts))
                        submitted[future] = (c, n_items, nxt, attempt + 1)
                        remaining.append(future)
                        resubmitted += 1
                        continue
                    error = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"  # the driver makes it below
                else:
                    made += int(out["made"])
                    taken_over += int(out["took_over"])
                    busy += out["seconds"]
                    items_done += out["items"] if out["made"] else 0
                    if out["made"]:
                        nodes.add(out["node"])
                    loads[out["pid"]] = max(loads.get(out["pid"], 0), out["encoder_loads"])
                bar.update(n_items)
                rate = bar.n / max(time.perf_counter() - plan_start, 1e-9)
                lost = (f", {resubmitted} resubmitted and {taken_over} taken over from lost workers"
                        if resubmitted or taken_over else "")
                bar.set_postfix_str(f"{rate / workers:.2f} items/s per {per}{lost}", refresh=False)
            status, made_here = ("computed" if assemble else "parts made"), 0
            try:  # every part is on disk (or claimed by a live process): assemble the entry as one process would
                if assemble:
                    run = extract_request(r, device=device, batch_size=batch_size, skip_failures=skip_failures,
                                          cache_dir=cache_dir, progress=False)
                    made_here = len(run.summary.computed)
            except Exception as err:
                status, error = "failed", f"{type(err).__name__}: {err}"
            rows[position] = dict(base, status=status, parts_made=made, parts_resubmitted=resubmitted,
                                  parts_taken_over=taken_over,
                                  parts_made_by_driver=made_here, nodes=len(nodes), workers_used=len(loads),
                                  encoder_loads=sum(loads.values()), seconds=time.perf_counter() - start,
                                  items_per_second=items_done / busy if busy else float("nan"), error=error)
        for actor in pool:  # release this model's CPUs/GPUs before the next model's pool
            ray.kill(actor, no_restart=True)
    bar.close()
    return pd.DataFrame([rows[p] for p in range(len(requests))])


def _on_simulated_nodes(request: FeatureRequest, n: int, cache: Path, single: float, n_parts: int,
                        n_clips: int) -> dict:
    """One benchmark run on a simulated cluster of ``n`` one-CPU worker nodes (see :func:`scaleout_benchmark`)."""
    import pickle

    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    start = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=0))
    for _ in range(n):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
    up = time.perf_counter() - start
    try:
        start = time.perf_counter()
        row = run_plan([request], cluster.address, workers=n, device="cpu", cache_dir=cache, progress=False).iloc[0]
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
        cluster.shutdown()
    busy = row.parts_made * CHUNK_ITEMS / row.items_per_second if row.items_per_second else float("nan")
    returned = len(pickle.dumps(dict(index=0, made=True, took_over=False, waited=False, items=CHUNK_ITEMS,
                                     seconds=1.0, pid=1, node="0" * 56, encoder_loads=1)))
    return dict(setting=f"simulated cluster, {n} worker node(s)", workers=n, nodes=int(row.nodes), seconds=wall,
                items_per_second=n_clips / wall, overhead_per_part_seconds=(wall - single) / n_parts,
                cluster_start_seconds=up, busy_seconds_per_part=busy / max(row.parts_made, 1),
                idle_worker_seconds=wall * n - busy, result_bytes=returned * n_parts,
                encoder_loads=int(row.encoder_loads))


def _may_need_work(r: FeatureRequest, cache_dir, force: bool, skip_failures: bool, verify: bool) -> bool:
    """Whether a request's entry may have to be made, from its files alone (no side effect): forced,
    verified, not complete, made for another request, or made with failures this run retries."""
    entry = r.entry(cache_dir)
    if force or verify or check_entry(entry)[0] != "ok":
        return True
    meta = meta_of(entry) or {}
    return bool(request_differences(meta.get("request", {}), r.key)) or (bool(meta.get("failures"))
                                                                         and not skip_failures)


def scaleout_benchmark(out: Path | None = None, model: str = "efficientnet-lite0", n_clips: int = 128,
                       frames: int = 4, worker_counts=(1, 2), node_counts=(1, 2, 4),
                       cache_root: Path | None = None) -> dict:
    """Measure extraction throughput in one run on this machine: one process, then a local Ray runtime with
    each number of workers, then a simulated cluster (``ray.cluster_utils.Cluster``: a head that runs no
    work and ``n`` worker nodes of one CPU each, each its own raylet) with each number of nodes, each on a
    cold cache (same request, so the same bytes); returns and writes a JSON record.

    Reported per setting: wall seconds (from submitting the plan to the written entry), items/s over the
    wall time, the overhead per part against one process, (wall - one-process wall) / parts, and where the
    Ray time goes: ``busy_seconds_per_part`` (a worker encoding a part), ``idle_worker_seconds`` (worker
    time not spent in tasks: actor start, model load, waiting, the driver assembling the entry) and
    ``result_bytes`` (what tasks return through the object store: a small dict per part, the features
    going through the shared cache on disk). Simulated nodes also report ``cluster_start_seconds``.
    """
    import json
    import platform
    import shutil
    import tempfile

    import ray
    import torch

    from .._version import __version__, git

    options = {"n_clips": n_clips, "size": 128}
    request = plan_requests("synthetic_world", [model], frames=[frames], options=options)[0]
    root = Path(cache_root or tempfile.mkdtemp(prefix="vtalign-scaleout-"))
    n_parts = len(part_chunks(request.data))
    runs = []
    start = time.perf_counter()
    extract_request(request, device="cpu", cache_dir=root / "single", progress=False)
    single = time.perf_counter() - start
    runs.append(dict(setting="one process", workers=1, seconds=single, items_per_second=n_clips / single,
                     overhead_per_part_seconds=0.0))
    for w in worker_counts:
        if ray.is_initialized():
            ray.shutdown()
        connect("local", workers=w)
        start = time.perf_counter()
        run_plan([request], "local", workers=w, device="cpu", cache_dir=root / f"ray{w}", progress=False)
        wall = time.perf_counter() - start
        ray.shutdown()
        a, _ = load_request(request, cache_dir=root / "single")
        b, _ = load_request(request, cache_dir=root / f"ray{w}")
        runs.append(dict(setting=f"Ray, {w} worker(s)", workers=w, seconds=wall, items_per_second=n_clips / wall,
                         overhead_per_part_seconds=(wall - single) / n_parts,
                         bitwise_equal_to_one_process=a.tobytes() == b.tobytes()))
    for n in node_counts:
        runs.append(_on_simulated_nodes(request, n, root / f"nodes{n}", single, n_parts, n_clips))
        b, _ = load_request(request, cache_dir=root / f"nodes{n}")
        runs[-1]["bitwise_equal_to_one_process"] = a.tobytes() == b.tobytes()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    record = dict(kind="scaleout", machine=dict(processor=platform.processor() or platform.machine(),
                                                cores=os.cpu_count(), torch_threads=torch.get_num_threads()),
                  versions=dict(vtalign=__version__, ray=ray.__version__, torch=torch.__version__),
                  git_commit=git("rev-parse", "HEAD"), model=model, n_clips=n_clips, frames=frames, parts=n_parts,
                  runs=runs, load_average_after=load,
                  note="wall time from submitting the plan to the written entry; cold caches. Simulated nodes "
                       "share this machine's cores, so more nodes than cores cannot add throughput; they show "
                       "what a node costs (start, one model load per worker) and that the plan spreads.")
    if cache_root is None:
        shutil.rmtree(root, ignore_errors=True)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(record, indent=1))
    return record
