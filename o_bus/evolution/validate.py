"""Checking a code version before it is stored: import it in a sandboxed child process.

The child (``python -m o_bus.evolution.validate FILE [ATTR]`` under the sandbox) imports the
file and reports on one JSON line whether it defines exactly one AgentDefinition (or ``ATTR``)
and what that definition declares. The parent enforces a wall-clock limit with a
:class:`~o_bus.evolution.sandbox.Watchdog` and compares the definition's name with the one the
agent is registered with. Nothing here imports candidate code into the calling process.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from o_bus.errors import ErrorCode, InvalidRequestError
from o_bus.evolution.sandbox import SandboxLimits, Watchdog, spawn_sandboxed

__all__ = [
    "MAX_CODE_BYTES",
    "InvalidCodeError",
    "ValidatedCode",
    "check_code_file",
    "validate_code",
]

MAX_CODE_BYTES = 1024 * 1024
RESULT_MARKER = "O-BUS-VALIDATION-RESULT "
_OUTPUT_TAIL = 64 * 1024


class InvalidCodeError(InvalidRequestError):
    """A code version was refused: it does not import or does not define the right agent."""

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(ErrorCode.INVALID_PAYLOAD, message, details=details)


class ValidatedCode(BaseModel):
    """What the child found in the file."""

    model_config = ConfigDict(frozen=True)
    definition_name: str
    code_version: str
    state_schema_version: int
    commands: list[str]
    event_types: list[str]
    sandbox: str


def check_code_file(path: Path) -> bytes:
    """The file's bytes, if it is a ``.py`` file of at most :data:`MAX_CODE_BYTES`."""
    if path.suffix != ".py":
        raise InvalidCodeError(f"{path.name}: a code version is one Python source file (.py)")
    if not path.is_file():
        raise InvalidCodeError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_CODE_BYTES:
        raise InvalidCodeError(
            f"{path.name} is {size:,} bytes; a code version may be at most {MAX_CODE_BYTES:,}"
        )
    return path.read_bytes()


async def _tail(stream: asyncio.StreamReader | None, limit: int = _OUTPUT_TAIL) -> str:
    """Read ``stream`` to the end, keeping only its last ``limit`` bytes."""
    kept = bytearray()
    while stream is not None and (chunk := await stream.read(65536)):
        kept += chunk
        if len(kept) > limit:
            del kept[:-limit]
    return kept.decode(errors="replace")


def _death(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "?"
        return f"killed by signal {-returncode} ({name})"
    return f"exited with code {returncode}"


async def validate_code(
    path: Path,
    *,
    expected_name: str | None,
    attr: str | None = None,
    timeout: float = 20.0,
    limits: SandboxLimits | None = None,
) -> ValidatedCode:
    """Import ``path`` in a sandboxed child within ``timeout`` seconds and check what it defines.

    Raises :class:`InvalidCodeError` with the child's error text when the file does not
    import (syntax error, exception, loops past the timeout, exceeds the limits) or does not
    define one AgentDefinition named ``expected_name``.
    """
    source = await asyncio.to_thread(check_code_file, path)
    limits = limits or SandboxLimits(cpu_seconds=math.ceil(timeout) + 1)
    with tempfile.TemporaryDirectory(prefix="o-bus-validate-") as folder:
        # The child sees a private copy in a folder of its own, nothing else of the caller's.
        copy = Path(folder) / path.name
        await asyncio.to_thread(copy.write_bytes, source)
        process = await spawn_sandboxed(
            ["-m", "o_bus.evolution.validate", str(copy), attr or ""],
            limits,
            cwd=folder,
            env={"PYTHONSAFEPATH": "1"},  # the file's folder is not put on sys.path: a file
            # named like a standard module (copy.py) must not shadow it
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            inherit_env=False,
            workdir=Path(folder),
        )
        async with Watchdog(process.pid, timeout) as watchdog:
            out, err = await asyncio.gather(_tail(process.stdout), _tail(process.stderr))
            returncode = await process.wait()
    if watchdog.fired:
        raise InvalidCodeError(
            f"importing {path.name} did not finish within {timeout:g} s "
            "(does it loop or block at import?); the validation process was killed",
            details={"stderr": err[-2000:]},
        )
    lines = [line for line in out.splitlines() if line.startswith(RESULT_MARKER)]
    if not lines:
        raise InvalidCodeError(
            f"importing {path.name} failed: the validation process {_death(returncode)}"
            + (f": {err.strip()[-1000:]}" if err.strip() else ""),
            details={"stderr": err[-2000:]},
        )
    result = json.loads(lines[-1].removeprefix(RESULT_MARKER))
    if not result.get("ok"):
        raise InvalidCodeError(f"{path.name}: {result.get('error')}", details=result)
    try:
        found = ValidatedCode.model_validate(result["definition"])
    except (KeyError, ValidationError) as exc:
        raise InvalidCodeError(f"{path.name}: the validation process gave no valid answer") from exc
    if expected_name is not None and found.definition_name != expected_name:
        raise InvalidCodeError(
            f"{path.name} defines agent {found.definition_name!r}, but this agent runs "
            f"definition {expected_name!r}; a new version must keep the definition's name",
            details={"found": found.definition_name, "expected": expected_name},
        )
    return found


# -- the child ------------------------------------------------------------------------------


def _describe(exc: BaseException, path: Path) -> str:
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})"
    if isinstance(exc, MemoryError):
        return "MemoryError: importing it exceeded the sandbox's memory limit"
    if isinstance(exc, SystemExit):
        return f"the module called exit({exc.code!r}) at import"
    where = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    at = f" (line {where[-1].lineno})" if where else ""
    return f"importing it raised {type(exc).__name__}: {exc}{at}"


def _inspect(path: Path, attr: str | None) -> dict[str, Any]:
    from o_bus.agent.catalogue import find_definition, import_file
    from o_bus.errors import ConfigurationError
    from o_bus.evolution.sandbox import current_report

    try:
        module = import_file(path, "o_bus_code_validation", source=path.read_bytes())
    except BaseException as exc:  # anything the candidate raises is its error, reported
        return {"ok": False, "error": _describe(exc, path)}
    try:
        definition = find_definition(module, attr, path.name)
    except ConfigurationError:
        what = f"attribute {attr!r}" if attr else "exactly one AgentDefinition at module level"
        return {"ok": False, "error": f"it does not define {what}"}
    report = current_report()
    return {
        "ok": True,
        "definition": {
            "definition_name": definition.name,
            "code_version": definition.version,
            "state_schema_version": definition.state_schema_version,
            "commands": sorted(definition.command_types),
            "event_types": sorted(definition.event_types),
            "sandbox": report.summary() if report else "none",
        },
    }


def main(argv: list[str]) -> None:
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # whatever the module prints must not be taken for the answer
    result = _inspect(Path(argv[0]), argv[1] if len(argv) > 1 and argv[1] else None)
    real_stdout.write("\n" + RESULT_MARKER + json.dumps(result, default=str) + "\n")
    real_stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
