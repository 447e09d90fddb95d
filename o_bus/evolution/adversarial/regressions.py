"""The gate a candidate must pass: its run of every regression case, in the sandbox.

The search engine calls :func:`regression_requests` (re-exported here) to get the cases and
:func:`regressions_pass` before it lets a candidate into its population or hands it on: a
candidate that fails any case has reintroduced a bug that was once found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from o_bus.agent.definition import AgentDefinition
from o_bus.evolution.adversarial.blue import BlueWorker, definition_spec
from o_bus.evolution.adversarial.cases import Failure, RegressionCase
from o_bus.evolution.adversarial.regression_log import regression_requests

__all__ = ["RegressionVerdict", "check_regressions", "regression_requests", "regressions_pass"]


@dataclass(slots=True)
class RegressionVerdict:
    """Which cases a candidate failed, and how; ``passed`` only when none."""

    checked: int = 0
    failed: list[tuple[RegressionCase, Failure]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failed

    def reason(self) -> str:
        if self.passed:
            return f"passed all {self.checked} regression case(s)"
        case, failure = self.failed[0]
        return (
            f"failed {len(self.failed)} of {self.checked} regression case(s); first: case "
            f"{case.case_id[:12]} ({case.source}) -> {failure.kind} {failure.detail} "
            f"at step {failure.step}"
        )


async def check_regressions(
    candidate: AgentDefinition[Any] | str,
    cases: list[RegressionCase],
    *,
    timeout: float = 2.0,
) -> RegressionVerdict:
    """Run every case against ``candidate`` (a definition or its ``module:attr`` /
    ``file.py:attr`` spec) in one sandboxed worker; a hang is a failure."""
    verdict = RegressionVerdict()
    runnable = [case for case in cases if case.steps]
    if not runnable:
        return verdict
    spec = candidate if isinstance(candidate, str) else definition_spec(candidate)
    async with BlueWorker(spec, timeout=timeout) as worker:
        for case in runnable:
            verdict.checked += 1
            result = await worker.run(case.steps, start_state=case.start_state)
            if result.failure is not None:
                verdict.failed.append((case, result.failure))
    return verdict


async def regressions_pass(
    candidate_definition: AgentDefinition[Any] | str, regression_set: list[RegressionCase]
) -> bool:
    """True when ``candidate_definition`` runs every case of ``regression_set`` without a
    failure; see :func:`check_regressions` for which cases and why."""
    return (await check_regressions(candidate_definition, regression_set)).passed
