"""A genome: the tunable parameters an agent declares (``AgentDefinition(..., genome=G)``).

This module reads a genome model's fields as a search space (bounded numbers, choices,
booleans), mutates values within it, and writes values into a code version's source as the
module-level ``O_BUS_GENOME`` dict, so each genome is its own content-addressed version.
"""

from __future__ import annotations

import ast
import random
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from o_bus.agent.catalogue import GENOME_ATTR
from o_bus.errors import ConfigurationError

__all__ = ["Gene", "GenomeSpace", "read_genome", "write_genome"]

Values = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Gene:
    """One tunable parameter: kind ``int`` / ``float`` (bounded), ``choice`` or ``bool``."""

    name: str
    kind: Literal["int", "float", "choice", "bool"]
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()

    def mutate(self, value: Any, rng: random.Random, scale: float = 0.2) -> Any:
        """A nearby value within bounds (Gaussian step of ``scale`` times the range)."""
        if self.kind == "bool":
            return not value
        if self.kind == "choice":
            others = [c for c in self.choices if c != value]
            return rng.choice(others) if others else value
        step = rng.gauss(0.0, scale * (self.high - self.low))
        if self.kind == "int":
            moved = round(value + step)
            if moved == value:
                moved = value + (1 if rng.random() < 0.5 else -1)
            return int(min(self.high, max(self.low, moved)))
        return round(float(min(self.high, max(self.low, value + step))), 6)

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "bool":
            return rng.random() < 0.5
        if self.kind == "choice":
            return rng.choice(self.choices)
        if self.kind == "int":
            return rng.randint(int(self.low), int(self.high))
        return round(rng.uniform(self.low, self.high), 6)


def _bounds(field: Any) -> tuple[float | None, float | None]:
    low = high = None
    for meta in field.metadata:
        for attr in ("ge", "gt"):
            if getattr(meta, attr, None) is not None:
                low = float(getattr(meta, attr))
        for attr in ("le", "lt"):
            if getattr(meta, attr, None) is not None:
                high = float(getattr(meta, attr))
    return low, high


class GenomeSpace:
    """The genes of a genome model, in declaration order."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        genes: list[Gene] = []
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if annotation is bool:
                genes.append(Gene(name, "bool"))
            elif typing.get_origin(annotation) is Literal:
                genes.append(Gene(name, "choice", choices=typing.get_args(annotation)))
            elif annotation in (int, float):
                low, high = _bounds(field)
                if low is None or high is None:
                    raise ConfigurationError(
                        f"genome field {name!r} needs bounds: Field(ge=..., le=...)"
                    )
                genes.append(Gene(name, "int" if annotation is int else "float", low, high))
            else:
                raise ConfigurationError(
                    f"genome field {name!r}: use a bounded int/float, a Literal or a bool"
                )
        self.genes = tuple(genes)

    def defaults(self) -> Values:
        return self.model().model_dump(mode="json")

    def validate(self, values: Values) -> Values:
        return self.model.model_validate(values).model_dump(mode="json")

    def mutate(self, values: Values, rng: random.Random, rate: float = 0.35) -> Values:
        """Mutate each gene with probability ``rate`` (at least one gene always changes)."""
        out = dict(values)
        chosen = [g for g in self.genes if rng.random() < rate] or [rng.choice(self.genes)]
        for gene in chosen:
            out[gene.name] = gene.mutate(out[gene.name], rng)
        return self.validate(out)

    def crossover(self, a: Values, b: Values, rng: random.Random) -> Values:
        """Uniform crossover: each gene from either parent."""
        return self.validate({g.name: (a if rng.random() < 0.5 else b)[g.name] for g in self.genes})

    def sample(self, rng: random.Random) -> Values:
        return self.validate({g.name: g.sample(rng) for g in self.genes})


_MARK = "# Genome of this code version (a change is a new version):"


def _genome_statement(tree: ast.Module) -> ast.Assign | None:
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == GENOME_ATTR
        ):
            return node
    return None


def read_genome(source: str) -> Values | None:
    """The ``O_BUS_GENOME`` literal in ``source``, or None when it has none."""
    node = _genome_statement(ast.parse(source))
    if node is None:
        return None
    value = ast.literal_eval(node.value)
    if not isinstance(value, dict):
        raise ConfigurationError(f"{GENOME_ATTR} must be a dict literal")
    return value


def write_genome(source: str, values: Values) -> str:
    """``source`` with its ``O_BUS_GENOME`` set to ``values`` (replaced, or added at the end)."""
    literal = f"{GENOME_ATTR} = {dict(sorted(values.items()))!r}"
    node = _genome_statement(ast.parse(source))
    lines = source.splitlines(keepends=True)
    if node is not None and node.end_lineno is not None:
        start, end = node.lineno - 1, node.end_lineno
        return "".join(lines[:start]) + literal + "\n" + "".join(lines[end:])
    tail = "" if source.endswith("\n") or not source else "\n"
    return source + tail + f"\n\n{_MARK}\n{literal}\n"
