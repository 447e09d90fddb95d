"""The health monitor: aggregation, Prometheus text, HTTP, ``o.health`` and bad heartbeats.

Heartbeats and supervisor entries are synthetic: published here, no agent or supervisor runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import KeyValueConfig
from support import eventually

from o_bus.evolution.candidate.stats import CandidateStats
from o_bus.handlers.health.aggregate import (
    BUCKET_COUNT,
    Counters,
    HealthState,
    MalformedHeartbeat,
    parse_heartbeat,
)
from o_bus.handlers.health.exposition import families
from o_bus.handlers.health.prometheus import Family, render
from o_bus.handlers.health.service import HEALTH_SUBJECT, HealthMonitor, health_subject
from o_bus.runtime.heartbeat import Heartbeat
from o_bus.runtime.metrics import LATENCY_BUCKETS_MS
from o_bus.store import layout
from o_bus.store.registry import AgentRecord, Registry
from o_bus.supervision.records import AgentSupervision, ProcessInfo


def beat(
    agent: str = "alpha",
    *,
    pid: int = 100,
    role: str = "active",
    requests: int = 0,
    errors: int = 0,
    buckets: list[int] | None = None,
    latency_sum_ms: float | None = None,
    lifecycle: str = "running",
    rss_bytes: int = 50_000_000,
    seq: int = 7,
    wal_backlog: int = 0,
    holder: str | None = None,
) -> Heartbeat:
    """A heartbeat whose histogram holds all ``requests`` in the 1 ms bucket unless given."""
    if buckets is None:
        buckets = [0] * BUCKET_COUNT
        buckets[1] = requests
    now = time.time()
    return Heartbeat.model_validate(
        {
            "agent": agent,
            "definition": "counter",
            "pid": pid,
            "holder": holder if holder is not None else f"host:{pid}:abcdefgh",
            "role": role,
            "lifecycle": lifecycle,
            "code_version": "1.2.3",
            "started_at": now - 5,
            "sent_at": now,
            "seq": seq,
            "wal_seq": seq,
            "wal_backlog": wal_backlog,
            "rss_bytes": rss_bytes,
            "requests": requests,
            "errors": errors,
            "latency_sum_ms": float(requests) if latency_sum_ms is None else latency_sum_ms,
            "latency_buckets": buckets,
        }
    )


# -- aggregation ---------------------------------------------------------------------------


def test_totals_stay_monotonic_across_a_pid_change_and_a_reset() -> None:
    state = HealthState(stale_after=1.0)
    state.observe(beat(pid=1, requests=5, errors=1), now=0.0)
    state.observe(beat(pid=1, requests=10, errors=2), now=0.1)
    # The process dies; its replacement (new pid) starts counting from zero.
    state.observe(beat(pid=2, requests=3, errors=0), now=0.5)
    state.observe(beat(pid=2, requests=7, errors=1), now=0.6)
    totals = state.agents["alpha"].totals
    assert (totals.requests, totals.errors) == (17, 3)
    assert totals.buckets[1] == 17
    assert totals.count == 17
    assert totals.latency_sum_ms == pytest.approx(17.0)
    # The same process's counters going back (its metrics restarted) count afresh.
    state.observe(beat(pid=2, requests=2, errors=0), now=0.7)
    assert (totals.requests, totals.errors) == (19, 3)
    assert state.agents["alpha"].resets == 1
    # A repeated heartbeat adds nothing.
    state.observe(beat(pid=2, requests=2, errors=0), now=0.8)
    assert totals.requests == 19


def test_histogram_deltas_are_per_bucket() -> None:
    counters = Counters()
    first = beat(requests=3, buckets=[1, 2] + [0] * (BUCKET_COUNT - 2), latency_sum_ms=2.5)
    second = beat(requests=6, buckets=[1, 4] + [0] * (BUCKET_COUNT - 3) + [1], latency_sum_ms=9.0)
    assert counters.add(None, first) is False
    assert counters.add(first, second) is False
    assert counters.buckets == [1, 4] + [0] * (BUCKET_COUNT - 3) + [1]
    assert counters.latency_sum_ms == pytest.approx(9.0)
    # A single bucket going down is a reset, even if the request count grew.
    third = beat(requests=7, buckets=[0, 4] + [0] * (BUCKET_COUNT - 3) + [3], latency_sum_ms=9.5)
    assert counters.add(second, third) is True
    assert counters.count == 6 + 7


def test_active_standby_and_staleness() -> None:
    state = HealthState()  # default: the supervision policy's heartbeat timeout (0.6 s)
    state.observe(beat(pid=1, role="active", seq=40, wal_backlog=3), now=10.0)
    state.observe(beat(pid=2, role="standby", lifecycle="standby", seq=39), now=10.0)
    summary = state.summary("alpha", now=10.2, wall_time=0.0)
    assert summary["up"] is True
    assert (summary["active_pid"], summary["standby_pid"]) == (1, 2)
    assert (summary["lifecycle"], summary["event_log_seq"], summary["wal_backlog"]) == (
        "running",
        40,
        3,
    )
    assert {p["pid"]: p["role"] for p in summary["processes"]} == {1: "active", 2: "standby"}
    later = state.summary("alpha", now=11.0, wall_time=0.0)
    assert later["up"] is False
    assert later["active_pid"] is None
    assert later["lifecycle"] == "running"  # the last one the active process reported
    assert later["heartbeat_age_s"] == pytest.approx(1.0)
    assert all(not p["fresh"] for p in later["processes"])
    state.prune(now=100.0)  # neither registered, supervised nor heard from: forgotten
    assert state.agents == {}


@pytest.mark.parametrize(
    ("subject", "data"),
    [
        ("o.hb.alpha", b"\xff\x00 not json"),
        ("o.hb.alpha", b'{"agent": "alpha"}'),
        ("o.hb.alpha", b"[]"),
        ("o.hb.beta", beat("alpha").model_dump_json().encode()),
        ("o.hb.alpha", beat(buckets=[1, 2, 3]).model_dump_json().encode()),
        ("o.hb.alpha", beat(requests=-1, buckets=[0] * BUCKET_COUNT).model_dump_json().encode()),
        ("o.hb.alpha.extra", beat().model_dump_json().encode()),
    ],
    ids=["bytes", "fields", "array", "wrong-agent", "buckets", "negative", "subject"],
)
def test_parse_heartbeat_rejects_bad_input(subject: str, data: bytes) -> None:
    with pytest.raises(MalformedHeartbeat):
        parse_heartbeat(subject, data)


def test_parse_heartbeat_rejects_non_finite_latency() -> None:
    data = beat().model_dump_json().replace('"latency_sum_ms":0.0', '"latency_sum_ms":NaN')
    assert "NaN" in data
    with pytest.raises(MalformedHeartbeat):
        parse_heartbeat("o.hb.alpha", data.encode())


# -- Prometheus text -----------------------------------------------------------------------


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _parse_labels(text: str) -> tuple[dict[str, str], str]:
    """Labels from just after '{'; returns them and the rest after '}'."""
    labels: dict[str, str] = {}
    i = 0
    while text[i] != "}":
        eq = text.index("=", i)
        name = text[i:eq].strip(", ")
        assert text[eq + 1] == '"'
        j = eq + 2
        while text[j] != '"':
            j += 2 if text[j] == "\\" else 1
        labels[name] = _unescape(text[eq + 2 : j])
        i = j + 1
        if text[i] == ",":
            i += 1
    return labels, text[i + 1 :]


def parse_exposition(text: str) -> dict[str, Any]:
    """A small reader of the text format: HELP, TYPE and samples per family, checked."""
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    samples: list[tuple[str, dict[str, str], float]] = []
    assert text.endswith("\n")
    for line in text.splitlines():
        assert line, "no blank lines"
        if line.startswith("# HELP "):
            name, _, help_text = line[len("# HELP ") :].partition(" ")
            assert name not in helps, f"two HELP lines for {name}"
            helps[name] = _unescape(help_text)
        elif line.startswith("# TYPE "):
            name, _, kind = line[len("# TYPE ") :].partition(" ")
            assert name not in types, f"two TYPE lines for {name}"
            assert name in helps
            types[name] = kind
        else:
            brace = line.find("{")
            if brace == -1:
                name, _, value = line.partition(" ")
                labels: dict[str, str] = {}
            else:
                name = line[:brace]
                labels, rest = _parse_labels(line[brace + 1 :])
                value = rest.strip()
            family = next(
                (
                    f
                    for f in types
                    if name == f or name in (f + "_bucket", f + "_sum", f + "_count")
                ),
                None,
            )
            assert family is not None, f"sample {name} before its TYPE line"
            samples.append((name, labels, float(value)))
    return {"help": helps, "type": types, "samples": samples}


def sample(parsed: dict[str, Any], name: str, **labels: str) -> float:
    found = [v for n, lab, v in parsed["samples"] if n == name and lab == labels]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return float(found[0])


def test_prometheus_rendering_round_trips() -> None:
    state = HealthState(stale_after=1.0)
    buckets = [2, 1, 0, 3] + [0] * (BUCKET_COUNT - 5) + [1]
    state.observe(beat(pid=1, requests=7, errors=2, buckets=buckets, latency_sum_ms=7777.5), 0.0)
    state.observe(beat(pid=2, role="standby", lifecycle="standby", rss_bytes=1234), 0.0)
    state.supervise(
        "alpha", AgentSupervision(agent="alpha", status="running", restarts=4, reason="")
    )
    weird = 'odd "state"\\ with\nnewline'
    state.observe(beat("beta", pid=3, lifecycle=weird), 0.0)

    parsed = parse_exposition(render(families(state, now=0.2)))

    assert parsed["type"]["o_bus_requests_total"] == "counter"
    assert parsed["type"]["o_bus_request_latency_ms"] == "histogram"
    assert parsed["type"]["o_bus_agent_up"] == "gauge"
    assert set(parsed["help"]) == set(parsed["type"])
    assert all(name.startswith("o_bus_") for name in parsed["type"])
    assert sample(parsed, "o_bus_requests_total", agent="alpha") == 7
    assert sample(parsed, "o_bus_request_errors_total", agent="alpha") == 2
    assert sample(parsed, "o_bus_restarts_total", agent="alpha") == 4
    assert sample(parsed, "o_bus_agent_up", agent="alpha") == 1
    assert sample(parsed, "o_bus_standby_up", agent="alpha") == 1
    assert sample(parsed, "o_bus_supervisor_status", agent="alpha", status="running") == 1
    assert sample(parsed, "o_bus_supervisor_status", agent="alpha", status="failed") == 0
    assert sample(parsed, "o_bus_lifecycle_state", agent="alpha", state="running") == 1
    assert sample(parsed, "o_bus_lifecycle_state", agent="alpha", state="suspended") == 0
    assert sample(parsed, "o_bus_event_log_seq", agent="alpha") == 7
    assert sample(parsed, "o_bus_wal_backlog", agent="alpha") == 0
    assert sample(parsed, "o_bus_process_rss_bytes", agent="alpha", role="standby", pid="2") == 1234
    assert sample(parsed, "o_bus_heartbeat_age_seconds", agent="alpha") == pytest.approx(0.2)

    # Buckets: cumulative, in bound order, ending with +Inf == _count; _sum as observed.
    rows = [
        (lab["le"], v)
        for n, lab, v in parsed["samples"]
        if n == "o_bus_request_latency_ms_bucket" and lab["agent"] == "alpha"
    ]
    bounds = [float(le) for le, _ in rows]
    assert bounds[:-1] == list(LATENCY_BUCKETS_MS)
    assert rows[-1][0] == "+Inf"
    assert math.isinf(bounds[-1])
    counts = [v for _, v in rows]
    assert counts == [2, 3, 3, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7]
    assert sample(parsed, "o_bus_request_latency_ms_count", agent="alpha") == 7
    assert sample(parsed, "o_bus_request_latency_ms_sum", agent="alpha") == 7777.5

    # An arbitrary lifecycle string comes back intact through label escaping.
    assert sample(parsed, "o_bus_lifecycle_state", agent="beta", state=weird) == 1


def test_escaping_of_label_values_and_help() -> None:
    family = Family("o_bus_test", "gauge", "help with \\ backslash\nand a newline")
    family.add(1.5, {"agent": 'a"b\\c\nd'})
    family.add(float("nan"), {"agent": "x"})
    text = render([family])
    assert "# HELP o_bus_test help with \\\\ backslash\\nand a newline\n" in text
    assert 'o_bus_test{agent="a\\"b\\\\c\\nd"} 1.5\n' in text
    assert 'o_bus_test{agent="x"} NaN\n' in text
    parsed = parse_exposition(text)
    assert parsed["help"]["o_bus_test"] == "help with \\ backslash\nand a newline"
    assert sample(parsed, "o_bus_test", agent='a"b\\c\nd') == 1.5
    with pytest.raises(ValueError, match="invalid metric name"):
        Family("o-bus", "gauge", "")
    with pytest.raises(ValueError, match="invalid label name"):
        family.add(1, {"bad-name": "x"})


# -- the service against a real nats-server ------------------------------------------------


@pytest.fixture
async def monitor(nc: Client) -> AsyncIterator[HealthMonitor]:
    service = HealthMonitor(
        nc, nc.jetstream(), port=0, publish_interval=0.05, stale_after=30.0, watch_retry=0.05
    )
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    assert int(headers["content-length"]) == len(body)
    return int(status_line.split(" ")[1]), headers, body


async def publish(nc: Client, heartbeat: Heartbeat) -> None:
    await nc.publish(
        layout.heartbeat_subject(heartbeat.agent), heartbeat.model_dump_json().encode()
    )
    await nc.flush()


async def test_http_serves_metrics_and_health(nc: Client, monitor: HealthMonitor) -> None:
    assert monitor.port > 0
    await publish(nc, beat("alpha", pid=11, requests=4, errors=1))

    async def scraped() -> dict[str, Any] | None:
        status, headers, body = await http_get(monitor.port, "/metrics")
        assert status == 200
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        parsed = parse_exposition(body.decode())
        has = any(n == "o_bus_requests_total" for n, _, _ in parsed["samples"])
        return parsed if has else None

    parsed = await eventually(scraped, what="metrics for alpha")
    assert sample(parsed, "o_bus_requests_total", agent="alpha") == 4
    assert sample(parsed, "o_bus_request_errors_total", agent="alpha") == 1
    assert sample(parsed, "o_bus_agent_up", agent="alpha") == 1
    assert sample(parsed, "o_bus_process_rss_bytes", agent="alpha", role="active", pid="11") > 0

    status, headers, body = await http_get(monitor.port, "/health")
    assert status == 200
    assert headers["content-type"] == "application/json"
    health = json.loads(body)
    assert health["agents"]["alpha"]["requests"] == 4
    assert health["agents"]["alpha"]["active_pid"] == 11

    assert (await http_get(monitor.port, "/metrics?x=1"))[0] == 200
    assert (await http_get(monitor.port, "/nope"))[0] == 404
    assert (await http_get(monitor.port, "/metrics", method="POST"))[0] == 404
    reader, writer = await asyncio.open_connection("127.0.0.1", monitor.port)
    writer.write(b"garbage\r\n\r\n")
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    assert response.startswith(b"HTTP/1.1 400 ")


async def test_health_request_and_published_summaries(nc: Client, monitor: HealthMonitor) -> None:
    updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_summary(msg: Any) -> None:
        await updates.put(json.loads(msg.data))

    sub = await nc.subscribe(health_subject("alpha"), cb=on_summary)
    try:
        await publish(nc, beat("alpha", pid=21, requests=2))
        await publish(nc, beat("alpha", pid=22, role="standby", lifecycle="standby"))

        async def answered() -> dict[str, Any] | None:
            reply = json.loads((await nc.request(HEALTH_SUBJECT, b"", timeout=5)).data)
            summary: dict[str, Any] | None = reply["agents"].get("alpha")
            return summary if summary and summary["standby_pid"] == 22 else None

        summary = await eventually(answered, what="alpha in the o.health reply")
        assert summary["up"] is True
        assert (summary["active_pid"], summary["requests"], summary["lifecycle"]) == (
            21,
            2,
            "running",
        )
        assert summary["latency_ms"]["count"] == 2
        published = await asyncio.wait_for(updates.get(), 10)
        assert published["agent"] == "alpha"
    finally:
        await sub.unsubscribe()


async def test_supervisor_bucket_and_registry_appearing_later(
    nc: Client, monitor: HealthMonitor
) -> None:
    """Neither bucket exists when the monitor starts; both are picked up once created."""
    js = nc.jetstream()
    # The monitor has looked both buckets up and found nothing: its JetStream API lookups are
    # on the bus (it retries them every watch_retry, so a first one missed here comes again).
    looked_up: set[str] = set()

    async def lookup(msg: Msg) -> None:
        looked_up.add(msg.subject.rsplit(".", 1)[-1])

    buckets = {f"KV_{layout.SUPERVISOR_BUCKET}", f"KV_{layout.AGENTS_BUCKET}"}
    sub = await nc.subscribe("$JS.API.STREAM.INFO.*", cb=lookup)
    try:

        async def tried_both() -> bool:
            return buckets <= looked_up

        await eventually(tried_both, what=f"the monitor to look up {sorted(buckets)}")
    finally:
        await sub.unsubscribe()
    kv = await js.create_key_value(KeyValueConfig(bucket=layout.SUPERVISOR_BUCKET))
    await js.create_key_value(KeyValueConfig(bucket=layout.AGENTS_BUCKET))
    record = AgentSupervision(
        agent="gamma",
        status="failed",
        reason="too many restarts",
        restarts=6,
        processes=[ProcessInfo(pid=5, host="h", standby=False, started_at=time.time())],
    )
    await kv.put("gamma", record.model_dump_json().encode())
    await kv.put("junk", b"not a supervision record")
    await Registry(js).register(
        AgentRecord(name="delta", definition="counter", created_at="2025-01-01T00:00:00Z")
    )

    async def known() -> dict[str, Any] | None:
        agents: dict[str, Any] = monitor.summaries()["agents"]
        return agents if "gamma" in agents and "delta" in agents else None

    agents = await eventually(known, what="the supervisor's and the registry's agents")
    assert (agents["gamma"]["status"], agents["gamma"]["restarts"]) == ("failed", 6)
    assert agents["gamma"]["up"] is False
    assert agents["delta"]["registered"] is True
    assert agents["delta"]["definition"] == "counter"
    parsed = parse_exposition(monitor.metrics_text())
    assert sample(parsed, "o_bus_restarts_total", agent="gamma") == 6
    assert sample(parsed, "o_bus_supervisor_status", agent="gamma", status="failed") == 1
    assert sample(parsed, "o_bus_agent_up", agent="delta") == 0

    await kv.delete("gamma")

    async def forgotten() -> bool:
        return monitor.summaries()["agents"].get("gamma", {}).get("status") is None

    await eventually(forgotten, what="the deleted supervision record to be dropped")


async def test_malformed_heartbeats_are_ignored_with_a_warning(
    nc: Client, monitor: HealthMonitor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="o_bus.handlers.health")
    await nc.publish("o.hb.alpha", b"\x00\xff garbage")
    await nc.publish("o.hb.bravo", b'{"agent": "bravo", "pid": "not a number"}')
    await nc.publish("o.hb.charlie", beat("alpha").model_dump_json().encode())
    await nc.publish("o.hb.x.y", b"{}")
    for _ in range(50):  # a flood from one broken publisher warns once
        await nc.publish("o.hb.alpha", b"{")
    await publish(nc, beat("alpha", pid=31, requests=9))

    async def counted() -> bool:
        summary = monitor.summaries()
        alpha = summary["agents"].get("alpha")
        return summary["malformed_heartbeats"] == 54 and alpha is not None

    await eventually(counted, what="the valid heartbeat after the bad ones")
    summary = monitor.summaries()
    assert summary["agents"]["alpha"]["requests"] == 9
    assert set(summary["agents"]) == {"alpha"}
    warnings = [r for r in caplog.records if "malformed heartbeat" in r.getMessage()]
    assert {r.levelno for r in warnings} == {logging.WARNING}
    assert len(warnings) == 4, [r.getMessage() for r in warnings]
    assert monitor.running, "a malformed heartbeat ended one of the monitor's tasks"
    parsed = parse_exposition(monitor.metrics_text())
    assert sample(parsed, "o_bus_health_malformed_heartbeats_total") == 54


async def test_shadow_traffic_has_its_own_labelled_metrics(
    nc: Client, monitor: HealthMonitor
) -> None:
    """A candidate's figures are exported as shadow traffic and never counted as live's."""
    await publish(nc, beat("alpha", pid=11, requests=4, errors=1))
    version = "sha256:" + "ab" * 32
    stats = CandidateStats(
        agent="alpha",
        version=version,
        code_version="2.0.0",
        pid=99,
        phase="following",
        sandbox="test",
        started_at=0.0,
        sent_at=0.0,
        compared=12,
        differing=3,
        candidate_failures=1,
        live_failures=0,
        candidate_p99_ms=0.5,
        live_p99_ms=0.25,
        canary_decided=5,
    )
    await nc.publish(
        layout.candidate_subject("alpha", version, "stats"), stats.model_dump_json().encode()
    )
    await nc.publish(layout.candidate_subject("alpha", version, "stats"), b"not json")
    await nc.flush()

    async def scraped() -> dict[str, Any] | None:
        _, _, body = await http_get(monitor.port, "/metrics")
        parsed = parse_exposition(body.decode())
        has = any(n == "o_bus_shadow_compared_total" for n, _, _ in parsed["samples"])
        return parsed if has else None

    parsed = await eventually(scraped, what="shadow metrics for alpha")
    shadow = {"agent": "alpha", "version": version[:23], "traffic": "shadow"}
    assert sample(parsed, "o_bus_shadow_compared_total", **shadow) == 12
    assert sample(parsed, "o_bus_shadow_differing_total", **shadow) == 3
    assert sample(parsed, "o_bus_shadow_failures_total", **shadow, code="candidate") == 1
    assert sample(parsed, "o_bus_shadow_decide_p99_ms", **shadow, code="live") == 0.25
    assert sample(parsed, "o_bus_canary_decided_total", **shadow) == 5
    assert sample(parsed, "o_bus_requests_total", agent="alpha") == 4  # live's own, unchanged
    assert monitor.candidates.malformed == 1
