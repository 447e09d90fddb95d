"""Progress on long work (replays, searches, benchmarks): a bar on stderr, on a terminal only.

Pipes, files and scripts get nothing, so ``--json`` output and logs stay clean.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

WIDTH = 24


class Progress:
    """``progress(n)`` reports ``n`` units done (of ``total``, if known); ``close()`` ends it.

    Draws at most ten times a second, and only when ``stream`` (stderr) is a terminal."""

    def __init__(
        self, label: str, total: int | None = None, *, unit: str = "", stream: TextIO | None = None
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self._drawn = 0.0
        self._shown = False

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._drawn < 0.1 and not (self.total and done >= self.total):
            return
        self._drawn = now
        self.stream.write("\r" + self.line(done))
        self.stream.flush()
        self._shown = True

    def line(self, done: int) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if not self.total:
            return f"{self.label} {done:,}{unit}"
        share = min(1.0, done / self.total)
        filled = int(share * WIDTH)
        bar = "#" * filled + "-" * (WIDTH - filled)
        return f"{self.label} [{bar}] {done:,}/{self.total:,}{unit} {share:4.0%}"

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
