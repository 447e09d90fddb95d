"""Embedders turn text into vectors for the semantic index.

The default, :class:`HashingEmbedder`, needs no model and no download: it hashes words, word
pairs and character trigrams into a fixed number of signed buckets (the hashing trick), so texts
that share words, stems or spellings point the same way. It is deterministic across processes
and machines (CRC-32, not Python's salted ``hash``), which the index needs: a rebuilt index must
give the same vectors. A real model plugs in through the :class:`Embedder` protocol.
"""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


@functools.lru_cache(maxsize=1 << 18)
def _bucket(feature: str, size: int) -> tuple[int, float]:
    """Low bits of the CRC-32 pick the bucket, bit 31 the sign (collisions cancel on average)."""
    digest = zlib.crc32(feature.encode())
    return digest % size, -1.0 if digest & 0x80000000 else 1.0


@functools.lru_cache(maxsize=1 << 16)
def _word_features(stem: str, size: int) -> tuple[tuple[int, float], ...]:
    """What one word adds: its stem (weight 1) and its character trigrams (0.6 shared)."""
    padded = f"<{stem}>"
    grams = [padded[i : i + 3] for i in range(len(padded) - 2)]
    weight = 0.6 / max(len(grams), 1) ** 0.5
    bucket, sign = _bucket("w:" + stem, size)
    found = [(bucket, sign)]
    for gram in grams:
        bucket, sign = _bucket("c:" + gram, size)
        found.append((bucket, sign * weight))
    return tuple(found)


class HashingEmbedder:
    """Offline, deterministic embedder: hashed word stems, word pairs and character trigrams."""

    def __init__(self, dimensions: int = 256) -> None:
        if not 8 <= dimensions <= 4096:
            raise ValueError("dimensions must be within 8..4096")
        self._dimensions = dimensions

    @property
    def name(self) -> str:
        return f"hashing-v2-{self._dimensions}"

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def _vector(self, text: str) -> list[float]:
        size = self._dimensions
        vector = [0.0] * size
        stems = [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP]
        for stem in stems:
            for bucket, value in _word_features(stem, size):
                vector[bucket] += value
        for first, second in itertools.pairwise(stems):
            bucket, sign = _bucket(f"b:{first} {second}", size)
            vector[bucket] += 0.5 * sign
        norm = math.hypot(*vector)
        if norm == 0.0:
            vector[0] = 1.0  # no feature (only stop words): a fixed direction, not NaN
            return vector
        return [v / norm for v in vector]

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vector(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)
