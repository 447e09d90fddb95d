"""Live's outcomes as its log recorded them: requests decided, errors, rejections.

The gates after promotion compare live's error rate on the new code with the old code's, and
both come from the agent's stream (``O_EVT_<agent>``: events and outcome records, each
carrying its request's WAL sequence), not from a process's counters: a restart of the
platform or of the arbiter loses nothing, and both sides are counted the same way.

An *error* is a request the agent's code could not decide: it raised (``internal_error``).
A rejection (``command_rejected``, an invalid payload) is an answer of the agent's logic, not
an error.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from o_bus.errors import ErrorCode, StorageError
from o_bus.store import layout
from o_bus.store.event_records import H_WAL, stream_seq_of
from o_bus.wire.headers import O_ERROR_CODE, O_OUTCOME

__all__ = ["ERROR_CODES", "OutcomeCounts", "count_outcomes", "log_end"]

ERROR_CODES = frozenset({ErrorCode.INTERNAL.value})


@dataclass
class OutcomeCounts:
    """A tally of decided requests over a range of the agent's stream, extended as it grows.

    Records of one request are adjacent and WAL sequences never decrease along the stream,
    so a request is counted once when its first record is seen."""

    requests: int = 0
    errors: int = 0
    rejections: int = 0
    first_seq: int = 0  # the tally covers stream sequences first_seq..last_seq
    last_seq: int = 0
    _last_wal: str = ""

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def add(self, kind: str, headers: dict[str, str]) -> None:
        wal = headers.get(H_WAL, "")
        outcome = headers.get(O_OUTCOME)
        if not wal or wal == self._last_wal or kind not in ("evt", "outcome"):
            return
        if kind == "outcome" and outcome not in ("rejected", "noop"):
            return  # answered from the duplicate cache: nothing was decided
        self._last_wal = wal
        self.requests += 1
        if outcome == "rejected":
            if headers.get(O_ERROR_CODE, ErrorCode.INTERNAL.value) in ERROR_CODES:
                self.errors += 1
            else:
                self.rejections += 1


async def log_end(js: JetStreamContext, agent: str) -> int:
    """The agent stream's last sequence (0 when empty or missing)."""
    try:
        info = await js.stream_info(layout.events_stream(agent))
    except nats.errors.Error:
        return 0
    return int(info.state.last_seq) if info.state.messages else 0


async def count_outcomes(
    js: JetStreamContext,
    agent: str,
    after: int,
    until: int | None = None,
    *,
    tally: OutcomeCounts | None = None,
    timeout: float = 30.0,
) -> OutcomeCounts:
    """Requests decided in the agent's stream after sequence ``after``, up to ``until``
    (default: the end now), added to ``tally`` if given (which must end at ``after``)."""
    counts = tally if tally is not None else OutcomeCounts(first_seq=after + 1, last_seq=after)
    end = await log_end(js, agent)
    until = end if until is None else min(until, end)
    if until <= after:
        return counts
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def on_record(msg: Msg) -> None:
        if done.done():
            return
        seq = stream_seq_of(msg)
        if seq > until:
            done.set_result(None)
            return
        counts.add(msg.subject.split(".", 2)[1], msg.headers or {})
        counts.last_seq = seq
        if seq >= until:
            done.set_result(None)

    try:
        sub = await js.subscribe(
            f"o.*.{agent}",
            stream=layout.events_stream(agent),
            cb=on_record,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=after + 1,
                headers_only=True,
            ),
        )
    except nats.errors.Error as err:
        raise StorageError(f"cannot read {agent!r}'s log") from err
    try:
        await asyncio.wait_for(done, timeout)
    except TimeoutError as err:
        raise StorageError(
            f"reading {agent!r}'s log from {after + 1} to {until} took over {timeout:g} s"
        ) from err
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
    return counts
