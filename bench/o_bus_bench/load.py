"""The closed-loop load generator, run in its own process (``python -m o_bus_bench.load``).

``C`` requesters each keep exactly one request in flight: the reply callback records the
latency and sends that requester's next request at once. Given several subjects (agents), the
requesters are spread over them in turn. Every request carries a unique
CloudEvents id. Replies come back on one wildcard inbox subscription, so the generator spends
as little CPU per request as a NATS client can, leaving the machine to the processes measured.
Only replies that arrive inside the measured window (after the warm-up) are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Final

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from o_bus.common.connect import ConnectOptions
from o_bus.common.event_loop import install_uvloop
from o_bus_bench.errors import BenchError
from o_bus_bench.stats import CpuSampler, LevelResult, percentile

__all__ = ["ClosedLoop", "run_level"]

BODY: Final = b'{"by": 1}'
STATUS_HEADER: Final = "O-Status"
NATS_STATUS_HEADER: Final = "Status"


class ClosedLoop:
    """``concurrency`` requesters on ``subject`` (or spread over several), one request in
    flight each."""

    def __init__(
        self,
        nc: Client,
        subject: str | Sequence[str],
        concurrency: int,
        timeout: float,
        traced: bool = False,
    ) -> None:
        self.nc = nc
        self.traced = traced  # each request carries a W3C traceparent (its own parent id)
        self.trace_id = uuid.uuid4().hex
        self.subjects = [subject] if isinstance(subject, str) else list(subject)
        self.subject = self.subjects[0]
        self.concurrency = concurrency
        self.timeout = timeout
        # Under credentials an identity may only receive under its own inbox prefix.
        secured = ConnectOptions.from_env().nkey_seed_file is not None
        self.prefix = nc.new_inbox() + "." if secured else f"_OBENCH.{uuid.uuid4().hex}."
        self.run_id = uuid.uuid4().hex[:16]
        self.sent_at = [0.0] * concurrency
        self.generation = [0] * concurrency
        self.latencies: list[float] = []
        self.measuring = False
        self.stopping = False
        self.completed = 0
        self.errors = 0
        self.timeouts = 0
        self.outstanding = 0
        self.idle = asyncio.Event()

    async def _send(self, slot: int) -> None:
        number = self.generation[slot] + 1
        self.generation[slot] = number
        headers = {
            "ce-id": f"{self.run_id}-{slot}-{number}",
            "ce-type": "increment",
            "ce-source": "o-bus/bench",
            "ce-specversion": "1.0",
            "Content-Type": "application/json",
        }
        if self.traced:
            headers["ce-traceparent"] = f"00-{self.trace_id}-{slot:08x}{number:08x}-01"
        self.sent_at[slot] = time.perf_counter()
        subject = self.subjects[slot % len(self.subjects)]
        await self.nc.publish(subject, BODY, reply=f"{self.prefix}{slot}.{number}", headers=headers)

    async def _on_reply(self, msg: Msg) -> None:
        now = time.perf_counter()
        slot_text, _, number_text = msg.subject[len(self.prefix) :].partition(".")
        slot = int(slot_text)
        if int(number_text) != self.generation[slot]:
            return  # a late reply to a request already counted as timed out
        if self.measuring:
            headers = msg.headers
            if headers and (headers.get(STATUS_HEADER) == "error" or NATS_STATUS_HEADER in headers):
                self.errors += 1
            else:
                self.completed += 1
                self.latencies.append(now - self.sent_at[slot])
        if self.stopping:
            self.outstanding -= 1
            if self.outstanding <= 0:
                self.idle.set()
            return
        await self._send(slot)

    async def _watchdog(self) -> None:
        while not self.stopping:
            await asyncio.sleep(min(0.25, self.timeout / 4))
            limit = time.perf_counter() - self.timeout
            for slot in range(self.concurrency):
                if self.sent_at[slot] < limit and not self.stopping:
                    if self.measuring:
                        self.timeouts += 1
                    await self._send(slot)

    async def run(self, warmup: float, duration: float, sampler: CpuSampler) -> LevelResult:
        sub = await self.nc.subscribe(
            self.prefix + "*.*", cb=self._on_reply, pending_msgs_limit=1_000_000
        )
        await self.nc.flush()
        for slot in range(self.concurrency):
            await self._send(slot)
        watchdog = asyncio.create_task(self._watchdog())
        await asyncio.sleep(warmup)
        sampler.start()
        started = time.perf_counter()
        self.measuring = True
        await asyncio.sleep(duration)
        self.measuring = False
        seconds = time.perf_counter() - started
        cpu = sampler.stop(seconds)
        self.outstanding = self.concurrency
        self.stopping = True
        watchdog.cancel()
        # Replies lost at the end do not change the measured window.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle.wait(), self.timeout)
        await sub.unsubscribe()
        latencies = sorted(self.latencies)
        return LevelResult(
            concurrency=self.concurrency,
            seconds=round(seconds, 3),
            completed=self.completed,
            errors=self.errors,
            timeouts=self.timeouts,
            rps=round(self.completed / seconds, 1) if seconds > 0 else 0.0,
            p50_ms=round(percentile(latencies, 0.50) * 1000, 3),
            p99_ms=round(percentile(latencies, 0.99) * 1000, 3),
            max_ms=round((latencies[-1] if latencies else 0.0) * 1000, 3),
            cpu_percent=cpu,
        )


async def _main(args: argparse.Namespace) -> LevelResult:
    watched = dict(item.split("=", 1) for item in args.watch or [])
    pids = {name: int(pid) for name, pid in watched.items()}
    pids["client"] = os.getpid()
    servers = args.nats.split(",") if "," in args.nats else args.nats
    # As the identity the environment names, if any (``o-bus bench security``).
    nc = await nats.connect(
        servers,
        name="o-bus-bench-load",
        max_reconnect_attempts=0,
        **ConnectOptions.from_env().nats_kwargs(),
    )
    try:
        loop = ClosedLoop(nc, args.subject, args.concurrency, args.timeout, args.traceparent)
        return await loop.run(args.warmup, args.duration, CpuSampler(pids))
    finally:
        await nc.close()


def run_level(
    url: str,
    subject: str | Sequence[str],
    concurrency: int,
    *,
    warmup: float,
    duration: float,
    watch: dict[str, int],
    timeout: float = 5.0,
    traceparent: bool = False,
    env: dict[str, str] | None = None,
) -> LevelResult:
    """Run one closed-loop level in a fresh load-generator process and return its figures
    (``subject``: one, or several the requesters are spread over; ``traceparent``: every
    request carries one)."""
    subjects = [subject] if isinstance(subject, str) else list(subject)
    shown = ",".join(subjects)
    cmd = [
        sys.executable,
        "-m",
        "o_bus_bench.load",
        "--nats",
        url,
        *(arg for each in subjects for arg in ("--subject", each)),
        "--concurrency",
        str(concurrency),
        "--warmup",
        str(warmup),
        "--duration",
        str(duration),
        "--timeout",
        str(timeout),
    ]
    for name, pid in watch.items():
        cmd += ["--watch", f"{name}={pid}"]
    if traceparent:
        cmd.append("--traceparent")
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=warmup + duration + timeout + 60,
            env={**os.environ, **env} if env else None,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise BenchError(f"the load generator did not finish ({shown}, C={concurrency})") from err
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise BenchError(
            f"the load generator failed ({shown}, C={concurrency}, exit {done.returncode}):\n"
            + "\n".join(done.stderr.strip().splitlines()[-15:])
        )
    return LevelResult.from_dict(json.loads(lines[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m o_bus_bench.load")
    parser.add_argument("--nats", required=True)
    parser.add_argument(
        "--subject", action="append", required=True, help="repeatable: requesters spread over each"
    )
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--watch", action="append", help="NAME=PID: report this process's CPU")
    parser.add_argument(
        "--traceparent", action="store_true", help="send a W3C traceparent with every request"
    )
    args = parser.parse_args(argv)
    install_uvloop()
    result = asyncio.run(_main(args))
    sys.stdout.write(json.dumps(result.as_dict()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
