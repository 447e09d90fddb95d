"""Crash recovery under steady load: ``kill -9`` of the active agent process, time to recover.

``python -m o_bus_bench.recovery [--kills 20] [--json]`` (or ``o-bus bench recovery``)

Two configurations, each on its own embedded nats-server (127.0.0.1, a free port, a temporary
data directory) with the splitter and the supervisor as child processes, as under `o-bus up`:

- ``standby``: the supervision policy keeps a warm standby; when the active process dies, the
  supervisor tells the standby to take over (it has followed the log, so it only fences and
  serves), then starts a new standby.
- ``restart``: no standby; the supervisor starts a new process, which recovers from the
  latest snapshot plus the tail of the log.

An open-loop load runs throughout: ``--rate`` requests/s, ``increment`` with a unique id each,
every request in its own task, so requests stuck in re-sends never hold back new ones. A request
that gets no reply within ``--timeout`` is re-sent with the same id, as a real client does.
``--kills`` times, the ACTIVE agent process (found from its heartbeats on ``o.hb.counter``) is
killed with SIGKILL.

**Recovery time** of a kill: from ``os.kill`` to the first successful reply sent by the new
active process. "Sent by the new process" is read from the log afterwards: every process that
becomes active first writes a fence, so the first reply received after the kill whose event
sequence lies after the next fence is the first one the new process sent (a reply the killed
process sent just before it died does not count).

**Failed requests per kill**: requests with a timed-out attempt or an error reply after the
kill. Those that succeeded when re-sent with the same id are counted apart from outright
failures (no success within ``--give-up`` seconds, or an error that is not transient).

**RSS per agent process**: the largest ``rss_bytes`` each process reported in its heartbeats.

Modules: :mod:`.cli` (options and output), :mod:`.options` (settings and supervision policy),
:mod:`.run` (one configuration: the kill loop), :mod:`.services` (server preparation, splitter
and supervisor processes), :mod:`.processes` (agent process identity, RSS),
:mod:`.heartbeats` (what each agent process reports), :mod:`.steady_load` (the open-loop
load), :mod:`.log_scan` (the stream read back after the run), :mod:`.figures` (per-kill
figures), :mod:`.results` and :mod:`.report`.
"""

from __future__ import annotations

from .cli import main
from .results import ConfigResult, KillResult
from .run import measure

__all__ = ["ConfigResult", "KillResult", "main", "measure"]
