"""Summaries of pydantic validation errors, safe to send back (no input values)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

__all__ = ["validation_summary"]


def validation_summary(err: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    """A short message and the details of a validation error, without the input values."""
    errors = err.errors(include_url=False, include_context=False, include_input=False)
    details = [
        {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors[:20]
    ]
    summary = "; ".join(f"{'.'.join(d['loc']) or '(input)'}: {d['msg']}" for d in details[:5])
    return summary, details
