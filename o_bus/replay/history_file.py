"""Recorded histories on disk: one directory per agent, JSON lines a person can diff.

Layout of ``<root>/<agent>/``:

- ``events.jsonl``: the agent's stream ``O_EVT_<agent>`` (events, outcome and fence records);
- ``snapshots.jsonl``: the agent's snapshots as stored in the ``o_snapshots`` bucket, oldest
  first;
- ``wal.jsonl``: the agent's WAL records (``o.wal.<agent>`` in ``O_WAL``);
- ``state.json``: what the live agent held after the last request (``seq``, ``stream_seq``,
  ``wal_seq``, ``state``), and which code recorded it.

A line is ``{"seq", "subject", "time", "headers", "data"}``: ``data`` is the body as text when it
is UTF-8 (JSON bodies are), otherwise ``data_b64`` holds it in base64.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from o_bus.errors import ConfigurationError
from o_bus.store.log_record import LogRecord

__all__ = ["EVENTS", "SNAPSHOTS", "STATE", "WAL", "RecordedHistory", "read_lines", "write_lines"]

EVENTS: Final = "events.jsonl"
SNAPSHOTS: Final = "snapshots.jsonl"
WAL: Final = "wal.jsonl"
STATE: Final = "state.json"


def _line(record: LogRecord) -> str:
    doc: dict[str, Any] = {
        "seq": record.seq,
        "subject": record.subject,
        "time": record.time,
        "headers": dict(sorted(record.headers.items())),
    }
    try:
        doc["data"] = record.data.decode("utf-8")
    except UnicodeDecodeError:
        doc["data_b64"] = base64.b64encode(record.data).decode("ascii")
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _record(line: str, where: str) -> LogRecord:
    try:
        doc = json.loads(line)
        data = doc["data"].encode("utf-8") if "data" in doc else base64.b64decode(doc["data_b64"])
        headers = doc["headers"]
        if not isinstance(headers, dict):
            raise TypeError("headers is not an object")
        return LogRecord(
            seq=int(doc["seq"]),
            subject=str(doc["subject"]),
            headers={str(k): str(v) for k, v in headers.items()},
            data=data,
            time=str(doc.get("time", "")),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigurationError(f"{where}: not a recorded record: {err}") from err


def write_lines(path: Path, records: Iterable[LogRecord]) -> None:
    path.write_text("".join(_line(record) + "\n" for record in records), encoding="utf-8")


def read_lines(path: Path) -> list[LogRecord]:
    """The records of ``path``; a missing file is an empty list."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [_record(line, f"{path}:{n}") for n, line in enumerate(lines, 1) if line.strip()]


@dataclass(slots=True, frozen=True)
class RecordedHistory:
    """One agent's recorded history, read from its directory."""

    path: Path
    agent: str
    events: list[LogRecord]
    snapshots: list[LogRecord]
    wal: list[LogRecord]
    expected: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> RecordedHistory:
        state_file = path / STATE
        try:
            expected = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigurationError(
                f"{state_file}: cannot read the recorded state: {err}"
            ) from err
        if not isinstance(expected, dict) or "state" not in expected or "agent" not in expected:
            raise ConfigurationError(f"{state_file}: needs at least 'agent' and 'state'")
        return cls(
            path=path,
            agent=str(expected["agent"]),
            events=read_lines(path / EVENTS),
            snapshots=read_lines(path / SNAPSHOTS),
            wal=read_lines(path / WAL),
            expected=expected,
        )

    def write(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_lines(self.path / EVENTS, self.events)
        write_lines(self.path / SNAPSHOTS, self.snapshots)
        write_lines(self.path / WAL, self.wal)
        (self.path / STATE).write_text(
            json.dumps(self.expected, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
