"""The Prometheus text exposition format, version 0.0.4: metric families rendered as text.

Each family gets one ``# HELP`` and one ``# TYPE`` line, then its samples. Label values are
escaped (backslash, double quote, line feed) and help text too (backslash, line feed).
Histograms are given non-cumulative bucket counts, as heartbeats carry them, and are rendered
cumulative with a final ``le="+Inf"`` bucket equal to ``_count``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CONTENT_TYPE",
    "Family",
    "Sample",
    "escape_help",
    "escape_label_value",
    "format_value",
    "render",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MetricType = Literal["counter", "gauge", "histogram", "untyped"]

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value or bound: integers without a fraction, then Go-style special values."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


@dataclass(frozen=True)
class Sample:
    """One line: ``<family name><suffix>{labels} value``."""

    suffix: str
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass
class Family:
    name: str
    type: MetricType
    help: str
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _METRIC_NAME.match(self.name):
            raise ValueError(f"invalid metric name {self.name!r}")

    def add(self, value: float, labels: Mapping[str, str] | None = None) -> None:
        self.samples.append(Sample("", _labels(labels), value))

    def add_histogram(
        self,
        labels: Mapping[str, str] | None,
        bounds: Sequence[float],
        counts: Sequence[int],
        total: float,
    ) -> None:
        """``counts``: one per bound, then the +Inf bucket (not cumulative)."""
        if self.type != "histogram":
            raise ValueError(f"{self.name} is not a histogram")
        if len(counts) != len(bounds) + 1:
            raise ValueError("a histogram needs one count per bound plus the +Inf bucket")
        base = _labels(labels)
        if any(name == "le" for name, _ in base):
            raise ValueError("'le' is reserved in histograms")
        running = 0
        for bound, count in zip((*bounds, math.inf), counts, strict=True):
            running += count
            self.samples.append(Sample("_bucket", (*base, ("le", format_value(bound))), running))
        self.samples.append(Sample("_sum", base, total))
        self.samples.append(Sample("_count", base, running))


def _labels(labels: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    if not labels:
        return ()
    for name in labels:
        if not _LABEL_NAME.match(name) or name.startswith("__"):
            raise ValueError(f"invalid label name {name!r}")
    return tuple((name, str(value)) for name, value in labels.items())


def _line(name: str, sample: Sample) -> str:
    if sample.labels:
        pairs = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sample.labels)
        return f"{name}{sample.suffix}{{{pairs}}} {format_value(sample.value)}"
    return f"{name}{sample.suffix} {format_value(sample.value)}"


def render(families: Iterable[Family]) -> str:
    """The exposition text of ``families`` (each with its HELP and TYPE lines)."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        lines.extend(_line(family.name, sample) for sample in family.samples)
    return "\n".join(lines) + "\n" if lines else ""
