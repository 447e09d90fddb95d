"""Progress on long work (replays, searches, benchmarks): a bar on stderr, on a terminal only.

Pipes, files and scripts get no bar, so ``--json`` output and logs stay clean; ``note()``
lines are printed either way (above the bar on a terminal).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

WIDTH = 24
CLEAR_LINE = "\r\x1b[K"


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
        self.done = 0
        self.detail = ""
        self._drawn = 0.0
        self._shown = False

    def __call__(self, done: int, detail: str = "") -> None:
        self.done, self.detail = done, detail
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._drawn < 0.1 and not (self.total and done >= self.total):
            return
        self._drawn = now
        self._draw()

    def _draw(self) -> None:
        self.stream.write(CLEAR_LINE + self.line())
        self.stream.flush()
        self._shown = True

    def line(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        detail = f", {self.detail}" if self.detail else ""
        if not self.total:
            return f"{self.label} {self.done:,}{unit}{detail}"
        share = min(1.0, self.done / self.total)
        filled = int(share * WIDTH)
        bar = "#" * filled + "-" * (WIDTH - filled)
        return f"{self.label} [{bar}] {self.done:,}/{self.total:,}{unit} {share:4.0%}{detail}"

    def note(self, text: str) -> None:
        """Print a line (a stage, a figure) above the bar; on a pipe, just the line."""
        if self._shown:
            self.stream.write(CLEAR_LINE)
        self.stream.write(text + "\n")
        if self._shown:
            self._draw()
        self.stream.flush()

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
