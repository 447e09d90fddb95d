"""The text output of `o-bus bench evolution`."""

from __future__ import annotations

from o_bus_bench.stats import LevelResult

from .results import MAX_SHADOW_COST, EvolutionReport, ShadowRow
from .swap_load import SwapResult

__all__ = ["render"]

_ROLES = ("server", "splitter", "agent", "client")
_LABELS = {"nice10": "nice 10", "nice0": "nice 0", "idle": "idle", "cap": "idle+0.1cap", "": "-"}


def _cpu(result: LevelResult, shadows: float | None) -> str:
    usage = result.cpu_percent
    parts = [f"{usage[role]:.0f}" if role in usage else "-" for role in _ROLES]
    parts.append("-" if shadows is None else f"{shadows:.0f}")
    parts.append(f"{usage['other']:.0f}" if "other" in usage else "-")
    return "/".join(parts)


def _problems(result: LevelResult) -> str:
    notes = [
        f"{n} {what}" for n, what in ((result.errors, "errors"), (result.timeouts, "timeouts"))
    ]
    notes = [note for note in notes if not note.startswith("0 ")]
    return f"  ({', '.join(notes)})" if notes else ""


def _row(report: EvolutionReport, row: ShadowRow) -> str:
    live = row.live
    cost = report.cost(row)
    cost_text = "-" if row.shadows == 0 or cost is None else f"{cost:+.1%}"
    kept = "-"
    if row.figures is not None:
        kept = f"{row.figures.kept_up():.0%} ({max(row.figures.behind, default=0):,} behind)"
    label = "none" if row.shadows == 0 else f"{row.shadows}, {_LABELS[row.scheduling or '']}"
    shadow_cpu = row.shadow_cpu() if row.shadows else None
    return (
        f"{row.concurrency:>5} | {label:<12} | {live.rps:>8,.0f} {live.p50_ms:>7.2f} "
        f"{live.p99_ms:>7.2f} | {cost_text:>7} | {kept:>18} | {_cpu(live, shadow_cpu):>22}"
        + _problems(live)
    )


def _shadow_table(report: EvolutionReport) -> list[str]:
    lines = [
        "Live requests through o.req.counter with shadows: req/s, latency ms; cost = throughput",
        "lost against no shadows; coverage = live requests the slowest shadow compared, as a",
        "share of those live answered meanwhile (behind: live events it had not reached at the",
        "end of the run); idle = SCHED_IDLE, no cap (default); idle+0.1cap = SCHED_IDLE with",
        "the --shadow-cpu 0.1 hard cap; nice N = normal scheduling at niceness N;",
        "CPU in % of one core: server/splitter/agent/client/shadows/other",
        f"{'C':>5} | {'shadows':<12} | {'req/s':>8} {'p50':>7} {'p99':>7} | {'cost':>7} | "
        f"{'coverage':>18} | {'CPU':>22}",
    ]
    for raw in report.raw:
        lines.append(
            f"{raw.concurrency:>5} | {'raw floor':<12} | {raw.rps:>8,.0f} {raw.p50_ms:>7.2f} "
            f"{raw.p99_ms:>7.2f} | {'':>7} | {'':>18} | {_cpu(raw, None):>22}"
        )
        lines += [_row(report, row) for row in report.rows if row.concurrency == raw.concurrency]
    return lines


def _swap_table(swap: SwapResult, every: float) -> list[str]:
    switched = sorted(s.switched_ms for s in swap.swaps if s.switched_ms is not None)
    missing = sum(1 for s in swap.swaps if s.switched_ms is None)
    lines = [
        f"Hot reload under load, C={swap.concurrency}: route.live flipped {len(swap.swaps)} "
        f"times, one every {every:g} s (registered code <-> a deployed copy)",
        f"{'requests sent':<34} | {'replies':>8} {'p50':>7} {'p99':>7} {'max':>8}",
    ]
    for label, lat in (
        ("in steady state (before the swaps)", swap.steady),
        ("within a swap's window", swap.during_swaps),
        ("between the swaps' windows", swap.between_swaps),
    ):
        figures = f"{lat.count:>8,} {lat.p50_ms:>7.2f} {lat.p99_ms:>7.2f} {lat.max_ms:>8.2f}"
        lines.append(f"{label:<34} | {figures}")
    if switched:
        lines.append(
            f"switch time (route update -> agent serving the new code): median "
            f"{switched[len(switched) // 2]:.1f} ms, max {switched[-1]:.1f} ms"
            + (f"; {missing} switches not seen within {every:g} s" if missing else "")
        )
    lines.append(
        f"whole window: {swap.completed:,} replies at {swap.rps:,.0f} req/s; failed requests: "
        f"{swap.errors} error replies, {swap.timeouts} timeouts"
    )
    return lines


def render(report: EvolutionReport) -> str:
    machine, settings = report.machine, report.settings
    lines = [
        f"o-bus bench evolution: {machine['cpus']} cores, Python {machine['python']}, "
        f"nats-server {machine['nats_server']}, nats-py {machine['nats_py']}, "
        f"load average at start {machine.get('loadavg')}",
        f"closed loop, {settings['duration']} s per run after {settings['warmup']} s warm-up"
        + (f", median of {settings['repeats']} runs" if settings["repeats"] > 1 else "")
        + "; shadows are sandboxed candidate processes started afresh for each run",
        "",
        *_shadow_table(report),
        "",
    ]
    if report.swap is not None:
        lines += [*_swap_table(report.swap, settings["swap_every"]), ""]
    lines.append(f"Target: one shadow costs live <= {MAX_SHADOW_COST:.0%} of its throughput")
    kinds = {r.scheduling for r in report.rows if r.shadows == 1 and r.scheduling is not None}
    for kind in sorted(kinds):
        met = report.one_shadow_target_met(kind)
        costs = ", ".join(
            f"C={r.concurrency}: {c:+.1%}"
            for r in report.rows
            if r.shadows == 1 and r.scheduling == kind and (c := report.cost(r)) is not None
        )
        verdict = "no figures" if met is None else ("met" if met else "NOT met")
        lines.append(f"  one shadow, {_LABELS[kind]}: {costs} -> {verdict}")
    if report.swap is not None:
        failed = report.swap.errors + report.swap.timeouts
        lines.append(
            f"Hot reload: {failed} failed requests -> {'met' if failed == 0 else 'NOT met'}"
        )
    return "\n".join(lines) + "\n"
