"""The exact tests behind the evolution gates, against values worked out by hand (and
published: Fisher's tea-tasting table, scipy's documented example)."""

from __future__ import annotations

import math

import pytest

from o_bus.evolution.significance import (
    binomial_sf,
    fisher_greater,
    mean_gain_bound,
    paired_failures_test,
    rates_test,
)


def test_binomial_tail_matches_hand_computed_values() -> None:
    assert binomial_sf(8, 10, 0.5) == pytest.approx(56 / 1024)
    assert binomial_sf(0, 10, 0.3) == 1.0
    assert binomial_sf(11, 10, 0.3) == 0.0
    assert binomial_sf(1, 50, 0.01) == pytest.approx(1 - 0.99**50)
    by_hand = 1 - sum(math.comb(50, i) * 0.01**i * 0.99 ** (50 - i) for i in range(3))
    assert binomial_sf(3, 50, 0.01) == pytest.approx(by_hand)
    assert binomial_sf(1, 50, 0.0) == 0.0


def test_binomial_rejects_a_probability_out_of_range() -> None:
    with pytest.raises(ValueError, match="not in"):
        binomial_sf(1, 10, 1.5)


def test_fisher_one_sided_matches_known_tables() -> None:
    # Fisher's lady tasting tea: 3 of 4 right; one-sided p = 17/70.
    assert fisher_greater(3, 4, 1, 4) == pytest.approx(17 / 70)
    # scipy.stats.fisher_exact([[8, 2], [1, 5]], alternative="greater") -> 0.024475524...
    assert fisher_greater(8, 10, 1, 6) == pytest.approx(280 / 11440)
    assert fisher_greater(0, 10, 0, 10) == 1.0
    assert fisher_greater(1, 4, 3, 4) == pytest.approx(1 - 1 / 70)


def test_fisher_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="out of range"):
        fisher_greater(5, 4, 0, 4)


def test_paired_failures_need_evidence_beyond_the_allowance() -> None:
    worse = paired_failures_test(3, 0, 50, allowed_rate=0.01, alpha=0.05, min_sample=50)
    assert worse.outcome == "worse"
    assert "excess 3" in worse.explanation
    one = paired_failures_test(1, 0, 50, allowed_rate=0.01, alpha=0.05, min_sample=50)
    assert one.outcome == "not_worse"
    # The same failures as live are no evidence against the candidate.
    same = paired_failures_test(6, 6, 60, allowed_rate=0.0, alpha=0.05, min_sample=50)
    assert same.outcome == "not_worse"
    # With no allowance, a single failure where live succeeded is significant, but on a
    # small sample only three failures make a verdict.
    strict = paired_failures_test(1, 0, 50, allowed_rate=0.0, alpha=0.05, min_sample=50)
    assert strict.outcome == "worse"
    early = paired_failures_test(2, 0, 2, allowed_rate=0.01, alpha=0.05, min_sample=50)
    assert early.outcome == "inconclusive"
    decisive = paired_failures_test(3, 0, 3, allowed_rate=0.01, alpha=0.05, min_sample=50)
    assert decisive.outcome == "worse"


def test_few_requests_are_inconclusive_never_a_pass() -> None:
    few = paired_failures_test(0, 0, 10, allowed_rate=0.01, alpha=0.05, min_sample=50)
    assert few.outcome == "inconclusive"
    assert "10/50" in few.explanation
    bake = rates_test(0, 5, 0, 200, allowed_rate=0.01, alpha=0.05, min_sample=20)
    assert bake.outcome == "inconclusive"


def test_rates_before_and_after_need_a_significant_rise() -> None:
    # 2 of 24 after vs 0 of 40 before: p = C(24,2)/C(64,2) = 0.137, chance at 5 %.
    noise = rates_test(2, 24, 0, 40, allowed_rate=0.01, alpha=0.05, min_sample=20)
    assert noise.outcome == "not_worse"
    assert noise.p_value == pytest.approx(276 / 2016)
    assert "Fisher p=" in noise.explanation
    rise = rates_test(12, 40, 1, 200, allowed_rate=0.01, alpha=0.05, min_sample=20)
    assert rise.outcome == "worse"
    # Significant but within the allowance: not worse.
    small = rates_test(30, 1000, 0, 1000, allowed_rate=0.05, alpha=0.05, min_sample=20)
    assert small.outcome == "not_worse"


def test_rates_without_a_baseline_are_tested_against_the_allowance() -> None:
    bad = rates_test(5, 30, 0, 3, allowed_rate=0.01, alpha=0.05, min_sample=20)
    assert bad.outcome == "worse"
    assert "no baseline" in bad.explanation


def test_mean_gain_bound() -> None:
    assert mean_gain_bound(4, 0.0, 0.0, 1.645) == (0.0, 0.0)
    mean, upper = mean_gain_bound(4, -2.0, 1.0 + 1.0 + 0.0 + 0.0, 1.645)
    # differences -1, -1, 0, 0: mean -0.5, s^2 = 1/3
    assert mean == pytest.approx(-0.5)
    assert upper == pytest.approx(-0.5 + 1.645 * math.sqrt(1 / 3 / 4))
    assert mean_gain_bound(1, 3.0, 9.0, 1.645)[1] == math.inf
