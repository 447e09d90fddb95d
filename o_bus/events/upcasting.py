"""Upcasters: migrate stored event data from an old schema version to the current one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from o_bus.errors import ConfigurationError

__all__ = ["Upcaster", "UpcasterChain"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UpcasterChain:
    """Upcasters keyed by (event type, from_version); each moves data up one version."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = {}

    def register(self, event_type: str, from_version: int, fn: Upcaster) -> None:
        key = (event_type, from_version)
        if key in self._steps:
            raise ConfigurationError(f"two upcasters for {event_type!r} v{from_version}")
        self._steps[key] = fn

    def upcast(
        self, event_type: str, version: int, target: int, data: dict[str, Any]
    ) -> dict[str, Any]:
        if version > target:
            raise ConfigurationError(
                f"stored {event_type!r} is v{version}, newer than this code's v{target}"
            )
        while version < target:
            try:
                step = self._steps[(event_type, version)]
            except KeyError:
                raise ConfigurationError(
                    f"no upcaster for {event_type!r} from v{version} (code is at v{target})"
                ) from None
            data = step(data)
            version += 1
        return data
