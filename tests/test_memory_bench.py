"""`o-bus bench memory` end to end on tiny sizes: every figure is there, every request was
answered, the rebuilt index reached the last event (the figures themselves are not checked)."""

from __future__ import annotations

import json

from support import run_cli


async def test_the_memory_benchmark_runs_and_reports_every_figure() -> None:
    code, out, err = await run_cli(
        "bench", "memory", "--sizes", "40,100", "--recalls", "5", "--concurrency", "8", "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["options"]["sizes"] == [40, 100]
    sizes = report["sizes"]
    assert [s["items"] for s in sizes] == [40, 100]
    assert [s["remember"]["completed"] for s in sizes] == [40, 60]
    assert [s["recall"]["completed"] for s in sizes] == [5, 5]
    for size in sizes:
        assert size["remember"]["errors"] == 0
        assert size["recall"]["errors"] == 0
        assert size["stats"]["index"]["applied_seq"] == size["remember"]["last_seq"]
        assert (
            size["stats"]["index"]["long_term"] + size["stats"]["index"]["short_term"]
            == (size["items"])
        )
        assert size["rebuild_s"] > 0
        assert size["floor"]["items"] == size["items"]
    assert sizes[-1]["remember"]["last_seq"] == 100
