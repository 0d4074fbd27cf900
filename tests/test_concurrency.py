"""Several processes on one cache entry: each part is computed once, a killed process's part is taken over
when its heartbeat stops, and the entry is bitwise the one a single clean run makes. Besides the timed runs,
the orders in which two runs can interleave around an entry's completion are forced with barriers, and two
runs go beside CPU hogs."""
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vtalign.extract import extract, extract_features
from vtalign.extract.datasets import Item, VideoTextDataset
from vtalign.extract.encoders import ENCODERS, Encoder
from vtalign.extract.parts import CHUNK_ITEMS
from vtalign.extract.request import cache_entry

SCRIPT = r"""
import hashlib, json, sys, time
from vtalign.extract import extract
from vtalign.extract.encoders import _tiny, register_encoder

def slow(device="cpu", delay=float(sys.argv[2])):
    enc = _tiny("vit", device)
    run = enc.run
    def slowly(batch):
        time.sleep(delay)
        return run(batch)
    enc.run, enc.name = slowly, "slow-tiny-vit"
    return enc

register_encoder("slow-tiny-vit")(slow)
feats, meta, run = extract("synthetic_world", "slow-tiny-vit", frames=2, cache_dir=sys.argv[1],
                           dataset_options={"n_clips": 128, "size": 32, "n_frames": 8}, progress=False)
print(json.dumps({"computed": run.computed, "read": run.read,
                  "digest": hashlib.sha256(feats.tobytes()).hexdigest(), "n": len(meta["item_ids"])}))
"""


def _start(cache, delay, stale=None):
    env = {**os.environ, **({"VTALIGN_CLAIM_STALE_S": str(stale)} if stale else {})}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(cache), str(delay)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _result(proc, timeout=240):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    return _result(_start(tmp_path_factory.mktemp("clean"), 0.0))


def test_two_runs_on_one_request_compute_each_part_once(tmp_path, clean_run):
    a, b = _start(tmp_path, 0.4), _start(tmp_path, 0.4)
    ra, rb = _result(a), _result(b)
    assert sorted(ra["computed"] + rb["computed"]) == [0, 1, 2, 3]       # every part once, by one of them
    assert ra["digest"] == rb["digest"] == clean_run["digest"] and ra["n"] == 128
    assert not list(tmp_path.rglob("*.claim"))


def test_a_killed_run_loses_only_its_part_in_flight(tmp_path, clean_run):
    victim = _start(tmp_path, 3.0)                 # each part takes about 6 s
    deadline = time.time() + 120
    while not list(tmp_path.rglob("part-*.claim")) and time.time() < deadline:
        time.sleep(0.2)
    claimed = list(tmp_path.rglob("part-*.claim"))
    assert claimed, "the first run never claimed a part"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    survivor = _result(_start(tmp_path, 0.0, stale=2))
    assert survivor["digest"] == clean_run["digest"]
    assert int(claimed[0].name[5:10]) in survivor["computed"]              # taken over after its heartbeat stopped
    assert not list(tmp_path.rglob("*.claim"))


# --------------------------------------------------------------------------------------------------------
# Forced interleavings. Two forked processes ("A" and "B") run extract_features on one entry; each is
# paused at named points (extract_features' ``hooks``, and inside A's removal of parts/) by file barriers,
# and the test releases them in one problematic order after another. No timing is relied on: every step
# waits for the other process to be where the order says. A plain-numpy text encoder keeps each run at
# milliseconds, and forking (the test process has everything imported) spares each process ~8 s of imports.
# --------------------------------------------------------------------------------------------------------
FORK = multiprocessing.get_context("fork")
MODEL = "numpy-text-race"
N_PARTS = 4


def _numpy_text(device="cpu", spin=0.0):
    """A deterministic text encoder in plain numpy (no torch, no BLAS threads: safe in a forked process);
    ``spin`` burns that many CPU seconds per batch, so processes contend for the cores."""
    def run(texts):
        end = time.process_time() + spin
        while time.process_time() < end:
            pass
        codes = np.zeros((len(texts), 16), np.float32)
        for i, text in enumerate(texts):
            raw = np.frombuffer(text.encode()[:16], np.uint8)
            codes[i, :len(raw)] = raw
        return np.stack([codes, codes * 0.5 + 1.0], axis=1), [16, 16]

    return Encoder(name=MODEL, modality="text", pooling="mean", revision="numpy-1", run=run)


def _dataset():
    n = N_PARTS * CHUNK_ITEMS
    return VideoTextDataset("race", {"n": n}, [Item(f"r{i:03d}", [f"caption {i}"]) for i in range(n)])


class Pauses:
    """extract_features ``hooks`` of one process: at each ``(point, index, n-th time there)`` named in ``at``,
    write ``<name>.reached`` in ``folder`` and wait for ``<name>.go``. Owned by the process it pauses."""

    def __init__(self, folder, at):
        self.folder, self.at, self.seen = Path(folder), dict(at), {}

    def __call__(self, point, index=None, **where):
        self.seen[point, index] = self.seen.get((point, index), 0) + 1
        name = self.at.get((point, index, self.seen[point, index]))
        if name:
            self.wait(name)

    def wait(self, name):
        (self.folder / f"{name}.reached").touch()
        deadline = time.monotonic() + 60
        while not (self.folder / f"{name}.go").exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"nobody let {name} go on")
            time.sleep(0.002)


def _process(cache_dir, result, folder, at, pause_in_removal, spin, stale):
    """One run on the entry (in a forked process): writes what it computed and read, and its result's digest."""
    os.environ["VTALIGN_CLAIM_STALE_S"] = str(stale)     # a waiting run looks again every stale/10 s
    ENCODERS[MODEL] = lambda device="cpu": _numpy_text(device, spin)
    pauses = Pauses(folder, at)
    if pause_in_removal:  # shutil.rmtree's steps on a flat folder: list it, delete what was listed, remove the
        def rmtree_pausing(path, ignore_errors=False, **kwargs):     # folder; paused before the folder goes
            for f in list(Path(path).iterdir()):
                f.unlink(missing_ok=True)
            pauses.wait(pause_in_removal)
            try:
                os.rmdir(path)
            except OSError:
                if not ignore_errors:
                    raise

        shutil.rmtree = rmtree_pausing
    try:
        feats, _, run = extract(_dataset(), MODEL, cache_dir=cache_dir, progress=False, hooks=pauses)
        out = dict(error=None, digest=hashlib.sha256(feats.tobytes()).hexdigest(), computed=run.computed,
                   read=run.read)
    except BaseException as err:  # noqa: BLE001  (reported to the test)
        out = dict(error=f"{type(err).__name__}: {err}", digest=None, computed=None, read=None)
    Path(result).write_text(json.dumps(out))


class Race:
    """Forked runs on one cache entry, started, paused and released by a test."""

    def __init__(self, root: Path, spin=0.0, stale=3):
        self.cache, self.folder, self.spin, self.stale, self.procs = root / "cache", root / "barriers", spin, stale, {}
        self.folder.mkdir(parents=True)

    def start(self, who, at=(), pause_in_removal=None):
        proc = FORK.Process(target=_process, daemon=True,
                            args=(str(self.cache), str(self.folder / f"{who}.json"), str(self.folder), dict(at),
                                  pause_in_removal, self.spin, self.stale))
        proc.start()
        self.procs[who] = proc

    def reached(self, name, who):
        deadline = time.monotonic() + 30
        while not (self.folder / f"{name}.reached").exists():
            assert self.procs[who].is_alive(), f"{who} ended before {name}: {self.result(who)}"
            assert time.monotonic() < deadline, f"{who} never reached {name}"
            time.sleep(0.002)

    def go(self, name):
        (self.folder / f"{name}.go").touch()

    def result(self, who):
        self.procs[who].join(30)
        assert self.procs[who].exitcode == 0, f"{who} exited with {self.procs[who].exitcode}"
        return json.loads((self.folder / f"{who}.json").read_text())

    def stop(self):
        for proc in self.procs.values():
            if proc.is_alive():
                proc.kill()
            proc.join()


@pytest.fixture(scope="module")
def one_process_entry(tmp_path_factory):
    """The entry one undisturbed process makes: its two files' bytes, and its features' digest."""
    ENCODERS[MODEL] = _numpy_text
    try:
        root = tmp_path_factory.mktemp("one")
        feats, meta = extract_features(_dataset(), MODEL, cache_dir=root, progress=False)
        entry = cache_entry(meta["request"], root)
        yield {"digest": hashlib.sha256(feats.tobytes()).hexdigest(),
               **{f: (entry / f).read_bytes() for f in ("features.npy", "meta.json")}}
    finally:
        ENCODERS.pop(MODEL, None)


def _late_open(race):
    """B found no entry and is about to open parts/ when A completes the entry and removes parts/."""
    race.start("B", {("open-parts", None, 1): "B-opens"})
    race.reached("B-opens", "B")
    race.start("A")
    race.result("A")
    race.go("B-opens")


def _completed_while_opening(race):
    """B found no entry, and no completed one when it looked again in open_parts, and is about to make
    parts/ when A completes the entry and removes parts/."""
    race.start("B", {("mkdir-parts", None, 1): "B-makes-parts"})
    race.reached("B-makes-parts", "B")
    race.start("A")
    race.result("A")
    race.go("B-makes-parts")


def _retry_during_removal(race):
    """B made parts 1-3 while A held part 0's claim, and comes back for part 0 while A, having completed the
    entry, is half-way through removing parts/ (its files gone, the folder still there): the failure seen in
    the timed test (a run recomputing the parts it had waited for)."""
    race.start("A", {("claimed", 0, 1): "A-holds-0"}, pause_in_removal="A-removes")
    race.reached("A-holds-0", "A")
    race.start("B", {("claim", 0, 2): "B-retries-0"})
    race.reached("B-retries-0", "B")
    race.go("A-holds-0")
    race.reached("A-removes", "A")
    race.go("B-retries-0")
    race.result("B")
    race.go("A-removes")


def _read_some_during_removal(race):
    """B read parts 0 and 1 (A made them), found no part 2 and is about to claim it when A completes the
    entry and is half-way through removing parts/."""
    race.start("A", {("claim", 2, 1): "A-claims-2"}, pause_in_removal="A-removes")
    race.reached("A-claims-2", "A")
    race.start("B", {("claim", 2, 1): "B-claims-2"})
    race.reached("B-claims-2", "B")
    race.go("A-claims-2")
    race.reached("A-removes", "A")
    race.go("B-claims-2")
    race.result("B")
    race.go("A-removes")


def _read_some_after_removal(race):
    """As above, but A has removed parts/ completely by the time B claims part 2."""
    race.start("A", {("claim", 2, 1): "A-claims-2"})
    race.reached("A-claims-2", "A")
    race.start("B", {("claim", 2, 1): "B-claims-2"})
    race.reached("B-claims-2", "B")
    race.go("A-claims-2")
    race.result("A")
    race.go("B-claims-2")


def _claimed_as_entry_completes(race):
    """B read parts 0 and 1 and claims part 2 after A made it and completed the entry, but before A removes
    parts/; B then looks for part 2's file after A removed parts/."""
    race.start("A", {("claim", 2, 1): "A-claims-2", ("entry-written", None, 1): "A-wrote"})
    race.reached("A-claims-2", "A")
    race.start("B", {("claim", 2, 1): "B-claims-2", ("claimed", 2, 1): "B-holds-2"})
    race.reached("B-claims-2", "B")
    race.go("A-claims-2")
    race.reached("A-wrote", "A")
    race.go("B-claims-2")
    race.reached("B-holds-2", "B")
    race.go("A-wrote")
    race.result("A")
    race.go("B-holds-2")


def _assert_made_once_and_as_one_process(race, one_process_entry):
    a, b = race.result("A"), race.result("B")
    assert a["error"] is None and b["error"] is None, (a, b)
    assert sorted(a["computed"] + b["computed"]) == list(range(N_PARTS)), (a, b)    # each part once, by one run
    assert a["digest"] == b["digest"] == one_process_entry["digest"]
    entry = next(race.cache.glob("*/*/*/*"))
    assert sorted(p.name for p in entry.iterdir()) == ["features.npy", "meta.json"]   # no parts/ left or made
    for f in ("features.npy", "meta.json"):
        assert (entry / f).read_bytes() == one_process_entry[f], f


@pytest.mark.parametrize("order", [_late_open, _completed_while_opening, _retry_during_removal,
                                   _read_some_during_removal, _read_some_after_removal, _claimed_as_entry_completes],
                         ids=lambda f: f.__name__.strip("_"))
def test_forced_interleavings_compute_each_part_once(tmp_path, one_process_entry, cpu_hogs, order):
    race = Race(tmp_path)
    try:
        order(race)
        _assert_made_once_and_as_one_process(race, one_process_entry)
    finally:
        race.stop()


def _burn(until):
    while time.time() < until:
        pass


@pytest.fixture(scope="module")
def cpu_hogs():
    """Three busy-loop processes (more than this machine's cores) while this module's races run; each
    stops by itself after 40 s at most and is killed when the module is done."""
    hogs = [FORK.Process(target=_burn, args=(time.time() + 40,), daemon=True) for _ in range(3)]
    for hog in hogs:
        hog.start()
    yield
    for hog in hogs:
        hog.kill()
        hog.join()


def test_two_runs_beside_cpu_hogs_compute_each_part_once(tmp_path, one_process_entry, cpu_hogs):
    """Two unpaused runs on one entry, B started at staggered delays (beside A, and as A completes), beside
    the CPU hogs: whatever the scheduler does, each part is made once and the entry is the one process's.
    Claims go stale only after 6 s without a heartbeat."""
    for n, delay in enumerate((0.0, 0.05, 0.15, 0.3)):
        race = Race(tmp_path / f"round{n}", spin=0.02, stale=6)
        try:
            race.start("A")
            time.sleep(delay)
            race.start("B")
            _assert_made_once_and_as_one_process(race, one_process_entry)
        finally:
            race.stop()


def test_a_claim_of_another_node_waits_for_its_heartbeat_and_one_of_a_dead_local_process_does_not(
        tmp_path, monkeypatch):
    """A claim records its host, Ray node and pid. A dead process on this host and node: its part is taken over
    at once. A claim made on another node (a lost machine; simulated nodes share this host): its pid means
    nothing here, so it is taken over only when its heartbeat is older than the stale time."""
    from vtalign.extract import parts as parts_mod

    monkeypatch.setenv("VTALIGN_CLAIM_STALE_S", "30")
    dead = FORK.Process(target=time.sleep, args=(0,))
    dead.start()
    dead.join()                                                      # a pid that no longer exists
    claim = tmp_path / "part-00000.claim"

    def claimed_by(node, age):
        claim.write_text(json.dumps({"host": socket.gethostname(), "node": node, "pid": dead.pid, "time": 0}))
        os.utime(claim, (time.time() - age, time.time() - age))

    claimed_by(None, 0)                                              # this host, outside Ray: pid decides
    taken = parts_mod._Claim.take(claim)
    assert taken is not None and taken.took_over
    taken.release()
    claimed_by("another-node", 0)                                    # fresh heartbeat, another node
    assert parts_mod._Claim.take(claim) is None
    claimed_by("another-node", 31)                                   # heartbeat older than the stale time
    taken = parts_mod._Claim.take(claim)
    assert taken is not None and taken.took_over
    taken.release()
