"""Structural code mutations of command handlers, in the manner of mutation testing.

Each mutation picks one site at random among those its kind applies to, in the handlers
(see :func:`~o_bus.evolution.search.operators.source_edit.handler_functions`): a numeric or
boolean constant, a comparison operator, a boolean operator, an arithmetic operator,
``min``/``max``, an ``if`` (keep one branch), a statement (delete or duplicate), or two
arguments of a call (swap). The rest of the file is kept byte for byte.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Callable

from o_bus.evolution.search.operators.base import NoChild, Parent, Proposal
from o_bus.evolution.search.operators.source_edit import handler_functions, replace_span, span_of

__all__ = ["KINDS", "AstMutation"]

_COMPARE_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
}
_BINOP_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.FloorDiv: ast.Mult,
}

Edit = tuple[tuple[int, int], str, str]  # (span, replacement text, what was done)
Site = Callable[[str, random.Random], Edit]


def _constant_sites(fn: ast.FunctionDef) -> list[ast.Constant]:
    return [
        n
        for n in ast.walk(fn)
        if isinstance(n, ast.Constant)
        and isinstance(n.value, int | float)
        and not (fn.returns is not None and n in ast.walk(fn.returns))
    ]


def _perturb(value: int | float, rng: random.Random) -> int | float:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return (
            value + rng.choice([-2, -1, 1, 2]) if abs(value) < 4 else value * rng.choice([0.5, 2])
        )
    return round(value * rng.uniform(0.5, 1.5) if value else rng.uniform(-1, 1), 6)


def _sites(source: str, tree: ast.Module) -> dict[str, list[Site]]:
    sites: dict[str, list[Site]] = {k: [] for k in KINDS}
    for fn in handler_functions(tree):
        for const in _constant_sites(fn):

            def edit(src: str, rng: random.Random, c: ast.Constant = const) -> Edit:
                assert isinstance(c.value, int | float)
                new = _perturb(c.value, rng)
                new_text = repr(
                    int(new) if isinstance(c.value, int) and not isinstance(c.value, bool) else new
                )
                return (
                    span_of(src, c),
                    new_text,
                    f"constant {c.value!r} -> {new_text} (line {c.lineno})",
                )

            sites["constant"].append(edit)
        for node in ast.walk(fn):
            if isinstance(node, ast.Compare) and type(node.ops[0]) in _COMPARE_SWAPS:

                def cmp(src: str, rng: random.Random, n: ast.Compare = node) -> Edit:
                    swapped = ast.Compare(
                        left=n.left,
                        ops=[_COMPARE_SWAPS[type(n.ops[0])](), *n.ops[1:]],
                        comparators=n.comparators,
                    )
                    text = ast.unparse(swapped)
                    return span_of(src, n), text, f"comparison -> {text} (line {n.lineno})"

                sites["compare"].append(cmp)
            elif isinstance(node, ast.BoolOp):

                def boolop(src: str, rng: random.Random, n: ast.BoolOp = node) -> Edit:
                    op: ast.boolop = ast.Or() if isinstance(n.op, ast.And) else ast.And()
                    text = f"({ast.unparse(ast.BoolOp(op=op, values=n.values))})"
                    return span_of(src, n), text, f"boolean operator -> {text} (line {n.lineno})"

                sites["boolean"].append(boolop)
            elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAPS:

                def binop(src: str, rng: random.Random, n: ast.BinOp = node) -> Edit:
                    swapped = ast.BinOp(left=n.left, op=_BINOP_SWAPS[type(n.op)](), right=n.right)
                    text = f"({ast.unparse(swapped)})"
                    return span_of(src, n), text, f"arithmetic -> {text} (line {n.lineno})"

                sites["arithmetic"].append(binop)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id in ("min", "max"):

                    def minmax(src: str, rng: random.Random, n: ast.Call = node) -> Edit:
                        assert isinstance(n.func, ast.Name)
                        other = "max" if n.func.id == "min" else "min"
                        return (
                            span_of(src, n.func),
                            other,
                            f"{n.func.id} -> {other} (line {n.lineno})",
                        )

                    sites["arithmetic"].append(minmax)
                if len(node.args) >= 2 and not any(isinstance(a, ast.Starred) for a in node.args):

                    def swap(src: str, rng: random.Random, n: ast.Call = node) -> Edit:
                        i = rng.randrange(len(n.args) - 1)
                        args = list(n.args)
                        args[i], args[i + 1] = args[i + 1], args[i]
                        text = ast.unparse(ast.Call(func=n.func, args=args, keywords=n.keywords))
                        return span_of(src, n), text, f"arguments swapped: {text} (line {n.lineno})"

                    sites["swap"].append(swap)
            elif isinstance(node, ast.If) and _starts_with(source, node, "if"):

                def branch(src: str, rng: random.Random, n: ast.If = node) -> Edit:
                    plain_else = bool(n.orelse) and not _is_elif(src, n.orelse)
                    keep = n.orelse if plain_else and rng.random() < 0.5 else n.body
                    which = "then" if keep is n.body else "else"
                    first = span_of(src, keep[0], whole_lines=True)[0]
                    last = span_of(src, keep[-1], whole_lines=True)[1]
                    lines = src.encode()[first:last].decode()
                    body = _reindent(lines, keep[0].col_offset, n.col_offset)
                    detail = f"if (line {n.lineno}) replaced by its {which} branch"
                    return span_of(src, n, whole_lines=True), body, detail

                sites["branch"].append(branch)
        for body in _bodies(fn):
            if len(body) < 2:
                continue
            for index, stmt in enumerate(body):
                if index == len(body) - 1 and isinstance(stmt, ast.Return):
                    continue

                def delete(src: str, rng: random.Random, s: ast.stmt = stmt) -> Edit:
                    return (
                        span_of(src, s, whole_lines=True),
                        "",
                        f"statement deleted (line {s.lineno})",
                    )

                def duplicate(src: str, rng: random.Random, s: ast.stmt = stmt) -> Edit:
                    span = span_of(src, s, whole_lines=True)
                    text = src.encode()[span[0] : span[1]].decode()
                    return span, text + text, f"statement duplicated (line {s.lineno})"

                sites["delete"].append(delete)
                sites["duplicate"].append(duplicate)
    return sites


def _starts_with(source: str, node: ast.stmt, word: str) -> bool:
    line = source.splitlines()[node.lineno - 1]
    return line[node.col_offset :].startswith(word + " ")


def _is_elif(source: str, orelse: list[ast.stmt]) -> bool:
    if len(orelse) != 1 or not isinstance(orelse[0], ast.If):
        return False
    return source.splitlines()[orelse[0].lineno - 1].lstrip().startswith("elif")


def _bodies(fn: ast.FunctionDef) -> list[list[ast.stmt]]:
    found = [fn.body]
    for node in ast.walk(fn):
        if isinstance(node, ast.If | ast.For | ast.While):
            found.append(node.body)
            if node.orelse:
                found.append(node.orelse)
        elif isinstance(node, ast.With):
            found.append(node.body)
    return found


def _reindent(text: str, from_col: int, to_col: int) -> str:
    out = []
    for line in text.splitlines(keepends=True):
        stripped = line[from_col:] if line[:from_col].strip() == "" else line.lstrip()
        out.append(" " * to_col + stripped if line.strip() else line)
    return "".join(out)


KINDS = ("constant", "compare", "boolean", "arithmetic", "branch", "delete", "duplicate", "swap")


class AstMutation:
    name = "ast"
    arity = 1

    async def propose(self, parents: list[Parent], rng: random.Random) -> Proposal:
        parent = parents[0]
        try:
            tree = ast.parse(parent.source)
        except SyntaxError as err:
            raise NoChild(f"parent does not parse: {err.msg}") from err
        sites = _sites(parent.source, tree)
        kinds = [k for k in KINDS if sites[k]]
        if not kinds:
            raise NoChild("no handler site to mutate")
        kind = rng.choice(kinds)
        span, text, detail = rng.choice(sites[kind])(parent.source, rng)
        child = replace_span(parent.source, span, text)
        if child == parent.source:
            raise NoChild(f"{kind} mutation changed nothing")
        try:
            ast.parse(child)
        except SyntaxError as err:
            raise NoChild(f"{kind} mutation gave invalid syntax: {err.msg}") from err
        return Proposal(child, parent.genome, f"{kind}: {detail}")
