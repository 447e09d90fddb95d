"""Per-kill figures from the load's records and the log's fences: failed requests, recovery.

**Recovery time** of a kill: from ``os.kill`` to the first successful reply sent by the new
active process. Every process that becomes active first writes a fence, so the first reply
received after the kill whose event sequence lies after the next fence is the first one the new
process sent (a reply the killed process sent just before it died does not count).
"""

from __future__ import annotations

from .log_scan import Fence
from .steady_load import RequestRecord

__all__ = ["attribute", "recoveries"]


def attribute(
    records: list[RequestRecord], kill_times: list[float]
) -> tuple[list[dict[str, int]], int]:
    """Per kill: failed attempts (timeouts, error replies) after it and before the next kill;
    requests whose first failed attempt came after it, counted as re-sent-then-ok or failed.
    Also: failed attempts before the first kill."""
    per_kill = [
        {"resent_ok": 0, "failed": 0, "timeouts": 0, "error_replies": 0} for _ in kill_times
    ]
    unattributed = 0
    for record in records:
        first: int | None = None
        for when, kind in record.failures:
            index = _kill_before(kill_times, when)
            if index is None:
                unattributed += 1
                continue
            first = index if first is None else first
            per_kill[index]["timeouts" if kind == "timeout" else "error_replies"] += 1
        if first is not None:
            per_kill[first]["resent_ok" if record.ok_at is not None else "failed"] += 1
    return per_kill, unattributed


def _kill_before(kill_times: list[float], when: float) -> int | None:
    found = None
    for index, killed_at in enumerate(kill_times):
        if killed_at <= when:
            found = index
    return found


def recoveries(
    records: list[RequestRecord],
    kills: list[tuple[float, int]],
    fences: list[Fence],
) -> list[float | None]:
    """Per kill, ms from the kill to the first reply sent by the process that replaced it."""
    successes = sorted((r.ok_at, r.seq) for r in records if r.ok_at is not None)
    result: list[float | None] = []
    for killed_at, victim in kills:
        own = [i for i, fence in enumerate(fences) if fence.pid == victim]
        if not own or own[-1] + 1 >= len(fences):
            result.append(None)
            continue
        threshold = fences[own[-1] + 1].events_before
        first = next((at for at, seq in successes if at > killed_at and seq > threshold), None)
        result.append(None if first is None else (first - killed_at) * 1000)
    return result
