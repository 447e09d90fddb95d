"""Crossover of two versions: a command handler of the second parent replaces the first's
(when they differ), and their genomes mix gene by gene."""

from __future__ import annotations

import ast
import random

from o_bus.evolution.search.genome import GenomeSpace, write_genome
from o_bus.evolution.search.operators.base import NoChild, Parent, Proposal
from o_bus.evolution.search.operators.source_edit import handler_functions, replace_span, span_of

__all__ = ["Crossover"]


def _with_decorators(fn: ast.FunctionDef) -> ast.AST:
    first = fn.decorator_list[0] if fn.decorator_list else fn
    node = ast.Pass()
    node.lineno, node.col_offset = first.lineno, 0
    node.end_lineno, node.end_col_offset = fn.end_lineno, fn.end_col_offset
    return node


class Crossover:
    name = "crossover"
    arity = 2

    def __init__(self, space: GenomeSpace | None) -> None:
        self.space = space

    async def propose(self, parents: list[Parent], rng: random.Random) -> Proposal:
        a, b = parents[0], parents[1]
        source, details = a.source, []
        try:
            tree_a, tree_b = ast.parse(a.source), ast.parse(b.source)
        except SyntaxError as err:
            raise NoChild(f"a parent does not parse: {err.msg}") from err
        theirs = {fn.name: fn for fn in handler_functions(tree_b)}
        differing = [
            fn
            for fn in handler_functions(tree_a)
            if fn.name in theirs and ast.dump(fn) != ast.dump(theirs[fn.name])
        ]
        if differing:
            ours = rng.choice(differing)
            other = theirs[ours.name]
            text_b = b.source.encode()
            start, end = span_of(b.source, _with_decorators(other), whole_lines=True)
            replacement = text_b[start:end].decode()
            source = replace_span(
                source, span_of(source, _with_decorators(ours), whole_lines=True), replacement
            )
            details.append(f"handler {ours.name} from {b.child}")
        genome = a.genome
        if (
            self.space is not None
            and a.genome is not None
            and b.genome is not None
            and a.genome != b.genome
        ):
            genome = self.space.crossover(a.genome, b.genome, rng)
            if genome != a.genome:
                source = write_genome(source, genome)
                details.append(f"genome mixed with {b.child}")
        if source == a.source:
            raise NoChild(f"{a.child} and {b.child} do not differ where crossover mixes")
        return Proposal(source, genome, "; ".join(details))
