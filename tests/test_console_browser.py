"""The web console in a real headless Chromium, against one `o-bus up` shared by the module:
pages load, the timeline and the live figures update when requests arrive, time travel shows
the state at a sequence, an evolution's figures and a search's lineage render, and actions
work for the operator token and are refused for the viewer token. Screenshots of every view
are saved (the directory is printed at the end of the run)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from platform_process import UpProcess
from support import WAIT_SECONDS

from o_bus import client
from o_bus.common.access_tokens import token_file
from o_bus.common.connect import connect
from o_bus.console.server import CONSOLE_URL_FILE
from o_bus.evolution.evolution_store import EvolutionStore
from o_bus.evolution.plan import Evolution, EvolutionDecision
from o_bus.evolution.records import DiffRecord
from o_bus.evolution.search.lineage.events import (
    ChildCreated,
    Evaluated,
    GenerationClosed,
    SearchStarted,
)
from o_bus.evolution.search.lineage.stream import LineageStream
from o_bus.replay.system_history import read_system_history
from o_bus.store import layout

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium)"
)
TIMEOUT_MS = WAIT_SECONDS * 1000


class Console:
    """The running platform, its console's address and tokens, and a browser."""

    def __init__(self, up: UpProcess, browser: Any, shots: Path) -> None:
        self.up, self.browser, self.shots = up, browser, shots
        self.address = (up.data_dir / CONSOLE_URL_FILE).read_text().strip()
        self.tokens = {
            role: token_file(up.data_dir, role).read_text().strip()
            for role in ("operator", "viewer")
        }

    def page(self, role: str = "operator") -> Any:
        """A new browser page signed in with ``role``'s token (through the ?token= link)."""
        context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.goto(f"{self.address}?token={self.tokens[role]}")
        page.wait_for_selector(f"text=signed in as {role}")
        return page

    def shot(self, page: Any, name: str) -> None:
        page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def run(self, coro: Any) -> Any:
        """Run bus work on its own thread: Playwright's sync API holds this thread's loop."""
        return self.start(coro).result(timeout=WAIT_SECONDS)

    def start(self, coro: Any) -> Future[Any]:
        """Start bus work on its own thread; its result later."""
        pool = ThreadPoolExecutor(1)
        try:
            return pool.submit(asyncio.run, coro)
        finally:
            pool.shutdown(wait=False)


async def _send(
    url: str, agent: str, command: str, data: Any, count: int = 1, traceparent: str | None = None
) -> list[Any]:
    async with connect(url, "console-test") as (nc, _):
        return [
            await client.send(
                nc, agent, command, data, timeout=WAIT_SECONDS, traceparent=traceparent
            )
            for _ in range(count)
        ]


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Console]:
    from playwright.sync_api import sync_playwright

    # Kept where pytest's pruning of old temp dirs does not reach; O_BUS_ARTIFACTS moves it.
    artifacts = os.environ.get("O_BUS_ARTIFACTS") or Path(tempfile.gettempdir()) / "o-bus-artifacts"
    shots = Path(artifacts) / "console-screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    up = UpProcess(tmp_path_factory.mktemp("console") / "data")
    up.start()
    try:
        up.wait_up()
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                yield Console(up, browser, shots)
            finally:
                browser.close()
    finally:
        up.close()
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"console screenshots: {shots}")


def test_agents_page_lists_the_agents_with_their_processes(console: Console) -> None:
    page = console.page()
    row = page.wait_for_selector("tr[data-agent=counter]")
    page.wait_for_selector("tr[data-agent=counter] >> text=active pid")
    assert "up" in row.inner_text()
    console.shot(page, "agents")


def test_timeline_follows_requests_as_they_arrive(console: Console) -> None:
    console.run(_send(console.up.url, "counter", "increment", {"by": 1}))
    [refused] = console.run(_send(console.up.url, "counter", "increment", {"by": "x"}))
    assert refused["ok"] is False
    page = console.page()
    page.goto(f"{console.address}#/agent/counter/timeline")
    page.wait_for_selector("#timeline tr")
    before = page.eval_on_selector_all("#timeline tr", "rows => rows.length")
    page.wait_for_selector("text=following live: 0 new")
    replies = console.run(_send(console.up.url, "counter", "increment", {"by": 3}, count=3))
    last = replies[-1]["seq"]
    page.wait_for_selector(f"#timeline tr[data-seq='{last}']")
    page.wait_for_selector("text=following live: 3 new")
    # A request that carried a trace context: its event links to the trace id.
    trace = "0af7651916cd43dd8448eb211c80319c"
    [traced] = console.run(
        _send(
            console.up.url,
            "counter",
            "increment",
            {"by": 1},
            traceparent=f"00-{trace}-b7ad6b7169203331-01",
        )
    )
    page.wait_for_selector(f"#timeline tr[data-seq='{traced['seq']}'] .trace[title='{trace}']")
    page.wait_for_selector("text=following live: 4 new")
    assert page.eval_on_selector_all("#timeline tr", "rows => rows.length") == before + 4
    # The refused request wrote no event: it shows among the outcomes, with the reason.
    outcome = page.wait_for_selector("#outcomes tr[data-wal]")
    assert "rejected" in outcome.inner_text()
    console.shot(page, "timeline")


def test_time_travel_shows_the_state_at_a_sequence_and_the_diff(console: Console) -> None:
    first, second = console.run(_send(console.up.url, "counter", "increment", {"by": 7}, 2))
    seq = first["seq"]
    page = console.page()
    page.goto(f"{console.address}#/agent/counter/travel")
    page.fill("#state-form input[name=at]", str(seq))
    page.click("#state-form button")
    page.wait_for_selector(f"text=State after event {seq}")
    at_first = page.inner_text("#state-json")
    page.fill("#diff-form input[name=a]", str(seq))
    page.fill("#diff-form input[name=b]", str(second["seq"]))
    page.click("#diff-form button")
    page.wait_for_selector("#diff-table")
    cells = page.eval_on_selector_all(
        "#diff-table tr.differ", "rows => rows.map(r => [...r.cells].map(c => c.innerText))"
    )
    differing = {path: (int(a), int(b)) for path, a, b in cells}
    assert set(differing) == {"increments", "value"}
    assert differing["value"][1] - differing["value"][0] == 7
    assert differing["increments"][1] - differing["increments"][0] == 1
    assert f'"value": {differing["value"][0]}' in at_first
    console.shot(page, "time-travel")
    page.fill("#state-form input[name=at]", str(second["seq"] + 100))
    page.click("#state-form button")
    page.wait_for_selector(f"text=there is no state at {second['seq'] + 100}")


def test_live_figures_show_the_request_rate(console: Console) -> None:
    page = console.page()
    page.goto(f"{console.address}#/figures")
    page.wait_for_selector("#figures .panel[data-agent=echo]")
    console.run(_send(console.up.url, "echo", "say", {"text": "hi"}, count=20))
    page.wait_for_function(
        "() => [...document.querySelectorAll('#figures .panel[data-agent=echo]')]"
        ".some(e => parseFloat(e.dataset.peak) > 0)"
    )
    assert page.locator("#figures .panel[data-agent=echo] svg path").count() >= 1
    console.shot(page, "figures")


async def _record_evolution_and_search(url: str) -> None:
    async with connect(url, "console-test") as (_, js):
        decisions = tuple(
            EvolutionDecision(
                at=f"2026-01-01T00:00:0{i}Z",
                stage="shadow",
                action="wait" if i < 3 else "rollback",
                reason="too few requests compared" if i < 3 else "diff rate 0.4 above 0",
                metrics={"diff_rate": 0.1 * i, "compared": 10 * i},
            )
            for i in range(4)
        )
        store = EvolutionStore(js)
        for decision in decisions:  # as the arbiter records them
            await store.record("echo", "sha256:" + "a" * 64, decision)
        await store.request(
            Evolution(
                agent="echo",
                version="sha256:" + "a" * 64,
                code_version="2.0.0",
                status="rolled_back",
                decisions=decisions,
                requested_by="tester",
            )
        )
        diff = DiffRecord(
            agent="echo",
            version="sha256:" + "a" * 64,
            code_version="2.0.0",
            live_code_version="1.0.0",
            wal_seq=5,
            request_id="r-5",
            command="say",
            live={"ok": True, "events": [{"text": "hi"}]},
            candidate={"ok": True, "events": [{"text": "HI"}]},
            fields={"events.0.text": {"live": "hi", "candidate": "HI"}},
            ignored=[],
        )
        await js.publish(layout.diff_subject("echo"), diff.model_dump_json().encode())
        lineage = LineageStream(js, "echo")
        await lineage.ensure()
        search = "s1"
        events: list[Any] = [
            SearchStarted(
                search=search,
                agent="echo",
                config={},
                dataset="d",
                dataset_origin="test",
                descriptors=[{"name": "size", "low": 0, "high": 10, "bins": 3, "log": False}],
                root="c0",
            )
        ]
        for child, parents in (("c0", []), ("c1", ["c0"]), ("c2", ["c0"]), ("c3", ["c1"])):
            events.append(
                ChildCreated(
                    search=search,
                    child=child,
                    parents=parents,
                    operator="seed" if not parents else "genome",
                    island=0,
                    generation=len(parents),
                    genome=None,
                    digest=child,
                    source="",
                )
            )
            events.append(
                Evaluated(
                    search=search,
                    child=child,
                    outcome="ok",
                    fitness=0.5 + 0.1 * int(child[1]),
                    descriptors={"size": 3.0 * int(child[1])},
                    dataset="d",
                )
            )
        events.append(GenerationClosed(search=search, generation=0, populations=[["c3"]]))
        for event in events:
            await lineage.append(event)


def test_evolution_view_draws_figures_decisions_and_the_lineage(console: Console) -> None:
    console.run(_record_evolution_and_search(console.up.url))
    page = console.page()
    page.goto(f"{console.address}#/agent/echo/evolution")
    page.wait_for_selector("#evolution-stage >> text=rolled_back")
    page.wait_for_selector("text=diff rate 0.4 above 0")
    # The shadow diff: the differing field, and both outputs side by side.
    differing = page.wait_for_selector(".diff tr.differ")
    assert differing.inner_text().split("\t") == ["events.0.text", '"hi"', '"HI"']
    assert page.locator(".diff .side pre").count() == 2
    run = page.wait_for_selector("tr[data-run]")
    assert run.inner_text().split("\t")[2:5] == ["4", "shadow", "rollback"]
    assert page.locator("svg[data-title='diff rate'] path").count() == 1
    tree = page.wait_for_selector("#lineage-tree")
    assert tree is not None
    # c3 is drawn under c1, which is under the root c0; c3 has the best fitness.
    nested = page.locator("li[data-child=c0] li[data-child=c1] li[data-child=c3]")
    assert nested.count() == 1
    assert "best" in (nested.get_attribute("class") or "")
    assert page.locator("#archive-grid td.cell:not(:empty)").count() >= 2
    console.shot(page, "evolution-lineage")
    # Nothing to roll back to: the run is over and no earlier live code was recorded.
    page.click("button[data-action=rollback]")
    page.wait_for_selector("text=has no earlier live code to roll back to")


async def _operator_records(url: str, agent: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async with connect(url, "console-test") as (_, js):
        await read_system_history(js, agent, found.append)
    return [r for r in found if r["kind"] == "operator"]


def test_actions_work_for_the_operator_and_are_refused_for_the_viewer(console: Console) -> None:
    viewer = console.page("viewer")
    viewer.fill("input[name=filter]", "counter")
    viewer.click("button[data-action=restart]")
    viewer.wait_for_selector("text=Restart refused")
    console.shot(viewer, "viewer-refused")
    assert console.run(_operator_records(console.up.url, "counter")) == []

    operator = console.page()
    operator.fill("input[name=filter]", "count*")
    operator.locator("form:has(button[data-action=restart]) input[name=by]").fill("ada")
    operator.locator("form:has(button[data-action=restart]) input[name=reason]").fill("stuck")
    operator.click("button[data-action=restart]")
    said = operator.wait_for_selector("form:has(button[data-action=restart]) .message:not(:empty)")
    assert said.inner_text() == "Restart: done"
    records = console.run(_operator_records(console.up.url, "counter"))
    assert [(r["type"], r["reason"]) for r in records] == [("restart", "stuck")]
    assert "operator ada" in records[0]["by"]

    # A request for a command the agent does not have is a dead letter; re-driven, the
    # agent answers it again (with the same rejection), and the re-drive is recorded.
    console.run(_send(console.up.url, "echo", "nosuch", {}))
    operator.goto(f"{console.address}#/dead-letters")
    row = operator.wait_for_selector("tr:has-text('nosuch')")
    assert "unknown_command" in row.inner_text()
    row.query_selector("input[type=checkbox]").check()
    operator.click("button[data-action=redrive]")
    operator.wait_for_selector("text=Re-drive selected: done")
    console.shot(operator, "dead-letters")
    assert [r["type"] for r in console.run(_operator_records(console.up.url, "echo"))] == [
        "redrive"
    ]


def test_a_paused_agent_keeps_requests_until_resumed(console: Console) -> None:
    page = console.page()
    page.fill("input[name=filter]", "memory")
    page.click("button[data-action=pause]")
    page.wait_for_selector("text=Pause: done")
    page.wait_for_selector("tr[data-agent=memory] .lifecycle >> text=suspended")
    console.shot(page, "paused")
    # Accepted into the WAL, not decided while paused: the reply comes after the resume.
    pending = console.start(_send(console.up.url, "memory", "remember", {"text": "later"}))
    with pytest.raises(TimeoutError):
        pending.result(timeout=1.0)
    page.fill("input[name=filter]", "memory")
    page.click("button[data-action=resume]")
    page.wait_for_selector("text=Resume: done")
    [reply] = pending.result(timeout=WAIT_SECONDS)
    assert reply["ok"] is True
    records = console.run(_operator_records(console.up.url, "memory"))
    assert [r["type"] for r in records] == ["pause", "resume"]


def test_the_cli_pauses_and_resumes_through_the_same_recorded_actions(console: Console) -> None:
    env = {**os.environ, "O_BUS_NATS_URL": console.up.url}
    for action in ("pause", "resume"):
        done = subprocess.run(
            [sys.executable, "-m", "o_bus.cli.main", action, "echo", "--reason", "cli", "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=WAIT_SECONDS,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["lifecycle"] == (
            "suspended" if action == "pause" else "running"
        )
    records = console.run(_operator_records(console.up.url, "echo"))
    assert [(r["type"], r["reason"]) for r in records][-2:] == [
        ("pause", "cli"),
        ("resume", "cli"),
    ]
