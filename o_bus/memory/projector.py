"""Folding stream records into the memory database: items and tiers from the memory events,
episodes from every request's records. Runs on the database's writer thread; deterministic, so
a rebuilt file holds the same rows, vectors and episode numbers."""

from __future__ import annotations

import logging
from typing import Any

from pydantic_core import from_json

from o_bus.agent.definition import AgentDefinition
from o_bus.events.model import Event
from o_bus.memory.database import MemoryDatabase, Position
from o_bus.memory.embedder import Embedder
from o_bus.memory.events import Consolidated, Forgotten, MemoryConfigured, Remembered
from o_bus.memory.short_term import Eviction
from o_bus.memory.tail import LogRecord, RequestRecord
from o_bus.store.event_records import H_REQUEST, H_SEQ, H_TYPE, H_VERSION, H_WAL
from o_bus.wire.headers import O_ERROR_CODE, O_ERROR_MESSAGE, O_OUTCOME

__all__ = ["Projector", "anchor_of"]

log = logging.getLogger(__name__)


def anchor_of(kind: str, stream_seq: int, headers: dict[str, str]) -> str:
    """What identifies the record at ``stream_seq``: checked when the file is opened again."""
    return ":".join(
        (
            kind,
            str(stream_seq),
            headers.get(H_SEQ, ""),
            headers.get(H_REQUEST, ""),
            headers.get(H_WAL, ""),
        )
    )


class Projector:
    def __init__(
        self,
        db: MemoryDatabase,
        definition: AgentDefinition[Any],
        embedder: Embedder,
        *,
        episodes: bool = True,
    ) -> None:
        self.db, self.definition, self.embedder, self.episodes = db, definition, embedder, episodes
        self.position = db.position()
        self._episode = db.last_episode() if episodes else None
        self._episode_types: set[str] = set()

    def _decode(self, record: LogRecord) -> Event | None:
        headers = record.headers
        try:
            return self.definition.decode_event(
                headers[H_TYPE], int(headers.get(H_VERSION, "1")), record.data
            )
        except Exception as err:  # an event this code cannot read is skipped, not fatal
            log.warning(
                "memory index of %s: skipping event at stream seq %d: %s",
                self.definition.name,
                record.stream_seq,
                err,
            )
            return None

    def apply(self, records: list[LogRecord], requests: dict[int, RequestRecord]) -> Position:
        records = [r for r in records if r.stream_seq > self.position.stream_seq]
        if not records:  # delivered again after a consumer reset: already applied
            return self.position
        decoded = [self._decode(r) if r.kind == "evt" else None for r in records]
        texts = [e.item.text for e in decoded if isinstance(e, Remembered)]
        vectors = iter(self.embedder.embed(texts) if texts else [])
        db, position = self.db, self.position
        touched: dict[int, dict[str, Any]] = {}
        with db.transaction():
            for record, event in zip(records, decoded, strict=True):
                seq = int(record.headers.get(H_SEQ, "0")) if record.kind == "evt" else 0
                if isinstance(event, Remembered):
                    self._evict(event.evicted)
                    db.put_item(seq, event.item.model_dump(mode="json"), next(vectors), seq)
                elif isinstance(event, Forgotten):
                    db.delete_item(event.id)
                elif isinstance(event, Consolidated | MemoryConfigured):
                    self._evict(event.evicted)
                if self.episodes and record.kind != "fence":
                    self._episode_record(record, seq, requests, touched)
                position = Position(
                    record.stream_seq,
                    seq or position.seq,
                    anchor_of(record.kind, record.stream_seq, record.headers),
                )
            for episode in touched.values():
                db.put_episode(episode, episode.pop("_types"))
            db.set_meta(
                {
                    "stream_seq": str(position.stream_seq),
                    "seq": str(position.seq),
                    "anchor": position.anchor,
                }
            )
        self.position = position
        return position

    def _evict(self, evicted: Eviction) -> None:
        self.db.promote(evicted.promoted)
        for item_id in evicted.dropped:
            self.db.delete_item(item_id)

    def _episode_record(
        self,
        record: LogRecord,
        seq: int,
        requests: dict[int, RequestRecord],
        touched: dict[int, dict[str, Any]],
    ) -> None:
        headers = record.headers
        request_id = headers.get(H_REQUEST, "")
        wal_seq = int(headers.get(H_WAL, "0"))
        episode = self._episode
        if episode is None or (episode["wal_seq"], episode["request_id"]) != (wal_seq, request_id):
            request = requests.get(wal_seq)
            episode = {
                "num": (episode["num"] + 1) if episode else 1,
                "wal_seq": wal_seq,
                "request_id": request_id,
                "command": request.command if request else None,
                "request": None if request is None else _json(request.request),
                "requested_at": request.requested_at if request else None,
                "at": record.time,
                "outcome": "ok",
                "error_code": None,
                "error_message": None,
                "first_seq": None,
                "last_seq": None,
                "events": "[]",
                "_types": set(),
            }
            self._episode = episode
        elif "_types" not in episode:
            episode["_types"] = set()
        episode["at"] = record.time
        if record.kind == "evt":
            events = from_json(episode["events"])
            data = from_json(record.data) if record.data else None
            events.append({"seq": seq, "type": headers.get(H_TYPE, ""), "data": data})
            episode["events"] = _json(events)
            episode["first_seq"] = episode["first_seq"] or seq
            episode["last_seq"] = seq
            episode["_types"].add(headers.get(H_TYPE, ""))
        else:
            episode["outcome"] = headers.get(O_OUTCOME, "noop")
            episode["error_code"] = headers.get(O_ERROR_CODE)
            episode["error_message"] = headers.get(O_ERROR_MESSAGE)
        touched[episode["num"]] = episode


def _json(value: Any) -> str:
    from pydantic_core import to_json

    return to_json(value).decode()
