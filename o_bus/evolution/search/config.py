"""What a search is asked to do (:class:`SearchConfig`) and what it found."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OPERATORS", "OperatorName", "SearchConfig", "SearchResult", "auto_workers"]

OperatorName = Literal["genome", "ast", "crossover", "llm", "random"]
OPERATORS: tuple[OperatorName, ...] = ("genome", "ast", "crossover", "llm", "random")


def auto_workers() -> int:
    """Worker processes for ``--workers auto``: the cores this process may use, minus one
    left for live traffic when there are more than two."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    return max(1, cores - 1 if cores > 2 else cores)


class SearchConfig(BaseModel):
    """A search of better versions of one agent. Every field is recorded in the lineage."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    agent: str
    source: str = Field(description="the starting version's source")
    filename: str = "agent.py"
    attr: str | None = None
    dataset: Path | None = Field(default=None, description="JSONL requests (see dataset.py)")
    window: int | None = Field(default=None, gt=0, description="or: the last N WAL requests")
    generations: int = Field(default=10, ge=1)
    population: int = Field(default=8, ge=2)
    islands: int = Field(default=2, ge=1)
    elites: int = Field(default=1, ge=0, description="kept unchanged each generation")
    tournament: int = Field(default=3, ge=1)
    migration_interval: int = Field(default=3, ge=1, description="generations between migrations")
    migrants: int = Field(default=1, ge=0)
    max_evals: int | None = Field(default=None, gt=0, description="evaluation budget")
    max_cpu_seconds: float | None = Field(
        default=None, gt=0, description="budget of evaluation CPU seconds"
    )
    max_seconds: float | None = Field(
        default=None, gt=0, description="wall-time budget: no generation starts after it"
    )
    workers: int = Field(default_factory=auto_workers, ge=1)
    seed: int = 0
    operators: tuple[OperatorName, ...] = ("genome", "ast", "crossover")
    minibatch: int = Field(default=16, ge=1, description="requests of the cascade's minibatch")
    minibatch_margin: float = Field(
        default=0.8, ge=0, description="full evaluation only above this share of the baseline"
    )
    timeout: float = Field(
        default=120.0, gt=0, description="an evaluation silent this long (s) is killed"
    )
    cpu_seconds: int = Field(default=10, gt=0, description="CPU-time limit per evaluation")
    memory_mb: int = Field(default=512, gt=0)
    descriptors: tuple[str, ...] = Field(
        default=(), description="behaviour descriptors; empty: the agent's, else code_size,latency"
    )
    bins: int = Field(default=8, ge=1, description="cells per descriptor in the archive")
    llm_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL; unset: $O_BUS_LLM_BASE_URL"
    )
    llm_model: str = ""
    search_id: str | None = Field(default=None, description="resume this search if recorded")
    deploy_best: bool = True
    cache: bool = Field(
        default=True, description="reuse evaluations by (candidate, request) from o_evalcache"
    )
    spare_cores: float = Field(
        default=1.0,
        ge=0,
        description="start an evaluation only while the rest of the machine leaves this many "
        "cores idle (0: whenever a worker is free; evaluations run under SCHED_IDLE either way)",
    )
    hand_off: bool = Field(
        default=False,
        description="request the deployed best version's evolution when it beats the "
        "starting version by the agent's HandOff margin (self-triggered searches)",
    )
    by: str = "o-bus evolve search"


class SearchResult(BaseModel):
    """The outcome of a search: baseline and best fitness, the best version and budget used."""

    search_id: str
    agent: str
    baseline_fitness: float | None
    best_fitness: float | None
    best_child: str | None
    best_version: str | None = Field(description="deployed code version (sha256:...)")
    handed_off: bool = False
    handoff_reason: str | None = None
    stop_reason: str | None = None
    evaluations: int
    discarded: int
    generations: int
    archive_cells: int
    resumed: bool
