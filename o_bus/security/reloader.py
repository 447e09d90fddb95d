"""Admits identities created while the platform runs: when a seed is added (an agent's or a
candidate's, issued by the supervisor or the arbiter) or replaced (rotation), the server's user
list is rewritten and the server reloads it (SIGHUP; connections stay up)."""

from __future__ import annotations

import logging
import threading

from o_bus.security.identities import IdentityStore
from o_bus.security.users import server_users
from o_bus.server.embedded import EmbeddedServer

__all__ = ["UserReloader"]

log = logging.getLogger(__name__)


class UserReloader:
    """Polls the credentials dir (a few stat calls) in a daemon thread until :meth:`stop`."""

    def __init__(
        self, server: EmbeddedServer, identities: IdentityStore, interval: float = 0.05
    ) -> None:
        self.server, self.identities, self.interval = server, identities, interval
        self._seen = identities.fingerprint()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="o-bus-users", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def check(self) -> bool:
        """Reload now if the seeds changed; True if it did."""
        now = self.identities.fingerprint()
        if now == self._seen:
            return False
        log.info("credentials changed: the server reloads its users")
        self.server.reload(server_users(self.identities))
        self._seen = now
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # a half-written seed: the next round sees it complete
                log.exception("could not reload the server's users")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)
