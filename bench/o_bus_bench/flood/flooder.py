"""The flooding client: ``python -m o_bus_bench.flood.flooder --nats URL --count N``.

Publishes N fire-and-forget requests (no reply subject) to ``o.req.<agent>`` as fast as one
nats-py connection can, every ``--invalid-every``-th one with a body that is not JSON, all from
one ``ce-source``. Prints one JSON line: what it sent and how long it took.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from o_bus.common.connect import connect
from o_bus.requests import request_headers
from o_bus.store import layout
from o_bus.wire.codec import Encoding

__all__ = ["FLOOD_SOURCE", "flood"]

FLOOD_SOURCE = "o-bus/bench-flood"
VALID = b'{"by": 1}'
INVALID = b'{"by": 1'


async def flood(url: str, agent: str, count: int, invalid_every: int) -> dict[str, float]:
    """Send ``count`` requests; return what was sent, valid and invalid, and the seconds."""
    subject = layout.request_subject(agent)
    headers = request_headers("increment", "", Encoding.JSON, FLOOD_SOURCE)
    invalid = 0
    async with connect(url, "o-bus-bench-flood") as (nc, _):
        started = time.monotonic()
        for number in range(count):
            headers["ce-id"] = f"flood-{number}"
            bad = invalid_every > 0 and number % invalid_every == invalid_every - 1
            invalid += bad
            await nc.publish(subject, INVALID if bad else VALID, headers=headers)
            if number % 5000 == 4999:
                await nc.flush(timeout=60)
        await nc.flush(timeout=60)
        seconds = time.monotonic() - started
    return {"sent": count, "valid": count - invalid, "invalid": invalid, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m o_bus_bench.flood.flooder")
    parser.add_argument("--nats", required=True)
    parser.add_argument("--agent", default="counter")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--invalid-every", type=int, default=0)
    args = parser.parse_args(argv)
    sent = asyncio.run(flood(args.nats, args.agent, args.count, args.invalid_every))
    print(json.dumps(sent), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
