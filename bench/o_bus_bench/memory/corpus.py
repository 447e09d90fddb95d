"""Synthetic memory items and queries for the benchmark: short sentences from fixed word lists,
the same for a given seed, so runs compare."""

from __future__ import annotations

import random
from typing import Final

__all__ = ["items", "queries"]


def _split(text: str, sep: str = "|") -> list[str]:
    return [part.strip() for part in text.split(sep) if part.strip()]


_WHO: Final = _split(
    "Ana|Ben|Chen|Dara|Eli|Fatima|Gus|Hana|Ivan|Jo|Kemal|Lena|Maya|Nils|Omar|Priya|Quinn|Rosa|"
    "Sam|Tariq|Uma|Vera|Wen|Xavier|Yara|Zoe|the team|the landlord|the doctor|the courier"
)
_DID: Final = _split(
    "booked moved cancelled paid lost found repaired ordered returned borrowed planned "
    "scheduled shared renewed delivered forgot signed painted cleaned tested deployed",
    " ",
)
_WHAT: Final = _split(
    "the dentist appointment the train tickets the blue bicycle the kitchen tap the invoice "
    "the passport the garden hose the database backup the release notes the birthday cake "
    "the car insurance the office keys the wifi router the winter tyres the library books "
    "the heating boiler the quarterly report the concert seats the cat food the spare laptop",
    " the ",
)
_WHEN: Final = _split(
    "on Monday|on Tuesday|before lunch|after the meeting|last night|next week|at 9am|"
    "in March|over the weekend|by Friday|this morning|at the end of the month"
)
_WHERE: Final = _split(
    "at the station|in the garage|on the second floor|near the bakery|at the airport|"
    "in the shared drive|behind the shed|at the post office|in room 4|downtown"
)


def _what(rng: random.Random) -> str:
    thing = rng.choice(_WHAT).strip()
    return thing if thing.startswith("the ") else "the " + thing


def items(count: int, seed: int = 7, start: int = 0) -> list[str]:
    """``count`` item texts (item ``start`` onwards of the sequence for ``seed``)."""
    rng = random.Random(seed)
    texts = []
    for n in range(start + count):
        text = (
            f"{rng.choice(_WHO)} {rng.choice(_DID)} {_what(rng)} "
            f"{rng.choice(_WHERE)} {rng.choice(_WHEN)} (note {n})"
        )
        if n >= start:
            texts.append(text)
    return texts


def queries(count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    return [f"when did {rng.choice(_WHO)} {rng.choice(_DID)} {_what(rng)}" for _ in range(count)]
