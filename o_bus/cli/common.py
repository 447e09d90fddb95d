"""Shared CLI plumbing: printing results."""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["emit"]


def emit(value: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(value, separators=(",", ":")) + "\n")
    else:
        sys.stdout.write(json.dumps(value, indent=2) + "\n")
    sys.stdout.flush()
