"""Small exact tests for the evolution gates: is one failure rate worse than another?

Two shapes of evidence reach the gates:

- *paired*: the shadow evaluates the same requests with both codes, so the candidate's failures
  beyond live's on those requests are tested against an allowed rate with an exact one-sided
  binomial test (:func:`binomial_sf`);
- *independent*: after promotion, live's error rate on the new code is compared with the rate
  the old code had in the log before, with Fisher's exact one-sided test (:func:`fisher_greater`).

A verdict needs a minimum sample: below it the answer is ``inconclusive``, whatever the
counts. Exact tests rather than normal approximations because the counts are small (tens of
requests, a handful of failures), where approximations are poor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "EARLY_FAILURES",
    "RateTest",
    "binomial_sf",
    "fisher_greater",
    "mean_gain_bound",
    "paired_failures_test",
    "rates_test",
]

RateOutcome = Literal["worse", "not_worse", "inconclusive"]
# Below the minimum sample, "worse" needs at least this many failures as well as significance:
# one or two crashes on a handful of requests say little about a rate.
EARLY_FAILURES = 3


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exactly (summed in log space)."""
    if not 0 <= p <= 1:
        raise ValueError(f"probability {p} is not in [0, 1]")
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p == 0.0:
        return 0.0
    if p == 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = sum(math.exp(_log_comb(n, i) + i * log_p + (n - i) * log_q) for i in range(k, n + 1))
    return min(1.0, total)


def fisher_greater(a: int, n1: int, b: int, n2: int) -> float:
    """One-sided Fisher exact p-value that rate ``a/n1`` is greater than ``b/n2``.

    The table is ``[[a, n1 - a], [b, n2 - b]]``; the p-value is the probability, with both
    margins fixed, of a top-left cell at least ``a`` (scipy's ``alternative="greater"``)."""
    if not (0 <= a <= n1 and 0 <= b <= n2):
        raise ValueError(f"counts out of range: {a}/{n1}, {b}/{n2}")
    failures, total = a + b, n1 + n2
    if n1 == 0 or failures == 0:
        return 1.0
    log_denominator = _log_comb(total, failures)
    top = min(n1, failures)
    p = sum(
        math.exp(_log_comb(n1, x) + _log_comb(n2, failures - x) - log_denominator)
        for x in range(a, top + 1)
        if failures - x <= n2
    )
    return min(1.0, p)


@dataclass(frozen=True)
class RateTest:
    """The answer of a rate test, with the figures it was based on."""

    outcome: RateOutcome
    p_value: float | None
    explanation: str


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def paired_failures_test(
    candidate_failures: int,
    live_failures: int,
    compared: int,
    *,
    allowed_rate: float,
    alpha: float,
    min_sample: int,
) -> RateTest:
    """The candidate's failures beyond live's, on the same ``compared`` requests, against an
    allowed excess rate: worse when ``P(X >= excess | Binomial(compared, allowed_rate))`` is
    below ``alpha``. Below ``min_sample`` requests only strong evidence is a verdict
    (significant and at least ``EARLY_FAILURES`` excess failures); a pass needs the sample."""
    excess = max(0, candidate_failures - live_failures)
    p = binomial_sf(excess, compared, allowed_rate) if compared else 1.0
    figures = (
        f"candidate raised on {candidate_failures} of {compared} requests, live on "
        f"{live_failures}; excess {excess} vs allowed {_pct(allowed_rate)}: p={p:.3g}"
    )
    enough = compared >= min_sample or excess >= EARLY_FAILURES
    if excess and p < alpha and enough:
        return RateTest("worse", p, f"{figures} < {alpha:g}")
    if compared < min_sample:
        return RateTest("inconclusive", p, f"{figures}; {compared}/{min_sample} requests")
    return RateTest("not_worse", p, f"{figures} >= {alpha:g}")


def rates_test(
    after_errors: int,
    after_n: int,
    before_errors: int,
    before_n: int,
    *,
    allowed_rate: float,
    alpha: float,
    min_sample: int,
) -> RateTest:
    """Independent samples (live before and after a change): worse when the rate after is
    above the rate before by more than ``allowed_rate`` *and* Fisher's one-sided test says the
    rise is not chance (p < ``alpha``). Without a baseline of ``min_sample`` requests, the
    rate after is tested alone against ``allowed_rate`` (exact binomial)."""
    rate_after = after_errors / after_n if after_n else 0.0
    if before_n >= min_sample:
        rate_before = before_errors / before_n
        p = fisher_greater(after_errors, after_n, before_errors, before_n)
        figures = (
            f"{after_errors} errors in {after_n} requests ({_pct(rate_after)}) vs "
            f"{before_errors} in {before_n} before ({_pct(rate_before)}); Fisher p={p:.3g}"
        )
        worse = rate_after > rate_before + allowed_rate and p < alpha
    else:
        p = binomial_sf(after_errors, after_n, allowed_rate) if after_n else 1.0
        figures = (
            f"{after_errors} errors in {after_n} requests ({_pct(rate_after)}), no baseline "
            f"({before_n} requests before); vs allowed {_pct(allowed_rate)}: p={p:.3g}"
        )
        worse = after_errors > 0 and p < alpha
    if worse and (after_n >= min_sample or after_errors >= EARLY_FAILURES):
        return RateTest("worse", p, f"{figures} < {alpha:g}")
    if after_n < min_sample:
        return RateTest("inconclusive", p, f"{figures}; {after_n}/{min_sample} requests")
    return RateTest("not_worse", p, figures)


def mean_gain_bound(n: int, gain_sum: float, gain_sq_sum: float, z: float) -> tuple[float, float]:
    """(mean, one-sided upper confidence bound) of paired differences from their sum and sum
    of squares; the bound is ``mean + z * s / sqrt(n)``. Fitness differences are paired (same
    request, same state), so their spread is what tells a real loss from chance."""
    if n <= 0:
        raise ValueError("no paired differences")
    mean = gain_sum / n
    if n == 1:
        return mean, math.inf
    variance = max(0.0, (gain_sq_sum - n * mean * mean) / (n - 1))
    return mean, mean + z * math.sqrt(variance / n)
