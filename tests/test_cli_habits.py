"""The CLI's habits: one line for people and strict JSON for scripts, a clear message and
exit code 2 (never a traceback) for user errors, every default in `--help`, the current
candidate's diff in `evolve status`, progress bars on terminals only, shell completion."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from support import Platform, run_cli, running_platform

from o_bus.cli import main as cli_main
from o_bus.cli.completion import completion_script
from o_bus.cli.evolve import _plan
from o_bus.cli.parsers import actions, meaningful_default, subcommands
from o_bus.common.progress import Progress
from o_bus.evolution.evolution_store import EvolutionStore
from o_bus.evolution.plan import Evolution, EvolutionPlan
from o_bus.evolution.records import DiffRecord
from o_bus.store import layout

# Commands that run services or parse their own options: no result to print as JSON.
NOT_PRINTING = {"up", "run", "cluster", "console", "bench", "completion"}


@pytest.fixture
async def platform(nats_url: str) -> AsyncIterator[Platform]:
    async with running_platform(nats_url) as running:
        yield running


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """``await cli(*argv)`` runs `o-bus ARGV` in this process (on a thread with its own plain
    asyncio loop) and returns (exit code, stdout, stderr): the same code as the console
    script, without a second of interpreter start-up per call."""
    monkeypatch.setattr(cli_main, "run", asyncio.run)
    capsys.readouterr()

    async def call(*argv: str) -> tuple[int, str, str]:
        try:
            code = await asyncio.to_thread(cli_main.main, list(argv))
        except SystemExit as exit_:  # argparse's own usage errors
            code = int(exit_.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return call


def all_parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    from o_bus.cli.self_improve import build_parser as self_improve_parser

    def walk(prefix: str, parser: argparse.ArgumentParser) -> Iterator[tuple[str, Any]]:
        yield prefix, parser
        for name, child in subcommands(parser):
            yield from walk(f"{prefix} {name}", child)

    yield from walk("o-bus", cli_main.build_parser())
    yield from walk("o-bus evolve", self_improve_parser())


def test_help_shows_every_default_that_matters() -> None:
    missing = []
    for name, parser in all_parsers():
        text = " ".join(parser.format_help().split())
        for action in actions(parser):
            if action.option_strings and meaningful_default(action):
                shown = f"(default: {action.default}"
                if shown not in text:
                    missing.append(f"{name} {action.option_strings[0]} {shown}")
    assert not missing, missing


def test_gate_defaults_in_help_are_the_ones_the_arbiter_applies() -> None:
    args = cli_main.build_parser().parse_args(["evolve", "start", "counter", "v1"])
    assert _plan(args) == EvolutionPlan()
    evolve = dict(subcommands(cli_main.build_parser()))["evolve"]
    shown = " ".join(evolve.format_help().split())
    for option, value in (("--min-requests", 50), ("--max-error-rate", 0.01), ("--alpha", 0.05)):
        assert option in shown
        assert f"(default: {value})" in shown


def test_every_command_that_prints_a_result_takes_json() -> None:
    lacking = [
        name
        for name, parser in subcommands(cli_main.build_parser())
        if name not in NOT_PRINTING
        and not any("--json" in a.option_strings for a in actions(parser))
    ]
    assert not lacking


def test_progress_bars_draw_on_a_terminal_only() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = Progress("replaying", 40, unit="events", stream=stream)
        bar(10)
        bar.note("stage two")
        bar(40)
        bar.close()
    assert "[######------------------]" in terminal.getvalue()
    assert "40/40 events 100%" in terminal.getvalue()
    assert pipe.getvalue() == "stage two\n", "a pipe gets the notes, never a bar"


def test_shell_completion_completes_commands_options_and_choices() -> None:
    parser = cli_main.build_parser()
    script = completion_script(parser, "bash", {"evolve": ["red", "triggers"]})

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        probe = (
            f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
            '_o_bus_complete; printf "%s\\n" "${COMPREPLY[@]}"'
        )
        done = subprocess.run(
            ["bash", "-c", probe], capture_output=True, text=True, check=True, timeout=30
        )
        return done.stdout.split()

    assert complete("o-bus", "ev") == ["evolve"]
    assert "--json" in complete("o-bus", "send", "--")
    assert "--at" in complete("o-bus", "state", "counter", "--a")
    assert set(complete("o-bus", "evolve", "")) >= {"start", "status", "search", "red"}
    zsh = completion_script(parser, "zsh")
    assert zsh.startswith("autoload -U +X bashcompinit && bashcompinit")


async def test_user_errors_are_messages_with_exit_code_2(platform: Platform, cli: Any) -> None:
    url = platform.url
    await platform.send("counter", "increment", {"by": 1})
    await platform.send("counter", "increment", {"by": 2})
    # The console script itself, once: no traceback, a message, exit code 2.
    code, out, err = await run_cli("send", "counter", "increment", "notjson", "--nats", url)
    assert (code, out) == (2, "")
    assert "Traceback" not in err
    assert "o-bus send: command data is not valid JSON" in err

    for argv, says in (
        (["query", "counter", "x", "[1", "--nats", url], "not valid JSON"),
        (["query", "counter", "x", "[1]", "--nats", url], "must be a JSON object"),
        (["state", "counter", "--at", "99", "--nats", url], "past the end"),
        (["fork", "counter", "--at", "99", "--into", "c2", "--nats", url], "outside"),
        (["history", "nobody", "--nats", url], "nobody"),
        (["state", "counter", "--at-time", "soon", "--nats", url], "ISO-8601"),
        (["send", "counter", "increment", "--nats", "nats://127.0.0.1:9"], "cannot connect"),
    ):
        code, out, err = await cli(*argv)
        assert code == 2, (argv, out, err)
        assert says in err, (argv, err)
        assert "Traceback" not in err

    code, out, _ = await cli("state", "counter", "--at", "2", "--nats", url)
    assert code == 0
    assert json.loads(out)["state"]["value"] == 3


async def test_people_get_one_line_and_scripts_strict_json(platform: Platform, cli: Any) -> None:
    url = platform.url
    send = ("send", "counter", "increment", '{"by": 2}', "--id", "a", "--nats", url)
    code, out, _ = await cli(*send)
    assert code == 0
    assert out.count("\n") == 1, "one line for a person"
    assert json.loads(out)["seq"] == 1
    assert '"ok": true' in out, "readable spacing, as the README shows"

    code, out, _ = await cli(*send, "--json")
    assert (code, out.count("\n")) == (0, 1)
    assert '"ok":true' in out, "--json: compact JSON"
    assert json.loads(out)["duplicate"] is True

    code, out, _ = await cli("agents", "--nats", url)
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split()[:4] == ["AGENT", "DEFINITION", "STATE", "SEQ"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) >= {"counter", "echo"}
    assert rows["counter"][1:4] == ["counter", "running", "1"]
    assert "{" not in out, "no JSON for a person"

    code, out, _ = await cli("agents", "--json", "--nats", url)
    assert code == 0
    assert out.count("\n") == 1
    assert {row["name"] for row in json.loads(out)} >= {"counter", "echo"}

    for argv in (["state", "counter"], ["history", "counter"], ["versions", "counter"]):
        code, out, err = await cli(*argv, "--json", "--nats", url)
        assert code == 0, (argv, err)
        assert [json.loads(line) for line in out.splitlines()], argv


async def test_evolve_status_shows_the_current_candidates_diff(
    platform: Platform, cli: Any
) -> None:
    js = platform.js

    async def diff(version: str, request_id: str) -> None:
        record = DiffRecord(
            agent="counter",
            version=version,
            code_version="2.0.0",
            live_code_version="1.0.0",
            wal_seq=1,
            request_id=request_id,
            command="increment",
            live={"ok": True},
            candidate={"ok": False},
            fields={"ok": {"live": True, "candidate": False}},
            ignored=[],
        )
        await js.publish(layout.diff_subject("counter"), record.model_dump_json().encode())

    await diff("a" * 64, "earlier-candidate")
    await EvolutionStore(js).request(Evolution(agent="counter", version="b" * 64))
    code, out, err = await cli("evolve", "status", "counter", "--nats", platform.url)
    assert code == 0, err
    assert "earlier-candidate" not in out, "no diff of this candidate yet"
    assert "latest diff" not in out

    await diff("b" * 64, "this-candidate")
    await diff("a" * 64, "another-shadow")
    code, out, err = await cli("evolve", "status", "counter", "--nats", platform.url)
    assert code == 0, err
    assert "request this-candidate" in out
    code, out, _ = await cli("evolve", "status", "counter", "--json", "--nats", platform.url)
    assert json.loads(out)["latest_diff"]["request_id"] == "this-candidate"
