"""The platform's own services as child processes of ``o-bus up``, kept alive like agents.

Each service instance (``splitter-1``, ``supervisor-2``, ...) is a slot with its own restart
budget (:class:`handlers.supervisor.intensity.RestartBudget`, the OTP rule agents follow):
a slot whose process exits is started again after the budget's backoff; more restarts than the
policy allows within its period escalates with :class:`ServiceEscalationError`, which stops
the platform with a clear message instead of restarting forever.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from o_bus.errors import OBusError
from o_bus.handlers.supervisor.intensity import RestartBudget
from o_bus.supervision.records import SupervisionPolicy

__all__ = ["ServiceEscalationError", "ServiceSet", "ServiceSlot"]

Spawner = Callable[[list[str]], "subprocess.Popen[bytes]"]


class ServiceEscalationError(OBusError):
    """A platform service died more often than its restart intensity allows."""


@dataclass(slots=True)
class ServiceSlot:
    """One service instance: its command line, its current process, its restart budget."""

    name: str
    command: list[str]
    budget: RestartBudget
    proc: subprocess.Popen[bytes] | None = None
    restart_at: float | None = None  # monotonic time of a pending restart
    exits: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class ServiceSet:
    """Starts, watches (:meth:`check`), restarts and stops the services of one platform."""

    def __init__(
        self,
        spawn: Spawner,
        policy: SupervisionPolicy | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.spawn = spawn
        self.policy = policy or SupervisionPolicy()
        self.say = say or (lambda text: print(f"o-bus up: {text}", file=sys.stderr, flush=True))
        self.slots: dict[str, ServiceSlot] = {}

    def add(self, name: str, command: list[str]) -> ServiceSlot:
        """Start a service now and keep it running."""
        slot = ServiceSlot(name, command, RestartBudget(self.policy))
        slot.proc = self.spawn(command)
        self.slots[name] = slot
        return slot

    def pids(self) -> set[int]:
        return {slot.proc.pid for slot in self.slots.values() if slot.proc is not None}

    def check(self, now: float | None = None) -> None:
        """Notice exits and start what is due; raise :class:`ServiceEscalationError` when a
        service exceeds its restart intensity."""
        now = time.monotonic() if now is None else now
        for slot in self.slots.values():
            if slot.restart_at is not None:
                if now >= slot.restart_at:
                    slot.restart_at = None
                    slot.proc = self.spawn(slot.command)
                    self.say(f"{slot.name} restarted (pid {slot.proc.pid})")
                continue
            if slot.proc is None or (code := slot.proc.poll()) is None:
                continue
            slot.exits.append(code)
            if not slot.budget.record(time.time()):
                raise ServiceEscalationError(
                    f"{slot.name} exited {len(slot.budget.times)} times within "
                    f"{self.policy.period:g}s (more than {self.policy.max_restarts}; last exit "
                    f"code {code}); stopping the platform",
                    details={"service": slot.name, "exits": slot.exits[-10:]},
                )
            delay = slot.budget.delay()
            slot.restart_at = now + delay
            self.say(
                f"{slot.name} (pid {slot.proc.pid}) exited with code {code}; restarting in "
                f"{delay * 1000:.0f} ms (restart {len(slot.budget.times)} of at most "
                f"{self.policy.max_restarts} within {self.policy.period:g}s)"
            )

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every service, SIGKILL what is still running after ``timeout`` seconds."""
        running = [s.proc for s in self.slots.values() if s.proc is not None]
        for slot in self.slots.values():
            slot.restart_at = None
        for proc in running:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
