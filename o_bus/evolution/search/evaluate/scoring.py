"""Adding up one candidate's results on a dataset into its fitness and figures.

The score is the mean of the agent's fitness over every request, a request whose handler
raised (or whose events the live code cannot read, or which broke an invariant) counting 0.
An agent without a fitness function is scored by agreement with live's recorded outputs
when the dataset has them, else by the share of requests that did not fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Tally"]


@dataclass
class Tally:
    has_fitness: bool
    requests: int = 0
    failures: int = 0
    invalid_events: int = 0
    invariant_violations: int = 0
    compared: int = 0
    agreed: int = 0
    tools_answered: int = 0
    tools_unknown: int = 0
    fitness_sum: float = 0.0
    latency_ms: list[float] = field(default_factory=list)
    last_failure: str | None = None

    def add(
        self,
        *,
        fitness: float | None,
        failure: str | None,
        invalid: int,
        violated: int,
        agrees: bool | None,
        elapsed_ms: float,
        tools_answered: int,
        tools_unknown: int,
    ) -> None:
        self.requests += 1
        broken = failure is not None or invalid > 0 or violated > 0
        if failure is not None:
            self.failures += 1
            self.last_failure = failure
        self.invalid_events += invalid
        self.invariant_violations += violated
        if agrees is not None:
            self.compared += 1
            self.agreed += int(agrees)
        self.tools_answered += tools_answered
        self.tools_unknown += tools_unknown
        if fitness is not None and not broken:
            self.fitness_sum += fitness
        self.latency_ms.append(elapsed_ms)

    def score(self) -> float:
        if not self.requests:
            return 0.0
        if self.has_fitness:
            return self.fitness_sum / self.requests
        if self.compared:
            return self.agreed / self.compared
        return 1.0 - self.failures / self.requests

    def _reason(self, reason: str | None) -> str | None:
        if reason and self.last_failure:
            return f"{reason} (last: {self.last_failure})"
        return reason or self.last_failure

    def final(self, outcome: str, reason: str | None, done: int) -> dict[str, Any]:
        ordered = sorted(self.latency_ms)
        return {
            "final": True,
            "outcome": outcome,
            "reason": self._reason(reason) if outcome != "ok" else None,
            "fitness": self.score(),
            "requests": done,
            "failures": self.failures,
            "invalid_events": self.invalid_events,
            "invariant_violations": self.invariant_violations,
            "agreement": self.agreed / self.compared if self.compared else None,
            "tools_answered": self.tools_answered,
            "tools_unknown": self.tools_unknown,
            "latency_ms_mean": sum(ordered) / len(ordered) if ordered else 0.0,
            "latency_ms_p99": ordered[int(0.99 * (len(ordered) - 1))] if ordered else 0.0,
            "last_failure": self.last_failure,
        }
