"""The health monitor service: listens, aggregates, publishes and serves HTTP.

- subscribes to every heartbeat (core NATS ``o.hb.>``); a message that is not a valid heartbeat
  is counted and logged (at most once per subject every few seconds), never fatal;
- watches the supervisor's bucket ``o_supervisor`` and the registry ``o_agents``; a missing
  bucket is retried until it appears;
- publishes each agent's JSON summary on ``o.health.<agent>`` every ``publish_interval``;
- answers requests on ``o.health`` (queue group, so one monitor answers) with all agents;
- serves ``GET /metrics`` (Prometheus text) and ``GET /health`` (JSON) on ``host:port``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from pydantic import ValidationError
from pydantic_core import to_json

from o_bus.common.access_tokens import Tokens
from o_bus.common.tasks import cancel_and_wait
from o_bus.errors import OBusError
from o_bus.store import layout
from o_bus.store.registry import Registry
from o_bus.supervision.records import AgentSupervision

from . import exposition, prometheus
from .aggregate import DEFAULT_FORGET_AFTER, HealthState, MalformedHeartbeat, parse_heartbeat
from .candidates import CandidateBoard
from .http import HttpServer, Response

__all__ = [
    "DEFAULT_PORT",
    "HEALTH_PREFIX",
    "HEALTH_SUBJECT",
    "HealthMonitor",
    "health_subject",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 9464
HEALTH_SUBJECT = layout.HEALTH_SUBJECT
HEALTH_PREFIX = layout.HEALTH_PREFIX
QUEUE_GROUP = "o-health"
WARN_EVERY = 10.0  # seconds between two warnings about the same subject or key
_MAX_WARNED = 1024


health_subject = layout.health_subject


class HealthMonitor:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        publish_interval: float = 1.0,
        stale_after: float | None = None,
        forget_after: float = DEFAULT_FORGET_AFTER,
        watch_retry: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        tokens: Tokens | None = None,
    ) -> None:
        """``stale_after``: heartbeat age after which a process is down (default: each agent's
        supervision ``heartbeat_timeout``). ``watch_retry``: seconds between attempts to watch
        a bucket that is missing or whose watch failed."""
        self.nc, self.js = nc, js
        self.publish_interval = publish_interval
        self.watch_retry = watch_retry
        self.clock, self.wall_clock = clock, wall_clock
        self.state = HealthState(stale_after=stale_after, forget_after=forget_after)
        self.candidates = CandidateBoard()  # shadow traffic: kept apart from live metrics
        self.http = HttpServer(
            {"/metrics": self.metrics_response, "/health": self._health},
            host,
            port,
            authorize=None if tokens is None else tokens.role_of,
        )
        self._subs: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._warned: dict[str, float] = {}

    @property
    def port(self) -> int:
        """The HTTP port actually bound (useful with ``port=0``)."""
        return self.http.port

    async def start(self) -> None:
        await self.http.start()
        try:
            self._subs.append(
                await self.nc.subscribe(
                    layout.HEARTBEAT_PREFIX + ">",
                    cb=self._on_heartbeat,
                    pending_msgs_limit=65536,
                )
            )
            self._subs.append(
                await self.nc.subscribe(HEALTH_SUBJECT, queue=QUEUE_GROUP, cb=self._on_request)
            )
            self._subs.append(
                await self.nc.subscribe(
                    layout.CANDIDATE_PREFIX + "*.*.stats", cb=self._on_candidate_stats
                )
            )
        except BaseException:
            await self.stop()
            raise
        self._spawn(self._watch_supervision(), "health-supervision")
        self._spawn(self._watch_registry(), "health-registry")
        self._spawn(self._publish_loop(), "health-publish")
        log.info("health monitor on %s and http port %d", HEALTH_SUBJECT, self.port)

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        await self.http.stop()

    @property
    def running(self) -> bool:
        """Whether the monitor is started and none of its watches and publishers has ended."""
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    # -- views -------------------------------------------------------------------------------

    def summaries(self) -> dict[str, Any]:
        """Every agent's summary (the answer on ``o.health`` and ``GET /health``)."""
        return self.state.summaries(self.clock(), self.wall_clock())

    def metrics_text(self) -> str:
        now = self.clock()
        families = exposition.families(self.state, now) + self.candidates.families(now)
        return prometheus.render(families)

    def metrics_response(self) -> Response:
        return Response(200, self.metrics_text().encode(), prometheus.CONTENT_TYPE)

    def _health(self) -> Response:
        return Response(200, to_json(self.summaries()) + b"\n", "application/json")

    # -- inputs ------------------------------------------------------------------------------

    def _warn(self, key: str, message: str, *args: object) -> None:
        """Log a warning about ``key``, at most once per WARN_EVERY seconds."""
        now = self.clock()
        last = self._warned.get(key)
        if last is not None and now - last < WARN_EVERY:
            return
        if len(self._warned) >= _MAX_WARNED:
            self._warned.clear()
        self._warned[key] = now
        log.warning(message, *args)

    async def _on_heartbeat(self, msg: Msg) -> None:
        try:
            beat = parse_heartbeat(msg.subject, msg.data)
        except MalformedHeartbeat as err:
            self.state.malformed += 1
            self._warn(msg.subject, "ignored a malformed heartbeat on %.100s: %s", msg.subject, err)
            return
        try:
            self.state.observe(beat, self.clock())
        except Exception:  # never let one message stop the subscription
            self.state.malformed += 1
            log.exception("failed to take a heartbeat on %.100s", msg.subject)

    async def _on_candidate_stats(self, msg: Msg) -> None:
        self.candidates.observe(msg.data, self.clock())

    async def _on_request(self, msg: Msg) -> None:
        if not msg.reply:
            return
        with contextlib.suppress(nats.errors.Error):
            await msg.respond(to_json(self.summaries()))

    async def _publish_loop(self) -> None:
        while True:
            started = self.clock()
            try:
                await self.publish()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("failed to publish health summaries")
            await asyncio.sleep(max(0.0, self.publish_interval - (self.clock() - started)))

    async def publish(self) -> None:
        """Publish every agent's summary on ``o.health.<agent>`` once."""
        now, wall = self.clock(), self.wall_clock()
        self.state.prune(now)
        for name in sorted(self.state.agents):
            if not layout.AGENT_NAME.match(name):
                continue
            summary = self.state.summary(name, now, wall)
            with contextlib.suppress(nats.errors.Error):
                await self.nc.publish(health_subject(name), to_json(summary))

    async def _watch_supervision(self) -> None:
        missing_logged = False
        while True:
            try:
                kv = await self.js.key_value(layout.SUPERVISOR_BUCKET)
            except nats.errors.Error as err:
                if not missing_logged:
                    log.info("bucket %s unavailable (%s); retrying", layout.SUPERVISOR_BUCKET, err)
                    missing_logged = True
                await asyncio.sleep(self.watch_retry)
                continue
            missing_logged = False
            try:
                watcher = await kv.watchall()
            except nats.errors.Error as err:
                log.warning("cannot watch %s: %s; retrying", layout.SUPERVISOR_BUCKET, err)
                await asyncio.sleep(self.watch_retry)
                continue
            try:
                await self._follow_supervision(watcher)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watching %s failed; retrying", layout.SUPERVISOR_BUCKET)
            finally:
                with contextlib.suppress(Exception):
                    await watcher.stop()  # type: ignore[no-untyped-call]
            await asyncio.sleep(self.watch_retry)

    async def _follow_supervision(self, watcher: Any) -> None:
        while True:
            try:
                entry = await watcher.updates(timeout=3600)
            except nats.errors.TimeoutError:
                continue
            if entry is None:
                continue
            key = str(entry.key)
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                self.state.supervise(key, None)
                continue
            try:
                record = AgentSupervision.model_validate_json(entry.value)
            except ValidationError as err:
                self._warn(
                    f"kv:{key}",
                    "ignored an invalid %s entry %.100r: %s",
                    layout.SUPERVISOR_BUCKET,
                    key,
                    err.errors()[0]["msg"],
                )
                continue
            self.state.supervise(key, record)

    async def _watch_registry(self) -> None:
        missing_logged = False
        while True:
            try:
                async for item in Registry(self.js).watch():
                    missing_logged = False
                    if isinstance(item, str):
                        self.state.unregister(item)
                    else:
                        self.state.register(item)
            except asyncio.CancelledError:
                raise
            except (OBusError, nats.errors.Error) as err:
                if not missing_logged:
                    log.info("registry unavailable (%s); retrying", err)
                    missing_logged = True
            except Exception:
                log.exception("watching the registry failed; retrying")
            await asyncio.sleep(self.watch_retry)
