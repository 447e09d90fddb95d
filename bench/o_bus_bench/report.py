"""The benchmark's text output: the project's figures beside the raw floor, and their ratio."""

from __future__ import annotations

from o_bus_bench.results import (
    MIN_OFFLINE_RATIO,
    MIN_REPLAY_RATIO,
    TARGET_P99_MS,
    TARGET_RPS,
    BenchReport,
    ServerRun,
)
from o_bus_bench.stats import LevelResult, ratio

__all__ = ["render"]

_CPU_ROLES = ("server", "splitter", "agent", "client", "other")


BUSY_OTHER_PERCENT = 25.0


def _cpu(result: LevelResult) -> str:
    """CPU per role; ``*`` when processes outside the benchmark disturbed the run."""
    usage = result.cpu_percent
    text = "/".join(f"{usage[role]:.0f}" if role in usage else "-" for role in _CPU_ROLES)
    return text + ("*" if usage.get("other", 0.0) > BUSY_OTHER_PERCENT else " ")


def _problems(path: str, result: LevelResult) -> str:
    notes = []
    if result.errors:
        notes.append(f"{result.errors} errors")
    if result.timeouts:
        notes.append(f"{result.timeouts} timeouts")
    return f"  ({path}: {', '.join(notes)})" if notes else ""


def _run_table(run: ServerRun) -> list[str]:
    lines = [
        f"Requests through o.req.counter, {run.label}: req/s, latency ms, and CPU % of one core",
        "(server/splitter/agent/client/other: other = processes outside the benchmark;",
        f" * = they used more than {BUSY_OTHER_PERCENT:.0f}% of a core: figures disturbed)",
        f"{'C':>5} | {'project':>9} {'p50':>7} {'p99':>7} | {'raw':>9} {'p50':>7} {'p99':>7}"
        f" | {'ratio':>6} | {'CPU project':>19} | {'CPU raw':>19}",
    ]
    for pair in run.levels:
        p, r = pair.project, pair.raw
        lines.append(
            f"{pair.concurrency:>5} | {p.rps:>9,.0f} {p.p50_ms:>7.2f} {p.p99_ms:>7.2f}"
            f" | {r.rps:>9,.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f}"
            f" | {pair.ratio:>5.0%} | {_cpu(p):>19} | {_cpu(r):>19}"
            + _problems("project", p)
            + _problems("raw", r)
        )
    return lines


def _target_line(run: ServerRun) -> str:
    top, top_raw = run.best_project(), run.best_raw()
    if top is None:
        return f"  {run.label}: no figures"
    verdict = "met" if run.target_met() else "NOT met"
    raw_part = ""
    if top_raw is not None:
        raw_part = (
            f"; raw best C={top_raw.concurrency}: {top_raw.rps:,.0f} req/s "
            f"(project {ratio(top.rps, top_raw.rps):.0%} of it)"
        )
    return (
        f"  {run.label}: best C={top.concurrency}: {top.rps:,.0f} req/s, "
        f"p50 {top.p50_ms:.1f} ms, p99 {top.p99_ms:.1f} ms -> {verdict}{raw_part}"
    )


def _replay_table(report: BenchReport) -> list[str]:
    lines = [
        "Replay: full rebuild of a counter (no snapshot) vs raw ordered consumer doing nothing",
        f"{'events':>8} | {'project ev/s':>12} {'RSS MB':>13} | {'raw ev/s':>10} {'RSS MB':>13}"
        f" | {'ratio':>6}",
    ]
    for row in report.replay:
        p, r = row.project, row.raw
        lines.append(
            f"{row.events:>8,} | {p.rate:>12,.0f} {p.rss_before_mb:>5.0f} -> {p.rss_peak_mb:>4.0f}"
            f" | {r.rate:>10,.0f} {r.rss_before_mb:>5.0f} -> {r.rss_peak_mb:>4.0f}"
            f" | {row.ratio:>5.0%}"
        )
    lines.append("  (RSS: peak resident size of the replaying process, before -> after the replay)")
    lines += [
        "Offline: replay_history of the same log, read into memory once, vs the rebuild above",
        f"{'events':>8} | {'offline ev/s':>12} {'RSS MB':>13} | {'load s':>7} | {'x rebuild':>9}",
    ]
    for row in report.replay:
        o = row.offline
        lines.append(
            f"{row.events:>8,} | {o.rate:>12,.0f} {o.rss_before_mb:>5.0f} -> {o.rss_peak_mb:>4.0f}"
            f" | {o.load_seconds:>7.2f} | {row.offline_ratio:>8.1f}x"
        )
    return lines


def render(report: BenchReport) -> str:
    machine, settings = report.machine, report.settings
    lines = [
        f"o-bus bench: {machine['cpus']} cores, Python {machine['python']}, "
        f"nats-server {machine['nats_server']}, nats-py {machine['nats_py']}, "
        f"uvloop {machine['uvloop']}",
        f"closed loop, {settings['duration']} s per level after {settings['warmup']} s warm-up"
        + (f", median of {settings['repeats']} runs" if settings.get("repeats", 1) > 1 else "")
        + "; client, splitter and agent each in its own process",
        "",
    ]
    for run in report.runs:
        lines += [*_run_table(run), ""]
    if report.replay:
        lines += [*_replay_table(report), ""]
    lines.append(
        f"Targets: >= {TARGET_RPS:,.0f} req/s with p99 < {TARGET_P99_MS:.0f} ms "
        "at the best concurrency"
    )
    lines += [_target_line(run) for run in report.runs]
    if report.replay:
        largest = max(report.replay, key=lambda row: row.events)
        verdict = "met" if report.replay_target_met() else "NOT met"
        lines.append(
            f"Replay >= {MIN_REPLAY_RATIO:.0%} of the raw ordered consumer: "
            f"{largest.events:,} events at {largest.ratio:.0%} -> {verdict}"
        )
        verdict = "met" if report.offline_target_met() else "NOT met"
        lines.append(
            f"Offline replay >= {MIN_OFFLINE_RATIO:.0f}x the JetStream rebuild: "
            f"{largest.events:,} events at {largest.offline_ratio:.1f}x -> {verdict}"
        )
    return "\n".join(lines) + "\n"
