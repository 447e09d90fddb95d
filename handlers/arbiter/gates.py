"""Gates: does a stage's evidence pass, fail, or not suffice yet? Pure functions.

"No data" never passes: too few requests, or a stage younger than its minimum, is
``inconclusive`` and the evolution waits. Failing evidence fails as soon as it is decisive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from o_bus.evolution.candidate.stats import CandidateStats
from o_bus.evolution.plan import EvolutionPlan

__all__ = ["LiveCounters", "Verdict", "canary_gate", "live_gate", "shadow_gate"]

Outcome = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveCounters:
    """Live's own request counters (from its status), for the bake after promotion."""

    requests: int
    errors: int
    code_version: str


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f} ms"


def _shadow_figures(base: CandidateStats | None, now: CandidateStats) -> dict[str, Any]:
    compared = now.compared - (base.compared if base else 0)
    differing = now.differing - (base.differing if base else 0)
    cand_fail = now.candidate_failures - (base.candidate_failures if base else 0)
    live_fail = now.live_failures - (base.live_failures if base else 0)
    return {
        "compared": compared,
        "differing": differing,
        "diff_rate": differing / compared if compared else None,
        "candidate_failures": cand_fail,
        "live_failures": live_fail,
        "candidate_failure_rate": cand_fail / compared if compared else None,
        "live_failure_rate": live_fail / compared if compared else None,
        "candidate_p99_ms": now.candidate_p99_ms,
        "live_p99_ms": now.live_p99_ms,
        "fitness_n": now.fitness_n,
        "candidate_fitness": now.candidate_fitness,
        "live_fitness": now.live_fitness,
        "lag": now.lag,
        "last_failure": now.last_failure,
    }


def _check_shadow(
    plan: EvolutionPlan, figures: dict[str, Any], min_requests: int, age: float
) -> Verdict:
    compared: int = figures["compared"]
    cand_fail: int = figures["candidate_failures"]
    live_fail: int = figures["live_failures"]
    allowed_failures = live_fail + plan.max_error_rate * max(compared, min_requests)
    if cand_fail > allowed_failures and cand_fail >= 3:
        return Verdict(
            "fail",
            f"candidate code raised on {cand_fail} of {compared} requests "
            f"(live raised on {live_fail}); last: {figures['last_failure']}",
            figures,
        )
    if compared < min_requests:
        return Verdict(
            "inconclusive",
            f"waiting for traffic: {compared}/{min_requests} requests compared",
            figures,
        )
    if age < plan.min_stage_seconds:
        return Verdict(
            "inconclusive",
            f"stage is {age:.1f} s old; minimum {plan.min_stage_seconds:g} s",
            figures,
        )
    if cand_fail / compared > live_fail / compared + plan.max_error_rate:
        return Verdict(
            "fail",
            f"failure rate {_pct(cand_fail / compared)} vs live {_pct(live_fail / compared)} "
            f"(allowed +{_pct(plan.max_error_rate)})",
            figures,
        )
    has_fitness = figures["fitness_n"] > 0
    max_diff = plan.max_diff_rate
    if max_diff is None:
        max_diff = None if has_fitness else 0.0
    diff_rate: float = figures["diff_rate"]
    if max_diff is not None and diff_rate > max_diff:
        return Verdict(
            "fail",
            f"output differs from live on {figures['differing']} of {compared} requests "
            f"({_pct(diff_rate)}, allowed {_pct(max_diff)})",
            figures,
        )
    cand_p99, live_p99 = figures["candidate_p99_ms"], figures["live_p99_ms"]
    if cand_p99 is not None and live_p99 is not None:
        allowance = live_p99 * plan.max_p99_ratio + plan.p99_slack_ms
        if cand_p99 > allowance:
            return Verdict(
                "fail",
                f"p99 {_ms(cand_p99)} vs live {_ms(live_p99)} (allowed {_ms(allowance)})",
                figures,
            )
    fitness_note = ""
    if has_fitness:
        gain = figures["candidate_fitness"] - figures["live_fitness"]
        fitness_note = (
            f", fitness {figures['candidate_fitness']:.4g} vs live {figures['live_fitness']:.4g}"
        )
        if gain < plan.min_fitness_gain:
            return Verdict(
                "fail",
                f"worse than live: fitness {figures['candidate_fitness']:.4g} vs "
                f"{figures['live_fitness']:.4g} (gain {gain:+.4g}, required "
                f"{plan.min_fitness_gain:+.4g})",
                figures,
            )
    return Verdict(
        "pass",
        f"{compared} requests compared: diff rate {_pct(diff_rate)}, failure rate "
        f"{_pct(cand_fail / compared)} (live {_pct(live_fail / compared)}), p99 "
        f"{_ms(cand_p99)} vs live {_ms(live_p99)}{fitness_note}",
        figures,
    )


def shadow_gate(
    plan: EvolutionPlan, base: CandidateStats | None, now: CandidateStats, age: float
) -> Verdict:
    """Evidence from mirrored traffic since the stage began (``base``: stats at its start)."""
    return _check_shadow(plan, _shadow_figures(base, now), plan.min_requests, age)


def canary_gate(
    plan: EvolutionPlan, base: CandidateStats | None, now: CandidateStats, age: float
) -> Verdict:
    """Canary decisions since the step began, plus the shadow comparison that continues."""
    decided = now.canary_decided - (base.canary_decided if base else 0)
    failed = now.canary_failures - (base.canary_failures if base else 0)
    figures = _shadow_figures(base, now) | {
        "canary_decided": decided,
        "canary_failures": failed,
        "canary_p99_ms": now.canary_p99_ms,
    }
    attempts = decided + failed
    if failed > plan.max_error_rate * max(attempts, plan.min_canary_requests) and failed >= 2:
        return Verdict(
            "fail",
            f"canary failed {failed} of {attempts} requests (live decided those instead); "
            f"last: {now.last_failure}",
            figures,
        )
    if decided < plan.min_canary_requests:
        return Verdict(
            "inconclusive",
            f"waiting for traffic: {decided}/{plan.min_canary_requests} canary decisions",
            figures,
        )
    shadow = _check_shadow(plan, figures, 1, age)
    if shadow.outcome != "pass":
        return shadow
    return Verdict(
        "pass",
        f"canary decided {decided} requests with {failed} failures; {shadow.reason}",
        figures,
    )


def live_gate(
    plan: EvolutionPlan,
    baseline: LiveCounters | None,
    base: LiveCounters,
    now: LiveCounters,
    code_version: str,
    age: float,
) -> Verdict:
    """After promotion: live runs the new code and its error rate has not risen."""
    requests, errors = now.requests - base.requests, now.errors - base.errors
    figures: dict[str, Any] = {
        "live_code_version": now.code_version,
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else None,
    }
    if now.code_version != code_version:
        return Verdict(
            "inconclusive", f"live still runs {now.code_version}; waiting for the reload", figures
        )
    before = (
        baseline.errors / baseline.requests if baseline is not None and baseline.requests else 0.0
    )
    figures["error_rate_before"] = before
    if requests and errors >= 3 and errors / requests > before + plan.max_error_rate:
        return Verdict(
            "fail",
            f"after promotion live answered {errors} of {requests} requests with an error "
            f"({_pct(errors / requests)}, before {_pct(before)})",
            figures,
        )
    if requests < plan.min_canary_requests:
        return Verdict(
            "inconclusive",
            f"waiting for traffic: {requests}/{plan.min_canary_requests} requests since promotion",
            figures,
        )
    if age < plan.bake_seconds:
        return Verdict("inconclusive", f"baking: {age:.1f}/{plan.bake_seconds:g} s", figures)
    return Verdict(
        "pass",
        f"live served {requests} requests on the new code, error rate "
        f"{_pct(errors / requests)} (before {_pct(before)})",
        figures,
    )
