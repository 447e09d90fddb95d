"""Red finds the planted bug of the ``quota`` agent; the regression set blocks a candidate that
reintroduces it. Blue runs in real sandboxed worker processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from o_bus.agents import quota as quota_module
from o_bus.agents.quota import LIMIT, QuotaState, quota
from o_bus.errors import ConfigurationError
from o_bus.evolution.adversarial.blue import BlueWorker, definition_spec
from o_bus.evolution.adversarial.cases import RegressionCase, Step
from o_bus.evolution.adversarial.play import play
from o_bus.evolution.adversarial.red import RedConfig, red_search
from o_bus.evolution.adversarial.regressions import check_regressions, regressions_pass

STUCK = str(Path(__file__).parent / "agents_for_tests" / "stuck.py") + ":stuck"
BUG = "if state.used + cmd.amount > LIMIT + 1:"


def fixed_quota(tmp_path: Path, *, buggy: bool = False) -> str:
    """A candidate version of quota as a file: the fix, or the bug reintroduced."""
    source = Path(quota_module.__file__).read_text()
    assert BUG in source
    if not buggy:
        source = source.replace(BUG, "if state.used + cmd.amount > LIMIT:")
    path = tmp_path / ("quota_bug.py" if buggy else "quota_fixed.py")
    path.write_text(source)
    return f"{path}:quota"


def test_invariants_name_the_broken_property() -> None:
    assert quota.violated_invariants(QuotaState(used=LIMIT)) == []
    assert quota.violated_invariants(QuotaState(used=LIMIT + 1)) == ["within_limit"]


def test_play_reports_the_invariant_and_the_step() -> None:
    steps = [
        Step(command="reserve", data={"amount": LIMIT}),
        Step(command="reserve", data={"amount": 1}),
    ]
    result = play(quota, steps)
    assert result.failure is not None
    assert (result.failure.kind, result.failure.detail, result.failure.step) == (
        "invariant",
        "within_limit",
        1,
    )
    rejected = play(quota, [Step(command="reserve", data={"amount": 0})])
    assert rejected.failure is None
    assert rejected.answers == ["rejected:invalid_payload"]


async def test_red_finds_the_planted_off_by_one() -> None:
    report = await red_search(quota, RedConfig(budget=150, seed=3, timeout=10.0))
    assert report.evaluations <= 150
    invariant_findings = [c for c in report.findings if c.failure and c.failure.kind == "invariant"]
    assert invariant_findings, report.as_dict()
    case = invariant_findings[0]
    assert case.failure is not None
    assert case.failure.detail == "within_limit"
    replayed = play(quota, case.steps)
    used = sum(
        step.data["amount"] * (1 if step.command == "reserve" else -1)
        for step, answer in zip(case.steps, replayed.answers, strict=True)
        if not answer.startswith("rejected")
    )
    assert used == LIMIT + 1  # exactly one unit over: the boundary the bug lets through
    again = await red_search(quota, RedConfig(budget=150, seed=3, timeout=10.0))
    assert [c.case_id for c in again.findings] == [c.case_id for c in report.findings]


async def test_regression_set_blocks_a_candidate_that_reintroduces_the_bug(
    tmp_path: Path,
) -> None:
    report = await red_search(quota, RedConfig(budget=150, seed=3, timeout=10.0))
    cases = report.findings
    assert cases
    assert await regressions_pass(fixed_quota(tmp_path), cases)
    verdict = await check_regressions(fixed_quota(tmp_path, buggy=True), cases)
    assert not verdict.passed
    assert "within_limit" in verdict.reason()
    assert not await regressions_pass(quota, cases)


async def test_a_hanging_or_raising_candidate_is_a_failure_never_a_pass() -> None:
    async with BlueWorker(STUCK, timeout=1.0) as worker:
        hung = await worker.run([Step(command="spin", data={"forever": True})])
        assert hung.failure is not None
        assert hung.failure.kind == "timeout"
        assert "SIGKILL" in hung.failure.message
        raised = await worker.run([Step(command="boom")])  # a fresh process after the kill
        assert raised.failure is not None
        assert (raised.failure.kind, raised.failure.detail) == ("exception", "ZeroDivisionError")
        assert worker.restarts == 1
    cases = [RegressionCase(agent="stuck", source="red", steps=[Step(command="spin")])]
    assert await regressions_pass(STUCK, cases)


async def test_red_reports_exceptions_of_the_agent_code() -> None:
    from o_bus.agent.catalogue import load_definition

    report = await red_search(load_definition(STUCK), RedConfig(budget=40, seed=1, timeout=1.0))
    kinds = {c.failure.signature for c in report.findings if c.failure}
    assert "exception:ZeroDivisionError" in kinds
    assert "timeout:timeout" in kinds


def test_definition_spec_names_a_loadable_definition() -> None:
    assert definition_spec(quota) == "o_bus.agents.quota:quota"
    from o_bus.agent.definition import AgentDefinition

    orphan: AgentDefinition[QuotaState] = AgentDefinition("x", state=QuotaState, version="1")
    with pytest.raises(ConfigurationError, match="no commands"):
        definition_spec(orphan)


async def test_red_reports_where_two_versions_answer_differently(tmp_path: Path) -> None:
    from o_bus.agent.catalogue import load_definition

    fixed = load_definition(fixed_quota(tmp_path))
    report = await red_search(fixed, RedConfig(budget=150, seed=3, timeout=10.0), reference=quota)
    divergences = [c for c in report.findings if c.failure and c.failure.kind == "divergence"]
    assert divergences, report.as_dict()
    failure = divergences[0].failure
    assert failure is not None
    assert failure.message.startswith("rejected:command_rejected")  # the fixed one refuses


async def test_red_reports_slow_requests_when_given_a_latency_limit() -> None:
    from o_bus.agent.catalogue import load_definition

    config = RedConfig(budget=30, seed=1, latency_ms=0.0, timeout=1.0)
    report = await red_search(load_definition(STUCK), config)
    assert any(c.failure and c.failure.kind == "latency" for c in report.findings)
