"""The data manifest and the fetch step.

``data_manifest/datasets.toml`` names every file vtalign reads by its original public
source and its sha256. :func:`fetch` resolves a file from the local mirror folders first
(:func:`vtalign.paths.data_mirror_dirs`: ``$VTALIGN_DATA_MIRROR``, then ``../shared/data``),
and only then downloads it with pooch into ``.cache/downloads``; the hash is checked either
way. Full video collections are never downloaded: :func:`check_video_root` checks a folder
the user points to.

Example
-------
>>> sorted(manifest())[:3]
['activitynet', 'clips', 'kinetics400']
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import tomllib

from .. import paths

__all__ = ["DataError", "DataFile", "DatasetEntry", "manifest", "entry", "fetch", "sha256sum",
           "check_video_root"]


class DataError(FileNotFoundError):
    """A data file is missing, unreachable or does not match the manifest's hash."""


@dataclass(frozen=True)
class DataFile:
    path: str          # relative path, the same in every mirror folder and in the download cache
    sha256: str
    url: str = ""
    here: bool = False  # present in this project's build mirror (../shared/data)
    records: str = ""


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    title: str
    what: str
    citation: str
    license: str
    homepage: str
    videos: str
    files: tuple[DataFile, ...] = field(default_factory=tuple)
    builds_on: tuple[str, ...] = field(default_factory=tuple)
    # The official download pages / files of what vtalign does not fetch (videos, annotation files a user brings):
    # every error about a missing video folder or list names them.
    downloads: tuple[str, ...] = field(default_factory=tuple)

    def file(self, path: str) -> DataFile:
        for f in self.files:
            if f.path == path or Path(f.path).name == path:
                return f
        raise KeyError(f"Dataset {self.name!r} has no file {path!r} in the manifest; "
                       f"its files: {[f.path for f in self.files]}")


@lru_cache(maxsize=None)
def _load(manifest_file: str) -> dict[str, DatasetEntry]:
    with open(manifest_file, "rb") as fh:
        raw = tomllib.load(fh)
    out = {}
    for name, e in raw.items():
        files = tuple(DataFile(**f) for f in e.get("files", []))
        out[name] = DatasetEntry(
            name=name, title=e["title"], what=e["what"], citation=e["citation"],
            license=e["license"], homepage=e.get("homepage", ""), videos=e.get("videos", ""),
            files=files, builds_on=tuple(e.get("builds_on", ())), downloads=tuple(e.get("downloads", ())))
    return out


def manifest() -> dict[str, DatasetEntry]:
    """All manifest entries by dataset name."""
    return _load(str(paths.manifest_path()))


def entry(dataset: str) -> DatasetEntry:
    """One dataset's manifest entry; a clear error lists the known names."""
    entries = manifest()
    if dataset not in entries:
        raise KeyError(f"Unknown dataset {dataset!r}; the manifest ({paths.manifest_path()}) "
                       f"lists {sorted(entries)}.")
    return entries[dataset]


def sha256sum(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(dataset: str, file: str) -> Path:
    """Local path of one manifest file, verified against its sha256.

    Order: each mirror folder (``<mirror>/<path>``), then the download cache
    (``.cache/downloads/<path>``), then a pooch download from the file's URL.
    A mirror copy whose hash differs is an error (it is never silently replaced by a download).
    """
    f = entry(dataset).file(file)
    mirrors = paths.data_mirror_dirs()
    for mirror in mirrors:
        candidate = mirror / f.path
        if candidate.is_file():
            actual = sha256sum(candidate)
            if actual != f.sha256:
                raise DataError(
                    f"[{dataset}] {candidate} has sha256 {actual}, but the manifest expects "
                    f"{f.sha256}. The mirror copy is not the file the manifest names; replace it "
                    f"with the original ({f.url or 'see data_manifest/datasets.toml'}) or remove it.")
            return candidate
    return _download(dataset, f, mirrors)


def _download(dataset: str, f: DataFile, mirrors: list[Path]) -> Path:
    import pooch

    target_dir = paths.cache_dir("downloads") / Path(f.path).parent
    target = target_dir / Path(f.path).name
    target_dir.mkdir(parents=True, exist_ok=True)
    searched = ", ".join(str(m) for m in mirrors) or "(no mirror folder exists)"
    advice = (f"Put the file at <mirror>/{f.path} in a folder named by $VTALIGN_DATA_MIRROR "
              f"(searched: {searched}), or download it yourself to {target}.")
    if not f.url:
        raise DataError(f"[{dataset}] {f.path} is not in any mirror folder and the manifest has no "
                        f"download URL for it. {advice}")
    try:
        path = pooch.retrieve(f.url, known_hash=f"sha256:{f.sha256}", fname=target.name,
                              path=target_dir, progressbar=False)
    except ValueError as err:  # pooch: hash mismatch after download
        raise DataError(f"[{dataset}] {f.path} downloaded from {f.url} does not match the manifest's "
                        f"sha256 {f.sha256} ({err}). {advice}") from err
    except Exception as err:  # network errors of every kind
        raise DataError(f"[{dataset}] {f.path} is not in any mirror folder and downloading it from "
                        f"{f.url} failed ({type(err).__name__}: {err}). {advice}") from err
    return Path(path)


def check_video_root(dataset: str, video_root: str | Path | None, expected: list[str]) -> Path:
    """Check that a user's video folder exists and holds every expected relative file.

    ``expected`` lists paths relative to ``video_root``. Raises :class:`DataError` naming the
    dataset, the folder, how many files are missing (and the first few) and the layout expected.
    """
    e = entry(dataset)
    get = f" Official downloads: {', '.join(e.downloads)}." if e.downloads else ""
    if video_root is None:
        raise DataError(f"[{dataset}] the videos of {e.title} are not distributed with vtalign. "
                        f"{e.videos} (source: {e.homepage}).{get}")
    root = Path(video_root).expanduser()
    if not root.is_dir():
        raise DataError(f"[{dataset}] video_root {root} is not a folder. {e.videos}{get}")
    missing = [p for p in expected if not (root / p).is_file()]
    if missing:
        raise DataError(f"[{dataset}] {len(missing)} of {len(expected)} videos are missing under {root}, "
                        f"e.g. {missing[:3]}. {e.videos}{get}")
    return root
