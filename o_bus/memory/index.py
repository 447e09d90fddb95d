"""The running memory projection as query handlers see it: semantic search, episodes,
counts, and waiting until the projection has caught up with a given agent sequence."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from o_bus.errors import AgentUnavailableError, ErrorCode, InvalidRequestError
from o_bus.memory.embedder import Embedder
from o_bus.memory.results import Episode, EpisodeEvent
from o_bus.memory.semantic import SemanticIndex
from o_bus.memory.short_term import parse_time

if TYPE_CHECKING:
    from o_bus.memory.projection import ProjectionRunner

__all__ = ["MAX_EPISODES", "MemoryIndex", "normalise_time"]

MAX_EPISODES: Final = 1000


def normalise_time(value: str, name: str) -> str:
    """An ISO-8601 time in the bus's UTC format, so that times compare as text."""
    try:
        moment = parse_time(value)
    except ValueError:
        raise InvalidRequestError(
            ErrorCode.INVALID_PAYLOAD, f"{name} is not an ISO-8601 time: {value!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class MemoryIndex(SemanticIndex):
    """Search plus episodes, over the file a :class:`ProjectionRunner` keeps current."""

    def __init__(self, path: Path, embedder: Embedder, runner: ProjectionRunner) -> None:
        super().__init__(path, embedder)
        self._runner = runner

    @property
    def applied(self) -> int:
        """The last agent sequence folded in (no I/O)."""
        return self._runner.applied.seq

    async def wait_for(self, seq: int, timeout: float) -> None:
        """Return once events up to ``seq`` are applied; raise ``unavailable`` if not in time."""
        if await self._runner.wait_for(seq, timeout):
            return
        failure = self._runner.failure
        why = f": the projection stopped ({failure})" if failure else ""
        raise AgentUnavailableError(
            f"memory index of {self._runner.agent!r} is at seq {self.applied}, not yet {seq}{why}",
            details={"applied_seq": self.applied, "min_seq": seq},
        )

    async def episodes(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        type: str | None = None,
        limit: int = 100,
    ) -> list[Episode]:
        """Episodes whose outcome is at or after ``since`` and before ``until``, whose command
        or one of whose events is of ``type``; oldest first."""
        if not 1 <= limit <= MAX_EPISODES:
            raise InvalidRequestError(
                ErrorCode.INVALID_PAYLOAD, f"limit must be within 1..{MAX_EPISODES}"
            )
        lo = normalise_time(since, "since") if since else None
        hi = normalise_time(until, "until") if until else None
        rows = await self._call(self.db.episodes, lo, hi, type, limit)
        return [_episode(row) for row in rows]

    async def close(self) -> None:
        """Stop following the log and close the file."""
        await self._runner.close()
        await super().close()

    async def stats(self) -> dict[str, Any]:
        tiers = await self._call(self.db.count_items)
        episodes = await self._call(self.db.count_episodes)
        return {
            "short_term": tiers.get("short", 0),
            "long_term": tiers.get("long", 0),
            "episodes": episodes,
            "applied_seq": self.applied,
            "embedder": self.embedder.name,
            "path": str(self.path),
            "rebuilt_because": self._runner.rebuilt_because,
        }


def _episode(row: dict[str, Any]) -> Episode:
    return Episode(
        number=row["num"],
        request_id=row["request_id"],
        wal_seq=row["wal_seq"],
        command=row["command"],
        request=json.loads(row["request"]) if row["request"] is not None else None,
        requested_at=row["requested_at"],
        at=row["at"],
        outcome=row["outcome"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        events=[EpisodeEvent(**event) for event in json.loads(row["events"])],
    )
