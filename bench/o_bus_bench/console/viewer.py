"""A person with the console open: the agent's live timeline and the live figures, as the
page's two server-sent-event streams, read as fast as they come. Prints what it received
when stopped (SIGTERM).

``python -m o_bus_bench.console.viewer CONSOLE_URL TOKEN AGENT``
"""

from __future__ import annotations

import http.client
import json
import signal
import sys
import threading
import urllib.parse

__all__ = ["main"]


def _read(address: str, path: str, token: str, counts: dict[str, int], key: str) -> None:
    url = urllib.parse.urlsplit(address)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=3600)
    connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    if response.status != 200:
        raise SystemExit(f"{path}: HTTP {response.status}")
    for line in response:
        if line.startswith(b"data:"):
            data = json.loads(line[5:])
            counts[key] += len(data) if isinstance(data, list) else 1


def main(argv: list[str]) -> int:
    address, token, agent = argv
    counts = {"events": 0, "figures": 0}
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    for key, path in (
        ("events", f"/api/agents/{agent}/events/stream"),
        ("figures", "/api/figures/stream"),
    ):
        threading.Thread(
            target=_read, args=(address, path, token, counts, key), daemon=True
        ).start()
    print("following", flush=True)
    stopped.wait()
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
