"""Code versions: validated in the sandbox, stored by sha256, listed, fetched, loaded together."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from support import run_cli

from o_bus.agent.definition import AgentDefinition
from o_bus.config import StorageConfig
from o_bus.errors import (
    AgentNotFoundError,
    CodeVersionNotFoundError,
    InvalidRequestError,
    StorageError,
)
from o_bus.events.model import Command
from o_bus.evolution.code_store import CodeStore, digest_of
from o_bus.evolution.deploy import deploy
from o_bus.evolution.validate import MAX_CODE_BYTES, InvalidCodeError
from o_bus.store import layout
from o_bus.store.event_records import utc_now
from o_bus.store.provision import provision
from o_bus.store.registry import AgentRecord, Registry
from o_bus.wire.codec import Encoding

COUNTER_V = """
from o_bus.agent.definition import AgentDefinition
from o_bus.agents.counter import CounterState, Increment, Incremented

{name} = AgentDefinition("{name}", state=CounterState, version="{version}")


@{name}.command
def increment(state: CounterState, cmd: Increment) -> Incremented:
    return Incremented(by=cmd.by * {factor})


@{name}.applies
def _(state: CounterState, event: Incremented) -> CounterState:
    return state.model_copy(update={{"value": state.value + event.by}})
"""


def counter_source(factor: int = 1, version: str = "2.0.0", name: str = "counter") -> str:
    return COUNTER_V.format(factor=factor, version=version, name=name)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
async def js(nc: Client) -> JetStreamContext:
    js = nc.jetstream()
    await provision(js, StorageConfig(storage="memory"))
    registry = Registry(js)
    for name in ("counter", "other-counter"):
        await registry.register(AgentRecord(name=name, definition="counter", created_at=utc_now()))
    await registry.register(AgentRecord(name="echo", definition="echo", created_at=utc_now()))
    return js


def run(definition: AgentDefinition[Any], by: int) -> list[Any]:
    command: Command = definition.parse_command(
        "increment", f'{{"by": {by}}}'.encode(), Encoding.JSON
    )
    return [e.model_dump() for e in definition.decide(definition.initial_state(), command).events]


async def stored_objects(js: JetStreamContext) -> int:
    info = await js.stream_info(f"OBJ_{layout.CODE_BUCKET}")
    return int(info.state.messages)


async def test_a_valid_file_is_stored_listed_and_fetched(
    js: JetStreamContext, tmp_path: Path
) -> None:
    source = counter_source(factor=2)
    path = write(tmp_path, "double.py", source)
    version = await deploy(
        js, "counter", path, by="tester", note="doubles", cache_dir=tmp_path / "c"
    )
    assert version.digest == digest_of(source.encode())
    assert version.agent == "counter"
    assert version.definition_name == "counter"
    assert version.code_version == "2.0.0"
    assert version.state_schema_version == 1
    assert version.commands == ["increment"]
    assert version.event_types == ["incremented"]
    assert (version.filename, version.size) == ("double.py", len(source.encode()))
    assert (version.deployed_by, version.note) == ("tester", "doubles")
    store = CodeStore(js, tmp_path / "cache")
    assert await store.list("counter") == [version]
    assert await store.list("echo") == []
    assert await store.get("counter", version.hex[:8]) == version
    assert await store.get("counter", version.digest.upper().replace("SHA256", "sha256")) == version
    fetched = await store.fetch(version.digest)
    assert fetched == tmp_path / "cache" / f"{version.hex}.py"
    assert fetched.read_text() == source


async def test_the_same_content_is_one_object(js: JetStreamContext, tmp_path: Path) -> None:
    path = write(tmp_path, "v.py", counter_source())
    first = await deploy(js, "counter", path, by="a", note="first")
    again = await deploy(js, "counter", write(tmp_path, "copy.py", counter_source()), by="b")
    assert again == first  # the first deployment's record stands
    fork = await deploy(js, "other-counter", path, by="c")
    assert fork.digest == first.digest
    assert fork.agent == "other-counter"
    assert await stored_objects(js) == 2  # one chunk and one metadata record: one object
    store = CodeStore(js, tmp_path / "cache")
    assert [v.digest for v in await store.list("counter")] == [first.digest]


BROKEN = {
    "syntax.py": ("def broken(:\n", "SyntaxError"),
    "raises.py": (
        "x = 1\nraise RuntimeError('no database here')\n",
        "RuntimeError: no database here (line 2)",
    ),
    "loops.py": ("while True:\n    pass\n", "did not finish within"),
    "exits.py": ("import sys\nsys.exit(3)\n", "exit(3)"),
    "spawns.py": ("import subprocess\nsubprocess.run(['true'])\n", "may not start processes"),
    "nothing.py": ("x = 1\n", "does not define exactly one AgentDefinition"),
    "wrong_name.py": (counter_source(name="adder"), "defines agent 'adder'"),
}


@pytest.mark.parametrize("filename", sorted(BROKEN))
async def test_broken_files_are_rejected_with_a_clear_message(
    js: JetStreamContext, tmp_path: Path, filename: str
) -> None:
    text, expected = BROKEN[filename]
    path = write(tmp_path, filename, text)
    with pytest.raises(InvalidCodeError) as caught:
        await deploy(js, "counter", path, by="t", timeout=5)
    assert expected in caught.value.message
    assert filename in caught.value.message
    assert await CodeStore(js, tmp_path).list("counter") == []
    assert await stored_objects(js) == 0


async def test_files_that_are_not_python_or_too_big_are_rejected(
    js: JetStreamContext, tmp_path: Path
) -> None:
    with pytest.raises(InvalidCodeError, match=r"one Python source file \(\.py\)"):
        await deploy(js, "counter", write(tmp_path, "agent.txt", counter_source()), by="t")
    big = write(tmp_path, "big.py", counter_source() + "#" * MAX_CODE_BYTES)
    with pytest.raises(InvalidCodeError, match="may be at most"):
        await deploy(js, "counter", big, by="t")
    with pytest.raises(InvalidCodeError, match="no such file"):
        await deploy(js, "counter", tmp_path / "missing.py", by="t")
    with pytest.raises(AgentNotFoundError, match="no agent named 'ghost'"):
        await deploy(js, "ghost", write(tmp_path, "g.py", counter_source()), by="t")
    assert await stored_objects(js) == 0


async def test_a_file_with_several_definitions_needs_the_attribute(
    js: JetStreamContext, tmp_path: Path
) -> None:
    text = counter_source(name="counter") + counter_source(name="spare").split("\n", 3)[3]
    path = write(tmp_path, "two.py", text)
    with pytest.raises(InvalidCodeError, match="exactly one AgentDefinition"):
        await deploy(js, "counter", path, by="t")
    version = await deploy(js, "counter", path, by="t", attr="counter")
    definition = await CodeStore(js, tmp_path / "cache").load("counter", version.digest)
    assert definition.name == "counter"


async def test_two_versions_load_side_by_side(js: JetStreamContext, tmp_path: Path) -> None:
    one = await deploy(js, "counter", write(tmp_path, "one.py", counter_source(1, "2.0.0")), by="t")
    three = await deploy(
        js, "counter", write(tmp_path, "three.py", counter_source(3, "3.0.0")), by="t"
    )
    store = CodeStore(js, tmp_path / "cache")
    first = await store.load("counter", one.digest)
    second = await store.load("counter", three.hex[:10])
    assert (first.version, second.version) == ("2.0.0", "3.0.0")
    assert run(first, 5) == [{"by": 5}]
    assert run(second, 5) == [{"by": 15}]
    assert await store.load("counter", one.digest) is first  # one module per digest
    assert first.state_type is second.state_type  # both import the same state model


async def test_fetch_checks_the_hash(js: JetStreamContext, tmp_path: Path) -> None:
    source = counter_source(factor=7)
    version = await deploy(js, "counter", write(tmp_path, "seven.py", source), by="t")
    cache = tmp_path / "cache"
    store = CodeStore(js, cache)
    path = await store.fetch(version.digest)
    path.write_text(source.replace("* 7", "* 700"))  # tampered copy in the cache
    assert (await store.fetch(version.digest)).read_text() == source  # fetched again
    definition = await CodeStore(js, tmp_path / "other").load("counter", version.digest)
    assert run(definition, 1) == [{"by": 7}]

    objects = await js.object_store(layout.CODE_BUCKET)
    await objects.put(version.hex, b"counter = None\n")  # the stored object replaced
    path.unlink()
    with pytest.raises(StorageError, match="refusing to use it"):
        await store.fetch(version.digest)
    assert not path.exists()


async def test_version_references(js: JetStreamContext, tmp_path: Path) -> None:
    sources: dict[str, str] = {}
    n = 0
    while True:  # two files whose digests share their first four hex digits
        text = counter_source() + f"# {n}\n"
        prefix = hashlib.sha256(text.encode()).hexdigest()[:4]
        if prefix in sources:
            break
        sources[prefix] = text
        n += 1
    a = await deploy(js, "counter", write(tmp_path, "a.py", sources[prefix]), by="t")
    b = await deploy(js, "counter", write(tmp_path, "b.py", text), by="t")
    store = CodeStore(js, tmp_path / "cache")
    with pytest.raises(InvalidRequestError, match="ambiguous") as caught:
        await store.get("counter", prefix)
    assert a.digest in caught.value.message
    assert b.digest in caught.value.message
    with pytest.raises(InvalidRequestError, match="too short"):
        await store.get("counter", prefix[:3])
    with pytest.raises(InvalidRequestError, match="not a code version"):
        await store.get("counter", "not-hex!")
    with pytest.raises(CodeVersionNotFoundError, match="o-bus versions counter"):
        await store.get("counter", "0" * 64 if not a.hex.startswith("0" * 8) else "f" * 64)
    with pytest.raises(CodeVersionNotFoundError):
        await store.get("other-counter", a.hex[:12])  # a version of another agent


async def test_cli_deploy_and_versions(js: JetStreamContext, nats_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, "cli.py", counter_source(factor=4))
    code, out, err = await run_cli(
        "deploy", "counter", str(path), "--note", "x4", "--nats", nats_url, "--json"
    )
    assert code == 0, err
    deployed = json.loads(out)
    assert deployed["note"] == "x4"
    assert deployed["digest"] == digest_of(path.read_bytes())
    code, out, err = await run_cli("versions", "counter", "--nats", nats_url, "--json")
    assert code == 0, err
    assert [v["digest"] for v in json.loads(out)] == [deployed["digest"]]
    code, out, _ = await run_cli("versions", "counter", "--nats", nats_url)
    assert deployed["digest"][:19] in out
    assert "x4" in out
    bad = write(tmp_path, "bad.py", "def broken(:\n")
    code, out, err = await run_cli("deploy", "counter", str(bad), "--nats", nats_url)
    assert code == 2
    assert "bad.py: SyntaxError" in err
    assert "[invalid_payload]" in err
