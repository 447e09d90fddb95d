"""Handing the best version over: stored as a deployed code version, ready for the arbiter.

The child must first pass the agent's regression set (every case red or negative feedback
once found, run in the sandbox): a child that reintroduces a known bug is never handed on.
It then goes through ``o-bus deploy`` itself (validated in the sandbox, stored by content),
so ``o-bus evolve start AGENT VERSION`` can take it through shadow, canary and promotion.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from nats.js import JetStreamContext

from o_bus.errors import OBusError
from o_bus.evolution.adversarial.regressions import check_regressions, regression_requests
from o_bus.evolution.deploy import deploy
from o_bus.evolution.search.config import SearchConfig
from o_bus.evolution.search.lineage.events import BestDeployed, ChildCreated

__all__ = ["RegressionReintroduced", "deploy_best"]


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
