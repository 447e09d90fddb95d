"""The real path and the offline path decide alike: the WAL records a live agent served,
read back from the stream and decided again with no NATS, give the same replies, the same
events (times included) and the same final state."""

from __future__ import annotations

from support import collect_events, read_subject, running_platform

from o_bus.agent.context import iso_time
from o_bus.agents.counter import counter
from o_bus.agents.memory import memory
from o_bus.replay.decide import decide_requests
from o_bus.replay.rebuild import rebuild
from o_bus.store import layout
from o_bus.wire.wal_record import WalRecord


async def test_offline_decisions_match_what_the_live_agents_recorded(nats_url: str) -> None:
    counter_sent = [
        ("increment", {"by": 3}),
        ("increment", {"by": "three"}),  # rejected: invalid payload
        ("reset", {}),
        ("increment", {"by": 4}),
        ("increment", {"by": 5}),
    ]
    memory_sent = [
        ("remember", {"text": "the red door", "importance": 0.9}),
        ("forget", {"id": "m99"}),  # rejected by the handler
        ("remember", {"text": "the blue key"}),
        ("consolidate", {}),
    ]
    async with running_platform(nats_url, agents=("counter", "memory")) as platform:
        live = {
            "counter": [await platform.send("counter", c, d) for c, d in counter_sent],
            "memory": [await platform.send("memory", c, d) for c, d in memory_sent],
        }
        wal = {
            agent: await read_subject(platform.js, layout.WAL_STREAM, layout.wal_subject(agent))
            for agent in live
        }
        stored = {agent: await collect_events(platform.log(agent)) for agent in live}
        rebuilt = {
            "counter": await rebuild(counter, platform.log("counter"), None),
            "memory": await rebuild(memory, platform.log("memory"), None),
        }
    for agent, definition in (("counter", counter), ("memory", memory)):
        records = [WalRecord.from_stored(m.seq or 0, m.headers, m.data) for m in wal[agent]]
        assert [r.request_id for r in records] == [reply["request_id"] for reply in live[agent]]
        decided = decide_requests(definition, definition.initial_state(), records, agent=agent)
        assert [o.reply for o in decided.outcomes] == live[agent]
        assert decided.state == rebuilt[agent].state
        assert decided.seq == rebuilt[agent].position.seq
        offline_events = [
            (e.event_type, e.model_dump(mode="json"), iso_time(r.accepted_ns))
            for o, r in zip(decided.outcomes, records, strict=True)
            for e in o.events
        ]
        assert [
            (
                e.type,
                definition.decode_event(e.type, e.version, e.data).model_dump(mode="json"),
                e.time,
            )
            for e in stored[agent]
        ] == offline_events
    remembered = live["memory"][0]["events"][0]["data"]["item"]
    assert remembered["at"] == stored["memory"][0].time  # the handler read the WAL's time
