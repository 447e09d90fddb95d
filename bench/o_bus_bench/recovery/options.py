"""The settings of a recovery run and the supervision policy each configuration registers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from o_bus.supervision.records import SupervisionPolicy

__all__ = ["CONFIGS", "Options", "policy"]

# Configuration name -> whether the supervision policy keeps a warm standby.
CONFIGS: Final = {"standby": True, "restart": False}


@dataclass(slots=True)
class Options:
    kills: int = 20
    rate: float = 400.0
    max_in_flight: int = 2000
    timeout: float = 0.5
    give_up: float = 15.0
    interval: float = 2.5
    warmup: float = 2.0
    period: float = 1.0
    configs: tuple[str, ...] = ("standby", "restart")
    work_dir: Path | None = None
    progress: bool = True


def policy(standby: bool, options: Options) -> SupervisionPolicy:
    # A restart period shorter than the time between kills keeps every kill a first crash
    # (restart backoff at its initial value), and many restarts never escalate.
    return SupervisionPolicy(standby=standby, max_restarts=10_000, period=options.period)
