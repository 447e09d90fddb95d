"""The text report: one table row per configuration, the load and the log, and the targets."""

from __future__ import annotations

from typing import Any, Final

from .options import Options
from .results import ConfigResult

__all__ = ["TARGET_RECOVERY_MS", "TARGET_RSS_MB", "render"]

TARGET_RECOVERY_MS: Final = 100.0  # seed target, median, with a warm standby
TARGET_RSS_MB: Final = 150.0

_CPU_ROLES = ("server", "splitter", "supervisor", "agents", "bench", "other")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _mb(value: float | None) -> str:
    return "-" if not value else f"{value:.0f}"


def render(results: list[ConfigResult], options: Options, machine: dict[str, Any]) -> str:
    lines = [
        f"Recovery after kill -9 of the active agent process under steady load "
        f"({options.rate:g} req/s open loop, timeout "
        f"{options.timeout:g} s, re-sent with the same id)",
        "",
        "| configuration | kills | recovery median ms | p90 | max | new active median ms "
        "| re-sent, then ok, per kill: median (max) | failed per kill: median (max) "
        "| RSS MB active / standby |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        s = result.summary()
        rss = result.rss_mb
        lines.append(
            f"| {result.name} | {s['recovered']}/{s['kills']} | {_ms(s['recovery_median_ms'])} "
            f"| {_ms(s['recovery_p90_ms'])} | {_ms(s['recovery_max_ms'])} "
            f"| {_ms(s['new_active_median_ms'])} "
            f"| {s['resent_ok_per_kill_median']:g} ({s['resent_ok_per_kill_max']}) "
            f"| {s['failed_per_kill_median']:g} ({s['failed_per_kill_max']}) "
            f"| {_mb(rss.get('active'))} / {_mb(rss.get('standby'))} |"
        )
    lines.append("")
    lines += [_details(result) for result in results]
    lines.append("")
    lines += _targets(results)
    lines.append(
        f"machine: {machine['cpus']} cpus, Python {machine['python']}, {machine['platform']}"
    )
    return "\n".join(lines)


def _details(result: ConfigResult) -> str:
    """One line on the load, the log, CPU and the services' RSS of a configuration."""
    cpu, s = result.cpu_percent, result.summary()
    return (
        f"{result.name}: {result.requests} requests in {result.seconds:g} s, "
        f"{result.succeeded} succeeded ({result.requests - result.succeeded} never did), "
        f"at most {result.peak_in_flight} in flight, "
        f"{result.shed} not sent (too many in flight), {result.unattributed_failures} "
        f"failed attempts before the first kill; {result.agent_processes} agent processes; "
        f"log of "
        f"{result.log_events} events "
        + ("intact" if not result.log_problems else f"BROKEN: {result.log_problems}")
        + f"; events replayed by each new active: median {s['replayed_median']}, "
        f"max {s['replayed_max']}"
        + "; CPU % of one core: "
        + ", ".join(f"{role} {cpu[role]:.0f}" for role in _CPU_ROLES if role in cpu)
        + "; load average "
        f"{result.loadavg[0]:.2f}; RSS MB splitter {result.service_rss_mb.get('splitter')}, "
        f"supervisor {result.service_rss_mb.get('supervisor')}"
    )


def _targets(results: list[ConfigResult]) -> list[str]:
    lines = []
    for result in results:
        median = result.summary()["recovery_median_ms"]
        if result.standby and median is not None:
            verdict = "met" if median < TARGET_RECOVERY_MS else "NOT met"
            lines.append(
                f"target: recovery < {TARGET_RECOVERY_MS:g} ms median with a warm standby "
                f"(seed): {median:.1f} ms, {verdict}"
            )
    largest = max((max(r.rss_mb.values(), default=0.0) for r in results), default=0.0)
    verdict = "met" if largest < TARGET_RSS_MB else "NOT met"
    lines.append(
        f"target: < {TARGET_RSS_MB:g} MB per agent process: largest {largest:.1f} MB, {verdict}"
    )
    return lines
