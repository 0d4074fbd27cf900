"""The front door: ``extract_features`` computes (or reuses) cached per-layer features, ``load_features``
reads them.

One cache entry per request (dataset and its options, model, frames or captions, seed) in
``.cache/features/<dataset>/<options digest>/<model>/<side>/`` (:mod:`vtalign.extract.store`). Each call
builds its request once (:func:`vtalign.extract.request.build_request`: checked before any work, with the
content identity of the model and the video files) and hands it to
:func:`vtalign.extract.cache.extract_request`, which reuses the entry or makes it. After
:func:`vtalign.extract.use_cluster` the parts of a missing entry are made on Ray
(:func:`vtalign.extract.cluster.parts_maker`) and assembled here, to the same bytes.

Example
-------
>>> import tempfile
>>> feats, meta = extract_features("test_of_time", "tiny-bert", captions=1, progress=False,
...                                cache_dir=tempfile.mkdtemp())
>>> feats.shape, meta["item_ids"][0]
((180, 3, 32), 'tot-red-before-green')
"""
from __future__ import annotations

from .cache import Extraction, extract_request, load_request
from .cluster import parts_maker
from .encoders import Encoder
from .request import build_request

__all__ = ["extract", "extract_features", "load_features"]


def extract(dataset, model, frames: int = 8, captions: int = 1, *, mode: str = "video", seed: int = 0,
            dataset_options: dict | None = None, device: str = "auto", batch_size: int = 32,
            skip_failures: bool = False, cache_dir=None, progress: bool = True, encoder: Encoder | None = None,
            verify: bool = False, force: bool = False, hooks=None, load_options: dict | None = None) -> Extraction:
    """:func:`extract_features` with what the run did: ``(features, meta, summary)``, the summary a
    :class:`~vtalign.extract.parts.RunSummary` (entry reused, parts computed, read, waited for, retried)."""
    request = build_request(dataset, model, frames, captions, mode, seed, dataset_options=dataset_options,
                            skip_failures=skip_failures, encoder=encoder, load_options=load_options)
    make_parts = parts_maker(request, device=device, batch_size=batch_size, skip_failures=skip_failures,
                             cache_dir=cache_dir, progress=progress, encoder=encoder or
                             (model if isinstance(model, Encoder) else None))
    return extract_request(request, device=device, batch_size=batch_size, skip_failures=skip_failures,
                           cache_dir=cache_dir, progress=progress,
                           encoder=encoder or (model if isinstance(model, Encoder) else None), verify=verify,
                           force=force, make_parts=make_parts, hooks=hooks)


def extract_features(dataset, model, frames: int = 8, captions: int = 1, *, mode: str = "video", seed: int = 0,
                     dataset_options: dict | None = None, device: str = "auto", batch_size: int = 32,
                     skip_failures: bool = False, cache_dir=None, progress: bool = True, encoder: Encoder | None = None,
                     verify: bool = False, force: bool = False, hooks=None, load_options: dict | None = None):
    """Features [N, L, D] and metadata for ``dataset`` x ``model``, computed once and cached.

    Parameters
    ----------
    dataset : a registered name (with ``dataset_options``) or a built :class:`VideoTextDataset`
    model : a registered encoder name, Hugging Face id or local folder (``encoder`` may pass it already loaded)
    frames : n_f, frames a video/image encoder sees (image models with ``mode="image"``: first frame only)
    mode : image models: ``"video"`` averages the n_f frames' features, ``"image"`` takes the first frame,
        ``"frames"`` keeps every frame: features [N, n_f, L, D], pooled later by :mod:`vtalign.pooling`
    captions : n_c, captions concatenated for a text encoder (chosen by ``seed``)
    skip_failures : leave failed items out (listed in ``meta["failures"]``) instead of raising. An entry made
        so is reused only by runs that skip failures too: a run without it retries the failed items
        (the parts without failures are not computed again) and raises if they fail again, leaving the
        entry as it was
    force : recompute the entry even when a complete one is cached (it stays in place until the new one
        replaces it, and is kept when items fail)
    verify : check a cached entry's content digests (its features and the video files read) before reusing
        it (shape and size are always checked)
    device : where the encoder runs; ``"auto"`` (default) is the GPU when one is visible. The device is
        recorded in ``meta["device"]``, not in the cache key: an entry made on a GPU serves CPU readers.
    load_options : for a Hugging Face id or local folder: ``allow_download`` (fetch it when it is not in the
        local Hugging Face cache), ``revision`` (a pinned hub revision), ``trust_remote_code`` (the
        checkpoint's own modelling code); carried to every process that loads the model
    hooks : for tests only (see :func:`vtalign.extract.cache.extract_request`)

    The request is checked before anything is read, made or decoded
    (:func:`vtalign.extract.validation.check_request`): a bad one raises
    :class:`~vtalign.extract.errors.RequestError` (a ``ValueError``) and makes no cache entry.
    :func:`extract` gives the same with a summary of what the run did.
    """
    features, meta, _ = extract(dataset, model, frames, captions, mode=mode, seed=seed,
                                dataset_options=dataset_options, device=device, batch_size=batch_size,
                                skip_failures=skip_failures, cache_dir=cache_dir, progress=progress, encoder=encoder,
                                verify=verify, force=force, hooks=hooks, load_options=load_options)
    return features, meta


def load_features(dataset, model: str, frames: int = 8, captions: int = 1, *, mode: str = "video", seed: int = 0,
                  dataset_options: dict | None = None, cache_dir=None, verify: bool = False):
    """Cached ``(features [N, L, D], meta)`` for a request, never computed (see
    :func:`vtalign.extract.cache.load_request`): ``FileNotFoundError`` with the command that makes it when
    the entry is missing, :class:`~vtalign.extract.store.CorruptEntryError` when it is damaged. A video
    entry is read without its videos at hand (a dataset built without its ``video_root``)."""
    request = build_request(dataset, model, frames, captions, mode, seed, dataset_options=dataset_options,
                            skip_failures=True, needs_videos=False)
    return load_request(request, cache_dir, verify)
