"""`o-bus bench security`: what the secure setup costs the request path.

Three servers side by side in one invocation, measured in turn at each level: ``off`` (no
credentials, no TLS, no store encryption: `o-bus up --insecure`), ``default`` (every process
connects as its own nkey identity with the permissions `o-bus up` gives it: `o-bus up` with
no flag) and ``secure`` (the same over TLS, onto a JetStream store encrypted at rest:
`o-bus up --tls --store-key-file FILE`).
At each concurrency level the project path (``o.req.counter``, splitter + agent, as the client
identity) and the raw nats-py floor (same server, operator identity) are measured in turn.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from o_bus.security.bus import BusSecurity
from o_bus.security.identities import AGENT as AGENT_ROLE
from o_bus_bench.arguments import at_least_one, levels, positive
from o_bus_bench.load import run_level
from o_bus_bench.stack import AGENT, PROJECT_SUBJECT, RAW_SUBJECT, Stack
from o_bus_bench.stats import LevelResult

__all__ = ["main"]

SETTINGS = ("off", "default", "secure")


def _security(work_dir: Path, *, encrypted: bool) -> BusSecurity:
    """Credentials and permissions; with ``encrypted``, TLS and a store key too."""
    key_file = None
    if encrypted:
        key_file = work_dir / "store.key"
        key_file.write_text(secrets.token_hex(32))
    security = BusSecurity.prepare(work_dir, tls=encrypted, store_key_file=key_file)
    security.identities.ensure(AGENT_ROLE, AGENT)  # before the server starts: it knows it
    return security


def _median(results: list[LevelResult]) -> LevelResult:
    return sorted(results, key=lambda result: result.rps)[(len(results) - 1) // 2]


def _measure(
    stack: Stack, setting: str, concurrency: int, args: argparse.Namespace
) -> dict[str, LevelResult]:
    found = {}
    for subject, role in ((PROJECT_SUBJECT, "client"), (RAW_SUBJECT, "raw")):
        result = run_level(
            stack.url,
            subject,
            concurrency,
            warmup=args.warmup,
            duration=args.duration,
            watch={"server": stack.pids()["server"]},
            env=stack.env(role),
        )
        print(
            f"[{setting}] {subject} C={concurrency}: {result.rps:,.0f} req/s, "
            f"p99 {result.p99_ms:.2f} ms",
            file=sys.stderr,
            flush=True,
        )
        found[subject] = result
    return found


def _run(root: Path, args: argparse.Namespace) -> dict[str, dict[int, dict[str, Any]]]:
    """The stacks run side by side; each level goes round them in turn (off, default,
    secure, off, ...), so a change in the machine's load falls on all alike."""
    for setting in SETTINGS:
        (root / setting).mkdir(parents=True)
    report: dict[str, dict[int, dict[str, Any]]] = {setting: {} for setting in SETTINGS}
    with (
        Stack(root / "off", None) as off,
        Stack(
            root / "default", None, security=_security(root / "default", encrypted=False)
        ) as default,
        Stack(root / "secure", None, security=_security(root / "secure", encrypted=True)) as secure,
    ):
        stacks = {"off": off, "default": default, "secure": secure}
        for concurrency in args.levels:
            runs: dict[str, list[dict[str, LevelResult]]] = {s: [] for s in SETTINGS}
            for _ in range(args.repeats):
                for setting in SETTINGS:
                    runs[setting].append(_measure(stacks[setting], setting, concurrency, args))
            for setting in SETTINGS:
                project = _median([run[PROJECT_SUBJECT] for run in runs[setting]])
                raw = _median([run[RAW_SUBJECT] for run in runs[setting]])
                report[setting][concurrency] = {
                    "project_rps": project.rps,
                    "project_p99_ms": project.p99_ms,
                    "raw_rps": raw.rps,
                    "raw_p99_ms": raw.p99_ms,
                    "errors": project.errors + raw.errors,
                }
    return report


def _table(report: dict[str, dict[int, dict[str, Any]]]) -> str:
    lines = [
        "| C | setting | o-bus req/s | o-bus p99 ms | raw req/s | raw p99 ms | o-bus/raw |",
        "|---|---|---|---|---|---|---|",
    ]
    off = report["off"]
    for concurrency in off:
        for setting in SETTINGS:
            row = report[setting][concurrency]
            share = row["project_rps"] / row["raw_rps"] if row["raw_rps"] else 0.0
            lines.append(
                f"| {concurrency} | {setting} | {row['project_rps']:,.0f} | "
                f"{row['project_p99_ms']:.2f} | {row['raw_rps']:,.0f} | "
                f"{row['raw_p99_ms']:.2f} | {share:.0%} |"
            )
        for setting in SETTINGS[1:]:
            cost = 1 - report[setting][concurrency]["project_rps"] / off[concurrency]["project_rps"]
            lines.append(
                f"| {concurrency} | {setting} costs | {cost:.1%} of o-bus throughput | | | | |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="o-bus bench security", description=__doc__)
    parser.add_argument("--duration", type=positive, default=5.0)
    parser.add_argument("--warmup", type=positive, default=1.0)
    parser.add_argument("--levels", type=levels, default=[1, 16, 64])
    parser.add_argument("--repeats", type=at_least_one, default=1)
    parser.add_argument("--quick", action="store_true", help="1 s per level: a smoke run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 1.0, 0.3
    with tempfile.TemporaryDirectory(prefix="o-bus-bench-security-") as scratch:
        report = _run(Path(scratch), args)
    if args.json:
        print(json.dumps(report))
    else:
        print(_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
