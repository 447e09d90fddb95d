"""`o-bus evolve red` on a real bus: findings are recorded in the agent's regression set, and
that set (read back as requests) blocks a candidate that reintroduces the bug."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.aio.client import Client
from pydantic_core import from_json
from support import run_cli, running_platform

from o_bus.agent.catalogue import Catalogue, load_definition
from o_bus.agents import quota as quota_module
from o_bus.cli.up import register_definitions
from o_bus.evolution.adversarial.red import RedConfig, red_search
from o_bus.evolution.adversarial.regression_log import RegressionLog
from o_bus.evolution.adversarial.regressions import regression_requests, regressions_pass
from o_bus.evolution.code_store import CodeStore, default_cache_dir
from o_bus.evolution.search.config import SearchConfig
from o_bus.evolution.search.handoff import RegressionReintroduced, deploy_best
from o_bus.evolution.search.lineage.events import ChildCreated
from o_bus.evolution.search.lineage.projection import project
from o_bus.evolution.search.lineage.stream import LineageStream
from o_bus.store.provision import provision

QUOTA = "o_bus.agents.quota:quota"


def quota_source(path: Path | None = None) -> str:
    return (path or Path(quota_module.__file__)).read_text()


def write_fixed_quota(folder: Path) -> Path:
    source = Path(quota_module.__file__).read_text()
    fixed = folder / "quota_fixed.py"
    fixed.write_text(source.replace("> LIMIT + 1:", "> LIMIT:"))
    return fixed


async def test_red_cli_records_its_findings_and_they_block_the_bug(
    nats_url: str, tmp_path: Path
) -> None:
    async with running_platform(
        nats_url, agents=("quota",), extra_definitions=(QUOTA,)
    ) as platform:
        args = ("evolve", "red", "quota", "--budget", "120", "--seed", "3")
        code, out, err = await run_cli(*args, "--agent-def", QUOTA, "--nats", nats_url, "--json")
        assert code == 0, err
        report = from_json(out)
        assert report["evaluations"] <= 120
        assert report["findings"]
        assert len(report["recorded"]) == len(report["findings"])
        kinds = {f["failure"]["detail"] for f in report["findings"]}
        assert "within_limit" in kinds

        code, out, _ = await run_cli(*args, "--agent-def", QUOTA, "--nats", nats_url)
        assert code == 0
        assert "invariant within_limit" in out
        cases = await RegressionLog(platform.js).cases("quota")
        assert len(cases) == len(report["findings"])  # the same findings are stored once

        regression_set = await regression_requests(platform.js, "quota")
        assert [c.case_id for c in regression_set] == [c.case_id for c in cases]
        fixed = write_fixed_quota(tmp_path)
        assert await regressions_pass(f"{fixed}:quota", regression_set)
        assert not await regressions_pass(QUOTA, regression_set)

        # A search's best child is handed on only if it passes the same set.
        buggy = quota_source()
        config = SearchConfig(agent="quota", source=buggy, filename="quota.py", attr="quota")

        def child(source: str) -> ChildCreated:
            return ChildCreated(
                search="s1", child="c1", parents=["root"], operator="ast", island=0,
                generation=1, genome=None, digest="sha256:x", source=source,
            )  # fmt: skip

        with pytest.raises(RegressionReintroduced, match=r"failed \d+ of \d+ regression case"):
            await deploy_best(platform.js, config, "s1", child(buggy), 0.9)
        deployed = await deploy_best(platform.js, config, "s1", child(quota_source(fixed)), 0.9)
        assert deployed.code_version.startswith("sha256:")


async def test_red_cli_refuses_an_unknown_agent(nats_url: str) -> None:
    async with running_platform(nats_url):
        code, _, err = await run_cli("evolve", "red", "nobody", "--nats", nats_url)
    assert code == 2
    assert "nobody" in err


@pytest.mark.timeout(1200)
async def test_red_then_blue_code_mutations_fix_the_planted_bug(nc: Client, nats_url: str) -> None:
    """The README's one command: red finds the off-by-one, and a search with syntax-tree
    operators only, on the shipped traffic and that regression set, finds the fix."""
    js = nc.jetstream()
    await provision(js)
    await register_definitions(js, Catalogue([load_definition(QUOTA)]))
    source = Path(quota_module.__file__)
    command = (
        "evolve", "search", "quota", "--nats", nats_url, "--source", str(source),
        "--dataset", str(source.parent / "quota_traffic.jsonl"), "--operators", "ast",
        "--red", "200", "--seed", "1", "--islands", "1", "--population", "6",
        "--generations", "6", "--workers", "2", "--json",
    )  # fmt: skip
    # A hang guard only: evaluations use idle CPU, which a busy machine has little of.
    code, out, err = await run_cli(*command, timeout=900)
    assert code == 0, err
    assert "invariant within_limit" in err  # red's finding, now in the regression set
    result = from_json(out)
    assert result["baseline_fitness"] == 0.0  # the bug fails the regression case
    assert result["best_fitness"] == pytest.approx(0.775)  # every legal reservation served
    state = project(await LineageStream(js, "quota").read(result["search_id"]))
    best = state.children[result["best_child"]]
    assert best.operator == "ast"
    assert "LIMIT + 1" not in best.source.split("def reserve", 1)[1].split("@quota", 1)[0]
    assert state.evaluations[result["best_child"]].figures["regressions_failed"] == 0
    # The winner, deployed, passes every case red found and red finds nothing new in it.
    version = await CodeStore(js, default_cache_dir()).get("quota", result["best_version"])
    fixed = await CodeStore(js, default_cache_dir()).fetch(version.digest)
    assert await regressions_pass(f"{fixed}:quota", await regression_requests(js, "quota"))
    report = await red_search(load_definition(f"{fixed}:quota"), RedConfig(budget=200, seed=1))
    assert report.findings == []
