"""Request payloads from a command's JSON Schema, biased to the edges, and their mutations.

Fuzzers find off-by-one bugs at boundaries, so integers and lengths are drawn from the bounds
and their neighbours (min, min+1, max-1, max, 0, ±1) more often than from the whole range.
Payloads are JSON values; most are valid for the schema, and some deliberately are not
(a value just outside a bound), because a handler must answer those with a clear rejection.
"""

from __future__ import annotations

import random
import string
from typing import Any

__all__ = ["PayloadGenerator"]

_BIG = 2**31
_TEXT = string.ascii_letters + string.digits + " -_.\u00e9\u4e2d"
_WORD = string.ascii_letters + string.digits + "_"


class PayloadGenerator:
    """Draws payloads for one JSON Schema (a pydantic model's ``model_json_schema()``)."""

    def __init__(self, schema: dict[str, Any], rng: random.Random) -> None:
        self.schema = schema
        self.defs: dict[str, Any] = schema.get("$defs", {})
        self.rng = rng

    def draw(self) -> Any:
        return self._value(self.schema, depth=0)

    def mutate(self, payload: Any) -> Any:
        """A neighbour of ``payload``: one field nudged, redrawn, or (rarely) dropped."""
        if not isinstance(payload, dict) or not payload:
            return self.draw()
        props: dict[str, Any] = self.schema.get("properties", {})
        key = self.rng.choice(sorted(payload))
        value = payload[key]
        out = dict(payload)
        roll = self.rng.random()
        if isinstance(value, int) and not isinstance(value, bool) and roll < 0.6:
            out[key] = value + self.rng.choice([-1, 1, -2, 2, value or 1, -(value or 1)])
        elif roll < 0.95 and key in props:
            out[key] = self._value(props[key], depth=1)
        else:
            del out[key]
        return out

    # -- drawing ---------------------------------------------------------------------------

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            resolved: dict[str, Any] = self.defs.get(ref.removeprefix("#/$defs/"), {})
            return resolved
        return schema

    def _value(self, schema: dict[str, Any], depth: int) -> Any:
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.rng.choice(schema["enum"])
        options = schema.get("anyOf") or schema.get("oneOf")
        if options:
            return self._value(self.rng.choice(options), depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = self.rng.choice(kind)
        if kind == "integer":
            return self._integer(schema)
        if kind == "number":
            return self._number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "string":
            return self._string(schema)
        if kind == "null":
            return None
        if kind == "array":
            if depth > 3:
                return []
            size = self.rng.choice([0, 1, 2, 5])
            return [self._value(schema.get("items", {}), depth + 1) for _ in range(size)]
        if kind == "object" or "properties" in schema:
            return self._object(schema, depth)
        return self.rng.choice([0, 1, -1, "", None, True])

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        out: dict[str, Any] = {}
        for name, sub in props.items():
            if name in required or self.rng.random() < 0.8:
                out[name] = self._value(sub, depth + 1) if depth < 4 else None
        return out

    def _integer(self, schema: dict[str, Any]) -> int:
        low = schema.get("minimum")
        high = schema.get("maximum")
        if "exclusiveMinimum" in schema:
            low = int(schema["exclusiveMinimum"]) + 1
        if "exclusiveMaximum" in schema:
            high = int(schema["exclusiveMaximum"]) - 1
        lo = int(low) if low is not None else -_BIG
        hi = int(high) if high is not None else _BIG
        edges = [lo, lo + 1, hi - 1, hi, 0, 1, -1, 2]
        if self.rng.random() < 0.1:  # just outside the bounds: must be rejected cleanly
            return self.rng.choice([lo - 1, hi + 1])
        if self.rng.random() < 0.6:
            inside = [v for v in edges if lo <= v <= hi]
            if inside:
                return self.rng.choice(inside)
        span_hi = min(hi, lo + 1000) if low is not None else min(hi, 1000)
        span_lo = max(lo, -1000) if low is None else lo
        return self.rng.randint(min(span_lo, span_hi), max(span_lo, span_hi))

    def _number(self, schema: dict[str, Any]) -> float:
        lo = float(schema.get("minimum", schema.get("exclusiveMinimum", -1e6)))
        hi = float(schema.get("maximum", schema.get("exclusiveMaximum", 1e6)))
        if self.rng.random() < 0.1:  # just outside the bounds
            return self.rng.choice([lo - 0.25, hi + 0.25])
        inside = [v for v in (lo, hi, (lo + hi) / 2, 0.0) if lo <= v <= hi]
        if inside and self.rng.random() < 0.6:
            return self.rng.choice(inside)
        return self.rng.uniform(lo, hi)

    def _string(self, schema: dict[str, Any]) -> str:
        low = int(schema.get("minLength", 0))
        high = int(schema.get("maxLength", max(low, 16)))
        high = min(high, max(low, 4096))  # an edge-length string, not a memory test
        length = self.rng.choice([low, high, low + 1, max(low, high - 1), (low + high) // 2])
        pattern = schema.get("pattern")
        # Patterns are not generated from: word characters fit the common ones (identifiers,
        # kinds); a string that does not fit is an invalid input, answered with a rejection.
        alphabet = _WORD if pattern and self.rng.random() < 0.9 else _TEXT
        return "".join(self.rng.choice(alphabet) for _ in range(max(0, length)))
