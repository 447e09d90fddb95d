"""Restarting a nats-server child that died, on its store and port, within restart intensity."""

from __future__ import annotations

import time
from collections.abc import Callable

from o_bus.errors import ConfigurationError
from o_bus.handlers.supervisor.intensity import RestartBudget
from o_bus.platform.service_set import ServiceEscalationError
from o_bus.server.embedded import EmbeddedServer
from o_bus.supervision.records import SupervisionPolicy

__all__ = ["ServerKeeper"]


class ServerKeeper:
    """Restarts the embedded nats-server on its store and port when it dies, within the same
    restart intensity as the services (escalation stops the platform)."""

    def __init__(
        self,
        server: EmbeddedServer,
        policy: SupervisionPolicy | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.server, self.policy, self.say = server, policy or SupervisionPolicy(), say
        self.budget = RestartBudget(self.policy)
        self.restart_at: float | None = None

    def check(self) -> None:
        now = time.monotonic()
        if self.restart_at is None:
            if self.server.is_running():
                return
            if not self.budget.record(time.time()):
                raise ServiceEscalationError(
                    f"nats-server died more than {self.policy.max_restarts} times within "
                    f"{self.policy.period:g}s (log: {self.server.log_file}); stopping the platform"
                )
            delay = self.budget.delay()
            name = self.server.server_name or "nats-server"
            self.say(f"{name} died; restarting it on the same store in {delay * 1000:.0f} ms")
            self.restart_at = now + delay
        if now < self.restart_at:
            return
        self.restart_at = None
        try:
            self.server.restart()
        except ConfigurationError as err:
            self.say(f"nats-server did not restart: {err.message}")
            return  # counted as one more death at the next check
        self.say(f"nats-server restarted (pid {self.server.pid}) at {self.server.url}")
