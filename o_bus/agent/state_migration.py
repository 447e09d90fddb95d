"""State migrations: how a state saved under an older state schema becomes the current one.

Used when code with a new state schema takes over from older code (hot reload, snapshots
written by an earlier version). Each step maps the JSON data of schema ``n`` to ``n + 1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from o_bus.errors import ConfigurationError

__all__ = ["StateMigrations"]

StateStep = Callable[[dict[str, Any]], dict[str, Any]]


class StateMigrations:
    def __init__(self) -> None:
        self._steps: dict[int, StateStep] = {}

    def register(self, from_version: int, step: StateStep) -> None:
        if from_version in self._steps:
            raise ConfigurationError(f"a state migration from v{from_version} already exists")
        self._steps[from_version] = step

    def can_migrate(self, from_version: int, to_version: int) -> bool:
        return all(v in self._steps for v in range(from_version, to_version))

    def migrate(self, data: dict[str, Any], from_version: int, to_version: int) -> dict[str, Any]:
        """Run every step from ``from_version`` up to ``to_version``."""
        if from_version > to_version:
            raise ConfigurationError(
                f"state schema v{from_version} is newer than this code's v{to_version}"
            )
        for version in range(from_version, to_version):
            step = self._steps.get(version)
            if step is None:
                raise ConfigurationError(f"no state migration from schema v{version}")
            data = step(dict(data))
        return data
