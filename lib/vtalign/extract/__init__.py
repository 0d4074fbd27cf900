"""Videos and captions in, cached per-layer features out: the live pipeline.

Modules, from the data to the cache:

- :mod:`~vtalign.extract.manifest`: the data manifest, ``fetch`` (local mirror first, then a
  hash-checked download) and checks of a user's ``video_root``;
- :mod:`~vtalign.extract.datasets`: named video-text datasets (items with captions and frame sources);
- :mod:`~vtalign.extract.synthetic`: the deterministic generators (Test of Time, synthetic world);
- :mod:`~vtalign.extract.video`: frame decoding (decord, PyAV);
- :mod:`~vtalign.extract.sampling`: frame and caption sampling of the paper's Sec. 3;
- :mod:`~vtalign.extract.encoders`: the encoder registry (offline models, Hugging Face families);
- :mod:`~vtalign.extract.validation`: every request checked before any work (one-sentence
  :class:`~vtalign.extract.errors.RequestError`, a ``ValueError``);
- :mod:`~vtalign.extract.request`: one request built and checked once, with its content identity
  (:mod:`~vtalign.extract.identity`), carried everywhere it goes;
- :mod:`~vtalign.extract.features`: the front door, ``extract_features`` / ``load_features``;
  :mod:`~vtalign.extract.cache`: one request's entry, reused or made in this process, from
  :mod:`~vtalign.extract.store` (an entry on disk: read, checked, written) and
  :mod:`~vtalign.extract.parts` (claims, the resumable part loop, encoding);
  :mod:`~vtalign.extract.manage`: set-aside copies, ``--prune`` and ``--drop``;
- :mod:`~vtalign.extract.cli`: ``python -m vtalign.extract``.
- at scale on Ray: :mod:`~vtalign.extract.cluster` (plans of extraction requests, one model pool at
  a time), :mod:`~vtalign.extract.cluster_alignment` (plans of layer sweeps; exact kNN with the
  database sharded over workers) and :mod:`~vtalign.extract.projection` (what the paper's full
  plan would cost on GPUs, projected from measurements here).

Nothing in here imports :mod:`vtalign.book`; the measurement core never imports this package.
"""
from .cache import common_items, pair_features
from .cluster import use_cluster
from .datasets import DATASETS, load_dataset
from .encoders import available_encoders, load_encoder, register_encoder
from .errors import ExtractionError, RequestError
from .features import extract, extract_features, load_features
from .manifest import DataError, fetch
from .request import FeatureRequest, build_request, feature_request

__all__ = ["extract_features", "extract", "load_features", "build_request", "FeatureRequest", "pair_features",
           "common_items", "feature_request",
           "ExtractionError", "DataError", "RequestError", "fetch", "load_dataset", "DATASETS", "load_encoder",
           "register_encoder", "available_encoders", "use_cluster"]
