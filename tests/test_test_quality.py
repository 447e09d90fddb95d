"""The tests wait for conditions, not for time, and use public API only.

A fixed pause makes a test slow where the machine is fast and flaky where it is loaded; waiting
for the condition (``support.eventually``, which names what it waits for) is both faster and
sure. A test that reads a private attribute breaks on every refactoring and tests what users
cannot see. These checks keep both out of the suite.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent

# (file, enclosing function) -> why a pause of fixed length is right there.
FIXED_PAUSES = {
    ("support.py", "eventually"): "the polling interval of the wait-for-a-condition helper",
    ("processes.py", "close"): "teardown kills again until the group is gone, to a deadline",
    ("processes.py", "send_until_ok"): "a client's pause before re-sending",
    ("test_chaos.py", "until_ok"): "a client's pause before re-sending after a transient error",
    ("test_crash_recovery.py", "_send_until_ok"): "a client's pause before re-sending",
    ("test_ps.py", "loop"): "heartbeats at the agents' own cadence",
    ("test_evolution_processes.py", "loop"): "the pace of background traffic",
    ("test_evolution_account.py", "loop"): (
        "the pace of background traffic, and its pause while the platform restarts"
    ),
    ("test_tools_policy.py", "stuck"): "a tool that never finishes, for the timeout to stop",
    ("test_memory_queries.py", "test_two_serving_processes_never_both_answer"): (
        "an absence (no second answer) can only be watched for a while"
    ),
    ("test_stopping.py", "test_a_process_stops_once_the_bus_has_been_unreachable_long_enough"): (
        "an absence (no stop while connected) can only be watched for a while"
    ),
    ("load.py", "until_ok"): "a client's pause before re-sending after a transient error",
    ("platform_process.py", "wait_up"): "reads a child's log for its ready line (no event loop)",
    ("platform_process.py", "_until_gone"): "teardown kills again until the platform is gone",
    ("test_placement.py", "close"): "teardown kills again until the hosts are gone",
    (
        "test_cluster.py",
        "test_a_3_node_cluster_under_load_loses_nothing_and_applies_nothing_twice",
    ): ("the leader's 5 s pause is the fault itself"),
    ("test_platform_parts.py", "_check_for"): "drives the service set at the pace `up` does",
    ("test_platform_parts.py", "test_a_service_that_dies_is_restarted_and_stop_ends_it"): (
        "drives the service set at the pace `up` does"
    ),
    ("test_platform_up.py", "_gone"): "waits for processes to exit, to a deadline (no event loop)",
    ("security_support.py", "refused"): (
        "one turn of the loop, for the error callback of a refusal read before the flush's PONG"
    ),
    ("test_lease.py", "test_a_held_lease_outlives_a_store_outage_shorter_than_its_grace"): (
        "the outage itself must last longer than the lease's TTL"
    ),
    ("test_search_operators.py", "test_hostile_children_do_not_harm_live_traffic"): (
        "the pace of background traffic"
    ),
}
# Underscored names that are public API of the standard library.
PUBLIC_UNDERSCORED = {"_exit", "_asdict", "_replace", "_fields", "_make"}


def _test_files() -> Iterator[Path]:
    for path in sorted(TESTS.rglob("*.py")):
        if path.parent.name != "agents_for_tests":  # agents, not tests
            yield path


def _walk_with_function(node: ast.AST, function: str = "<module>") -> Iterator[tuple[ast.AST, str]]:
    for child in ast.iter_child_nodes(node):
        name = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
        yield child, name
        yield from _walk_with_function(child, name)


def _is_sleep(call: ast.Call) -> bool:
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "sleep"
        and isinstance(func.value, ast.Name)
        and func.value.id in ("asyncio", "time")
        and bool(call.args)
    )


def _is_number(node: ast.expr) -> bool:
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    return isinstance(node, ast.Constant) and isinstance(node.value, int | float)


def fixed_pauses(source: str, filename: str) -> list[tuple[str, int]]:
    """(function, line) of each ``asyncio.sleep``/``time.sleep`` of a literal length."""
    found = []
    for node, function in _walk_with_function(ast.parse(source, filename)):
        if isinstance(node, ast.Call) and _is_sleep(node) and _is_number(node.args[0]):
            found.append((function, node.lineno))
    return found


def private_reads(source: str, filename: str) -> list[tuple[str, int]]:
    """(expression, line) of each ``obj._name`` where ``obj`` is not ``self`` or ``cls``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__") or name in PUBLIC_UNDERSCORED:
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        found.append((ast.unparse(node), node.lineno))
    return found


def test_the_checks_see_what_they_look_for() -> None:
    source = (
        "async def t(runner):\n"
        "    await asyncio.sleep(0.2)\n"
        "    time.sleep(-1)\n"
        "    await asyncio.sleep(pause)\n"
        "    runner._group.append(self._x)\n"
        "    os._exit(0)\n"
    )
    assert fixed_pauses(source, "x.py") == [("t", 2), ("t", 3)]
    assert private_reads(source, "x.py") == [("runner._group", 5)]


def test_tests_wait_for_conditions_not_fixed_pauses() -> None:
    found = []
    for path in _test_files():
        for function, line in fixed_pauses(path.read_text(), str(path)):
            if (path.name, function) not in FIXED_PAUSES:
                found.append(f"{path.name}:{line} in {function}()")
    assert not found, (
        "fixed pauses: wait for the condition with support.eventually, or add the place to "
        "FIXED_PAUSES with the reason:\n" + "\n".join(found)
    )


def test_tests_use_no_private_attributes() -> None:
    found = []
    for path in _test_files():
        if path.name == Path(__file__).name:
            continue  # its own sample source
        for expression, line in private_reads(path.read_text(), str(path)):
            found.append(f"{path.name}:{line}: {expression}")
    assert not found, "private attributes read by tests:\n" + "\n".join(found)
