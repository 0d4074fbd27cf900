"""The data manifest and the fetch step: mirror first, hashes checked, clear errors."""
import pytest

import vtalign.extract.manifest as data
from vtalign import paths
from vtalign.extract.manifest import DataError, check_video_root, entry, fetch, manifest, sha256sum

NAMES = {"vatex", "pvd", "activitynet", "youcook2", "videocomp", "vitatecs", "test_of_time", "synthetic_world", "clips",
         "kinetics400", "kinetics700_2020", "ssv2"}
needs_data = pytest.mark.skipif(not paths.data_mirror_dirs(), reason="no local data mirror (../shared/data)")


def test_manifest_has_every_dataset_with_provenance():
    m = manifest()
    assert set(m) == NAMES
    for e in m.values():
        assert e.title and e.what and e.citation and e.license and e.videos
        for f in e.files:
            assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0
    assert m["clips"].file("clips.csv").path == "clips/clips.csv"
    with pytest.raises(KeyError, match="lists"):
        entry("imagenet")


@needs_data
def test_every_file_here_resolves_from_the_mirror_with_its_hash():
    for e in manifest().values():
        for f in e.files:
            if f.here:
                path = fetch(e.name, f.path)
                assert path.is_file() and sha256sum(path) == f.sha256


def test_mismatching_mirror_copy_is_an_error_naming_dataset_and_file(tmp_path, monkeypatch):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "ssv2_labels.txt").write_text("not the real file\n")
    monkeypatch.setenv("VTALIGN_DATA_MIRROR", str(tmp_path))
    with pytest.raises(DataError, match=r"\[ssv2\].*ssv2_labels.txt.*sha256"):
        fetch("ssv2", "labels/ssv2_labels.txt")


def test_missing_file_falls_back_to_download_and_explains_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "data_mirror_dirs", lambda: [])
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path))
    calls = []

    def offline(url, **kw):
        calls.append(url)
        raise ConnectionError("no network here")

    import pooch
    monkeypatch.setattr(pooch, "retrieve", offline)
    with pytest.raises(DataError) as err:
        fetch("vatex", "vatex/val.en")
    assert calls == [entry("vatex").file("val.en").url]
    msg = str(err.value)
    assert "[vatex]" in msg and "vatex/val.en" in msg and "VTALIGN_DATA_MIRROR" in msg and "no network" in msg


def test_download_cache_is_used_when_the_file_was_downloaded(tmp_path, monkeypatch):
    src = data.fetch("ssv2", "labels/ssv2_labels.txt") if paths.data_mirror_dirs() else None
    if src is None:
        pytest.skip("no local data mirror")
    monkeypatch.setattr(paths, "data_mirror_dirs", lambda: [])
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path))
    import pooch

    def fake_download(url, known_hash, fname, path, progressbar):
        target = tmp_path / "downloads" / "labels" / fname
        target.write_bytes(src.read_bytes())
        assert known_hash == "sha256:" + entry("ssv2").file("ssv2_labels.txt").sha256
        return str(target)

    monkeypatch.setattr(pooch, "retrieve", fake_download)
    got = fetch("ssv2", "labels/ssv2_labels.txt")
    assert got.parent == tmp_path / "downloads" / "labels" and sha256sum(got) == sha256sum(src)


def test_video_root_checks(tmp_path):
    with pytest.raises(DataError, match=r"\[vatex\].*not distributed"):
        check_video_root("vatex", None, ["a.mp4"])
    with pytest.raises(DataError, match="not a folder"):
        check_video_root("vatex", tmp_path / "nope", ["a.mp4"])
    (tmp_path / "a.mp4").write_bytes(b"x")
    with pytest.raises(DataError, match="1 of 2 videos are missing"):
        check_video_root("vatex", tmp_path, ["a.mp4", "b.mp4"])
    assert check_video_root("vatex", tmp_path, ["a.mp4"]) == tmp_path
