"""Several processes on one cache entry: each part is computed once, a killed process's part is taken over
when its heartbeat stops, and the entry is bitwise the one a single clean run makes."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = r"""
import hashlib, json, sys, time
from vtalign.extract import cache
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
feats, meta = cache.extract_features("synthetic_world", "slow-tiny-vit", frames=2, cache_dir=sys.argv[1],
                                     dataset_options={"n_clips": 128, "size": 32, "n_frames": 8}, progress=False)
print(json.dumps({"computed": cache.LAST_RUN["computed"], "read": cache.LAST_RUN["read"],
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
