"""An evolution: one candidate version of an agent on its way from shadow to live.

The record lives in KV ``o_evolution`` (key: the agent). `o-bus evolve start` writes it with
status ``requested``; the evolution arbiter runs it through its stages and appends every
decision, with its reason and the figures it was based on.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from o_bus.evolution.sandbox import SandboxLimits

__all__ = ["Evolution", "EvolutionDecision", "EvolutionPlan", "Status"]

Status = Literal["requested", "running", "promoted", "rolled_back", "aborted"]
ACTIVE: frozenset[str] = frozenset({"requested", "running"})


class EvolutionPlan(BaseModel):
    """Stages and gates. Every gate needs data: too little is inconclusive and waits."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    canary_steps: tuple[int, ...] = Field(
        default=(10, 50), description="canary weights in percent, in order; () skips canary"
    )
    min_requests: int = Field(default=50, ge=1, description="compared requests per shadow stage")
    min_canary_requests: int = Field(default=20, ge=1, description="canary decisions per step")
    min_stage_seconds: float = Field(default=2.0, ge=0)
    max_error_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="error rate allowed above live's (errors: crashes, invalid events, "
        "timeouts; never rejections, which are outputs like any other)",
    )
    alpha: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="significance level: a rate or fitness is judged worse only when chance "
        "explains the evidence with probability below this",
    )
    max_p99_ratio: float = Field(default=1.5, gt=0, description="candidate p99 / live p99")
    p99_slack_ms: float = Field(default=2.0, ge=0, description="added to the p99 allowance")
    max_diff_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="share of compared requests allowed to differ; default 0, or not gated "
        "when the agent defines a fitness function (a behaviour change is then judged by it)",
    )
    min_fitness_gain: float = Field(
        default=0.0, description="candidate mean fitness minus live's must be at least this"
    )
    max_fitness_requests: int = Field(
        default=1000,
        ge=1,
        description="compared requests after which a fitness gain not yet distinguishable "
        "from the required one is judged by its mean",
    )
    bake_seconds: float = Field(default=3.0, ge=0, description="watch live after promotion")
    ignore: tuple[str, ...] = Field(default=(), description="output paths never compared")
    shadow_sample: float = Field(
        default=1.0, gt=0, le=1, description="share of mirrored requests compared"
    )
    shadow_cpu: float | None = Field(
        default=None,
        gt=0,
        description="hard cap: share of one core the shadow may use (None: no cap; the "
        "shadow runs under SCHED_IDLE on cores live leaves idle)",
    )
    limits: SandboxLimits = Field(
        default=SandboxLimits(idle_scheduling=True),
        description="the candidate's sandbox; it runs under SCHED_IDLE, on idle cores only",
    )


class EvolutionDecision(BaseModel):
    model_config = ConfigDict(frozen=True)
    at: str
    stage: str
    action: Literal["start", "wait", "advance", "promote", "rollback", "done", "abort"]
    reason: str
    metrics: dict[str, Any] = {}


class Evolution(BaseModel):
    model_config = ConfigDict(frozen=True)
    agent: str
    version: str
    code_version: str = ""
    plan: EvolutionPlan = EvolutionPlan()
    status: Status = "requested"
    stage: str = "shadow"
    requested_by: str = ""
    requested_at: str = ""
    previous_live: str | None = None
    decisions: tuple[EvolutionDecision, ...] = ()
    metrics: dict[str, Any] = Field(default={}, description="latest figures of the stage")
    abort_requested: str | None = Field(default=None, description="why an operator aborted")
    marks: dict[str, int] = Field(
        default={},
        description="positions in the agent's log (stream sequences) the gates count from: "
        "'baseline_until' (live code decided everything up to here), 'bake_from' (the new "
        "code decides from here); durable, so a restarted arbiter judges the same evidence",
    )

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def with_decision(self, decision: EvolutionDecision, keep: int = 100) -> Evolution:
        return self.model_copy(
            update={"decisions": (*self.decisions, decision)[-keep:], "metrics": decision.metrics}
        )
