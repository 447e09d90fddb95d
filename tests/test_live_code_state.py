"""Whatever shows or rebuilds an agent's state uses the code version its route names as
live, not the installed definition: `o-bus state` after a promotion, and `o-bus fork` (the
fork runs the code its source runs). Real nats-server, the agent host, the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic_core import from_json
from support import cli_result, eventually, running_platform

from o_bus.evolution.deploy import deploy
from o_bus.evolution.routes import RouteStore
from o_bus.store import layout

pytestmark = pytest.mark.slow

ACCOUNT = Path(__file__).parent / "agents_for_tests" / "account.py"
SPEC = f"{ACCOUNT}:account"


def counting_version() -> str:
    """The account with a state that also counts withdrawals: a fold the installed code
    does not have (a new state schema without a migration: it folds the whole history)."""
    source = ACCOUNT.read_text().replace(
        'version="1.0.0"', 'version="2.0.0", state_schema_version=2'
    )
    source = source.replace(
        "class Account(State):\n    balance: int = 0\n",
        "class Account(State):\n    balance: int = 0\n    withdrawals: int = 0\n",
    )
    old = 'update={"balance": state.balance - event.amount}'
    assert old in source
    return source.replace(
        old,
        'update={"balance": state.balance - event.amount, "withdrawals": state.withdrawals + 1}',
    )


async def cli(url: str, *args: str) -> dict[str, Any]:
    found: dict[str, Any] = await cli_result(*args, "--nats", url)
    return found


async def test_state_and_fork_use_the_code_the_route_names(nats_url: str, tmp_path: Path) -> None:
    async with running_platform(
        nats_url, agents=("account",), extra_definitions=[SPEC]
    ) as platform:
        for command, amount in (("deposit", 50), ("withdraw", 20), ("withdraw", 5)):
            assert (await platform.send("account", command, {"amount": amount}))["ok"]
        installed = await cli(nats_url, "state", "account", "--agent-def", SPEC)
        assert installed["code_version"] == "1.0.0"
        assert installed["state"] == {"balance": 25}
        path = tmp_path / "account_v2.py"
        path.write_text(counting_version())
        version = await deploy(platform.js, "account", path, by="test")
        await RouteStore(platform.js).update(
            "account",
            lambda r: r.model_copy(update={"live": version.digest}),
            by="test",
            reason="promote",
        )

        async def switched() -> bool:
            msg = await platform.nc.request(layout.control_subject("account", "status"), b"")
            return bool(from_json(msg.data)["code_version"] == "2.0.0")

        await eventually(switched, what="live to run 2.0.0")
        shown = await cli(nats_url, "state", "account", "--agent-def", SPEC)
        assert shown["code_version"] == "2.0.0"
        assert shown["live"] == version.digest
        assert shown["state"]["withdrawals"] == 2
        at_two = await cli(nats_url, "state", "account", "--at", "2", "--agent-def", SPEC)
        assert at_two["state"] == {"balance": 30, "withdrawals": 1}
        forked = await cli(nats_url, "fork", "account", "--at", "3", "--into", "account2")
        assert forked["seq"] == 3
        route, _ = await RouteStore(platform.js).get("account2")
        assert route.live == version.digest
        copy = await cli(nats_url, "state", "account2", "--agent-def", SPEC)
        assert copy["code_version"] == "2.0.0"
        assert copy["state"] == {"balance": 25, "withdrawals": 2}
