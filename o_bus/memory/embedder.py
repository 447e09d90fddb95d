"""Embedders turn text into vectors for the semantic index.

The default, :class:`HashingEmbedder`, needs no model and no download: it hashes words, word
pairs and character trigrams into a fixed number of signed buckets (the hashing trick), so texts
that share words, stems or spellings point the same way. It is deterministic across processes
and machines (CRC-32, not Python's salted ``hash``), which the index needs: a rebuilt index must
give the same vectors. A real model plugs in through the :class:`Embedder` protocol.
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections.abc import Sequence
from typing import Final, Protocol, runtime_checkable

__all__ = ["Embedder", "HashingEmbedder"]


@runtime_checkable
class Embedder(Protocol):
    """Text to unit vectors. ``name`` identifies the model and its settings: an index built
    with another name is rebuilt, since its vectors are not comparable."""

    @property
    def name(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector of ``dimensions`` floats per text (documents)."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """The vector of a search query (models that embed queries differently override)."""
        ...


_WORD: Final = re.compile(r"[^\W_]+", re.UNICODE)
_STOP_WORDS: Final = """
    a an and are as at be been but by can could did do does for from had has have he her his
    i if in into is it its me my of on or our she so than that the their them then there
    these they this to too was we were what when where which who why will with would you your
    about after again all also am any because before being both each few how just more most
    no nor not now only other over same some such up very
"""
_STOP: Final = frozenset(_STOP_WORDS.split())
_SUFFIXES: Final = ("ingly", "edly", "ing", "ies", "ied", "ed", "es", "ly", "s")


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


class HashingEmbedder:
    """Offline, deterministic embedder: hashed word stems, word pairs and character trigrams."""

    def __init__(self, dimensions: int = 256) -> None:
        if not 8 <= dimensions <= 4096:
            raise ValueError("dimensions must be within 8..4096")
        self._dimensions = dimensions

    @property
    def name(self) -> str:
        return f"hashing-v1-{self._dimensions}"

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def _features(self, text: str) -> dict[str, float]:
        words = [w for w in _WORD.findall(text.lower()) if w not in _STOP]
        stems = [_stem(w) for w in words]
        features: dict[str, float] = {}
        for stem in stems:
            features["w:" + stem] = features.get("w:" + stem, 0.0) + 1.0
            padded = f"<{stem}>"
            grams = [padded[i : i + 3] for i in range(len(padded) - 2)]
            weight = 0.6 / max(len(grams), 1) ** 0.5
            for gram in grams:
                features["c:" + gram] = features.get("c:" + gram, 0.0) + weight
        for first, second in itertools.pairwise(stems):
            key = f"b:{first} {second}"
            features[key] = features.get(key, 0.0) + 0.5
        return features

    def _vector(self, text: str) -> list[float]:
        size = self._dimensions
        vector = [0.0] * size
        for feature, weight in self._features(text).items():
            digest = zlib.crc32(feature.encode())
            # Low bits pick the bucket, bit 31 the sign (so collisions cancel on average).
            sign = -1.0 if digest & 0x80000000 else 1.0
            vector[digest % size] += sign * (1.0 + math.log(weight) if weight > 1 else weight)
        norm = math.sqrt(sum(v * v for v in vector))
        if norm == 0.0:
            vector[0] = 1.0  # no feature (only stop words): a fixed direction, not NaN
            return vector
        return [v / norm for v in vector]

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vector(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)
