"""Evolution costs: live with shadows, and hot reload under load.

``o-bus bench evolution`` (or ``python -m o_bus_bench.evolution``) starts one server run as
``o-bus bench`` does (:class:`o_bus_bench.stack.Stack`: an embedded nats-server on 127.0.0.1,
`o-bus run splitter`, `o-bus run agent counter`, the raw-floor services), deploys copies of
the counter as code versions, and measures with the bench's closed-loop load generator:

- live throughput and latency with 0, 1 and 3 shadows, each a real sandboxed candidate
  process (as the evolution arbiter starts it) listed in the counter's route, at niceness 10
  (the sandbox's default) and 0, and optionally under SCHED_IDLE, beside the raw floor at the
  same concurrency;
- latency of requests sent around each hot reload (``route.live`` flipped through the route
  store while the load runs) against steady state, the time each switch took, and the
  failed requests.

Modules: :mod:`.cli` (options, output), :mod:`.run` (the measurements), :mod:`.shadows`
(code copies, candidate processes), :mod:`.swap_load` (the load-generator process of the
hot-reload run), :mod:`.results` and :mod:`.report`.
"""

from __future__ import annotations

from .cli import main

__all__ = ["main"]
