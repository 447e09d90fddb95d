"""The supervisor service: one OS process per agent (plus a warm standby where the policy asks),
heartbeat watching, OTP-style restarts with intensity and backoff, takeover, escalation.

Only the supervisor that holds the ``_supervisor`` lease acts; others wait to take over. Its
view of each agent is kept in bucket ``o_supervisor``, so a restarted supervisor adopts the
agent processes that are still running instead of starting duplicates. The agents' own leases
are the final guarantee that one agent never has two active processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Coroutine
from typing import Any, Final

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import ValidationError
from pydantic_core import to_json

from o_bus.common.tasks import cancel_and_wait
from o_bus.errors import StorageError
from o_bus.runtime.agent_process import EXIT_FENCED
from o_bus.runtime.heartbeat import Heartbeat
from o_bus.store import layout
from o_bus.store.event_records import utc_now
from o_bus.store.lease import HeldLease, LeaseHolder, LeaseStore
from o_bus.store.placement import Placement, PlacementStore
from o_bus.store.provision import ensure_bucket
from o_bus.store.registry import AgentRecord, Registry
from o_bus.supervision.records import (
    EXIT_UNLOADABLE,
    AgentSupervision,
    SupervisionPolicy,
    SystemEvent,
)

from .children import AgentChild, pid_alive, spawn_agent
from .intensity import RestartBudget

__all__ = ["LEADER_KEY", "RESET_SUBJECT", "Supervisor"]

log = logging.getLogger(__name__)
LEADER_KEY: Final = "_supervisor"
RESET_SUBJECT: Final = layout.SUPERVISOR_RESET_SUBJECT
HUNG_KILL_GRACE: Final = 10.0  # seconds a hung, replaced active may still wake up and step down


class Supervisor:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        url: str,
        *,
        agent_args: list[str] | None = None,
        lease_ttl: float = 2.0,
        tick: float = 0.05,
        host: str | None = None,
    ) -> None:
        self.nc, self.js, self.url = nc, js, url
        # A named host runs the agents placed on it; the default supervisors run the others.
        self.host = host
        self.host_label = host or socket.gethostname()
        self.leader_key = LEADER_KEY if host is None else f"{LEADER_KEY}.{host}"
        self.placement: dict[str, Placement] = {}
        self._placement_task: asyncio.Task[None] | None = None
        self.agent_args = agent_args or []
        self.leases = LeaseStore(js)
        self.lease_ttl, self.tick = lease_ttl, tick
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.leadership = HeldLease(
            self.leases, self.leader_key, lease_ttl, f"supervisor {self.identity}"
        )
        self.records: dict[str, AgentRecord] = {}
        self.children: dict[str, list[AgentChild]] = {}
        self.budgets: dict[str, RestartBudget] = {}
        self.failed: dict[str, str] = {}
        self.pending_restart: dict[str, asyncio.TimerHandle] = {}
        self.leader = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._kv: KeyValue | None = None
        self._registry_task: asyncio.Task[None] | None = None

    # -- service lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._kv = await self._bucket()
        self._tasks.append(asyncio.create_task(self._lead(), name="supervisor-lead"))
        self._subs = [
            await self.nc.subscribe(layout.HEARTBEAT_PREFIX + "*", cb=self._on_heartbeat),
            await self.nc.subscribe(RESET_SUBJECT, cb=self._on_reset),
            await self.nc.subscribe(layout.SUPERVISOR_RESTART_SUBJECT, cb=self._on_restart),
        ]

    async def stop(self) -> None:
        """Stop the agents this supervisor runs (they release their leases), then itself."""
        self._stopping = True
        for handle in self.pending_restart.values():
            handle.cancel()
        if self.leader.is_set():
            # A snapshot: exits being handled meanwhile remove children from the live lists.
            running = [child for children in self.children.values() for child in children]
            for child in running:
                child.terminate()
            deadline = time.monotonic() + 10.0
            for child in running:
                while pid_alive(child.pid) and time.monotonic() < deadline:
                    if child.proc is not None and child.proc.returncode is not None:
                        break
                    await asyncio.sleep(0.05)
                if child.proc is not None and child.proc.returncode is None:
                    child.kill()
                    await child.proc.wait()
            for name in list(self.children):
                await self._save(name, status="stopped")
        if self._registry_task is not None:
            self._tasks.append(self._registry_task)
        if self._placement_task is not None:
            self._tasks.append(self._placement_task)
        await cancel_and_wait(self._tasks)
        for sub in self._subs:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        await self.leadership.release()

    async def _bucket(self) -> KeyValue:
        return await ensure_bucket(self.js, layout.SUPERVISOR_BUCKET)

    async def _lead(self) -> None:
        """Lead whenever this supervisor holds the leader lease; wait for it otherwise."""
        while not self._stopping:
            await self._become_leader()
            try:
                await self._supervise()
            except StorageError as err:
                log.error("supervisor %s cannot renew its leadership: %s", self.identity, err)
            self._stand_down()

    async def _become_leader(self) -> None:
        holder = LeaseHolder(
            holder=self.identity, pid=os.getpid(), role="supervisor", acquired_at=utc_now()
        )
        await self.leadership.acquire(holder)
        log.info("supervisor %s is the leader for host %s", self.identity, self.host_label)
        self.placement = await PlacementStore(self.js).all()
        await self._adopt()
        self.leader.set()
        self._registry_task = asyncio.create_task(
            self._follow_registry(), name="supervisor-registry"
        )
        self._placement_task = asyncio.create_task(
            self._follow_placement(), name="supervisor-placement"
        )

    async def _supervise(self) -> None:
        """Watch the agents; return when the leadership is lost."""
        while True:
            await asyncio.sleep(self.tick)
            if self.leadership.renewal_due() and not await self.leadership.renew():
                log.error("supervisor %s lost its leadership; standing down", self.identity)
                return
            self._check_children()

    def _stand_down(self) -> None:
        """Forget what this supervisor managed (the new leader adopts it); keep the agents."""
        self.leader.clear()
        if self._registry_task is not None:
            self._registry_task.cancel()
            self._registry_task = None
        if self._placement_task is not None:
            self._placement_task.cancel()
            self._placement_task = None
        for handle in self.pending_restart.values():
            handle.cancel()
        for children in self.children.values():
            for child in children:
                for task in child.tasks:
                    task.cancel()
                if child.kill_timer is not None:
                    child.kill_timer.cancel()
        self.children.clear()
        self.records.clear()
        self.budgets.clear()
        self.failed.clear()
        self.pending_restart.clear()

    # -- what exists -------------------------------------------------------------------------

    async def _adopt(self) -> None:
        """Take over the agent processes an earlier supervisor left running."""
        assert self._kv is not None
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return
        for key in keys:
            if not self._mine(key):
                continue
            try:
                entry = await self._kv.get(key)
                state = AgentSupervision.model_validate_json(entry.value or b"")
            except (KeyNotFoundError, ValidationError):
                continue
            self.budgets[key] = RestartBudget(state.policy, state.restart_times)
            self.budgets[key].total = state.restarts
            if state.status == "failed":
                self.failed[key] = state.reason
            for info in state.processes:
                if info.host == self.host_label and pid_alive(info.pid):
                    child = AgentChild(key, info.pid, info.standby, info.started_at)
                    child.host = self.host_label
                    child.last_heartbeat = time.monotonic()  # grace until its next beat
                    self.children.setdefault(key, []).append(child)
                    await self._event(key, "adopt", f"process {info.pid} still running", info.pid)

    async def _follow_registry(self) -> None:
        registry = Registry(self.js)
        async for change in registry.watch():
            if isinstance(change, AgentRecord):
                self.records[change.name] = change
                self.budgets.setdefault(change.name, RestartBudget(change.supervision))
                self.budgets[change.name].policy = change.supervision
                await self._reconcile(change.name)
            else:
                self.records.pop(change, None)
                for child in self.children.get(change, []):
                    child.terminate()

    def _mine(self, agent: str) -> bool:
        """Whether this supervisor's host runs ``agent`` (see o_bus.store.placement)."""
        placed = self.placement.get(agent)
        if placed is None:
            return self.host is None
        return self.host in placed.hosts

    def _spread(self, agent: str) -> bool:
        """Whether ``agent`` runs on several named hosts, one process on each."""
        placed = self.placement.get(agent)
        return placed is not None and len(placed.hosts) > 1

    async def _follow_placement(self) -> None:
        async for agent, placed in PlacementStore(self.js).watch():
            was_mine = self._mine(agent)
            if placed is None:
                self.placement.pop(agent, None)
            else:
                self.placement[agent] = placed
            if was_mine and not self._mine(agent):
                where = ", ".join(placed.hosts) if placed else "the default supervisors"
                for child in self.children.get(agent, []):
                    await self._event(agent, "stop", f"placed on {where}", child.pid)
                    child.terminate()
            elif self._mine(agent):
                await self._reconcile(agent)

    def policy(self, agent: str) -> SupervisionPolicy:
        record = self.records.get(agent)
        return record.supervision if record else SupervisionPolicy()

    async def _reconcile(self, agent: str) -> None:
        """Start what the policy asks for and is missing (not for failed agents)."""
        if self._stopping or not self.leader.is_set() or agent in self.failed:
            return
        if not self._mine(agent):
            return
        if agent not in self.records or agent in self.pending_restart:
            return
        live = [c for c in self.children.get(agent, []) if not c.exit_handled and not c.hung]
        placed = self.placement.get(agent)
        if placed is not None:
            # On a named host: one process, never a standby beside the active (its standbys
            # run on the other hosts of the placement); the active's host tries the lease first.
            wanted, standby_here = 1, self.host != placed.host
        else:
            wanted, standby_here = (2 if self.policy(agent).standby else 1), False
        for _ in range(wanted - len(live)):
            has_active_candidate = standby_here or any(not c.standby for c in live)
            child = await spawn_agent(
                agent,
                self.url,
                standby=has_active_candidate,
                extra_args=self.agent_args,
                host=self.host_label,
            )
            self.children.setdefault(agent, []).append(child)
            live.append(child)
            assert child.proc is not None
            child.tasks.append(asyncio.create_task(self._watch_exit(child)))
            await self._event(agent, "start", "standby" if child.standby else "active", child.pid)
        await self._save(agent)

    # -- watching ----------------------------------------------------------------------------

    async def _on_heartbeat(self, msg: Msg) -> None:
        try:
            beat = Heartbeat.model_validate_json(msg.data)
        except ValidationError:
            return
        for child in self.children.get(beat.agent, []):
            if child.pid == beat.pid:
                child.last_heartbeat = time.monotonic()
                child.holder, child.role = beat.holder, beat.role
                if beat.role == "active":
                    child.standby = False
                return

    async def _watch_exit(self, child: AgentChild) -> None:
        assert child.proc is not None
        code = await child.proc.wait()
        await self._handle_exit(child, code)

    def _check_children(self) -> None:
        if self._stopping:  # it is stopping them itself: their silence is no hang
            return
        now = time.monotonic()
        for agent, children in list(self.children.items()):
            timeout = self.policy(agent).heartbeat_timeout
            for child in list(children):
                if child.exit_handled:
                    continue
                if child.proc is None and not pid_alive(child.pid):
                    self._spawn(self._handle_exit(child, None))
                elif (
                    not child.hung and child.last_heartbeat and now - child.last_heartbeat > timeout
                ):
                    self._spawn(self._handle_hung(child))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _handle_hung(self, child: AgentChild) -> None:
        child.hung = True
        silence = time.monotonic() - child.last_heartbeat
        await self._event(child.agent, "hung", f"no heartbeat for {silence:.2f}s", child.pid)
        if await self._takeover(child, "hung"):
            # The old process may wake up (SIGCONT): it will find itself fenced and exit.
            child.kill_timer = asyncio.get_running_loop().call_later(HUNG_KILL_GRACE, child.kill)
        else:
            child.kill()
        await self._reconcile(child.agent)

    async def _takeover(self, child: AgentChild, why: str) -> bool:
        """Ask a live standby of ``child``'s agent to take over; False if there is none."""
        if _is_standby(child):
            return False  # a standby died or hung: nothing to take over
        standbys = [
            c
            for c in self.children.get(child.agent, [])
            if c is not child and not c.exit_handled and not c.hung and _is_standby(c)
        ]
        if not standbys:
            return False
        lease = await self.leases.current(child.agent)
        held = lease is not None and lease.holder.pid == child.pid
        holder = child.holder or (lease.holder.holder if lease is not None and held else "")
        if held and why != "hung" and lease is not None:
            await self.leases.revoke(lease)  # the process is gone: free its lease at once
        standbys[0].standby = False  # about to become the active one
        request = to_json({"holder": holder, "reason": why})
        await self.nc.publish(layout.control_subject(child.agent, "takeover"), request)
        await self._event(
            child.agent,
            "takeover",
            f"standby {standbys[0].pid} replaces {child.pid} ({why})",
            standbys[0].pid,
        )
        return True

    async def _handle_exit(self, child: AgentChild, code: int | None) -> None:
        if child.exit_handled:
            return
        child.exit_handled = True
        if child.kill_timer is not None:  # never signal a pid that may have been reused
            child.kill_timer.cancel()
        agent = child.agent
        children = self.children.get(agent, [])
        if child in children:
            children.remove(child)
        if self._stopping or not self.leader.is_set() or not self._mine(agent):
            return  # (not mine: it was placed on another host, which starts it there)
        policy = self.policy(agent)
        if code == EXIT_FENCED:
            await self._event(agent, "exit", "stepped down after being fenced", child.pid)
            await self._reconcile(agent)
            return
        if code == EXIT_UNLOADABLE:
            await self._event(agent, "crash", "its code cannot be loaded", child.pid)
            await self._escalate(agent, code, "its code cannot be loaded (see its log)")
            return
        abnormal = code != 0
        kind = "crash" if abnormal else "exit"
        await self._event(
            agent, kind, f"exit code {code}" if code is not None else "vanished", child.pid
        )
        # Also for a process killed after hanging: its standby may have died before taking over.
        try:
            if not await self._takeover(child, kind):
                await self._release_lease_of(child)
        except StorageError as err:
            # The store is away (a server restarting, a leader being elected): the lease
            # expires by itself, and the restart below must still be scheduled.
            log.warning("agent %s: lease of pid %s not freed: %s", agent, child.pid, err)
        if policy.restart == "temporary" or (policy.restart == "transient" and not abnormal):
            await self._save(agent)
            return
        budget = self.budgets.setdefault(agent, RestartBudget(policy))
        if not budget.record(time.time()):
            await self._escalate(agent, code)
            return
        delay = budget.delay()
        await self._event(agent, "restart", f"in {delay * 1000:.0f} ms", child.pid, budget.total)
        loop = asyncio.get_running_loop()
        self.pending_restart[agent] = loop.call_later(
            delay, lambda: self._spawn(self._restart_now(agent))
        )
        await self._save(agent)

    async def _restart_now(self, agent: str) -> None:
        self.pending_restart.pop(agent, None)
        await self._reconcile(agent)

    async def _release_lease_of(self, child: AgentChild) -> None:
        lease = await self.leases.current(child.agent)
        if lease is not None and lease.holder.pid == child.pid:
            await self.leases.revoke(lease)

    async def _escalate(self, agent: str, code: int | None, why: str = "") -> None:
        policy = self.policy(agent)
        reason = why or (
            f"more than {policy.max_restarts} restarts within {policy.period:g}s "
            f"(last exit code {code})"
        )
        self.failed[agent] = reason
        for child in self.children.get(agent, []):
            child.kill()
        log.error("agent %s failed: %s", agent, reason)
        await self._event(agent, "escalation", reason)
        await self._save(agent, status="failed", reason=reason)

    # -- publishing --------------------------------------------------------------------------

    async def _save(self, agent: str, status: str | None = None, reason: str = "") -> None:
        if self._kv is None:
            return
        budget = self.budgets.get(agent)
        state = AgentSupervision(
            agent=agent,
            status=status or ("failed" if agent in self.failed else "running"),
            reason=reason or self.failed.get(agent, ""),
            processes=[c.info() for c in self.children.get(agent, []) if not c.exit_handled],
            restarts=budget.total if budget else 0,
            restart_times=list(budget.times) if budget else [],
            policy=self.policy(agent),
            supervisor=self.identity,
            updated_at=time.time(),
        )
        with contextlib.suppress(nats.errors.Error):
            if self._spread(agent):
                await self._save_shared(self._kv, state)
            else:
                await self._kv.put(agent, state.model_dump_json().encode())

    async def _save_shared(self, kv: KeyValue, state: AgentSupervision) -> None:
        """Save ``state`` keeping the processes the other hosts of the agent recorded (each
        host's supervisor writes the same record: compare-and-set, retried on a race)."""
        for _ in range(10):
            try:
                entry = await kv.get(state.agent)
                revision: int | None = entry.revision
                current = AgentSupervision.model_validate_json(entry.value or b"{}")
                others = [p for p in current.processes if p.host != self.host_label]
            except (KeyNotFoundError, ValidationError):
                revision, others = None, []
            value = state.model_copy(update={"processes": [*others, *state.processes]})
            encoded = value.model_dump_json().encode()
            try:
                if revision is None:
                    await kv.create(state.agent, encoded)
                else:
                    await kv.update(state.agent, encoded, last=revision)
                return
            except KeyWrongLastSequenceError:
                continue

    async def _event(
        self, agent: str, kind: str, reason: str = "", pid: int | None = None, restarts: int = 0
    ) -> None:
        event = SystemEvent(
            agent=agent,
            type=kind,
            reason=reason,
            pid=pid,
            restarts=restarts,
            at=utc_now(),
        )
        log.info("agent %s: %s %s", agent, kind, reason)
        with contextlib.suppress(nats.errors.Error):
            await self.js.publish(
                layout.system_event_subject(agent), event.model_dump_json().encode()
            )

    # -- operator actions ----------------------------------------------------------------------

    async def _on_reset(self, msg: Msg) -> None:
        if not self.leader.is_set():
            return  # the leader answers
        agent = msg.data.decode(errors="replace")
        if not self._mine(agent):
            return  # its host's supervisor answers
        if agent not in self.records:
            await msg.respond(to_json({"ok": False, "error": f"no agent named {agent!r}"}))
            return
        await self.reset(agent)
        await msg.respond(to_json({"ok": True, "agent": agent}))

    async def _on_restart(self, msg: Msg) -> None:
        if not self.leader.is_set():
            return
        agent = msg.data.decode(errors="replace")
        if not self._mine(agent):
            return
        if agent not in self.records:
            await msg.respond(to_json({"ok": False, "error": f"no agent named {agent!r}"}))
            return
        pids = self.restart(agent)
        await msg.respond(to_json({"ok": True, "agent": agent, "pids": pids}))

    def restart(self, agent: str) -> list[int]:
        """Stop the agent's processes (SIGTERM): each exit is then handled as any other,
        so a standby takes over and the policy starts a new process."""
        stopped = []
        for child in self.children.get(agent, []):
            if not child.exit_handled and child.pid is not None:
                child.terminate()
                stopped.append(child.pid)
        return stopped

    async def reset(self, agent: str) -> None:
        """Clear a failed agent (after a fix) and start it again."""
        self.failed.pop(agent, None)
        self.budgets[agent] = RestartBudget(self.policy(agent))
        await self._save(agent)
        await self._reconcile(agent)


def _is_standby(child: AgentChild) -> bool:
    """What the child's heartbeats say, or what it was started as before its first one."""
    return child.role == "standby" or (child.role == "starting" and child.standby)
