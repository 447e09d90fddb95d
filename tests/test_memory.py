"""The reference agent ``memory`` on a real nats-server: semantic recall, the index as a
projection (delete it, replay, same answers), short-term bounds and consolidation, episodes,
and clear errors for bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from support import Platform, run_cli, running_platform

from o_bus.client import query

AGENTS = ("counter", "echo", "memory")
CORPUS = json.loads((Path(__file__).parent / "data" / "memory_corpus.json").read_text())


async def ask(platform: Platform, name: str, params: dict[str, Any], min_seq: int = 0) -> Any:
    reply = await query(platform.nc, "memory", name, params, min_seq=min_seq, timeout=20.0)
    assert reply["ok"], reply
    return reply["result"]


async def remember_corpus(platform: Platform) -> tuple[dict[str, str], int]:
    """Remember every corpus item; return key -> item id and the last sequence."""
    ids, seq = {}, 0
    for item in CORPUS["items"]:
        data = {k: item[k] for k in ("text", "kind", "importance")} | {
            "metadata": {"key": item["key"]}
        }
        reply = await platform.send("memory", "remember", data)
        assert reply["ok"], reply
        ids[item["key"]] = reply["events"][0]["data"]["item"]["id"]
        seq = reply["seq"]
    return ids, seq


async def recall_all(platform: Platform, seq: int) -> list[list[dict[str, Any]]]:
    return [
        await ask(platform, "recall", {"text": q["text"], "k": 5}, min_seq=seq)
        for q in CORPUS["queries"]
    ]


async def test_recall_ranks_the_relevant_item_first(nats_url: str) -> None:
    async with running_platform(nats_url, agents=AGENTS) as platform:
        await platform.send("memory", "configure", {"capacity": 100})
        ids, seq = await remember_corpus(platform)
        results = await recall_all(platform, seq)
        tasks = await ask(platform, "recall", {"text": "keys", "k": 10, "kinds": ["task"]})
    task_ids = {ids[i["key"]] for i in CORPUS["items"] if i["kind"] == "task"}
    assert {h["id"] for h in tasks} == task_ids  # only tasks, however far from the question
    for case, hits in zip(CORPUS["queries"], results, strict=True):
        assert hits[0]["id"] == ids[case["expect"]], (case, hits[:2])
        assert hits[0]["metadata"] == {"key": case["expect"]}
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def delete_index(index: Path) -> None:
    assert index.is_file()
    for suffix in ("", "-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)


def _same(first: list[list[dict[str, Any]]], second: list[list[dict[str, Any]]]) -> None:
    assert [[h["id"] for h in hits] for hits in first] == [
        [h["id"] for h in hits] for hits in second
    ]
    for hits_a, hits_b in zip(first, second, strict=True):
        for a, b in zip(hits_a, hits_b, strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)
            assert {**a, "score": 0} == {**b, "score": 0}


async def test_deleting_the_index_and_replaying_gives_identical_results(
    nats_url: str, tmp_path: Path
) -> None:
    async with running_platform(nats_url, agents=AGENTS) as platform:
        # Small window: evictions, promotions and drops all happen while remembering.
        await platform.send("memory", "configure", {"capacity": 6, "min_importance": 0.5})
        ids, _ = await remember_corpus(platform)
        await platform.send("memory", "forget", {"id": ids["wifi"]})
        last = await platform.send(
            "memory", "consolidate", {"now": "2100-01-01T00:00:00Z"}
        )  # keep_recent 8 > window: nothing leaves by count
        seq = last["seq"]
        before = await recall_all(platform, seq)
        stats = await ask(platform, "stats", {}, min_seq=seq)
        episodes = await ask(platform, "episodes", {"limit": 1000}, min_seq=seq)
        index = Path(stats["index"]["path"])
        assert index.parent == tmp_path / "memory"

        await platform.stop_host()
        delete_index(index)
        await platform.start_host()
        after = await recall_all(platform, seq)
        stats_after = await ask(platform, "stats", {}, min_seq=seq)
        episodes_after = await ask(platform, "episodes", {"limit": 1000}, min_seq=seq)
    _same(before, after)
    assert stats_after["index"] == stats["index"]
    assert episodes_after == episodes
    assert all(ids["wifi"] not in [h["id"] for h in hits] for hits in after)


def tamper(path: str, key: str, value: str) -> None:
    import apsw

    conn = apsw.Connection(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
    conn.close()


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("stream_seq", "999", "ahead of the log"),  # as after the log was reset
        ("log_created", "2020-01-01T00:00:00+00:00", "log was recreated"),
        ("anchor", "evt:1:1:someone-else:7", "the log differs at stream seq"),
        ("embedder", "another-model", "embedder is 'another-model'"),
        ("schema", "0", "schema is '0'"),
    ],
)
async def test_a_stale_index_is_rebuilt(nats_url: str, key: str, value: str, reason: str) -> None:
    async with running_platform(nats_url, agents=AGENTS) as platform:
        reply = await platform.send("memory", "remember", {"text": "the red door"})
        stats = await ask(platform, "stats", {}, min_seq=reply["seq"])
        assert stats["index"]["rebuilt_because"] is None
        await platform.stop_host()
        tamper(stats["index"]["path"], key, value)
        await platform.start_host()
        rebuilt = await ask(platform, "stats", {}, min_seq=reply["seq"])
        hits = await ask(platform, "recall", {"text": "red door"}, min_seq=reply["seq"])
    assert reason in rebuilt["index"]["rebuilt_because"]
    assert [h["text"] for h in hits] == ["the red door"]
    assert rebuilt["index"] == {
        **stats["index"],
        "rebuilt_because": rebuilt["index"]["rebuilt_because"],
    }


async def test_short_term_bounds_and_consolidation_survive_replay(nats_url: str) -> None:
    async with running_platform(nats_url, agents=AGENTS) as platform:
        await platform.send(
            "memory",
            "configure",
            {"capacity": 3, "keep_recent": 1, "min_importance": 0.5, "max_age_seconds": 60},
        )
        for n, importance in enumerate([0.9, 0.1, 0.8, 0.2, 0.7]):
            await platform.send(
                "memory", "remember", {"text": f"fact {n} about otters", "importance": importance}
            )
        recent = await ask(platform, "recent", {"limit": 10})
        # Window of 3: m3..m5 stay; m1 (0.9) was promoted, m2 (0.1) dropped.
        assert [i["id"] for i in recent] == ["m5", "m4", "m3"]
        reply = await platform.send("memory", "consolidate", {})
        # keep_recent 1: m3 (0.8) promoted, m4 (0.2) dropped; m5 stays (young enough).
        assert reply["events"][0]["data"]["evicted"] == {"promoted": ["m3"], "dropped": ["m4"]}
        late = await platform.send("memory", "consolidate", {"now": "2100-01-01T00:00:00Z"})
        assert late["events"][0]["data"]["evicted"] == {"promoted": ["m5"], "dropped": []}
        seq = late["seq"]
        stats = await ask(platform, "stats", {}, min_seq=seq)
        hits = await ask(platform, "recall", {"text": "otters", "k": 10}, min_seq=seq)

        await platform.restart_host()  # state from the log, index from its file
        stats_after = await ask(platform, "stats", {}, min_seq=seq)
        recent_after = await ask(platform, "recent", {})
        nothing_left = await platform.send("memory", "consolidate", {})
    assert stats["short_term_window"] == 0
    assert stats["consolidations"] == 2
    assert stats["index"]["long_term"] == 3
    assert stats["index"]["short_term"] == 0
    assert sorted(h["id"] for h in hits) == ["m1", "m3", "m5"]
    assert all(h["tier"] == "long" for h in hits)
    assert recent_after == []
    assert stats_after == stats
    assert nothing_left["ok"]
    assert nothing_left["events"] == []


async def test_episodes_by_time_and_type(nats_url: str) -> None:
    async with running_platform(nats_url, agents=AGENTS) as platform:
        first = await platform.send("memory", "remember", {"text": "buy oat milk"})
        rejected = await platform.send("memory", "forget", {"id": "m99"})
        assert rejected["error"]["code"] == "command_rejected"
        second = await platform.send(
            "memory", "remember", {"text": "call the plumber"}, request_id="plumber"
        )
        seq = second["seq"]
        everything = await ask(platform, "episodes", {}, min_seq=seq)
        forgets = await ask(platform, "episodes", {"type": "forget"}, min_seq=seq)
        middle = forgets[0]["at"]  # since is inclusive, until exclusive
        remembered = await ask(platform, "episodes", {"type": "remembered"})
        later = await ask(platform, "episodes", {"since": middle, "type": "remember"})
        earlier = await ask(platform, "episodes", {"until": middle})
        from_middle = await ask(platform, "episodes", {"since": middle, "until": "2100-01-01"})
    assert [e["command"] for e in everything] == ["remember", "forget", "remember"]
    assert [e["number"] for e in everything] == [1, 2, 3]
    assert [e["outcome"] for e in forgets] == ["rejected"]
    assert forgets[0]["error_code"] == "command_rejected"
    assert forgets[0]["request"] == {"id": "m99"}
    assert forgets[0]["events"] == []
    assert [e["request"]["text"] for e in remembered] == ["buy oat milk", "call the plumber"]
    assert remembered[0]["events"][0]["seq"] == first["seq"]
    assert [e["request_id"] for e in later] == ["plumber"]
    assert later[0]["events"][0]["type"] == "remembered"
    assert later[0]["events"][0]["seq"] == seq
    assert earlier == everything[:1]
    assert from_middle == everything[1:]
    assert all(e["requested_at"] <= e["at"] for e in everything)


@pytest.mark.parametrize(
    ("command", "data", "code"),
    [
        ("remember", {"text": ""}, "invalid_payload"),
        ("remember", {"text": "   "}, "invalid_payload"),
        ("remember", {"text": "x", "importance": 2}, "invalid_payload"),
        ("remember", {"text": "x", "kind": "no spaces please"}, "invalid_payload"),
        ("remember", {"text": "x" * 20_000}, "invalid_payload"),
        ("forget", {"id": "m1"}, "command_rejected"),
        ("forget", {"id": "../etc"}, "command_rejected"),
        ("forget", {}, "invalid_payload"),
        ("consolidate", {"now": "yesterday"}, "invalid_payload"),
        ("consolidate", {"now": "2030-01-01T00:00:00"}, "invalid_payload"),
        ("configure", {"capacity": 0}, "invalid_payload"),
    ],
)
async def test_bad_commands_get_clear_errors(
    nats_url: str, command: str, data: dict[str, Any], code: str
) -> None:
    async with running_platform(nats_url, agents=AGENTS) as platform:
        reply = await platform.send("memory", command, data)
        assert not reply["ok"]
        assert reply["error"]["code"] == code, reply
        assert reply["error"]["message"]
        still = await platform.send("memory", "remember", {"text": "still here"})
        assert still["ok"]


async def test_bad_queries_get_clear_errors(nats_url: str) -> None:
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        ("recall", {"text": "x", "k": 0}, "invalid_payload", "k"),
        ("recall", {"text": "x", "k": 101}, "invalid_payload", "k"),
        ("recall", {}, "invalid_payload", "text"),
        ("recall", {"text": "   "}, "invalid_payload", "blank"),
        ("recall", {"text": "x", "bogus": 1}, "invalid_payload", "bogus"),
        ("episodes", {"since": "last tuesday"}, "invalid_payload", "since"),
        ("episodes", {"limit": 0}, "invalid_payload", "limit"),
        ("no_such_query", {}, "unknown_command", "recall"),
    ]
    async with running_platform(nats_url, agents=AGENTS) as platform:
        for name, params, code, mentions in cases:
            reply = await query(platform.nc, "memory", name, params)
            assert not reply["ok"], (name, params, reply)
            assert reply["error"]["code"] == code, (name, params, reply)
            assert mentions in reply["error"]["message"], reply
        raw = await platform.nc.request("o.qry.memory", b"{not json", timeout=5)
        assert json.loads(raw.data)["error"]["code"] == "malformed_request"
        assert raw.headers
        assert raw.headers["O-Status"] == "error"
        body = json.dumps({"query": "recall", "params": {"text": "x"}, "timeout": -1}).encode()
        raw = await platform.nc.request("o.qry.memory", body, timeout=5)
        assert json.loads(raw.data)["error"]["code"] == "invalid_payload"
        behind = await query(platform.nc, "memory", "stats", min_seq=10**6, timeout=0.2)
        assert behind["error"]["code"] == "unavailable"
        assert (await query(platform.nc, "memory", "stats"))["ok"]


async def test_query_from_the_cli(nats_url: str) -> None:
    async with running_platform(nats_url, agents=AGENTS) as platform:
        reply = await platform.send(
            "memory", "remember", {"text": "the spare key is under the mat"}
        )
        code, out, _ = await run_cli(
            "query",
            "memory",
            "recall",
            '{"text": "spare key", "k": 1}',
            "--min-seq",
            str(reply["seq"]),
            "--nats",
            nats_url,
            "--json",
        )
        assert code == 0, out
        assert json.loads(out)["result"][0]["text"] == "the spare key is under the mat"
        code, _, err = await run_cli("query", "counter", "anything", "--nats", nats_url)
        assert code == 2
        assert "answers queries" in err
        code, _, err = await run_cli("query", "memory", "recall", "[1]", "--nats", nats_url)
        assert code == 2
        assert "JSON object" in err


def test_memory_dir_is_per_test(tmp_path: Path) -> None:
    assert os.environ["O_BUS_MEMORY_DIR"] == str(tmp_path / "memory")


async def test_an_index_that_cannot_open_is_reported_and_commands_still_work(
    nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the index folder should be")
    monkeypatch.setenv("O_BUS_MEMORY_DIR", str(blocker))
    async with running_platform(nats_url, agents=AGENTS) as platform:
        reply = await platform.send("memory", "remember", {"text": "kept in the log anyway"})
        assert reply["ok"]
        recall = await query(platform.nc, "memory", "recall", {"text": "log"})
        recent = await ask(platform, "recent", {}, min_seq=0)
    assert recall["error"]["code"] == "unavailable"
    assert "cannot open the memory index" in recall["error"]["message"]
    assert [item["text"] for item in recent] == ["kept in the log anyway"]
