"""Scale out: hfrag as the embedding stage of Ray Data (and of Spark's ``mapInPandas``).

- :class:`Embedder`: a callable class for ``Dataset.map_batches``: one hfrag client per worker,
  a text column in, a fixed-size float32 vector column out, in the batch's own format.
- :func:`embed_dataset`: one call that sizes workers, per-worker concurrency and batches so the
  requests in flight across all workers stay within the endpoint's capacity.

Install with ``pip install "hfrag[ray]"``. ``import hfrag`` does not import this package, and
importing it does not import Ray (only :func:`embed_dataset` does, when called), so
:class:`Embedder` also serves Spark where Ray is not installed.
"""

from hfrag.ray.dataset import WAVES, EmbeddingPlan, embed_dataset, plan_embedding
from hfrag.ray.embedder import Embedder

__all__ = ["WAVES", "Embedder", "EmbeddingPlan", "embed_dataset", "plan_embedding"]
