"""Trace context and tracing settings: parsing and checking ``traceparent``/``tracestate``,
when tracing is on, pass-through with tracing off (the header travels from the request to the
WAL record and the events unchanged, and no tracing library is loaded), and the spans of an
in-process splitter and agent with tracing on."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic_core import to_json
from support import Platform, eventually, read_subject, running_platform

from o_bus import tracing
from o_bus.agents.counter import counter
from o_bus.client import send
from o_bus.evolution.canary_client import CanaryClient
from o_bus.evolution.candidate.shadow import ShadowRunner
from o_bus.evolution.sandbox import SandboxLimits, spawn_sandboxed
from o_bus.store import layout
from o_bus.tracing.names import (
    AGENT_COMMIT,
    AGENT_DECIDE,
    CANARY_DECIDE,
    SHADOW_EVALUATE,
    SPLITTER_ACCEPT,
)
from o_bus.wire.cloudevents import parse_request
from o_bus.wire.headers import (
    CE_ID,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_TRACEPARENT,
    CE_TRACESTATE,
    CE_TYPE,
    CONTENT_TYPE,
    W3C_TRACEPARENT,
    W3C_TRACESTATE,
)
from o_bus.wire.trace_context import (
    TraceParent,
    checked_trace_context,
    format_traceparent,
    parse_traceparent,
    valid_tracestate,
)
from o_bus.wire.wal_record import WalRecord
from o_bus_bench.otlp_collector import OtlpCollector, ReceivedSpan

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"


# -- parsing ------------------------------------------------------------------------------------


def test_a_valid_traceparent_is_parsed() -> None:
    assert parse_traceparent(VALID) == TraceParent(TRACE, PARENT, 1, "00")
    assert parse_traceparent(f"00-{TRACE}-{PARENT}-00") == TraceParent(TRACE, PARENT, 0, "00")
    # A later version may append fields; what is known is read.
    assert parse_traceparent(f"01-{TRACE}-{PARENT}-01-more") == TraceParent(TRACE, PARENT, 1, "01")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "00",
        f"00-{TRACE}-{PARENT}",  # no flags
        f"00-{TRACE.upper()}-{PARENT}-01",  # upper case
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{PARENT}-01",  # forbidden version
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE[:-1]}-{PARENT}-01",  # short trace id
        f"00-{TRACE}-{PARENT}-1",  # one-digit flags
        f"00-{TRACE}-{PARENT}-0g",  # not hex
        f" {VALID}",
    ],
)
def test_a_malformed_traceparent_is_refused(value: str) -> None:
    assert parse_traceparent(value) is None


def test_a_span_formats_as_a_version_00_traceparent() -> None:
    assert format_traceparent(int(TRACE, 16), int(PARENT, 16), 1) == VALID
    assert format_traceparent(1, 2, 0) == f"00-{1:032x}-{2:016x}-00"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("congo=t61rcWkgMzE", True),
        ("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", True),
        ("tenant@vendor=x, other=y", True),
        ("", True),
        ("Upper=x", False),
        ("novalue", False),
        ("k=v=" + "x" * 600, False),
        (",".join(f"k{i}=v" for i in range(33)), False),
    ],
)
def test_tracestate_lists_are_checked(value: str, valid: bool) -> None:
    assert valid_tracestate(value) is valid


def test_a_malformed_traceparent_is_dropped_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="o_bus.wire.trace_context"):
        assert checked_trace_context("00-nope", "k=v", "r1") == (None, None)
    assert "malformed traceparent" in caplog.text
    assert "'r1'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="o_bus.wire.trace_context"):
        assert checked_trace_context(VALID, "Bad State", "r2") == (VALID, None)
    assert "malformed tracestate" in caplog.text
    assert checked_trace_context(VALID, "k=v") == (VALID, "k=v")
    assert checked_trace_context(None, "k=v") == (None, None)
    assert checked_trace_context(42, None) == (None, None)  # structured mode: any JSON


def _binary(**extra: str) -> dict[str, str]:
    return {
        CE_ID: "r1",
        CE_TYPE: "increment",
        CE_SOURCE: "test",
        CE_SPECVERSION: "1.0",
        CONTENT_TYPE: "application/json",
        **extra,
    }


def test_requests_carry_the_checked_trace_context_into_their_wal_record() -> None:
    ce = parse_request(_binary(**{CE_TRACEPARENT: VALID, CE_TRACESTATE: "k=v"}), b"{}")
    w3c = parse_request(_binary(**{W3C_TRACEPARENT: VALID, W3C_TRACESTATE: "k=v"}), b"{}")
    assert (ce.traceparent, ce.tracestate) == (w3c.traceparent, w3c.tracestate) == (VALID, "k=v")
    bad = parse_request(_binary(**{CE_TRACEPARENT: "garbage"}), b"{}")
    assert bad.traceparent is None  # dropped: the request itself is fine
    structured = parse_request(
        {CONTENT_TYPE: "application/cloudevents+json"},
        b'{"specversion":"1.0","id":"r","type":"increment","source":"s","data":{},'
        b'"traceparent":"' + VALID.encode() + b'"}',
    )
    assert structured.traceparent == VALID
    headers = ce.wal_record("_INBOX.x").to_headers("counter:r1")
    assert (headers[CE_TRACEPARENT], headers[CE_TRACESTATE]) == (VALID, "k=v")
    record = WalRecord.from_headers(headers, b"{}", 7, 1)
    assert (record.traceparent, record.tracestate) == (VALID, "k=v")
    assert CE_TRACEPARENT not in bad.wal_record(None).to_headers("counter:r1")


# -- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "exporters"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, ("console", "otlp")),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, None),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, None),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, None),  # not supported: warned about, off
    ],
)
def test_tracing_is_off_unless_configured(
    environ: dict[str, str], exporters: tuple[str, ...] | None
) -> None:
    settings = tracing.tracing_settings(environ)
    assert (settings.exporters if settings else None) == exporters


def test_settings_read_protocol_and_service_name() -> None:
    settings = tracing.tracing_settings(
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_SERVICE_NAME": "billing-bus",
        }
    )
    assert settings is not None
    assert (settings.protocol, settings.service_name) == ("grpc", "billing-bus")
    odd = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "x"}
    assert tracing.tracing_settings(odd) == tracing.TracingSettings(("otlp",))


@pytest.mark.parametrize(
    ("environ", "endpoint"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, "http://c:4318/v1/traces"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/x",
            },
            "http://t:1/x",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "http://c:4317",
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, None),
    ],
)
def test_the_exporter_gets_the_traces_endpoint(
    environ: dict[str, str], endpoint: str | None
) -> None:
    settings = tracing.tracing_settings(environ)
    assert settings is not None
    assert settings.endpoint == endpoint


def test_the_otlp_flag_sets_the_standard_variables() -> None:
    environ = tracing.otlp_environment("http://127.0.0.1:4318/")
    assert environ == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_TRACES_EXPORTER": "otlp",
    }
    assert tracing.tracing_settings(environ) is not None


_UNTRACED_PROCESS = """
import sys
from o_bus.handlers.splitter.service import Splitter
from o_bus.handlers.splitter.tracing import wal_writer
from o_bus.handlers.splitter.wal_writer import WalWriter
from o_bus.runtime.worker import AgentWorker
from o_bus.runtime.tool_runner import ToolRunner
from o_bus.evolution.canary_client import CanaryClient
from o_bus.evolution.candidate.shadow import ShadowRunner
from o_bus.tracing import configure, tracer
assert configure("splitter") is None and tracer() is None
writer = wal_writer(None, lambda c, p: None, on_stored=lambda c, s: None, max_pending=1)
assert type(writer) is WalWriter
loaded = sorted(name for name in sys.modules if name.startswith("opentelemetry"))
assert not loaded, loaded
print("untraced")
"""


def test_with_tracing_off_no_tracing_library_is_loaded() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", _UNTRACED_PROCESS],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "untraced"


# -- on a real server ---------------------------------------------------------------------------


@pytest.fixture
def untraced(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    tracing.configure("test")
    yield
    tracing.configure("test")


async def _wal_headers(platform: Platform, agent: str) -> list[dict[str, str]]:
    stored = await read_subject(platform.js, layout.WAL_STREAM, layout.wal_subject(agent))
    return [msg.headers or {} for msg in stored]


async def test_with_tracing_off_the_trace_context_passes_through_unchanged(
    untraced: None, nats_url: str
) -> None:
    async with running_platform(nats_url) as platform:
        reply = await send(
            platform.nc, "counter", "increment", {"by": 2}, traceparent=VALID, tracestate="k=v"
        )
        assert reply["ok"], reply
        bad = await send(platform.nc, "counter", "increment", {"by": 1}, traceparent="00-bad")
        assert bad["ok"], bad  # a malformed traceparent never fails the request
        wal = await _wal_headers(platform, "counter")
        assert (wal[0][CE_TRACEPARENT], wal[0][CE_TRACESTATE]) == (VALID, "k=v")
        assert CE_TRACEPARENT not in wal[1]
        events = await read_subject(
            platform.js, layout.events_stream("counter"), layout.event_subject("counter")
        )
        first, second = (msg.headers or {} for msg in events)
        assert (first[CE_TRACEPARENT], first[CE_TRACESTATE]) == (VALID, "k=v")
        assert CE_TRACEPARENT not in second


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpCollector]:
    with OtlpCollector() as running:
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        traced = tracing.configure("test", tracing.otlp_environment(running.url))
        assert traced is not None
        try:
            yield running
        finally:
            tracing.configure("test", {})


@pytest.fixture
async def traced_platform(collector: OtlpCollector, nats_url: str) -> AsyncIterator[Platform]:
    async with running_platform(nats_url) as platform:
        yield platform


async def test_with_tracing_on_a_request_without_context_starts_a_trace(
    traced_platform: Platform, collector: OtlpCollector
) -> None:
    reply = await send(traced_platform.nc, "counter", "increment", {"by": 1}, request_id="n1")
    assert reply["ok"], reply
    [wal] = await _wal_headers(traced_platform, "counter")
    started = parse_traceparent(wal[CE_TRACEPARENT])  # the splitter's span, a new trace
    assert started is not None

    async def spans() -> list[ReceivedSpan] | None:
        mine = [s for s in collector.spans() if s.trace_id == started.trace_id]
        return mine if len(mine) >= 3 else None

    found = {s.name: s for s in await eventually(spans, what="three spans of the new trace")}
    accept, decide = found[SPLITTER_ACCEPT], found[AGENT_DECIDE]
    assert (accept.parent_id, accept.span_id) == ("", started.parent_id)
    assert decide.parent_id == accept.span_id
    assert found[AGENT_COMMIT].parent_id == decide.span_id
    events = await read_subject(
        traced_platform.js, layout.events_stream("counter"), layout.event_subject("counter")
    )
    event_context = parse_traceparent((events[0].headers or {})[CE_TRACEPARENT])
    assert event_context is not None
    assert event_context.parent_id == decide.span_id


_SANDBOXED_EXPORT = """
from o_bus.evolution.candidate.tracing import configure_candidate_tracing
from o_bus.evolution.sandbox import current_report
from o_bus.tracing.names import SHADOW_EVALUATE
report = current_report()
isolated = bool(report and report.boundary and report.boundary.network)
traced = configure_candidate_tracing()
if traced is None:
    print("isolated" if isolated else "not isolated", "off")
else:
    traced.start(SHADOW_EVALUATE).end()
    assert traced.flush(20.0)
    print("isolated" if isolated else "not isolated", "exported")
"""


async def _sandboxed_export(limits: SandboxLimits, collector: OtlpCollector) -> str:
    process = await spawn_sandboxed(
        ["-c", _SANDBOXED_EXPORT],
        limits,
        env=tracing.otlp_environment(collector.url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode().strip()


async def test_a_candidate_in_the_sandbox_exports_its_spans_through_the_parents_relay() -> None:
    """Shadows run in the sandbox, in a network namespace of their own where the kernel lets:
    the parent relays the collector's one address, so a platform with tracing on keeps its
    shadows' spans; without the boundary they export like any process."""
    with OtlpCollector() as running:
        free = await _sandboxed_export(SandboxLimits(boundary=False), running)
        assert free == "not isolated exported"
        bounded = await _sandboxed_export(SandboxLimits(), running)
        assert bounded.endswith("exported")
        spans = running.spans()
        assert [(s.name, s.service) for s in spans] == [(SHADOW_EVALUATE, "o-bus-candidate")] * 2


async def test_a_canary_decision_is_a_span_under_the_agents_decision(
    collector: OtlpCollector, nc: Client
) -> None:
    version = "sha256:" + "ab" * 32
    answers = iter([True, False])  # the candidate decides once, then fails

    async def candidate(msg: Msg) -> None:
        if next(answers):
            events = [{"type": "incremented", "version": 1, "data": {"by": 1}}]
            await msg.respond(to_json({"ok": True, "events": events, "code_version": "2"}))
        else:
            await msg.respond(to_json({"ok": False, "message": "broken"}))

    await nc.subscribe(layout.candidate_subject("counter", version, "decide"), cb=candidate)
    canary = CanaryClient(nc, "counter", version, counter, timeout=5.0)
    decide_span = f"00-{TRACE}-{PARENT}-01"
    record = WalRecord("r1", "increment", b'{"by":1}', wal_seq=1, traceparent=decide_span)
    assert await canary.decide(counter.initial_state(), record) is not None
    assert await canary.decide(counter.initial_state(), record._replace(wal_seq=2)) is None

    async def spans() -> list[ReceivedSpan] | None:
        mine = [s for s in collector.spans() if s.name == CANARY_DECIDE]
        return mine if len(mine) == 2 else None

    decided, fell_back = await eventually(spans, what="two canary spans")
    assert (decided.trace_id, decided.parent_id) == (TRACE, PARENT)
    assert decided.attributes["o_bus.outcome"] == "decided"
    assert not decided.failed
    assert fell_back.attributes["o_bus.outcome"] == "fallback to live"
    assert fell_back.failed


async def test_a_shadow_evaluation_is_a_span_under_the_splitters(
    traced_platform: Platform, collector: OtlpCollector
) -> None:
    shadow = ShadowRunner(
        traced_platform.nc, traced_platform.js, "counter", "sha256:" + "cd" * 32, counter, counter
    )
    await shadow.fork()
    await shadow.start()
    try:
        reply = await send(traced_platform.nc, "counter", "increment", {"by": 1}, traceparent=VALID)
        assert reply["ok"], reply

        async def compared() -> bool:
            return shadow.counters.compared >= 1

        await eventually(compared, what="the shadow to compare the request")
    finally:
        await shadow.stop()

    async def spans() -> dict[str, ReceivedSpan] | None:
        mine = {s.name: s for s in collector.spans() if s.trace_id == TRACE}
        return mine if {SPLITTER_ACCEPT, SHADOW_EVALUATE} <= set(mine) else None

    found = await eventually(spans, what="the shadow's span in the request's trace")
    evaluated = found[SHADOW_EVALUATE]
    assert evaluated.parent_id == found[SPLITTER_ACCEPT].span_id
    assert evaluated.attributes["o_bus.differs"] is False


def test_a_request_its_caller_did_not_sample_is_carried_on_and_not_recorded(
    collector: OtlpCollector,
) -> None:
    traced = tracing.tracer()
    assert traced is not None
    unsampled = f"00-{TRACE}-{PARENT}-00"
    skipped = traced.start(AGENT_DECIDE, unsampled, "k=v")
    assert (skipped.traceparent, skipped.tracestate) == (unsampled, "k=v")
    skipped.set("o_bus.outcome", "applied")
    skipped.end()
    recorded = traced.start(AGENT_DECIDE, VALID)
    recorded.end()
    assert traced.flush(10.0)
    [span] = [s for s in collector.spans() if s.trace_id == TRACE]
    assert span.parent_id == PARENT
    assert parse_traceparent(recorded.traceparent) == TraceParent(TRACE, span.span_id, 1)
