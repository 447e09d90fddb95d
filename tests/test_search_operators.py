"""Operators of the search: every child they make passes `o-bus deploy`'s validation, and
hostile children are killed or refused by the sandboxed evaluation, with the reason."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from search_support import DATASET, EXAMPLE, small_config
from support import collect_events, running_platform

from o_bus.agent.catalogue import load_definition
from o_bus.evolution.feedback.log import FeedbackLog
from o_bus.evolution.feedback.model import Feedback
from o_bus.evolution.search.engine import run_search
from o_bus.evolution.search.evaluate.pool import EvaluationPool
from o_bus.evolution.search.evaluate.worker import EvaluationJob
from o_bus.evolution.search.genome import GenomeSpace, read_genome
from o_bus.evolution.search.lineage.projection import project
from o_bus.evolution.search.lineage.stream import LineageStream
from o_bus.evolution.search.operators.ast_ops import AstMutation
from o_bus.evolution.search.operators.base import NoChild, Parent
from o_bus.evolution.search.operators.crossover import Crossover
from o_bus.evolution.search.operators.genome_ops import GenomeMutation
from o_bus.evolution.search.operators.llm import LlmPatch, apply_unified_diff
from o_bus.evolution.validate import validate_code
from o_bus.store.event_records import utc_now
from o_bus.store.provision import provision
from o_bus.tools.llm_tool import OpenAICompatibleChat


def _space() -> GenomeSpace:
    genome_type = load_definition(str(EXAMPLE)).genome_type
    assert genome_type is not None
    return GenomeSpace(genome_type)


async def _validated(source: str, folder: Path, name: str) -> None:
    path = folder / name
    path.write_text(source)
    found = await validate_code(path, expected_name="autoscaler")
    assert found.definition_name == "autoscaler"
    assert found.commands == ["observe"]


async def test_genome_ast_and_crossover_children_pass_deploy_validation(tmp_path: Path) -> None:
    source = EXAMPLE.read_text()
    space = _space()
    root = Parent("root", source, space.defaults())
    rng = random.Random(11)
    genome_child = await GenomeMutation(space).propose([root], rng)
    assert read_genome(genome_child.source) == genome_child.genome
    assert genome_child.genome != root.genome
    ast_children = []
    for seed in range(40):
        try:
            ast_children.append(await AstMutation().propose([root], random.Random(seed)))
        except NoChild:
            continue
    kinds = {child.detail.split(":")[0] for child in ast_children}
    assert {"constant", "compare", "branch", "delete", "swap"} <= kinds
    other = Parent("other", ast_children[0].source, genome_child.genome)
    crossed = await Crossover(space).propose([root, other], random.Random(3))
    assert crossed.source != source
    picks = [genome_child, crossed, *ast_children[:4]]
    await asyncio.gather(
        *(_validated(c.source, tmp_path, f"child{i}.py") for i, c in enumerate(picks))
    )


HOSTILE = {
    "blocks": "    import time\n    time.sleep(3600)\n",
    "loops": "    while True:\n        pass\n",
    "memory": "    hoard = [bytearray(64 * 1024 * 1024) for _ in range(64)]\n",
    "process": "    import subprocess\n    subprocess.run(['true'])\n",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
async def test_hostile_children_are_killed_or_refused_with_the_reason(
    kind: str, tmp_path: Path
) -> None:
    source = EXAMPLE.read_text().replace(
        "    expected = cmd.load\n", HOSTILE[kind] + "    expected = cmd.load\n", 1
    )
    assert source != EXAMPLE.read_text()
    candidate = tmp_path / "hostile.py"
    candidate.write_text(source)
    # A generous watchdog: SCHED_IDLE may leave the child little CPU on a busy machine; the
    # loop is ended by its CPU-time limit.
    # A child that blocks uses no CPU: the watchdog kills it from outside.
    pool = EvaluationPool(
        1, timeout=5.0 if kind == "blocks" else 300.0, memory_mb=256, cpu_seconds=2
    )
    result = await pool.run(
        EvaluationJob(
            candidate=candidate, baseline=EXAMPLE, dataset=DATASET, expected_name="autoscaler"
        )
    )
    assert result.get("fitness") is None or result["outcome"] != "ok"
    if kind == "blocks":
        assert result["outcome"] == "killed"
        assert "no sign of life" in result["reason"]
    elif kind == "loops":
        assert result["outcome"] == "killed"
        assert "CPU-time limit" in result["reason"]
    elif kind == "memory":
        assert result["outcome"] == "failed"
        assert "MemoryError" in result["reason"]
    else:
        assert result["outcome"] == "failed"
        assert "may not start processes" in result["reason"]


async def _fake_model(replies: list[str]) -> tuple[asyncio.Server, str, list[dict[str, object]]]:
    """A local OpenAI-compatible server answering each request with the next scripted reply."""
    asked: list[dict[str, object]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        asked.append(json.loads(await reader.readexactly(length)))
        content = replies[min(len(asked) - 1, len(replies) - 1)]
        body = json.dumps(
            {
                "model": "scripted",
                "choices": [
                    {"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
            }
        ).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1", asked


async def test_llm_operator_applies_a_scripted_patch(tmp_path: Path) -> None:
    source = EXAMPLE.read_text()
    diff = (
        "```diff\n"
        "@@ -66,1 +66,1 @@\n"
        f"-{source.splitlines()[65]}\n"
        f"+{source.splitlines()[65]}  # reviewed\n"
        "```"
    )
    server, url, asked = await _fake_model(["no code here", diff])
    try:
        operator = LlmPatch(OpenAICompatibleChat(url, "", "scripted"))
        root = Parent("root", source, None, fitness=0.5, feedback="dropped load at spikes")
        with pytest.raises(NoChild, match="no ```python"):
            await operator.propose([root], random.Random(1))
        child = await operator.propose([root], random.Random(1))
    finally:
        server.close()
        await server.wait_closed()
    assert child.source.splitlines()[65].endswith("# reviewed")
    assert len(asked) == 2
    assert "dropped load at spikes" in json.dumps(asked[1])
    await _validated(child.source, tmp_path, "llm_child.py")


def test_a_diff_that_does_not_fit_is_refused() -> None:
    with pytest.raises(NoChild, match="does not apply"):
        apply_unified_diff("a\nb\n", "@@ -1,1 +1,1 @@\n-x\n+y\n")


async def test_the_llm_prompt_carries_users_feedback(nc: Client) -> None:
    """A search with the llm operator reads the agent's feedback log: the text users gave
    reaches the model's prompt, lowest scores first, and the scripted patch becomes a child."""
    js = nc.jetstream()
    await provision(js)
    log = FeedbackLog(js)
    await log.record(
        Feedback(agent="autoscaler", request_id="r7", score=-1, text="too slow", at=utc_now())
    )
    await log.record(
        Feedback(agent="autoscaler", request_id="r9", score=0.5, text="ok now", at=utc_now())
    )
    await log.record(
        Feedback(agent="autoscaler", request_id="r8", score=-0.5, at=utc_now())
    )  # no text
    source = EXAMPLE.read_text()
    line = source.splitlines()[65]
    patch = f"```diff\n@@ -66,1 +66,1 @@\n-{line}\n+{line}  # reviewed\n```"
    server, url, asked = await _fake_model([patch])
    try:
        config = small_config(
            operators=("llm",), llm_url=url, llm_model="scripted", generations=1,
            population=2, islands=1, max_evals=3, search_id="llm-feedback",
        )  # fmt: skip
        await run_search(nc, js, config)
    finally:
        server.close()
        await server.wait_closed()
    state = project(await LineageStream(js, "autoscaler").read("llm-feedback"))
    assert asked, state.discarded
    prompt = str(asked[0]["messages"][1]["content"])  # type: ignore[index]
    said = prompt.split("Users' feedback on its answers", 1)[1]
    assert said.index("-1 on r7: too slow") < said.index("+0.5 on r9: ok now")
    assert "r8" not in said
    children = [c for c in state.children.values() if c.operator == "llm"]
    assert children
    assert children[0].source.splitlines()[65].endswith("# reviewed")


async def test_hostile_children_do_not_harm_live_traffic(nats_url: str, tmp_path: Path) -> None:
    """All four hostile children evaluated at once, beside a live agent serving requests on
    the same machine and bus: every request is answered and live's state counts them all."""
    jobs = []
    for kind, hostile in sorted(HOSTILE.items()):
        candidate = tmp_path / f"{kind}.py"
        candidate.write_text(
            EXAMPLE.read_text().replace(
                "    expected = cmd.load\n", hostile + "    expected = cmd.load\n", 1
            )
        )
        jobs.append(
            EvaluationJob(
                candidate=candidate, baseline=EXAMPLE, dataset=DATASET, expected_name="autoscaler"
            )
        )
    pool = EvaluationPool(len(jobs), timeout=5.0, memory_mb=256, cpu_seconds=2)
    async with running_platform(nats_url, agents=("counter",)) as platform:
        evaluations = asyncio.ensure_future(asyncio.gather(*(pool.run(job) for job in jobs)))
        served = 0
        while not evaluations.done():
            reply = await platform.send("counter", "increment", {"by": 1})
            assert reply["ok"], reply
            served += 1
            # Steady traffic, not a saturating one: SCHED_IDLE children run only on idle cores.
            await asyncio.sleep(0.01)
        results = await evaluations
        recorded = await collect_events(platform.log("counter"))
    assert served > 1
    assert all(r["outcome"] in ("killed", "failed") and r["reason"] for r in results), results
    assert [e.type for e in recorded].count("incremented") == served


async def test_tool_calls_are_answered_from_the_record_and_never_executed(
    tmp_path: Path,
) -> None:
    """A candidate's tool call that matches a recorded result gets that result (and its
    continuation runs); one that does not is counted unknown. Nothing is executed: the URLs
    point at a port where nothing listens."""
    fetcher = Path(__file__).parent / "agents_for_tests" / "fetcher.py"
    recorded = {"status": 200, "content_type": "text/plain", "body": "hello"}
    known: dict[str, Any] = {  # the call's input as the tool call event records it
        "method": "GET", "url": "http://127.0.0.1:9/known", "headers": {}, "body": None,
        "json_body": None, "parse_json": False,
    }  # fmt: skip
    dataset = tmp_path / "fetches.jsonl"
    rows = [
        {"id": "f1", "command": "fetch", "data": {"url": known["url"]},
         "tool_results": {"http:" + json.dumps(known, sort_keys=True, separators=(",", ":")):
                          recorded}},
        {"id": "f2", "command": "fetch", "data": {"url": "http://127.0.0.1:9/unknown"}},
        {"id": "f3", "command": "ping"},
    ]  # fmt: skip
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows))
    pool = EvaluationPool(1, timeout=300.0, memory_mb=512)
    result = await pool.run(
        EvaluationJob(
            candidate=fetcher,
            baseline=fetcher,
            dataset=dataset,
            expected_name="fetcher",
            attr="fetcher",
        )
    )
    assert result["outcome"] == "ok", result
    assert (result["tools_answered"], result["tools_unknown"]) == (1, 1)
    assert result["failures"] == 0
