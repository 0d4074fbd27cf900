"""Issue 23 item 4: the paper's datasets in the paper's format, from a user's files (constructed here in tmp):
VaTeX's official JSON (10 captions), PVD's videos, Kinetics-400 / Kinetics-700-2020 / SSv2 test lists with the
seeded, recorded subset, and the errors that name what is missing and where to get it."""
import json

import pytest

from vtalign import paths
from vtalign.extract.datasets import load_dataset, read_video_list
from vtalign.extract.manifest import DataError, entry
from vtalign.extract.request import feature_request
from vtalign.extract.validation import build_dataset

needs_data = pytest.mark.skipif(not paths.data_mirror_dirs(), reason="no local data mirror (../shared/data)")


def _vatex_json(path, n=4, n_caps=10):
    rows = [{"videoID": f"vid{i:02d}_000010_000020", "enCap": [f"Video {i} caption {c}." for c in range(n_caps)],
             "chCap": ["一个人"] * 10} for i in range(n)]
    path.write_text(json.dumps(rows))
    return path


# --------------------------------------------------------------------------- #
# VaTeX: the official JSON beside the 5-caption default
# --------------------------------------------------------------------------- #
def test_vatex_official_json_gives_all_ten_captions_and_records_its_source(tmp_path):
    f = _vatex_json(tmp_path / "vatex_validation_v1.0.json")
    ds = load_dataset("vatex", json_file=str(f))
    assert ds.ids == [f"vid{i:02d}_000010_000020" for i in range(4)]
    assert all(len(it.captions) == 10 for it in ds.items) and ds.items[2].captions[7] == "Video 2 caption 7."
    assert "official JSON vatex_validation_v1.0.json" in ds.notes["caption_source"]
    assert ds.notes["captions_per_video"] == [10]
    assert ds.options["json_file"] == str(f.resolve()) and "split" not in ds.options
    assert load_dataset("vatex", **ds.options).ids == ds.ids           # rebuilt from what the cache key records
    one = load_dataset("vatex", json_file=str(f), caption_index=9, n_items=2, sample_seed=3)
    assert [it.captions for it in one.items] == [[f"Video {int(v[3:5])} caption 9."] for v in one.ids]
    assert one.ids == load_dataset("vatex", json_file=str(f), n_items=2, sample_seed=3).ids
    with pytest.raises(ValueError, match="0 to 9"):
        load_dataset("vatex", json_file=str(f), caption_index=10)


@needs_data
def test_vatex_default_is_still_the_five_caption_files_and_their_keys_are_unchanged():
    ds = load_dataset("vatex", n_items=8)
    assert ds.options == {"split": "val", "n_items": 8, "sample_seed": 0}     # no json_file: old keys hold
    assert all(len(it.captions) == 5 for it in ds.items) and "public tokenised" in ds.notes["caption_source"]
    with pytest.raises(ValueError, match="0 to 4"):
        load_dataset("vatex", caption_index=5)


def test_vatex_json_errors_name_the_file_and_the_official_download(tmp_path):
    official = entry("vatex").downloads
    assert any(u.endswith("vatex_validation_v1.0.json") for u in official)
    with pytest.raises(DataError, match=r"\[vatex\] json_file .*nope.json does not exist.*vatex_validation_v1.0.json"):
        load_dataset("vatex", json_file=str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"videoID": "a", "enCap": ["x"]}, {"videoID": "b", "chCap": ["y"]}]))
    with pytest.raises(DataError, match="record 1 needs 'videoID'.*'enCap'"):
        load_dataset("vatex", json_file=str(bad))
    bad.write_text("{not json")
    with pytest.raises(DataError, match="is not JSON"):
        load_dataset("vatex", json_file=str(bad))
    bad.write_text(json.dumps([{"videoID": "a", "enCap": ["x"]}, {"videoID": "a", "enCap": ["y"]}]))
    with pytest.raises(DataError, match="appears twice"):
        load_dataset("vatex", json_file=str(bad))


def test_vatex_json_videos_from_a_video_root(tmp_path):
    f = _vatex_json(tmp_path / "v.json", n=2)
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "vid00_000010_000020.mp4").write_bytes(b"x")
    with pytest.raises(DataError, match=r"1 of 2 videos are missing.*vid01_000010_000020.mp4.*Official downloads"):
        load_dataset("vatex", json_file=str(f), video_root=str(videos))
    (videos / "vid01_000010_000020.mp4").write_bytes(b"x")
    ds = load_dataset("vatex", json_file=str(f), video_root=str(videos))
    assert ds.items[1].video.path == videos / "vid01_000010_000020.mp4"


# --------------------------------------------------------------------------- #
# PVD: videos from a folder, captions from here
# --------------------------------------------------------------------------- #
@needs_data
def test_pvd_videos_from_a_video_root_and_the_error_naming_what_is_missing(tmp_path):
    ids = load_dataset("pvd", n_items=3).ids
    assert all(it.video is None for it in load_dataset("pvd", n_items=3).items)   # captions only without a folder
    for vid in ids[:2]:
        (tmp_path / f"{vid}.mp4").write_bytes(b"x")
    with pytest.raises(DataError, match=rf"\[pvd\] 1 of 3 videos are missing under {tmp_path}.*{ids[2]}.mp4.*PE-Video"):
        load_dataset("pvd", n_items=3, video_root=str(tmp_path))
    (tmp_path / f"{ids[2]}.mp4").write_bytes(b"x")
    ds = load_dataset("pvd", n_items=3, video_root=str(tmp_path))
    assert [it.video.path.name for it in ds.items] == [f"{v}.mp4" for v in ids]
    assert all(len(it.captions) == 10 for it in ds.items)
    with pytest.raises(DataError, match="is not a folder.*PE-Video"):
        load_dataset("pvd", n_items=3, video_root=str(tmp_path / "absent"))


# --------------------------------------------------------------------------- #
# Kinetics-400, Kinetics-700-2020, SSv2: a folder and a list file, a seeded subset
# --------------------------------------------------------------------------- #
K400_CLASSES = ["abseiling", "air drumming", "answering questions"]


def _kinetics_folder(tmp_path, n=12, classes=K400_CLASSES, absent=()):
    """A flat folder of fake test videos (bytes only: nothing here decodes them) and the official test.csv."""
    root = tmp_path / "k_test"
    root.mkdir()
    rows = ["label,youtube_id,time_start,time_end,split"]
    for i in range(n):
        yid = f"yt{i:03d}"
        rows.append(f"{classes[i % len(classes)]},{yid},{i},{i + 10},test")
        if i not in absent:
            (root / f"{yid}_{i:06d}_{i + 10:06d}.mp4").write_bytes(b"x")
    csv = tmp_path / "test.csv"
    csv.write_text("\n".join(rows) + "\n")
    return root, csv


@needs_data
def test_kinetics400_test_list_and_the_seeded_recorded_subset(tmp_path):
    root, csv = _kinetics_folder(tmp_path)
    full = load_dataset("kinetics400", video_root=str(root), list_file=str(csv))
    assert len(full) == 12 and full.ids[1] == "yt001_000001_000011" and full.items[1].label == "air drumming"
    assert full.items[1].captions == ["a video of air drumming"] and full.items[1].video.path.parent == root
    a = load_dataset("kinetics400", video_root=str(root), list_file=str(csv), n_items=5, sample_seed=7)
    b = load_dataset("kinetics400", video_root=str(root), list_file=str(csv), n_items=5, sample_seed=7)
    c = load_dataset("kinetics400", video_root=str(root), list_file=str(csv), n_items=5, sample_seed=8)
    assert a.ids == b.ids and a.ids != c.ids and len(a) == 5 and set(a.ids) <= set(full.ids)
    assert a.notes["subset_ids"] == a.ids and a.notes["listed"] == 12
    assert a.options["sample_seed"] == 7 and a.options["n_items"] == 5 and len(a.options["list_sha256"]) == 64
    # The cache key: same seed, same key; another seed, another key (items and options differ).
    key = lambda ds: feature_request(ds, "minilm-l6", captions=1)
    assert key(a) == key(b) and key(a) != key(c) and key(a)["items_digest"] != key(c)["items_digest"]
    # Rebuilt from the recorded options (as a worker does): the same videos; a changed list is refused.
    assert load_dataset("kinetics400", **a.options).ids == a.ids
    csv.write_text(csv.read_text() + "abseiling,yt999,0,10,test\n")
    with pytest.raises(DataError, match="list changed"):
        load_dataset("kinetics400", **a.options)


@needs_data
def test_kinetics_missing_videos_error_or_skip(tmp_path):
    root, csv = _kinetics_folder(tmp_path, absent=(3, 4))
    with pytest.raises(DataError, match=r"\[kinetics400\] 2 of 12 videos are missing.*yt003_000003_000013.mp4.*"
                                         r"Official downloads: https://github.com/cvdfoundation/kinetics-dataset"):
        load_dataset("kinetics400", video_root=str(root), list_file=str(csv))
    ds = load_dataset("kinetics400", video_root=str(root), list_file=str(csv), missing="skip", n_items=6)
    assert ds.notes["listed_but_absent"] == 2 and len(ds) == 6 and "yt003_000003_000013" not in ds.ids
    assert ds.options["missing"] == "skip"
    with pytest.raises(DataError, match=r"\[kinetics400\] the videos of Kinetics-400 are not distributed.*"
                                         r"s3.amazonaws.com/kinetics/400/annotations/test.csv"):
        load_dataset("kinetics400", list_file=str(csv))
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset("kinetics400", video_root=str(tmp_path / "nowhere"), list_file=str(csv))
    with pytest.raises(DataError, match=r"list_file .*absent.csv: does not exist. The official lists: .*test.csv"):
        load_dataset("kinetics400", video_root=str(root), list_file=str(tmp_path / "absent.csv"))
    with pytest.raises(ValueError, match="missing must be one of"):
        load_dataset("kinetics400", video_root=str(root), list_file=str(csv), missing="ignore")


@needs_data
def test_list_file_errors_name_the_bad_line(tmp_path):
    root, csv = _kinetics_folder(tmp_path, n=3)
    csv.write_text("label,youtube_id,time_start,time_end,split\nnot a kinetics class,yt000,0,10,test\n")
    with pytest.raises(DataError, match="1 class names are not among the 400 classes.*not a kinetics class"):
        load_dataset("kinetics400", video_root=str(root), list_file=str(csv))
    csv.write_text("label,youtube_id,time_start,time_end,split\n,yt000,0,10,test\n")
    with pytest.raises(DataError, match="row 2 has no label"):
        load_dataset("kinetics400", video_root=str(root), list_file=str(csv))
    lst = tmp_path / "list.txt"
    lst.write_text("yt000_000000_000010.mp4 0\nyt001_000001_000011.mp4 400\n")
    with pytest.raises(DataError, match="line 2: class index 400 >= 400 classes"):
        load_dataset("kinetics400", video_root=str(root), list_file=str(lst))
    lst.write_text("yt000_000000_000010.mp4 0\nyt000_000000_000010.mp4 1\n")
    with pytest.raises(DataError, match="listed twice"):
        load_dataset("kinetics400", video_root=str(root), list_file=str(lst))
    lst.write_text("yt000_000000_000010.mp4 0\nyt001_000001_000011 1\n")     # mmaction2's list; a suffix added
    ds = load_dataset("kinetics400", video_root=str(root), list_file=str(lst))
    assert [it.label for it in ds.items] == ["abseiling", "air drumming"]


def test_kinetics700_2020_takes_its_classes_from_the_official_csv(tmp_path):
    root, csv = _kinetics_folder(tmp_path, classes=["a k700 class", "another one"], n=4)
    ds = load_dataset("kinetics700_2020", video_root=str(root), list_file=str(csv), n_items=3, sample_seed=1)
    assert len(ds) == 3 and {it.label for it in ds.items} <= {"a k700 class", "another one"}
    assert ds.ids == load_dataset("kinetics700_2020", **ds.options).ids
    idx = tmp_path / "idx.txt"
    idx.write_text("yt000_000000_000010.mp4 3\n")
    with pytest.raises(DataError, match="class index, but kinetics700_2020 has no class list"):
        load_dataset("kinetics700_2020", video_root=str(root), list_file=str(idx))
    with pytest.raises(DataError, match=r"\[kinetics700_2020\].*700_2020/annotations/test.csv"):
        load_dataset("kinetics700_2020")


@needs_data
def test_ssv2_test_answers_and_validation_json(tmp_path):
    root = tmp_path / "20bn"
    root.mkdir()
    for i in (11, 12, 13, 14):
        (root / f"{i}.webm").write_bytes(b"x")
    answers = tmp_path / "test-answers.csv"
    answers.write_text("11;Approaching something with your camera\n12;Attaching something to something\n"
                       "13;Approaching something with your camera\n14;Attaching something to something\n")
    ds = load_dataset("ssv2", video_root=str(root), list_file=str(answers), n_items=3, sample_seed=2)
    assert len(ds) == 3 and all(it.video.path.suffix == ".webm" for it in ds.items)
    assert ds.ids == load_dataset("ssv2", video_root=str(root), list_file=str(answers), n_items=3, sample_seed=2).ids
    js = tmp_path / "something-something-v2-validation.json"
    js.write_text(json.dumps([{"id": "11", "label": "approaching a cup with your camera",
                               "template": "Approaching [something] with your camera", "placeholders": ["a cup"]}]))
    v = load_dataset("ssv2", video_root=str(root), list_file=str(js))
    assert v.ids == ["11"] and v.items[0].captions == ["Approaching something with your camera"]
    js.write_text(json.dumps([{"id": "11"}]))                      # the test split's JSON: ids only
    with pytest.raises(DataError, match="needs 'id' and 'template'.*test-answers.csv.*qualcomm"):
        load_dataset("ssv2", video_root=str(root), list_file=str(js))


def test_the_new_options_are_declared_and_checked_before_any_work(tmp_path):
    root, csv = _kinetics_folder(tmp_path, classes=["x", "y"], n=2)
    ds = build_dataset("kinetics700_2020", {"video_root": str(root), "list_file": str(csv), "n_items": 2})
    assert len(ds) == 2
    with pytest.raises(Exception, match="did you mean 'list_file'"):
        build_dataset("kinetics700_2020", {"video_root": str(root), "list_fil": str(csv)})
    with pytest.raises(Exception, match="did you mean 'json_file'"):
        build_dataset("vatex", {"json_fil": "x.json"})


def test_read_video_list_formats(tmp_path):
    f = tmp_path / "test.csv"
    f.write_text('label,youtube_id,time_start,time_end,split\n"air drumming",abc,1,11,test\n')
    assert read_video_list("kinetics700_2020", f, None, ".mp4") == [("abc_000001_000011.mp4", "air drumming")]
    g = tmp_path / "list.txt"
    g.write_text("some/dir/clip one.mp4 air_drumming\n")         # split at the last space
    assert read_video_list("kinetics700_2020", g, None, ".mp4") == [("some/dir/clip one.mp4", "air_drumming")]
    g.write_text("justonefield\n")
    with pytest.raises(DataError, match="line 1 'justonefield' is not '<video> <label>'"):
        read_video_list("kinetics700_2020", g, None, ".mp4")


def test_kinetics700_2020_folder_layout_takes_the_class_folders(tmp_path):
    for label in ("zumba", "abseiling"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "c1.mp4").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not a class")
    ds = load_dataset("kinetics700_2020", video_root=str(tmp_path))
    assert ds.ids == ["abseiling/c1", "zumba/c1"] and ds.items[1].captions == ["a video of zumba"]
    with pytest.raises(ValueError, match="missing applies to a list_file"):
        load_dataset("kinetics700_2020", video_root=str(tmp_path), missing="skip")
