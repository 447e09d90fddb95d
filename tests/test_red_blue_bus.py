"""`o-bus evolve red` on a real bus: findings are recorded in the agent's regression set, and
that set (read back as requests) blocks a candidate that reintroduces the bug."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_core import from_json
from support import run_cli, running_platform

from o_bus.agents import quota as quota_module
from o_bus.evolution.adversarial.regression_log import RegressionLog
from o_bus.evolution.adversarial.regressions import regression_requests, regressions_pass
from o_bus.evolution.search.config import SearchConfig
from o_bus.evolution.search.handoff import RegressionReintroduced, deploy_best
from o_bus.evolution.search.lineage.events import ChildCreated

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
