"""The one error the benchmark raises: a step could not run, with what went wrong."""

from __future__ import annotations

from o_bus.errors import OBusError

__all__ = ["BenchError"]


class BenchError(OBusError):
    """A benchmark step failed (a process did not start, answer or finish)."""
