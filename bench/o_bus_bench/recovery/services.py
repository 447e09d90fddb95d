"""The platform one configuration runs on, as under `o-bus up`: the streams and the agent's
definition with its supervision policy, and the splitter and the supervisor as child processes.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

from nats.aio.client import Client

from o_bus.agent.catalogue import Catalogue
from o_bus.common.answers import until_answered as answered
from o_bus.common.connect import connect
from o_bus.runtime.registration import register_definitions
from o_bus.store.provision import provision
from o_bus.supervision.records import SupervisionPolicy
from o_bus_bench.errors import BenchError
from o_bus_bench.stack import AGENT
from o_bus_bench.stack import ServiceProcess as Service

__all__ = [
    "READY_TIMEOUT",
    "SERVICES",
    "Service",
    "prepare",
    "replayed",
    "run_command",
    "start_services",
    "stop_services",
    "until_answered",
]

READY_TIMEOUT: Final = 60.0
SERVICES: Final = ("splitter", "supervisor")  # started in this order, stopped in reverse
STOP_TIMEOUT: Final = 15.0


async def prepare(url: str, policy: SupervisionPolicy) -> None:
    """Provision the streams and register the agent's definition under ``policy``."""
    async with connect(url, "o-bus-bench-recovery") as (_, js):
        await provision(js)
        catalogue = Catalogue([Catalogue.discover().get(AGENT)])
        await register_definitions(js, catalogue, policy)


def run_command(service: str, url: str, *options: str) -> list[str]:
    """The command line of `o-bus run SERVICE --nats URL OPTIONS...` in this interpreter."""
    return [sys.executable, "-m", "o_bus.cli.main", "run", service, "--nats", url, *options]


def start_services(url: str, work_dir: Path) -> list[Service]:
    """Each service (`o-bus run NAME`) in its own session, its output in ``NAME.log``."""
    return [Service(name, run_command(name, url), work_dir / f"{name}.log") for name in SERVICES]


def stop_services(services: list[Service]) -> None:
    """SIGTERM each service in reverse order and wait for it (SIGKILL after a while). The
    supervisor stops its agent processes when it gets SIGTERM."""
    for service in reversed(services):
        service.terminate()
        service.wait(STOP_TIMEOUT)


async def until_answered(nc: Client, subject: str, check: Callable[[], None] | None = None) -> None:
    """Wait until something answers a request on ``subject`` (``check`` may raise to give up
    early: a process that should answer has exited)."""
    try:
        await answered(nc, subject, timeout=READY_TIMEOUT, check=check)
    except TimeoutError:
        raise BenchError(f"no answer on {subject} within {READY_TIMEOUT}s") from None


_RECOVERED = re.compile(rb"recovered at seq \d+ \(snapshot at \d+, (\d+) events replayed\)")


def replayed(log_path: Path) -> list[int]:
    """Events each agent process replayed when it became active (from its log lines, which
    the agent processes write to the supervisor's output)."""
    try:
        text = log_path.read_bytes()
    except OSError:
        return []
    return [int(match.group(1)) for match in _RECOVERED.finditer(text)]
