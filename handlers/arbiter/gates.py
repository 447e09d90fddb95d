"""Gates: does a stage's evidence pass, fail, or not suffice yet? Pure functions.

"No data" never passes: too few requests, or a stage younger than its minimum, is
``inconclusive`` and the evolution waits. Failing evidence fails as soon as it is decisive:
rates by exact one-sided tests (o_bus/evolution/significance.py), fitness by a confidence
bound on the paired gain. An error is a crash, an invalid event or a timeout; a rejection is
an answer, compared with live's like any other output. Every verdict says why, with figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal

from o_bus.evolution.candidate.stats import CandidateStats
from o_bus.evolution.plan import EvolutionPlan
from o_bus.evolution.significance import (
    EARLY_FAILURES,
    binomial_sf,
    mean_gain_bound,
    paired_failures_test,
    rates_test,
)

from .live_outcomes import OutcomeCounts

__all__ = ["Verdict", "canary_gate", "live_gate", "shadow_gate"]

Outcome = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)


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
        "fitness_gain_sq_sum": now.fitness_gain_sq_sum,
        "coverage": now.coverage,
        "shed": now.shed,
        "lag": now.lag,
        "last_failure": now.last_failure,
    }


def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1 - alpha)


def _fitness_verdict(
    plan: EvolutionPlan, figures: dict[str, Any], compared: int
) -> tuple[Outcome, str]:
    """Paired fitness differences (same request, same state): worse when even the upper
    confidence bound of the mean gain is below the required gain; better or equal when the
    mean gain reaches it; otherwise not yet distinguishable (wait), until
    ``max_fitness_requests`` compared requests, where the mean decides."""
    n: int = figures["fitness_n"]
    cand, live = figures["candidate_fitness"], figures["live_fitness"]
    mean, upper = mean_gain_bound(
        n, (cand - live) * n, figures["fitness_gain_sq_sum"], _z(plan.alpha)
    )
    required = plan.min_fitness_gain
    text = (
        f"fitness {cand:.4g} vs live {live:.4g} over {n} requests (gain {mean:+.4g}, "
        f"upper {1 - plan.alpha:.0%} bound {upper:+.4g}, required {required:+.4g})"
    )
    if upper < required:
        return "fail", f"worse than live: {text}"
    if mean >= required:
        return "pass", text
    if compared >= plan.max_fitness_requests:
        return "fail", f"worse than live after {compared} requests: {text}"
    return "inconclusive", f"fitness not yet distinguishable: {text}"


def _check_shadow(
    plan: EvolutionPlan, figures: dict[str, Any], min_requests: int, age: float
) -> Verdict:
    compared: int = figures["compared"]
    cand_fail: int = figures["candidate_failures"]
    live_fail: int = figures["live_failures"]
    failures = paired_failures_test(
        cand_fail,
        live_fail,
        compared,
        allowed_rate=plan.max_error_rate,
        alpha=plan.alpha,
        min_sample=min_requests,
    )
    figures["failure_p_value"] = failures.p_value
    if failures.outcome == "worse":
        return Verdict(
            "fail",
            f"candidate code fails more than live: {failures.explanation}; "
            f"last: {figures['last_failure']}",
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
    has_fitness = figures["fitness_n"] > 0
    max_diff = plan.max_diff_rate
    if max_diff is None:
        max_diff = None if has_fitness else 0.0
    diff_rate: float = figures["diff_rate"]
    if max_diff is not None and diff_rate > max_diff:
        return Verdict(
            "fail",
            f"output differs from live on {figures['differing']} of {compared} requests "
            f"({_pct(diff_rate)}, allowed {_pct(max_diff)}; rejections are outputs too)",
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
        outcome, text = _fitness_verdict(plan, figures, compared)
        if outcome != "pass":
            return Verdict(outcome, text, figures)
        fitness_note = f"; {text}"
    return Verdict(
        "pass",
        f"{compared} requests compared: diff rate {_pct(diff_rate)}; {failures.explanation}; "
        f"p99 {_ms(cand_p99)} vs live {_ms(live_p99)}{fitness_note}",
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
    """Canary decisions since the step began, plus the shadow comparison that continues.
    A canary failure (the candidate raised, timed out or answered something unusable, and
    live decided instead) is an error; a rejection it decided is an answer."""
    decided = now.canary_decided - (base.canary_decided if base else 0)
    failed = now.canary_failures - (base.canary_failures if base else 0)
    figures = _shadow_figures(base, now) | {
        "canary_decided": decided,
        "canary_failures": failed,
        "canary_p99_ms": now.canary_p99_ms,
    }
    attempts = decided + failed
    p = binomial_sf(failed, attempts, plan.max_error_rate) if attempts else 1.0
    figures["canary_failure_p_value"] = p
    if (
        failed
        and p < plan.alpha
        and (failed >= EARLY_FAILURES or attempts >= plan.min_canary_requests)
    ):
        return Verdict(
            "fail",
            f"canary failed {failed} of {attempts} requests (live decided those instead; "
            f"allowed {_pct(plan.max_error_rate)}: p={p:.3g} < {plan.alpha:g}); "
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
        f"canary decided {decided} requests with {failed} failures (p={p:.3g}); {shadow.reason}",
        figures,
    )


def live_gate(
    plan: EvolutionPlan,
    before: OutcomeCounts,
    after: OutcomeCounts | None,
    running: str | None,
    code_version: str,
    age: float,
) -> Verdict:
    """After promotion: live runs the new code (``running``: the version its status
    reports), and its error rate in the log since it does (``after``) is not worse than the
    old code's before the canary (``before``), by a one-sided Fisher test and the allowance.
    Rejections are answers, not errors."""
    figures: dict[str, Any] = {
        "live_code_version": running,
        "errors_before": before.errors,
        "requests_before": before.requests,
        "rejections_before": before.rejections,
        "error_rate_before": before.error_rate,
    }
    if running is None:
        return Verdict("inconclusive", "live agent not answering its status", figures)
    if running != code_version or after is None:
        return Verdict(
            "inconclusive", f"live still runs {running}; waiting for the reload", figures
        )
    figures |= {
        "requests": after.requests,
        "errors": after.errors,
        "rejections": after.rejections,
        "error_rate": after.error_rate,
    }
    test = rates_test(
        after.errors,
        after.requests,
        before.errors,
        before.requests,
        allowed_rate=plan.max_error_rate,
        alpha=plan.alpha,
        min_sample=plan.min_canary_requests,
    )
    figures["error_p_value"] = test.p_value
    if test.outcome == "worse":
        return Verdict("fail", f"after promotion live errs more: {test.explanation}", figures)
    if test.outcome == "inconclusive":
        return Verdict(
            "inconclusive",
            f"waiting for traffic: {after.requests}/{plan.min_canary_requests} requests "
            f"since promotion ({test.explanation})",
            figures,
        )
    if age < plan.bake_seconds:
        return Verdict("inconclusive", f"baking: {age:.1f}/{plan.bake_seconds:g} s", figures)
    return Verdict(
        "pass",
        f"live served {after.requests} requests on the new code ({after.rejections} "
        f"rejected, answers not errors): {test.explanation}",
        figures,
    )
