"""Shared set-up of the evolution search tests: the shipped example and small configurations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from o_bus.evolution.search import SearchConfig

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "autoscaler" / "autoscaler.py"
DATASET = ROOT / "examples" / "autoscaler" / "traffic.jsonl"


def small_config(**changes: Any) -> SearchConfig:
    """A search small enough for the shared test machine: a few dozen evaluations."""
    base: dict[str, Any] = {
        "agent": "autoscaler",
        "source": EXAMPLE.read_text(),
        "filename": "autoscaler.py",
        "dataset": DATASET,
        "generations": 2,
        "population": 3,
        "islands": 2,
        "migration_interval": 1,
        "workers": 2,
        "seed": 5,
        "timeout": 600.0,  # a hang guard: evaluations wait for idle CPU on a busy machine
        "deploy_best": False,
    }
    base.update(changes)
    return SearchConfig(**base)
