"""The memory projection's SQLite file: items, their vectors (sqlite-vec), episodes, and where
in the event log it was built up to.

Synchronous on purpose: every call runs on the connection's own worker thread (see
:mod:`o_bus.memory.projection`). Uses apsw, since many Pythons' ``sqlite3`` cannot load
extensions.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import apsw
import sqlite_vec

from o_bus.errors import StorageError

__all__ = ["SCHEMA_VERSION", "MemoryDatabase", "Position", "remove_database"]

SCHEMA_VERSION: Final = "2"  # a file of another schema version is rebuilt
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items(
    num INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT NOT NULL, kind TEXT NOT NULL,
    importance REAL NOT NULL, tier TEXT NOT NULL, metadata TEXT NOT NULL, seq INTEGER NOT NULL,
    at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS episodes(
    num INTEGER PRIMARY KEY, wal_seq INTEGER NOT NULL, request_id TEXT NOT NULL,
    command TEXT, request TEXT, requested_at TEXT, at TEXT NOT NULL, outcome TEXT NOT NULL,
    error_code TEXT, error_message TEXT, first_seq INTEGER, last_seq INTEGER,
    events TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS episodes_at ON episodes(at);
CREATE INDEX IF NOT EXISTS episodes_command ON episodes(command, at);
CREATE TABLE IF NOT EXISTS episode_types(
    type TEXT NOT NULL, episode INTEGER NOT NULL, PRIMARY KEY(type, episode)) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Position:
    """How far into the log the projection is: stream sequence, agent sequence, and the key of
    the record at that stream sequence (to recognise the same log when it is opened again)."""

    stream_seq: int = 0
    seq: int = 0
    anchor: str = ""


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def pack(vector: Sequence[float]) -> bytes:
    return struct.pack(f"{len(vector)}f", *vector)


class MemoryDatabase:
    """One connection to a projection file (create it with ``dimensions`` when new)."""

    def __init__(self, path: Path, *, dimensions: int, readonly: bool = False) -> None:
        self.path = path
        self.dimensions = dimensions
        try:
            if not readonly:
                path.parent.mkdir(parents=True, exist_ok=True)
            flags = (
                apsw.SQLITE_OPEN_READONLY
                if readonly
                else (apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)
            )
            self.conn = apsw.Connection(str(path), flags=flags)
            self.conn.set_busy_timeout(10_000)
            self.conn.enable_load_extension(True)
            self.conn.load_extension(sqlite_vec.loadable_path())
            self.conn.enable_load_extension(False)
            if not readonly:
                self.conn.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
                with self.conn:
                    self.conn.execute(_SCHEMA)
                    self.conn.execute(
                        "CREATE VIRTUAL TABLE IF NOT EXISTS vectors USING "
                        f"vec0(embedding float[{int(dimensions)}] distance_metric=cosine, "
                        "kind text)"
                    )
        except (apsw.Error, OSError) as err:
            raise StorageError(f"cannot open the memory index {path}: {err}") from err

    def close(self) -> None:
        self.conn.close()

    # -- meta --------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.conn.execute("SELECT key, value FROM meta")}

    def set_meta(self, values: dict[str, str]) -> None:
        self.conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    def position(self) -> Position:
        meta = self.meta()
        return Position(
            int(meta.get("stream_seq", "0")), int(meta.get("seq", "0")), meta.get("anchor", "")
        )

    # -- writes (call inside ``transaction``) ------------------------------------------------

    def transaction(self) -> apsw.Connection:
        return self.conn

    def put_item(self, num: int, item: dict[str, Any], vector: Sequence[float], seq: int) -> None:
        self.delete_item(item["id"])  # re-remembering an id replaces it
        self.conn.execute(
            "INSERT INTO items(num, id, text, kind, importance, tier, metadata, seq, at) "
            "VALUES (?, ?, ?, ?, ?, 'short', ?, ?, ?)",
            (
                num,
                item["id"],
                item["text"],
                item["kind"],
                item["importance"],
                json.dumps(item["metadata"], sort_keys=True),
                seq,
                item["at"],
            ),
        )
        self.conn.execute(
            "INSERT INTO vectors(rowid, embedding, kind) VALUES (?, ?, ?)",
            (num, pack(vector), item["kind"]),
        )

    def delete_item(self, item_id: str) -> None:
        for (num,) in list(self.conn.execute("SELECT num FROM items WHERE id = ?", (item_id,))):
            self.conn.execute("DELETE FROM vectors WHERE rowid = ?", (num,))
            self.conn.execute("DELETE FROM items WHERE num = ?", (num,))

    def promote(self, ids: Iterable[str]) -> None:
        self.conn.executemany(
            "UPDATE items SET tier = 'long' WHERE id = ?", [(item_id,) for item_id in ids]
        )

    def put_episode(self, episode: dict[str, Any], types: Iterable[str]) -> None:
        """Insert or replace an episode (records of one request may span two batches)."""
        columns = list(episode)
        self.conn.execute(
            f"INSERT OR REPLACE INTO episodes({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})",
            [episode[c] for c in columns],
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO episode_types(type, episode) VALUES (?, ?)",
            [(t, episode["num"]) for t in types],
        )

    def last_episode(self) -> dict[str, Any] | None:
        return self._one("SELECT * FROM episodes ORDER BY num DESC LIMIT 1")

    # -- reads -------------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        try:
            names = [d[0] for d in cursor.getdescription()]
        except apsw.ExecutionCompleteError:
            return []
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def _one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def nearest(
        self, vector: Sequence[float], k: int, kinds: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """The ``k`` items nearest to ``vector`` (of one of ``kinds`` if any), best first
        (ties by age), with distances."""
        where = f" AND kind IN ({', '.join('?' for _ in kinds)})" if kinds else ""
        rows = self._rows(
            "SELECT items.*, knn.distance AS distance FROM "
            f"(SELECT rowid, distance FROM vectors WHERE embedding MATCH ? AND k = ?{where}) "
            "AS knn JOIN items ON items.num = knn.rowid",
            (pack(vector), k, *kinds),
        )
        rows.sort(key=lambda row: (row["distance"], row["num"]))
        return rows

    def count_items(self) -> dict[str, int]:
        return {
            str(tier): int(n)
            for tier, n in self.conn.execute("SELECT tier, count(*) FROM items GROUP BY tier")
        }

    def count_episodes(self) -> int:
        for (count,) in self.conn.execute("SELECT count(*) FROM episodes"):
            return int(count)
        return 0

    def episodes(
        self, since: str | None, until: str | None, kind: str | None, limit: int
    ) -> list[dict[str, Any]]:
        where, params = ["1 = 1"], []
        if since is not None:
            where.append("at >= ?")
            params.append(since)
        if until is not None:
            where.append("at < ?")
            params.append(until)
        if kind is not None:
            where.append(
                "(command = ? OR num IN (SELECT episode FROM episode_types WHERE type = ?))"
            )
            params += [kind, kind]
        return self._rows(
            f"SELECT * FROM episodes WHERE {' AND '.join(where)} ORDER BY num LIMIT ?",
            [*params, limit],
        )
