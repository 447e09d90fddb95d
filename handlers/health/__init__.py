"""The health monitor: heartbeats, supervision and the registry turned into metrics.

It listens to every agent process's heartbeat (``o.hb.<agent>``), watches the supervisor's
bucket (``o_supervisor``) and the registry, and serves what it knows three ways: a JSON summary
per agent on ``o.health.<agent>``, all agents on request at ``o.health``, and HTTP
(``/metrics`` in the Prometheus text format, ``/health`` as JSON).
"""
