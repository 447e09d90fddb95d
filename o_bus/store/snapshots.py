"""Snapshots (checkpoints) in a JetStream KV bucket, one key per agent, with history.

A snapshot records the agent's sequence, the stream and WAL sequences it covers, the code
version and the state schema version, plus a checksum of the state. Loading walks the key's
history newest first and skips any snapshot that fails to decode, verify or validate, so an
agent never starts from wrong state.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Final

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.errors import NotFoundError as JsNotFoundError
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json, to_json

from o_bus.errors import SnapshotError, StorageError
from o_bus.store import layout

__all__ = ["Snapshot", "SnapshotStore"]

log = logging.getLogger(__name__)
FORMAT: Final = 1


@dataclass(slots=True, frozen=True)
class Snapshot:
    agent: str
    definition: str
    seq: int
    stream_seq: int
    wal_seq: int
    code_version: str
    state_schema_version: int
    taken_at: str
    state: dict[str, Any]

    def encode(self) -> bytes:
        state_json = to_json(self.state)
        return to_json(
            {
                "format": FORMAT,
                "agent": self.agent,
                "definition": self.definition,
                "seq": self.seq,
                "stream_seq": self.stream_seq,
                "wal_seq": self.wal_seq,
                "code_version": self.code_version,
                "state_schema_version": self.state_schema_version,
                "taken_at": self.taken_at,
                "sha256": hashlib.sha256(state_json).hexdigest(),
                "state": self.state,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> Snapshot:
        """Decode and verify; raise ``SnapshotError`` on any defect."""
        try:
            doc = from_json(raw)
            if doc.get("format") != FORMAT:
                raise SnapshotError(f"unknown snapshot format {doc.get('format')!r}")
            state = doc["state"]
            if hashlib.sha256(to_json(state)).hexdigest() != doc["sha256"]:
                raise SnapshotError("snapshot checksum mismatch")
            return cls(
                agent=str(doc["agent"]),
                definition=str(doc["definition"]),
                seq=int(doc["seq"]),
                stream_seq=int(doc["stream_seq"]),
                wal_seq=int(doc["wal_seq"]),
                code_version=str(doc["code_version"]),
                state_schema_version=int(doc["state_schema_version"]),
                taken_at=str(doc["taken_at"]),
                state=state,
            )
        except SnapshotError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise SnapshotError(f"snapshot does not decode: {err}") from err

    def validated_state(self, state_type: type[BaseModel]) -> BaseModel:
        try:
            return state_type.model_validate(self.state)
        except ValidationError as err:
            raise SnapshotError(f"snapshot state does not validate: {err}") from err


class SnapshotStore:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def save(self, snapshot: Snapshot) -> None:
        try:
            kv = await self.js.key_value(layout.SNAPSHOTS_BUCKET)
            await kv.put(snapshot.agent, snapshot.encode())
        except nats.errors.Error as err:
            raise StorageError(f"cannot save snapshot of {snapshot.agent!r}") from err

    async def put_raw(self, agent: str, raw: bytes) -> None:
        """Store raw bytes as a snapshot (for tooling and tests of corrupt snapshots)."""
        kv = await self.js.key_value(layout.SNAPSHOTS_BUCKET)
        await kv.put(agent, raw)

    async def candidates(self, agent: str) -> list[bytes]:
        """Stored snapshots of ``agent``, newest first (raw, not yet verified).

        Reads the key's history message by message (no consumer is created)."""
        stream, subject = f"KV_{layout.SNAPSHOTS_BUCKET}", f"$KV.{layout.SNAPSHOTS_BUCKET}.{agent}"
        found: list[bytes] = []
        seq = 0
        while True:
            try:
                msg = await self.js.get_msg(stream, seq + 1, subject=subject, next=True)
            except JsNotFoundError:
                break
            except nats.errors.Error as err:
                raise StorageError(f"cannot read snapshots of {agent!r}") from err
            seq = msg.seq or seq + 1
            operation = (msg.headers or {}).get("KV-Operation")
            if operation in ("DEL", "PURGE"):
                found.clear()
            elif msg.data:
                found.append(msg.data)
        found.reverse()
        return found

    async def delete(self, agent: str) -> None:
        kv = await self.js.key_value(layout.SNAPSHOTS_BUCKET)
        try:
            await kv.purge(agent)
        except (KeyNotFoundError, JsNotFoundError):
            return
