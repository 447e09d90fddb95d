"""Routes: which code version of an agent is live, which run as shadows, which as a canary.

One KV entry per agent in ``o_routes``. Every change is a compare-and-set on the entry's
revision and is recorded as a :class:`RouteChanged` event (who, why, before, after) on
``o.sys.route.<agent>``. The splitter and the agent processes watch the bucket and apply a
change without a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from pydantic import BaseModel, ConfigDict, Field

from o_bus.errors import ConcurrencyError, StorageError
from o_bus.store import layout
from o_bus.store.event_records import utc_now
from o_bus.store.watch import watch_bucket

__all__ = ["CanaryRoute", "Route", "RouteChanged", "RouteRefused", "RouteStore", "ShadowRoute"]


class ShadowRoute(BaseModel):
    """A version that sees a copy of live traffic and never answers or writes."""

    model_config = ConfigDict(frozen=True)
    version: str
    ignore: tuple[str, ...] = Field(
        default=(), description="output paths never compared, glob patterns (events.*.data.at)"
    )
    sample: float = Field(
        default=1.0, gt=0, le=1, description="share of requests compared (by request id)"
    )
    cpu: float | None = Field(
        default=None,
        gt=0,
        description="hard cap, share of one core the shadow may use: it compares in windows "
        "and rests in between (None: no cap; it runs under SCHED_IDLE, on idle cores only)",
    )


class CanaryRoute(BaseModel):
    """A version that decides ``weight`` percent of live requests."""

    model_config = ConfigDict(frozen=True)
    version: str
    weight: int = Field(ge=0, le=100)
    sticky: str | None = Field(
        default=None,
        description="request header whose value pins a client to one side (e.g. ce-subject)",
    )


class Route(BaseModel):
    model_config = ConfigDict(frozen=True)
    agent: str
    live: str | None = Field(
        default=None, description="code version digest; None: the registered definition"
    )
    previous_live: str | None = None
    shadows: tuple[ShadowRoute, ...] = ()
    canary: CanaryRoute | None = None
    changed_by: str = ""
    reason: str = ""
    changed_at: str = ""

    @property
    def under_test(self) -> bool:
        """True while a candidate of this agent is shadowed or canaried."""
        return bool(self.shadows) or self.canary is not None

    def candidate_versions(self) -> list[str]:
        versions = [shadow.version for shadow in self.shadows]
        if self.canary is not None and self.canary.version not in versions:
            versions.append(self.canary.version)
        return versions


class RouteChanged(BaseModel):
    """System event: a route changed."""

    model_config = ConfigDict(frozen=True)
    agent: str
    before: Route
    after: Route
    by: str
    reason: str
    at: str


class RouteRefused(BaseModel):
    """System event: a process refused to follow a route (its code cannot be trusted)."""

    model_config = ConfigDict(frozen=True)
    agent: str
    route: Route
    version: str | None
    reason: str
    by: str
    at: str


class RouteStore:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def _kv(self) -> Any:
        try:
            return await self.js.key_value(layout.ROUTES_BUCKET)
        except nats.errors.Error as err:
            raise StorageError("routes bucket is missing: run `o-bus up` first") from err

    async def get(self, agent: str) -> tuple[Route, int]:
        """The agent's route and its revision (0: never set, i.e. all traffic to live)."""
        kv = await self._kv()
        try:
            entry = await kv.get(agent)
        except KeyNotFoundError:
            return Route(agent=agent), 0
        except nats.errors.Error as err:
            raise StorageError(f"cannot read the route of {agent!r}") from err
        return Route.model_validate_json(entry.value), entry.revision

    async def update(
        self,
        agent: str,
        change: Callable[[Route], Route],
        *,
        by: str,
        reason: str,
        attempts: int = 5,
    ) -> Route:
        """Apply ``change`` to the current route atomically and record the change."""
        layout.validate_agent_name(agent)
        kv = await self._kv()
        for _ in range(attempts):
            before, revision = await self.get(agent)
            after = change(before).model_copy(
                update={"agent": agent, "changed_by": by, "reason": reason, "changed_at": utc_now()}
            )
            value = after.model_dump_json().encode()
            try:
                if revision == 0:
                    await kv.create(agent, value)
                else:
                    await kv.update(agent, value, last=revision)
            except KeyWrongLastSequenceError:
                continue  # changed meanwhile: re-read and re-apply
            except nats.errors.Error as err:
                raise StorageError(f"cannot change the route of {agent!r}") from err
            await self._record(
                RouteChanged(
                    agent=agent,
                    before=before,
                    after=after,
                    by=by,
                    reason=reason,
                    at=after.changed_at,
                )
            )
            return after
        raise ConcurrencyError(agent, 0, "the route kept changing; try again")

    async def _record(self, event: RouteChanged) -> None:
        try:
            await self.js.publish(
                layout.route_event_subject(event.agent), event.model_dump_json().encode()
            )
        except nats.errors.Error as err:
            raise StorageError(f"route of {event.agent!r} changed but was not recorded") from err

    async def record_refusal(self, refusal: RouteRefused) -> None:
        """Record that ``refusal.by`` did not follow the agent's route, and why."""
        try:
            await self.js.publish(
                layout.route_refused_subject(refusal.agent), refusal.model_dump_json().encode()
            )
        except nats.errors.Error as err:
            raise StorageError(f"refused route of {refusal.agent!r} was not recorded") from err

    async def watch(self) -> AsyncIterator[tuple[str, Route | None]]:
        """Current routes, then every change (None: the route was deleted)."""
        async for agent, route in watch_bucket(self.js, layout.ROUTES_BUCKET, Route):
            yield agent, route
