"""Supervision policy and the supervisor's published view of each agent (bucket o_supervisor)."""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EXIT_UNLOADABLE",
    "HOST_ENV",
    "AgentSupervision",
    "ProcessInfo",
    "SupervisionPolicy",
    "SystemEvent",
    "host_label",
]

EXIT_UNLOADABLE = 78
"""EX_CONFIG: the exit code of an agent process whose registered code cannot be loaded; the
supervisor marks the agent failed at once instead of restarting it."""

HOST_ENV = "O_BUS_HOST"
"""Set by a supervisor for the agent processes it starts: the name of its host (the one of
`o-bus run host --name`, else the machine's), shown in their lease holder and by `o-bus ps`."""


def host_label() -> str:
    """The host this process runs on, as the platform names it."""
    return os.environ.get(HOST_ENV) or socket.gethostname()


class SupervisionPolicy(BaseModel):
    """How an agent is kept alive, OTP style.

    ``permanent`` agents are always restarted; ``transient`` ones only after an abnormal exit;
    ``temporary`` ones never. More than ``max_restarts`` restarts within ``period`` seconds
    escalates: the agent is marked failed and requests to it get an ``unavailable`` error.
    """

    model_config = ConfigDict(frozen=True)
    restart: Literal["permanent", "transient", "temporary"] = "permanent"
    max_restarts: int = Field(5, ge=0)
    period: float = Field(60.0, gt=0, description="seconds over which restarts are counted")
    backoff_initial: float = Field(0.05, ge=0, description="first restart delay, seconds")
    backoff_max: float = Field(5.0, ge=0)
    jitter: float = Field(0.2, ge=0, le=1, description="random +/- fraction of each delay")
    standby: bool = Field(False, description="keep a warm standby process for fast failover")
    heartbeat_timeout: float = Field(0.6, gt=0, description="silence after which a process is hung")


class ProcessInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    pid: int
    host: str
    standby: bool
    started_at: float


class AgentSupervision(BaseModel):
    """The supervisor's record of one agent, kept in bucket ``o_supervisor`` under its name."""

    model_config = ConfigDict(frozen=True)
    agent: str
    status: Literal["running", "failed", "stopped"]
    reason: str = ""
    processes: list[ProcessInfo] = []
    restarts: int = 0
    restart_times: list[float] = Field(default_factory=list, description="within the period")
    policy: SupervisionPolicy = SupervisionPolicy()
    supervisor: str = ""
    updated_at: float = 0.0


class SystemEvent(BaseModel):
    """A supervision event on ``o.sys.agent.<agent>`` (stream O_SYSTEM)."""

    model_config = ConfigDict(frozen=True)
    agent: str
    type: Literal[
        "start", "exit", "crash", "hung", "restart", "takeover", "escalation", "adopt", "stop"
    ]
    reason: str = ""
    pid: int | None = None
    restarts: int = 0
    at: str
