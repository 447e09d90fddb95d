"""Option value checks shared by the benchmark command lines."""

from __future__ import annotations

import argparse

__all__ = ["at_least_one", "count", "levels", "positive"]


def positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def levels(text: str) -> list[int]:
    """Concurrency levels: integers >= 1, separated by commas."""
    try:
        found = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("expected integers separated by commas") from None
    if not found or any(level < 1 for level in found):
        raise argparse.ArgumentTypeError("levels must be integers >= 1")
    return found
