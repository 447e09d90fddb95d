"""Test agent ``crashy``: a counter whose ``crash`` command kills the process.

``crash`` is a poison request: its handler calls ``os._exit(13)`` before anything is appended,
so the request stays unprocessed in the WAL and every restarted process gets it again and dies
again, until the supervisor escalates.

The "fix" an operator would deploy is simulated without changing code: when the file named by
the environment variable ``CRASHY_FIX_FILE`` exists, ``crash`` is rejected instead. (That check
is I/O inside a handler, which real agents must not do; this is a test double.)

Loaded by path: ``--agent /abs/path/tests/agents_for_tests/crashy.py:crashy``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from o_bus import AgentDefinition, Command, CommandRejected, Event, State

__all__ = ["CRASH_EXIT_CODE", "FIX_FILE_ENV", "crashy"]

CRASH_EXIT_CODE = 13
FIX_FILE_ENV = "CRASHY_FIX_FILE"


class CrashyState(State):
    value: int = 0


class Increment(Command):
    by: int = Field(default=1, ge=-(2**53), le=2**53)


class Crash(Command):
    pass


class Incremented(Event):
    by: int


crashy: AgentDefinition[CrashyState] = AgentDefinition(
    "crashy", state=CrashyState, version="1.0.0", description="A counter with a poison command."
)


def _fixed() -> bool:
    path = os.environ.get(FIX_FILE_ENV, "")
    return bool(path) and Path(path).exists()


@crashy.command
def increment(state: CrashyState, cmd: Increment) -> Incremented:
    return Incremented(by=cmd.by)


@crashy.command
def crash(state: CrashyState, cmd: Crash) -> None:
    if _fixed():
        raise CommandRejected("crash is defused")
    os._exit(CRASH_EXIT_CODE)


@crashy.applies
def apply_incremented(state: CrashyState, event: Incremented) -> CrashyState:
    return state.model_copy(update={"value": state.value + event.by})
