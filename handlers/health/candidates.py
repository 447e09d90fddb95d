"""Candidate processes' figures, for Prometheus: always labelled ``traffic="shadow"``.

Mirrored requests are counted here only, in families of their own (``o_bus_shadow_*``,
``o_bus_canary_*``), never in live's ``o_bus_requests_total`` and friends.
"""

from __future__ import annotations

from pydantic import ValidationError

from o_bus.evolution.candidate.stats import CandidateStats

from .prometheus import Family

__all__ = ["CandidateBoard"]


class CandidateBoard:
    """The latest figures of each candidate process, forgotten when it falls silent."""

    def __init__(self, forget_after: float = 10.0, max_candidates: int = 256) -> None:
        self.forget_after, self.max_candidates = forget_after, max_candidates
        self.latest: dict[tuple[str, str], tuple[float, CandidateStats]] = {}
        self.malformed = 0

    def observe(self, data: bytes, now: float) -> None:
        try:
            stats = CandidateStats.model_validate_json(data)
        except ValidationError:
            self.malformed += 1
            return
        key = (stats.agent, stats.version)
        if key not in self.latest and len(self.latest) >= self.max_candidates:
            self.forget(now)
            if len(self.latest) >= self.max_candidates:
                return
        self.latest[key] = (now, stats)

    def forget(self, now: float) -> None:
        for key, (seen, _) in list(self.latest.items()):
            if now - seen > self.forget_after:
                del self.latest[key]

    def families(self, now: float) -> list[Family]:
        self.forget(now)
        compared = Family(
            "o_bus_shadow_compared_total", "counter", "Mirrored requests a candidate compared"
        )
        differing = Family(
            "o_bus_shadow_differing_total", "counter", "Compared requests whose outputs differed"
        )
        failures = Family(
            "o_bus_shadow_failures_total", "counter", "Mirrored requests on which code raised"
        )
        p99 = Family(
            "o_bus_shadow_decide_p99_ms", "gauge", "p99 of deciding a mirrored request, ms"
        )
        lag = Family("o_bus_shadow_lag", "gauge", "Live outcomes the candidate has not compared")
        canary = Family(
            "o_bus_canary_decided_total", "counter", "Live requests a canary candidate decided"
        )
        canary_failures = Family(
            "o_bus_canary_failures_total", "counter", "Canary requests the candidate failed"
        )
        for (agent, version), (_, stats) in sorted(self.latest.items()):
            labels = {"agent": agent, "version": version[:23], "traffic": stats.traffic}
            compared.add(stats.compared, labels)
            differing.add(stats.differing, labels)
            failures.add(stats.candidate_failures, {**labels, "code": "candidate"})
            failures.add(stats.live_failures, {**labels, "code": "live"})
            for code, value in (("candidate", stats.candidate_p99_ms), ("live", stats.live_p99_ms)):
                if value is not None:
                    p99.add(value, {**labels, "code": code})
            lag.add(stats.lag, labels)
            canary.add(stats.canary_decided, labels)
            canary_failures.add(stats.canary_failures, labels)
        return [compared, differing, failures, p99, lag, canary, canary_failures]
