"""``o-bus bench flood``: a well-behaved client's latency while another floods the bus.

On an embedded nats-server with the splitter and the ``counter`` agent process (as ``o-bus
up`` runs them): the victim's p50/p99 alone, during a flood of fire-and-forget requests from
another process (default 1,000,000, one in five invalid), and after it; how long until nothing
accepted waits any more; what the splitter refused. Beside it, the raw floor from the same run:
the same victim on the raw nats-py path, unloaded.

Modules: :mod:`.flooder`, :mod:`.victim`, :mod:`.run` (measurements), :mod:`.cli`.
"""

from o_bus_bench.flood.cli import main

__all__ = ["main"]
