"""Bad states of the feature cache: truncated arrays, corrupt meta.json, damaged part files, and the
``--check`` / ``--repair`` walk over a shared cache. Nothing damaged is deleted or silently reused."""
import json

import numpy as np
import pytest
from test_features import CountingEncoder

from vtalign.extract.cli import main as extract_main
from vtalign.extract.datasets import Item, VideoTextDataset, load_dataset
from vtalign.extract.encoders import load_encoder
from vtalign.extract.features import extract, extract_features, load_features
from vtalign.extract.parts import CHUNK_ITEMS
from vtalign.extract.request import cache_entry, feature_request
from vtalign.extract.store import CorruptEntryError, check_entry


def _toy(n=2 * CHUNK_ITEMS + 3):
    return VideoTextDataset("toy", {"n": n}, [Item(f"v{i:03d}", [f"caption {i}"]) for i in range(n)])


def _made(tmp_path, ds=None):
    ds = ds or _toy()
    feats, meta = extract_features(ds, "tiny-bert", cache_dir=tmp_path, progress=False)
    return ds, feats, meta, cache_entry(meta["request"], tmp_path)


def _corrupt_copies(entry):
    return sorted(p.name for p in entry.parent.iterdir() if ".corrupt-" in p.name)


def test_meta_records_shape_dtype_size_and_digest(tmp_path):
    _, feats, meta, entry = _made(tmp_path)
    rec = meta["arrays"]["features.npy"]
    assert rec["shape"] == list(feats.shape) and rec["dtype"] == "float32"
    assert rec["bytes"] == (entry / "features.npy").stat().st_size and len(rec["blake2b"]) == 32
    assert check_entry(entry, verify=True) == ("ok", "verified")


def test_truncated_array_names_the_entry_and_is_recomputed_not_lost(tmp_path, capsys):
    ds, feats, _, entry = _made(tmp_path)
    path = entry / "features.npy"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])      # a crashed copy / full disk
    with pytest.raises(CorruptEntryError, match="features.npy has .* bytes") as err:
        load_features(ds, "tiny-bert", cache_dir=tmp_path)
    assert str(entry) in str(err.value) and "--check --repair" in str(err.value)
    counter = CountingEncoder(load_encoder("tiny-bert"))
    again, _ = extract_features(ds, "tiny-bert", cache_dir=tmp_path, progress=False, encoder=counter)
    assert counter.calls > 0 and np.array_equal(again, feats)
    assert "was corrupt" in capsys.readouterr().out
    kept = _corrupt_copies(entry)
    assert len(kept) == 1 and (entry.parent / kept[0] / "features.npy").stat().st_size == path.stat().st_size // 2


def test_corrupt_meta_json_is_a_clear_error_then_recomputed(tmp_path):
    ds, feats, _, entry = _made(tmp_path)
    (entry / "meta.json").write_text('{"request": {"dataset": "to')
    with pytest.raises(CorruptEntryError, match="meta.json is unreadable"):
        load_features(ds, "tiny-bert", cache_dir=tmp_path)
    again, _ = extract_features(ds, "tiny-bert", cache_dir=tmp_path, progress=False)
    assert np.array_equal(again, feats) and len(_corrupt_copies(entry)) == 1


def test_same_size_damage_is_caught_by_the_digest(tmp_path):
    ds, feats, _, entry = _made(tmp_path)
    path = entry / "features.npy"
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF                                                        # one flipped byte, same size
    path.write_bytes(bytes(raw))
    load_features(ds, "tiny-bert", cache_dir=tmp_path)                     # shape and size alone cannot see it
    with pytest.raises(CorruptEntryError, match="blake2b"):
        load_features(ds, "tiny-bert", cache_dir=tmp_path, verify=True)
    again, _ = extract_features(ds, "tiny-bert", cache_dir=tmp_path, progress=False, verify=True)
    assert np.array_equal(again, feats)


def test_damaged_part_of_an_interrupted_run_is_set_aside_and_recomputed(tmp_path, capsys):
    ds = _toy()
    with pytest.raises(KeyboardInterrupt):
        extract_features(ds, "tiny-bert", cache_dir=tmp_path, progress=False, batch_size=CHUNK_ITEMS,
                         encoder=CountingEncoder(load_encoder("tiny-bert"), fail_at=3))
    entry = cache_entry(feature_request(ds, "tiny-bert"), tmp_path)
    part = entry / "parts" / "part-00001.npz"
    part.write_bytes(part.read_bytes()[:100])
    counter = CountingEncoder(load_encoder("tiny-bert"))
    feats, _ = extract_features(ds, "tiny-bert", cache_dir=tmp_path, progress=False, encoder=counter,
                                batch_size=CHUNK_ITEMS)
    assert counter.calls == 2                                              # the damaged part and the missing one
    assert "part file" in capsys.readouterr().out
    assert [p.name for p in entry.glob("part-00001.npz.corrupt-*")]        # kept, outside the removed parts/
    fresh, _ = extract_features(ds, "tiny-bert", cache_dir=tmp_path / "fresh", progress=False)
    np.testing.assert_allclose(feats, fresh, rtol=1e-5, atol=1e-6)


def test_check_lists_statuses_and_repair_fixes_them(tmp_path, capsys):
    ds = load_dataset("test_of_time")
    for seed in (0, 1):
        extract_features(ds, "tiny-bert", seed=seed, cache_dir=tmp_path, progress=False)
    assert extract_main(["--check", "--cache", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("ok ") == 2
    one = cache_entry(feature_request(ds, "tiny-bert", seed=0), tmp_path)
    two = cache_entry(feature_request(ds, "tiny-bert", seed=1), tmp_path)
    (one / "features.npy").write_bytes(b"\x93NUMPY")                      # corrupt
    meta = json.loads((two / "meta.json").read_text())
    meta["request"]["dataset_version"] = "0"                               # made by an older generator
    (two / "meta.json").write_text(json.dumps(meta))
    assert extract_main(["--check", "--cache", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "corrupt" in out and "stale" in out and "test_of_time x tiny-bert captions=1" in out
    assert extract_main(["--check", "--repair", "--no-progress", "--cache", str(tmp_path)]) == 0
    assert extract_main(["--check", "--verify", "--cache", str(tmp_path)]) == 0
    assert len(_corrupt_copies(one)) == 1


def test_entry_completed_from_parts_made_elsewhere_is_the_one_a_single_run_makes(tmp_path):
    """A run that reads every part from disk (another process, a cluster worker or a killed run made them)
    and completes the entry writes the same meta.json as a run that computed them: the parts record how
    their encoder describes itself. Which of several concurrent processes writes an entry cannot show."""
    ds = _toy()
    single = tmp_path / "single"
    _, _, _, single_entry = _made(single, ds)

    def stop_before_parts_go(point, **where):
        if point == "entry-written":
            raise KeyboardInterrupt("killed after its last part")

    shared = tmp_path / "shared"
    with pytest.raises(KeyboardInterrupt):
        extract_features(ds, "tiny-bert", cache_dir=shared, progress=False, hooks=stop_before_parts_go)
    entry = cache_entry(feature_request(ds, "tiny-bert"), shared)
    for made in ("meta.json", "features.npy"):      # every part on disk, no result: as if killed before it
        (entry / made).unlink()
    run = extract(ds, "tiny-bert", cache_dir=shared, progress=False).summary    # the encoder is never loaded
    assert run.computed == [] and run.read == [0, 1, 2]
    assert sorted(p.name for p in entry.iterdir()) == ["features.npy", "meta.json"]
    for f in ("features.npy", "meta.json"):
        assert (entry / f).read_bytes() == (single_entry / f).read_bytes(), f
