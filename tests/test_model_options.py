"""Load options written after a model's name, ``org/model[dtype=bf16,device_map=auto]``: the form in which chapter
parameters, plans and model lists carry them (issue 23 item 3). The written form builds the same request as the
options passed separately; a clash, an unknown option or options on a registered name are clear errors."""
import pytest
from test_content_identity import _save_model

from vtalign.extract.errors import RequestError
from vtalign.extract.features import extract
from vtalign.extract.request import build_request
from vtalign.extract.validation import merge_load_options, split_model_options

OPTS = {"n_clips": 6, "size": 32, "n_frames": 8}


@pytest.mark.parametrize("written, expected", [
    ("org/m[dtype=bf16]", ("org/m", {"dtype": "bf16"})),
    ("org/m[ dtype = fp16 , trust_remote_code=TRUE, revision=abc ]",
     ("org/m", {"dtype": "fp16", "trust_remote_code": True, "revision": "abc"})),
    ("org/m[allow_download=false]", ("org/m", {"allow_download": False})),
    ("org/m[]", ("org/m", {})),
    ("minilm-l6", ("minilm-l6", {})),
])
def test_written_options_are_read(written, expected):
    assert split_model_options(written) == expected


@pytest.mark.parametrize("written, message", [
    ("org/m[dtpye=bf16]", "did you mean 'dtype'"),
    ("org/m[allow_download=yes]", "allow_download is true or false"),
    ("org/m[dtype]", "is not key=value"),
    ("org/m[dtype=bf16,dtype=fp16]", "given twice"),
    ("org/m[dtype=bf16][x=1]", "written once"),
])
def test_bad_written_options_are_refused(written, message):
    with pytest.raises(RequestError, match=message.replace("(", r"\(")):
        split_model_options(written)


def test_an_existing_folder_with_brackets_in_its_name_is_a_folder(tmp_path):
    folder = tmp_path / "model[v2]"
    folder.mkdir()
    assert split_model_options(str(folder)) == (str(folder), {})


def test_a_clash_between_written_and_passed_options_is_refused():
    assert merge_load_options("org/m[dtype=bf16]", {"dtype": "bf16"}) == ("org/m", {"dtype": "bf16"})
    with pytest.raises(RequestError, match="with other values"):
        merge_load_options("org/m[dtype=bf16]", {"dtype": "fp16"})


def test_registered_names_take_no_written_options():
    with pytest.raises(RequestError, match="registered name"):
        build_request("test_of_time", "tiny-bert[dtype=bf16]", captions=1)


def test_written_options_build_the_request_the_passed_ones_do(tmp_path, monkeypatch):
    monkeypatch.setenv("VTALIGN_CACHE", str(tmp_path / "vtcache"))
    folder = str(_save_model(tmp_path / "m", seed=0))
    written = build_request("synthetic_world", folder + "[dtype=bf16]", captions=1, dataset_options=OPTS)
    passed = build_request("synthetic_world", folder, captions=1, dataset_options=OPTS,
                           load_options={"dtype": "bf16"})
    fp32 = build_request("synthetic_world", folder, captions=1, dataset_options=OPTS)
    assert written.identity == passed.identity and written.key == passed.key
    assert written.identity != fp32.identity and written.model == fp32.model  # same model, other precision
    feats, meta, _ = extract("synthetic_world", folder + "[dtype=bf16]", captions=1, dataset_options=OPTS,
                             cache_dir=tmp_path / "cache", progress=False, device="cpu")
    assert meta["request"]["dtype"] == "bf16" and feats.shape[0] == OPTS["n_clips"]
