"""Canary selection: which requests a candidate version decides, by weight or sticky key."""

from __future__ import annotations

import random
import zlib

from o_bus.evolution.routes import CanaryRoute
from o_bus.wire.cloudevents import RequestEnvelope
from o_bus.wire.headers import CE_SUBJECT

__all__ = ["goes_to_canary"]


def goes_to_canary(
    canary: CanaryRoute, envelope: RequestEnvelope, headers: dict[str, str] | None
) -> bool:
    """True for about ``weight`` percent of requests. With a sticky header, the same header
    value always lands on the same side (as long as the weight does not change)."""
    if canary.weight <= 0:
        return False
    if canary.weight >= 100:
        return True
    key: str | None = None
    if canary.sticky:
        if canary.sticky == CE_SUBJECT:
            key = envelope.subject
        elif headers:
            key = headers.get(canary.sticky)
    if key is None:
        return random.random() * 100 < canary.weight
    return zlib.crc32(key.encode()) % 100 < canary.weight
