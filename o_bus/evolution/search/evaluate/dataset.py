"""The requests a candidate is evaluated on: a JSONL file, or a window of the agent's WAL.

A dataset file has one JSON object per line::

    {"id": "r1", "command": "observe", "data": {"load": 120.5}}
    {"id": "r2", "command": "observe", "data": {...}, "output": {"ok": true, ...}}

``output`` (optional) is what live answered, in the comparable form of
:mod:`o_bus.evolution.candidate.evaluation`; candidates are scored on agreement with it.
``tool_results`` (optional) maps ``"<tool>:<input json>"`` to the result live recorded.
A first line ``{"state": {...}}`` forks evaluation from that state instead of the initial one.
A dataset's identity is the sha256 of its canonical content, recorded with every evaluation.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from o_bus.errors import ErrorCode, InvalidRequestError

__all__ = ["Dataset", "DatasetError", "Request"]


class DatasetError(InvalidRequestError):
    """A dataset file cannot be read as requests."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.MALFORMED_REQUEST, message)


class Request(BaseModel):
    """One recorded request."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    command: str
    data: Any = None
    content_type: str | None = None
    accepted_ns: int = 0  # when the WAL accepted it (unix ns): the decision context's time
    output: dict[str, Any] | None = None
    tool_results: dict[str, Any] = Field(default_factory=dict)


class Dataset(BaseModel):
    """Requests in order, the state they start from, and the dataset's identity."""

    model_config = ConfigDict(frozen=True)
    requests: tuple[Request, ...]
    state: dict[str, Any] | None = None
    origin: str = ""

    @property
    def identity(self) -> str:
        canonical = json.dumps(
            {"state": self.state, "requests": [r.model_dump(mode="json") for r in self.requests]},
            sort_keys=True,
            separators=(",", ":"),
        )
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    @classmethod
    def from_jsonl(cls, path: Path) -> Dataset:
        try:
            text = path.read_text()
        except OSError as err:
            raise DatasetError(f"cannot read dataset {path}: {err.strerror}") from err
        requests: list[Request] = []
        state: dict[str, Any] | None = None
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if number == 1 and isinstance(row, dict) and set(row) == {"state"}:
                    state = dict(row["state"])
                    continue
                requests.append(Request.model_validate(row))
            except (ValueError, TypeError, ValidationError) as err:
                raise DatasetError(f"{path}:{number}: not a request: {err}") from err
        if not requests:
            raise DatasetError(f"dataset {path} holds no request")
        return cls(requests=tuple(requests), state=state, origin=str(path))

    def write_jsonl(self, path: Path) -> None:
        lines = [json.dumps({"state": self.state})] if self.state is not None else []
        lines += [r.model_dump_json(exclude_defaults=True) for r in self.requests]
        path.write_text("\n".join(lines) + "\n")
