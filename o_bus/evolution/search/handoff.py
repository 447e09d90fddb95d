"""Handing the best version over: stored as a deployed code version, ready for the arbiter.

The child must first pass the agent's regression set (every case red or negative feedback
once found, run in the sandbox): a child that reintroduces a known bug is never handed on.
It then goes through ``o-bus deploy`` itself (validated in the sandbox, stored by content),
so ``o-bus evolve start AGENT VERSION`` can take it through shadow, canary and promotion.
A triggered search then hands it to the arbiter itself (:func:`hand_off`) when its offline
fitness beats the starting version's by the agent's margin (``HandOff``): the same request as
``o-bus evolve start``, with the plan the agent declares. The arbiter decides from there.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from nats.js import JetStreamContext

from o_bus.agent.improvement import HandOff
from o_bus.errors import OBusError
from o_bus.evolution.adversarial.regressions import check_regressions, regression_requests
from o_bus.evolution.code_store import CodeStore, default_cache_dir
from o_bus.evolution.deploy import deploy
from o_bus.evolution.evolution_store import EvolutionStore
from o_bus.evolution.plan import Evolution, EvolutionPlan
from o_bus.evolution.search.config import SearchConfig
from o_bus.evolution.search.lineage.events import BestDeployed, ChildCreated, HandedOff
from o_bus.store.event_records import utc_now

__all__ = ["RegressionReintroduced", "deploy_best", "hand_off"]


class RegressionReintroduced(OBusError):
    """The best child fails a case of the agent's regression set; it is not deployed."""


async def deploy_best(
    js: JetStreamContext, config: SearchConfig, search: str, child: ChildCreated, fitness: float
) -> BestDeployed:
    with tempfile.TemporaryDirectory(prefix="o-bus-best-") as folder:
        path = Path(folder) / config.filename
        path.write_text(child.source)
        cases = await regression_requests(js, config.agent)
        if cases:
            verdict = await check_regressions(f"{path}:{config.attr or ''}", cases)
            if not verdict.passed:
                raise RegressionReintroduced(f"child {child.child} {verdict.reason()}")
        version = await deploy(
            js,
            config.agent,
            path,
            by=config.by,
            note=f"search {search}, child {child.child}, offline fitness {fitness:.6g}",
            attr=config.attr,
        )
    return BestDeployed(
        search=search, child=child.child, code_version=version.digest, fitness=fitness
    )


async def hand_off(
    js: JetStreamContext,
    agent: str,
    search: str,
    deployed: BestDeployed,
    baseline: float | None,
    rules: HandOff,
    by: str,
) -> HandedOff:
    """Request the evolution of ``deployed`` when it beats ``baseline`` by ``rules.margin``;
    the record says whether it was handed over and why."""

    def record(handed: bool, reason: str) -> HandedOff:
        return HandedOff(
            search=search,
            code_version=deployed.code_version,
            handed=handed,
            reason=reason,
            baseline_fitness=baseline,
            best_fitness=deployed.fitness,
            margin=rules.margin,
        )

    if not rules.enabled:
        return record(False, "the agent hands no winner over by itself")
    if baseline is None:
        return record(False, "the starting version has no offline fitness to beat")
    gain = deployed.fitness - baseline
    if gain < rules.margin:
        return record(False, f"gain {gain:.4g} over {baseline:.4g} is below the margin")
    version = await CodeStore(js, default_cache_dir()).get(agent, deployed.code_version)
    plan = EvolutionPlan(
        canary_steps=rules.canary_steps,
        min_requests=rules.min_requests,
        min_canary_requests=rules.min_canary_requests,
        min_stage_seconds=rules.min_stage_seconds,
        bake_seconds=rules.bake_seconds,
        min_fitness_gain=rules.min_fitness_gain,
    )
    evolution = Evolution(
        agent=agent,
        version=version.digest,
        code_version=version.code_version,
        plan=plan,
        requested_by=by,
        requested_at=utc_now(),
    )
    try:
        await EvolutionStore(js).request(evolution)
    except OBusError as err:
        return record(False, f"the arbiter did not take it: {err}"[:500])
    return record(
        True, f"offline fitness {deployed.fitness:.4g} beats {baseline:.4g} by {gain:.4g}"
    )
