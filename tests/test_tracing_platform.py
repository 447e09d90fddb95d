"""One trace across the platform: a request sent with a ``traceparent`` to `o-bus up --otlp`
(real nats-server, splitter, supervisor and agent processes) shows up in an OTLP collector as
one trace: the splitter's span under the caller's, the agent's decision under the splitter's,
the tool call under the decision, and the tool result's way back in under the tool call."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from platform_process import UpProcess
from processes import send_until_ok
from support import eventually

from o_bus.tracing.names import AGENT_COMMIT, AGENT_DECIDE, SPLITTER_ACCEPT, TOOL_CALL
from o_bus.tracing.settings import ENDPOINT_ENV, EXPORTER_ENV
from o_bus_bench.otlp_collector import OtlpCollector, ReceivedSpan

pytestmark = pytest.mark.slow

FETCHER = f"{Path(__file__).parent / 'agents_for_tests' / 'fetcher.py'}:fetcher"
PAGE = "/tool/hello"


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    with OtlpCollector(pages={PAGE: b'{"hello": "traced"}'}) as running:
        yield running


@pytest.fixture
def traced_up(
    tmp_path: Path, collector: OtlpCollector, monkeypatch: pytest.MonkeyPatch
) -> Iterator[UpProcess]:
    for name in (ENDPOINT_ENV, EXPORTER_ENV):
        monkeypatch.delenv(name, raising=False)  # --otlp alone turns tracing on
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export within 0.1 s, not 5 s
    platform = UpProcess(
        tmp_path / "data", "--splitters", "1", "--agent", FETCHER, "--otlp", collector.url
    )
    try:
        yield platform
    finally:
        platform.close()


def _only(spans: list[ReceivedSpan], name: str, parent: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name and s.parent_id == parent]
    assert len(found) == 1, (name, parent, spans)
    return found[0]


async def test_a_request_is_one_trace_across_splitter_agent_and_tool_call(
    traced_up: UpProcess, collector: OtlpCollector
) -> None:
    traced_up.start()
    url = await asyncio.to_thread(traced_up.wait_up)
    trace_id, caller = os.urandom(16).hex(), os.urandom(8).hex()
    nc = Client()
    await nc.connect(url, connect_timeout=5, **traced_up.connect_kwargs("client"))
    try:
        traceparent = f"00-{trace_id}-{caller}-01"
        data = {"url": collector.url + PAGE}
        await send_until_ok(nc, "fetcher", "fetch", data, "t1", traceparent=traceparent)
    finally:
        await nc.close()

    def in_trace() -> list[ReceivedSpan]:
        return [s for s in collector.spans() if s.trace_id == trace_id]

    async def whole_trace() -> list[ReceivedSpan] | None:
        spans = in_trace()
        names = [s.name for s in spans]
        # fetch and its tool result: two accepts, two decisions, two commits, one tool call
        done = names.count(SPLITTER_ACCEPT) >= 2 and names.count(AGENT_COMMIT) >= 2
        return spans if done and TOOL_CALL in names else None

    spans = await eventually(whole_trace, what="the whole trace at the collector")
    accept = _only(spans, SPLITTER_ACCEPT, caller)
    assert accept.service == "o-bus-splitter"
    assert accept.attributes["o_bus.command"] == "fetch"
    decide = _only(spans, AGENT_DECIDE, accept.span_id)
    assert decide.service == "o-bus-agent"
    assert decide.attributes["o_bus.outcome"] == "applied"
    _only(spans, AGENT_COMMIT, decide.span_id)
    tool = _only(spans, TOOL_CALL, decide.span_id)
    assert tool.attributes["o_bus.tool"] == "http"
    assert tool.attributes["o_bus.tool_ok"] is True
    result_accept = _only(spans, SPLITTER_ACCEPT, tool.span_id)
    assert result_accept.attributes["o_bus.command"] == "tool_result"
    result_decide = _only(spans, AGENT_DECIDE, result_accept.span_id)
    _only(spans, AGENT_COMMIT, result_decide.span_id)
    assert not [s for s in spans if s.failed]
