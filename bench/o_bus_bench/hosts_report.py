"""What `o-bus bench hosts` prints: figures per level beside the raw floor, and where the CPU
went (the busiest process, and each role's total)."""

from __future__ import annotations

from typing import Any, Final

from o_bus_bench.hosts_stack import HOSTS
from o_bus_bench.stats import LevelResult

__all__ = ["busiest", "by_role", "render"]

TOTALS: Final = ("machine", "other")  # CpuSampler's totals, not one process
ROLES: Final = ("server", "splitters", "agents", "hosts", "client")


def busiest(result: LevelResult) -> dict[str, Any]:
    """The process that used the most CPU in a run, and how much (% of one core)."""
    usage = {k: v for k, v in result.cpu_percent.items() if k not in TOTALS}
    name = max(usage, key=lambda key: usage[key], default="")
    return {"process": name, "cpu_percent": usage.get(name, 0.0)}


def _role(process: str) -> str:
    if process in HOSTS:
        return "hosts"  # the supervisor of a host (its agent processes are ``HOST/AGENT``)
    if "/" in process or process.startswith("raw-agent-"):
        return "agents"
    if "splitter" in process:
        return "splitters"
    return process  # server, client, other, machine


def by_role(result: LevelResult) -> dict[str, float]:
    """CPU % of one core summed by role: server, splitters, agents, hosts, client, other,
    machine."""
    totals: dict[str, float] = {}
    for name, value in result.cpu_percent.items():
        role = _role(name)
        totals[role] = round(totals.get(role, 0.0) + value, 1)
    return totals


def _table(levels: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"{'agents':>6} | {'project':>8} {'p50':>6} {'p99':>6} | {'raw':>8} {'p50':>6} "
        f"{'p99':>6} | {'ratio':>5} | busiest process, % of a core (project; raw)",
    ]
    for level in levels:
        p, r, top = level["project"], level["raw"], level["busiest"]
        lines.append(
            f"{level['agents']:>6} | {p['rps']:>8,.0f} {p['p50_ms']:>6.1f} {p['p99_ms']:>6.1f}"
            f" | {r['rps']:>8,.0f} {r['p50_ms']:>6.1f} {r['p99_ms']:>6.1f}"
            f" | {level['ratio']:>5.0%} | {top['project']['process']} "
            f"{top['project']['cpu_percent']:.0f}; {top['raw']['process']} "
            f"{top['raw']['cpu_percent']:.0f}"
        )
    return lines


def _cpu_line(level: dict[str, Any], path: str, capacity: int) -> str:
    usage, result = level["cpu_by_role"][path], level[path]
    roles = ", ".join(f"{role} {usage[role]:.0f}" for role in ROLES if role in usage)
    line = (
        f"  {level['agents']} agents, {path}: {roles}; other {usage.get('other', 0):.0f}, "
        f"machine {usage.get('machine', 0):.0f} of {capacity}"
    )
    if result["errors"] or result["timeouts"]:
        line += f" ({result['errors']} errors, {result['timeouts']} timeouts)"
    return line


def render(report: dict[str, Any]) -> str:
    """The table of figures per level, then each run's CPU by role."""
    machine, settings = report["machine"], report["settings"]
    capacity = 100 * (machine["cpus"] or 1)
    lines = [
        f"o-bus bench hosts: {machine['cpus']} cores, {settings['splitters']} splitters, "
        f"hosts {' and '.join(settings['hosts'])}, C={settings['concurrency']}, "
        f"{settings['duration']} s per run after {settings['warmup']} s warm-up",
        f"load average before {machine['loadavg_before']}, after {machine['loadavg_after']}",
        "",
        *_table(report["levels"]),
        "",
        "CPU % of one core by role (other: processes outside the benchmark; machine: all):",
    ]
    for level in report["levels"]:
        lines += [_cpu_line(level, path, capacity) for path in ("project", "raw")]
    return "\n".join(lines) + "\n"
