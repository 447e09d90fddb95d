"""The evolution gates as pure functions: what passes, fails, or waits, and why."""

from __future__ import annotations

from typing import Any

from o_bus.evolution.candidate.stats import CandidateStats
from o_bus.evolution.plan import EvolutionPlan
from o_bus.handlers.arbiter.gates import canary_gate, live_gate, shadow_gate
from o_bus.handlers.arbiter.live_outcomes import OutcomeCounts

PLAN = EvolutionPlan(min_requests=50, min_canary_requests=20, min_stage_seconds=0)


def stats(**figures: Any) -> CandidateStats:
    base: dict[str, Any] = {
        "agent": "account",
        "version": "sha256:" + "0" * 64,
        "code_version": "1.0.1",
        "pid": 1,
        "phase": "following",
        "sandbox": "test",
        "started_at": 0.0,
        "sent_at": 0.0,
        "compared": 0,
        "differing": 0,
        "candidate_failures": 0,
        "live_failures": 0,
        "candidate_p99_ms": 0.1,
        "live_p99_ms": 0.1,
    }
    return CandidateStats(**(base | figures))


def fitness(n: int, live: float, gains: list[float]) -> dict[str, Any]:
    """Figures of ``n`` paired fitness outcomes whose gains cycle through ``gains``."""
    per = [gains[i % len(gains)] for i in range(n)]
    return {
        "fitness_n": n,
        "live_fitness": live,
        "candidate_fitness": live + sum(per) / n,
        "fitness_gain_sq_sum": sum(g * g for g in per),
    }


def test_too_few_requests_wait_whatever_they_show() -> None:
    verdict = shadow_gate(PLAN, None, stats(compared=23, differing=0), age=10)
    assert verdict.outcome == "inconclusive"
    assert "23/50 requests compared" in verdict.reason


def test_an_identical_refactor_passes_and_says_why() -> None:
    verdict = shadow_gate(PLAN, None, stats(compared=60), age=10)
    assert verdict.outcome == "pass"
    assert "60 requests compared" in verdict.reason
    assert "diff rate 0.0%" in verdict.reason
    assert "p=1" in verdict.reason


def test_failures_beyond_live_fail_only_when_significant() -> None:
    crash = shadow_gate(PLAN, None, stats(compared=50, candidate_failures=3), age=10)
    assert crash.outcome == "fail"
    assert "excess 3" in crash.reason
    one = shadow_gate(PLAN, None, stats(compared=50, candidate_failures=1), age=10)
    assert one.outcome == "pass"
    both = shadow_gate(
        PLAN, None, stats(compared=60, candidate_failures=5, live_failures=5), age=10
    )
    assert both.outcome == "pass"


def test_fitness_better_worse_and_not_yet_distinguishable() -> None:
    better = shadow_gate(PLAN, None, stats(compared=60, **fitness(60, 0.8, [0.0, 1.0])), age=1)
    assert better.outcome == "pass"
    assert "fitness" in better.reason
    worse = shadow_gate(PLAN, None, stats(compared=60, **fitness(60, 0.8, [0.0, -1.0])), age=1)
    assert worse.outcome == "fail"
    assert "worse than live: fitness" in worse.reason
    # One small loss among many equal outcomes: not distinguishable from no change yet.
    noisy = [0.0] * 59 + [-0.5]
    unsure = shadow_gate(PLAN, None, stats(compared=60, **fitness(60, 0.8, noisy)), age=1)
    assert unsure.outcome == "inconclusive"
    assert "not yet distinguishable" in unsure.reason


def test_canary_failures_are_errors_and_rejections_are_decisions() -> None:
    ok = canary_gate(PLAN, None, stats(compared=60, canary_decided=25), age=1)
    assert ok.outcome == "pass"
    assert "canary decided 25" in ok.reason
    bad = canary_gate(PLAN, None, stats(compared=60, canary_decided=25, canary_failures=4), age=1)
    assert bad.outcome == "fail"
    few = canary_gate(PLAN, None, stats(compared=60, canary_decided=5), age=1)
    assert few.outcome == "inconclusive"


def test_rejections_after_promotion_are_answers_not_errors() -> None:
    # The figures of the refactor once rolled back with "6 of 23 (26.1%, before 25.0%)":
    # those were rejections. As outcomes: no error on either side.
    before = OutcomeCounts(requests=473, errors=0, rejections=118)
    after = OutcomeCounts(requests=23, errors=0, rejections=6)
    verdict = live_gate(PLAN, before, after, "1.0.1", "1.0.1", age=10)
    assert verdict.outcome == "pass"
    assert "6 rejected, answers not errors" in verdict.reason
    assert verdict.metrics["rejections"] == 6


def test_a_significant_rise_of_errors_after_promotion_fails() -> None:
    before = OutcomeCounts(requests=400, errors=2, rejections=80)
    after = OutcomeCounts(requests=30, errors=6, rejections=5)
    verdict = live_gate(PLAN, before, after, "1.0.1", "1.0.1", age=10)
    assert verdict.outcome == "fail"
    assert "Fisher p=" in verdict.reason
    chance = live_gate(PLAN, before, OutcomeCounts(requests=30, errors=1), "1.0.1", "1.0.1", age=10)
    assert chance.outcome == "pass"


def test_the_bake_waits_for_the_reload_and_for_traffic() -> None:
    before = OutcomeCounts(requests=400)
    old = live_gate(PLAN, before, None, "1.0.0", "1.0.1", age=10)
    assert old.outcome == "inconclusive"
    assert "waiting for the reload" in old.reason
    few = live_gate(PLAN, before, OutcomeCounts(requests=5), "1.0.1", "1.0.1", age=10)
    assert few.outcome == "inconclusive"
    assert "5/20 requests since promotion" in few.reason
