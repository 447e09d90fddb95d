"""`o-bus bench`: the project's request path and replay, each beside the raw nats-py floor.

Modules: ``main`` (command line and orchestration), ``stack`` (server and services of one run),
``load`` (closed-loop load generator process), ``raw`` (the raw-floor services), ``replay``
(log writer and replay reader processes), ``stats``, ``results`` and ``report``.
``recovery`` (a package) is `o-bus bench recovery`: failover and restart times under load.
"""

__all__: list[str] = []
