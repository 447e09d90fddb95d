"""Behaviour descriptors: where a version sits in the archive's grid.

Built in: ``code_size`` (bytes of source) and ``latency`` (mean ms per request). An agent
declares its own list with a module-level ``O_BUS_DESCRIPTORS = [...]``, which may also name
genome fields (``genome.<field>``). Latency is measured, so it varies from run to run; a
grid over ``code_size`` and genome fields is exactly reproducible.
"""

from __future__ import annotations

import ast
from typing import Any

from o_bus.errors import ConfigurationError
from o_bus.evolution.search.genome import GenomeSpace
from o_bus.evolution.search.population.map_elites import DescriptorSpec, default_ranges

__all__ = ["DECLARED_ATTR", "DEFAULT", "declared", "descriptor_values", "specs"]

DECLARED_ATTR = "O_BUS_DESCRIPTORS"
DEFAULT = ("code_size", "latency")


def declared(source: str) -> tuple[str, ...]:
    """The agent's ``O_BUS_DESCRIPTORS`` list, or the defaults."""
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == DECLARED_ATTR
        ):
            value = ast.literal_eval(node.value)
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ConfigurationError(f"{DECLARED_ATTR} must be a list of descriptor names")
            return tuple(value)
    return DEFAULT


def specs(names: tuple[str, ...], space: GenomeSpace | None, bins: int) -> list[DescriptorSpec]:
    out = []
    for name in names:
        if name.startswith("genome."):
            genes = {g.name: g for g in (space.genes if space else ())}
            gene = genes.get(name.removeprefix("genome."))
            if gene is None:
                raise ConfigurationError(f"descriptor {name!r}: the genome has no such field")
            if gene.kind in ("int", "float"):
                cells = min(bins, int(gene.high - gene.low) + 1) if gene.kind == "int" else bins
                out.append(DescriptorSpec(name, gene.low, gene.high + (gene.kind == "int"), cells))
            else:
                count = 2 if gene.kind == "bool" else len(gene.choices)
                out.append(DescriptorSpec(name, 0, count, count))
        elif name in DEFAULT:
            out.append(default_ranges(name, bins))
        else:
            raise ConfigurationError(
                f"unknown descriptor {name!r}: use code_size, latency or genome.<field>"
            )
    return out


def descriptor_values(
    names: list[str],
    source: str,
    genome: dict[str, Any] | None,
    figures: dict[str, Any],
    space: GenomeSpace | None,
) -> dict[str, float]:
    values: dict[str, float] = {}
    genes = {g.name: g for g in (space.genes if space else ())}
    for name in names:
        if name == "code_size":
            values[name] = float(len(source.encode()))
        elif name == "latency":
            values[name] = float(figures.get("latency_ms_mean") or 0.0)
        elif name.startswith("genome.") and genome is not None:
            field = name.removeprefix("genome.")
            value, gene = genome.get(field), genes.get(field)
            if gene is not None and gene.kind == "choice":
                values[name] = float(gene.choices.index(value)) if value in gene.choices else 0.0
            else:
                values[name] = float(value or 0)
    return values
