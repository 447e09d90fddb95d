"""The candidate's canary service: decide one request on the state live sends.

Request (msgpack): ``state`` (JSON data, live's state schema ``schema``), ``command``,
``content_type``, ``data``, and the WAL record's ``request_id``, ``accepted_ns`` and ``wal_seq``
(the candidate decides with the same decision context as live would).
Reply (JSON): ``{"ok": true, "events": [...], "code_version"}``, a rejection
``{"ok": false, "outcome": "rejected", "code", "message"}``, or a failure
``{"ok": false, "outcome": "failed", "message"}`` (live then decides the request itself).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import msgpack
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic_core import to_json

from o_bus.agent.definition import AgentDefinition
from o_bus.decision.decider import decide_command
from o_bus.errors import CommandRejected, InvalidRequestError, OBusError
from o_bus.store import layout
from o_bus.wire.wal_record import WalRecord

from .stats import LatencyWindow

__all__ = ["CanaryDecider"]

log = logging.getLogger(__name__)


class CanaryDecider:
    def __init__(
        self,
        nc: Client,
        agent: str,
        version: str,
        candidate: AgentDefinition[Any],
        on_fatal: Callable[[str], None],
    ) -> None:
        self.nc, self.candidate, self.on_fatal = nc, candidate, on_fatal
        self.subject = layout.candidate_subject(agent, version, "decide")
        self.decided = 0
        self.failures = 0
        self.last_failure: str | None = None
        self.latency = LatencyWindow()
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self.subject, cb=self._on_request)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()

    async def _on_request(self, msg: Msg) -> None:
        started = time.perf_counter()
        try:
            reply = self.decide(msg.data)
        except MemoryError:
            self.on_fatal("candidate exhausted the sandbox's memory limit (canary request)")
            return
        self.latency.add((time.perf_counter() - started) * 1000)
        if msg.reply:
            await msg.respond(to_json(reply))

    def decide(self, payload: bytes) -> dict[str, Any]:
        code_version = self.candidate.version
        try:
            request = msgpack.unpackb(payload)
            state = self.candidate.state_from(request["state"], int(request["schema"]))
            record = WalRecord(
                str(request.get("request_id", "")),
                str(request["command"]),
                bytes(request["data"]),
                request.get("content_type"),
                wal_seq=int(request.get("wal_seq", 0)),
                accepted_ns=int(request.get("accepted_ns", 0)),
            )
            decision = decide_command(self.candidate, state, record)[1]
        except (InvalidRequestError, CommandRejected) as err:
            self.decided += 1
            return {
                "ok": False,
                "outcome": "rejected",
                "code": err.code.value,
                "message": err.message,
                "code_version": code_version,
            }
        except MemoryError:
            raise
        except (OBusError, Exception) as err:
            self.failures += 1
            self.last_failure = f"{type(err).__name__}: {err}"[:500]
            log.warning("canary decision failed: %s", self.last_failure)
            return {"ok": False, "outcome": "failed", "message": self.last_failure}
        self.decided += 1
        events = [
            {"type": e.event_type, "version": e.event_version, "data": e.model_dump(mode="json")}
            for e in decision.events
        ]
        return {"ok": True, "events": events, "code_version": code_version}
