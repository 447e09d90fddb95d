"""Run a Python program inside the sandbox: ``python -m o_bus.evolution.sandboxed PROGRAM``.

PROGRAM is ``-m MODULE ARGS...``, ``-c CODE ARGS...`` or ``FILE ARGS...``, as for ``python``.
The limits come from ``$O_BUS_SANDBOX_LIMITS`` (see
:func:`~o_bus.evolution.sandbox.spawn_sandboxed`).
The sandbox is entered before the program's first line, in the same process.
"""

from __future__ import annotations

import runpy
import sys

from o_bus.evolution.sandbox import enter_sandbox, limits_from_env


def main(argv: list[str]) -> None:
    enter_sandbox(limits_from_env())
    if not argv:
        raise SystemExit("usage: python -m o_bus.evolution.sandboxed (-m MODULE | -c CODE | FILE)")
    if argv[0] == "-m" and len(argv) > 1:
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    elif argv[0] == "-c" and len(argv) > 1:
        sys.argv = ["-c", *argv[2:]]
        exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
    else:
        sys.argv = list(argv)
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
