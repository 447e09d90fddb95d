"""The console's own arithmetic: trace ids from ``traceparent``, live figures from the health
monitor's cumulative counters."""

from __future__ import annotations

from o_bus.console.figures import FigureSampler, quantile
from o_bus.console.timeline import event_json, trace_id
from o_bus.store.event_records import StoredEvent
from o_bus.wire.headers import CE_SEQUENCE, CE_TRACEPARENT, CE_TYPE

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_an_event_shows_the_trace_id_of_the_traceparent_it_carries() -> None:
    headers = {
        CE_SEQUENCE: "3",
        CE_TYPE: "incremented",
        CE_TRACEPARENT: f"00-{TRACE}-00f067aa0ba902b7-01",
    }
    event = StoredEvent.from_msg("counter", 7, headers, b'{"by": 1}')
    shown = event_json(event)
    assert shown["trace_id"] == TRACE
    assert shown["seq"] == 3
    assert shown["data"] == {"by": 1}
    del headers[CE_TRACEPARENT]
    assert event_json(StoredEvent.from_msg("counter", 7, headers, b"{}"))["trace_id"] is None
    for bad in ("", "00-short-00f067aa0ba902b7-01", "garbage"):
        assert trace_id(bad) is None


def test_quantiles_are_the_upper_bound_of_their_bucket() -> None:
    bounds = [1.0, 5.0, 10.0]
    assert quantile(bounds, [0, 0, 0, 0], 0.5) is None
    assert quantile(bounds, [50, 49, 1, 0], 0.5) == 1.0
    assert quantile(bounds, [50, 49, 1, 0], 0.99) == 5.0
    assert quantile(bounds, [0, 0, 0, 10], 0.99) == 10.0  # past the last bound: the last bound


def _summary(requests: int, errors: int, buckets: list[int]) -> dict[str, object]:
    return {
        "agents": {
            "counter": {
                "requests": requests,
                "errors": errors,
                "latency_ms": {"bounds": [1.0, 5.0], "buckets": buckets},
            }
        }
    }


def test_figures_are_rates_between_two_samples_and_restart_after_a_reset() -> None:
    sampler = FigureSampler(nc=None, interval=1.0)  # type: ignore[arg-type]
    sampler.take(_summary(100, 1, [90, 10, 0]), now=1000.0)
    assert sampler.series() == {"counter": []}
    sampler.take(_summary(300, 5, [190, 100, 10]), now=1002.0)
    [point] = sampler.series()["counter"]
    assert (point["rate"], point["errors"]) == (100.0, 2.0)
    # 200 new requests: 100 within 1 ms, 90 within 5 ms, 10 slower than the last bound.
    assert (point["p50_ms"], point["p99_ms"]) == (1.0, 5.0)
    sampler.take(_summary(10, 0, [10, 0, 0]), now=1003.0)  # the monitor restarted
    assert len(sampler.series()["counter"]) == 1
