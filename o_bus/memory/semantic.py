"""Semantic search over remembered items: the read side of the memory projection's file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

from o_bus.errors import ConfigurationError, ErrorCode, InvalidRequestError
from o_bus.memory.database import MemoryDatabase
from o_bus.memory.embedder import Embedder, HashingEmbedder
from o_bus.memory.items import MAX_TEXT
from o_bus.memory.results import Hit

__all__ = ["MAX_K", "SemanticIndex"]

MAX_K: Final = 100
_T = TypeVar("_T")


def check_search(text: str, k: int) -> None:
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequestError(ErrorCode.INVALID_PAYLOAD, "search text must not be blank")
    if len(text) > MAX_TEXT:
        raise InvalidRequestError(
            ErrorCode.INVALID_PAYLOAD, f"search text is longer than {MAX_TEXT} characters"
        )
    if not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidRequestError(ErrorCode.INVALID_PAYLOAD, f"k must be within 1..{MAX_K}")


class SemanticIndex:
    """Searches one projection file. Reads run on this index's own thread, so a search never
    blocks the event loop (apsw releases the GIL while SQLite works)."""

    def __init__(self, path: Path, embedder: Embedder | None = None) -> None:
        self.path = path
        self.embedder = embedder or HashingEmbedder()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="memory-read")
        self._db: MemoryDatabase | None = None

    @classmethod
    async def open_readonly(cls, path: Path, embedder: Embedder | None = None) -> SemanticIndex:
        """Open an existing file for searching (the embedder must be the one it was built with)."""
        index = cls(path, embedder)
        await index.open(readonly=True)
        return index

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn, *args)

    async def open(self, *, readonly: bool = False) -> None:
        dims = self.embedder.dimensions
        self._db = await self._call(
            lambda: MemoryDatabase(self.path, dimensions=dims, readonly=readonly)
        )
        built_with = (await self._call(self._db.meta)).get("embedder")
        if built_with is not None and built_with != self.embedder.name:
            raise ConfigurationError(
                f"{self.path} was built with embedder {built_with!r}, not {self.embedder.name!r}"
            )

    async def close(self) -> None:
        if self._db is not None:
            await self._call(self._db.close)
            self._db = None
        self._reader.shutdown(wait=True)

    @property
    def db(self) -> MemoryDatabase:
        if self._db is None:
            raise ConfigurationError("the memory index is not open")
        return self._db

    async def search(
        self, text: str, k: int = 5, *, kinds: Sequence[str] | None = None
    ) -> list[Hit]:
        """The ``k`` items most similar to ``text``, best first (equal scores: oldest first)."""
        check_search(text, k)
        db, embedder = self.db, self.embedder
        wanted = tuple(sorted(set(kinds))) if kinds else ()

        def run() -> list[Hit]:
            vector = embedder.embed_query(text)
            # A few more than asked, so that ties at the cut are broken by age, not by chance.
            rows = db.nearest(vector, k + 8, wanted)
            return [_hit(row) for row in rows[:k]]

        return await self._call(run)

    async def applied_seq(self) -> int:
        """The last agent sequence folded into the file."""
        return int((await self._call(self.db.meta)).get("seq", "0"))


def _hit(row: dict[str, Any]) -> Hit:
    return Hit(
        id=row["id"],
        text=row["text"],
        score=round(1.0 - float(row["distance"]), 6),
        kind=row["kind"],
        importance=row["importance"],
        tier=row["tier"],
        metadata=json.loads(row["metadata"]),
        seq=row["seq"],
        at=row["at"],
    )
