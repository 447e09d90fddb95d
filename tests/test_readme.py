"""The README's examples run against a real platform (`o-bus up`), so they cannot drift.

- ``console`` blocks: each ``$ .venv/bin/o-bus ...`` line runs (the CLI's ``main``, in this
  process for speed; ``tests/test_cli_habits.py`` runs the console script itself); the exit
  code is 0, or what the line's comment says (``exit 1``, ``exit 2``); the lines shown under
  it must match what it printed, line by line, ``...`` matching anything.
- ``python`` blocks run in order (top-level ``await`` allowed); one marked
  ``<!-- readme-test: file NAME -->`` is written into that file instead (the account agent,
  which a console block then adds), one marked ``<!-- readme-test: fragment (why) -->`` only
  has to parse.
- ``bash`` blocks (installation), ``json`` (wire shapes) and unlabelled blocks (diagrams,
  long searches) are not run.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from platform_process import UpProcess

from o_bus.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(
    r"(?:^<!-- readme-test: (?P<mark>[^\n]*?) -->\n)?^```(?P<lang>\w*)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
DEFAULT_URL = "nats://127.0.0.1:4222"


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    mark: str
    body: str


def readme_blocks() -> list[Block]:
    text = README.read_text()
    return [
        Block(text[: m.start("body")].count("\n") + 1, m["lang"], m["mark"] or "", m["body"])
        for m in BLOCK.finditer(text)
    ]


@dataclass(frozen=True)
class Step:
    line: int
    command: str
    expected: tuple[str, ...]


def console_steps(block: Block) -> Iterator[Step]:
    command, start = "", block.line
    expected: list[str] = []
    for offset, line in enumerate(block.body.splitlines()):
        if line.startswith("$ "):
            if command:
                yield Step(start, command, tuple(expected))
            command, expected, start = line[2:], [], block.line + offset
        elif line.strip():
            expected.append(line)
    if command:
        yield Step(start, command, tuple(expected))


def _normal(line: str) -> str:
    return " ".join(line.split())


def line_pattern(shown: str) -> re.Pattern[str]:
    escaped = re.escape(_normal(shown))
    return re.compile(escaped.replace(re.escape("..."), ".*").replace(re.escape("…"), ".*"))


def mismatch(expected: tuple[str, ...], printed: str) -> str | None:
    """Why ``printed`` does not show ``expected`` (line by line, from the top), or None."""
    lines = [_normal(line) for line in printed.splitlines() if line.strip()]
    if len(lines) < len(expected):
        return f"printed {len(lines)} lines, the README shows {len(expected)}"
    for shown, line in zip(expected, lines, strict=False):
        if not line_pattern(shown).fullmatch(line):
            return f"README: {_normal(shown)}\nprinted: {line}"
    return None


def expected_exit(command: str) -> int:
    found = re.search(r"#.*\bexit (\d)", command)
    return int(found.group(1)) if found else 0


def test_the_readme_parser_sees_every_example() -> None:
    blocks = readme_blocks()
    langs = {b.lang for b in blocks}
    assert {"console", "python", "bash"} <= langs
    steps = [s for b in blocks if b.lang == "console" for s in console_steps(b)]
    assert any("fork counter --at 1" in s.command for s in steps)
    assert (
        mismatch(('{"ok": true, ..., "seq": 1}',), '{"ok": true, "agent": "c", "seq": 1}') is None
    )
    assert mismatch(('{"ok": true, ..., "seq": 1}',), '{"ok": true, "seq": 2}') is not None
    for block in blocks:
        if block.lang == "python":
            ast.parse(block.body)  # fragments too: every Python example is valid Python


async def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = await asyncio.to_thread(cli_main.main, argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


async def run_python(body: str, url: str) -> None:
    code = compile(
        body.replace(DEFAULT_URL, url), str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    )
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    result = eval(code, namespace)  # the README's own code, nothing else
    if inspect.iscoroutine(result):
        await result


@pytest.mark.slow
async def test_the_readme_examples_run_against_a_real_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As the README says: `o-bus up` in a folder, the other commands in the same folder (they
    # find its URL and its code-signing key in ./.o-bus).
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.delenv("O_BUS_NATS_URL", raising=False)
    monkeypatch.delenv("O_BUS_DATA_DIR", raising=False)
    up = UpProcess(work / ".o-bus")
    up.start()
    try:
        url = await asyncio.to_thread(up.wait_up)
        monkeypatch.setattr(cli_main, "run", asyncio.run)
        capsys.readouterr()
        ran = 0
        for block in readme_blocks():
            where = f"README.md line {block.line}"
            if block.lang == "python" and block.mark.startswith("file "):
                target = work / block.mark.removeprefix("file ").strip()
                with target.open("a") as file:
                    file.write(block.body + "\n\n")
            elif block.lang == "python" and not block.mark.startswith("fragment"):
                monkeypatch.chdir(ROOT)  # a program elsewhere names the platform's data dir
                monkeypatch.setenv("O_BUS_DATA_DIR", str(up.data_dir))
                await run_python(block.body, url)
                monkeypatch.delenv("O_BUS_DATA_DIR")
                ran += 1
            elif block.lang == "console":
                monkeypatch.chdir(work)
                for step in console_steps(block):
                    words = shlex.split(step.command, comments=True)
                    assert words[0].endswith("o-bus"), f"{where}: {step.command}"
                    code, out, err = await run_cli(words[1:], capsys)
                    place = f"README.md line {step.line}: {step.command}"
                    assert code == expected_exit(step.command), f"{place}\n{out}{err}"
                    assert "Traceback" not in err, place
                    why = mismatch(step.expected, out)
                    assert why is None, f"{place}\n{why}"
                    ran += 1
        assert ran >= 20, "the README's examples ran"
    finally:
        await asyncio.to_thread(up.close)
