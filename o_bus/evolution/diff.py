"""Comparing a candidate's output with live's, Diffy style. Pure functions, no I/O.

An output is a JSON-like value, such as a reply ``{"ok": true, "error": null, "events":
[{"type": ..., "version": ..., "data": {...}}]}``. It is flattened to ``path -> value`` with
dotted paths (``events.0.data.at``). Two evaluations of the *live* code on the same input
(primary and secondary) differ only in noise: timestamps, random ids. :class:`NoiseModel`
learns those fields; :func:`compare` then counts a candidate's difference from primary only
where it is neither noise nor matched by an ignore rule.

Noise is learnt per *shape*: a path whose list indices are replaced by the element's ``type``
when it has one (``events.<incremented>.data.at``), else by ``*`` (``items.*.id``). So a noisy
field seen in the first ``incremented`` event also covers the fourth, but not the same field of
another event type.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any, Final

__all__ = [
    "MISSING",
    "Comparison",
    "IgnoreRules",
    "NoiseModel",
    "compare",
    "differences",
    "flatten",
]


class _Missing:
    """The value of a path that one side does not have."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<missing>"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()
Pair = tuple[Any, Any]


def _walk(
    value: Any, path: tuple[str, ...], shape: tuple[str, ...]
) -> Iterator[tuple[str, str, Any]]:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _walk(item, (*path, str(key)), (*shape, str(key)))
    elif isinstance(value, list | tuple) and value:
        for index, item in enumerate(value):
            kind = item.get("type") if isinstance(item, Mapping) else None
            token = f"<{kind}>" if isinstance(kind, str) else "*"
            yield from _walk(item, (*path, str(index)), (*shape, token))
    else:  # a scalar, or an empty container (kept so that "no events" differs from "events")
        yield ".".join(path), ".".join(shape), value


def _index(output: Any) -> dict[str, tuple[str, Any]]:
    return {path: (shape, value) for path, shape, value in _walk(output, (), ())}


def flatten(output: Any) -> dict[str, Any]:
    """``path -> leaf value``; empty dicts and lists are leaves."""
    return {path: value for path, _, value in _walk(output, (), ())}


def shapes(output: Any) -> dict[str, str]:
    """``path -> shape`` (list indices replaced by ``<type>`` or ``*``)."""
    return {path: shape for path, shape, _ in _walk(output, (), ())}


def _same(a: Any, b: Any, relative_tolerance: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        if a == b:
            return True
        if relative_tolerance > 0 and math.isfinite(a) and math.isfinite(b):
            return abs(a - b) <= relative_tolerance * max(abs(a), abs(b))
        return False
    return type(a) is type(b) and bool(a == b)


def differences(a: Any, b: Any, *, relative_tolerance: float = 0.0) -> dict[str, Pair]:
    """Every path whose value differs, as ``(a_value, b_value)``; :data:`MISSING` if absent.

    ``true`` and ``1`` differ; ``1`` and ``1.0`` do not. With ``relative_tolerance`` r > 0,
    two numbers are the same when ``|a - b| <= r * max(|a|, |b|)``.
    """
    found = _differing(_index(a), _index(b), relative_tolerance)
    return {path: pair for path, (_, pair) in sorted(found.items())}


def _differing(
    a: dict[str, tuple[str, Any]], b: dict[str, tuple[str, Any]], relative_tolerance: float
) -> dict[str, tuple[str, Pair]]:
    """``path -> (shape, (a_value, b_value))`` for differing paths; a's shape where a has it."""
    found: dict[str, tuple[str, Pair]] = {}
    for path, (shape, left) in a.items():
        other = b.get(path)
        if other is None:
            found[path] = (shape, (left, MISSING))
        elif not _same(left, other[1], relative_tolerance):
            found[path] = (shape, (left, other[1]))
    for path, (shape, right) in b.items():
        if path not in a:
            found[path] = (shape, (MISSING, right))
    return found


@lru_cache(maxsize=4096)
def _segments_match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    if not pattern:
        return not path
    if pattern[0] == "**":
        return any(_segments_match(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return (
        bool(path) and fnmatchcase(path[0], pattern[0]) and _segments_match(pattern[1:], path[1:])
    )


class IgnoreRules:
    """Per-field ignore rules: glob patterns on dotted paths.

    ``*`` matches one segment (and globs within it: ``created_*``), ``**`` any number of
    segments. A rule that matches a prefix ignores the whole subtree (``events.*.data``).
    A rule may name an event type instead of an index: ``events.<incremented>.data.at``.
    """

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        self.patterns = [p for p in patterns if p]
        self._split = [tuple(p.split(".")) for p in self.patterns]
        self._memo: dict[tuple[str, str | None], str | None] = {}

    def match(self, path: str, shape: str | None = None) -> str | None:
        """The first pattern that ignores ``path`` (or its shape), or None."""
        key = (path, shape)
        if key not in self._memo:
            if len(self._memo) >= 10_000:
                self._memo.clear()
            self._memo[key] = self._match(path, shape)
        return self._memo[key]

    def _match(self, path: str, shape: str | None) -> str | None:
        if not self.patterns:
            return None
        candidates = [tuple(path.split("."))]
        if shape and shape != path:
            candidates.append(tuple(shape.split(".")))
        for pattern, split in zip(self.patterns, self._split, strict=True):
            for segments in candidates:
                if any(_segments_match(split, segments[:n]) for n in range(1, len(segments) + 1)):
                    return pattern
        return None


class NoiseModel:
    """Fields that differ between two evaluations of the live code on the same input.

    Remembers at most ``max_shapes`` noisy shapes; beyond that new noise is not learnt (and
    so shows as differences, never hidden).
    """

    def __init__(self, max_shapes: int = 10_000) -> None:
        self.max_shapes = max_shapes
        self.samples = 0
        self.counts: dict[str, int] = {}

    def observe_secondary(self, primary: Any, secondary: Any) -> list[str]:
        """Learn from one (primary, secondary) pair; return the shapes it found noisy."""
        self.samples += 1
        return self._learn(_index(primary), _index(secondary))

    def _learn(
        self, primary: dict[str, tuple[str, Any]], secondary: dict[str, tuple[str, Any]]
    ) -> list[str]:
        noisy = sorted({shape for shape, _ in _differing(primary, secondary, 0.0).values()})
        for shape in noisy:
            if shape in self.counts or len(self.counts) < self.max_shapes:
                self.counts[shape] = self.counts.get(shape, 0) + 1
        return noisy

    def is_noise(self, shape: str) -> bool:
        return shape in self.counts

    def noise_rate(self, shape: str) -> float:
        """How often the shape differed between primary and secondary (0 with no samples)."""
        return self.counts.get(shape, 0) / self.samples if self.samples else 0.0

    def noisy_shapes(self) -> list[str]:
        return sorted(self.counts)

    def as_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "counts": dict(self.counts)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], max_shapes: int = 10_000) -> NoiseModel:
        model = cls(max_shapes)
        model.samples = int(data.get("samples", 0))
        model.counts = {str(k): int(v) for k, v in dict(data.get("counts", {})).items()}
        return model


@dataclass(frozen=True)
class Comparison:
    """A candidate's output against live's.

    ``fields``: the differences that count, ``path -> (live, candidate)``. ``ignored``: the
    differing paths that did not count; ``reasons`` says why for each (noise or which rule).
    """

    differs: bool
    fields: dict[str, Pair]
    ignored: list[str]
    reasons: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """JSON-ready; a side that lacks a path has no key for it."""
        rendered: dict[str, dict[str, Any]] = {}
        for path, (live, candidate) in self.fields.items():
            entry: dict[str, Any] = {}
            if live is not MISSING:
                entry["live"] = live
            if candidate is not MISSING:
                entry["candidate"] = candidate
            rendered[path] = entry
        return {
            "differs": self.differs,
            "fields": rendered,
            "ignored": list(self.ignored),
            "reasons": dict(self.reasons),
        }


def compare(
    primary: Any,
    secondary: Any | None,
    candidate: Any,
    noise: NoiseModel,
    ignore: IgnoreRules | Sequence[str] = (),
    *,
    relative_tolerance: float = 0.0,
) -> Comparison:
    """Compare ``candidate`` with live's ``primary`` output.

    ``secondary`` (a second live evaluation of the same input, or None) is first fed to
    ``noise``. A difference counts unless its shape is noise or an ignore rule matches it.
    ``relative_tolerance`` lets numbers differ by that fraction (0: exact).
    """
    rules = ignore if isinstance(ignore, IgnoreRules) else IgnoreRules(ignore)
    live = _index(primary)
    if secondary is not None:
        noise.samples += 1
        noise._learn(live, _index(secondary))
    counted: dict[str, Pair] = {}
    reasons: dict[str, str] = {}
    found = _differing(live, _index(candidate), relative_tolerance)
    for path in sorted(found):
        shape, pair = found[path]  # live's shape where live has the path
        rule = rules.match(path, shape)
        if rule is not None:
            reasons[path] = f"ignore rule {rule}"
        elif noise.is_noise(shape):
            reasons[path] = f"noise ({shape})"
        else:
            counted[path] = pair
    return Comparison(
        differs=bool(counted), fields=counted, ignored=sorted(reasons), reasons=reasons
    )
