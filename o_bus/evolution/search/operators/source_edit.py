"""Editing Python source by syntax-tree positions, leaving every other byte as it was."""

from __future__ import annotations

import ast

__all__ = ["Span", "handler_functions", "replace_span", "span_of"]

Span = tuple[int, int]  # byte offsets [start, end) in the UTF-8 source


def _line_starts(data: bytes) -> list[int]:
    starts = [0]
    for index, byte in enumerate(data):
        if byte == 0x0A:
            starts.append(index + 1)
    return starts


def span_of(source: str, node: ast.AST, *, whole_lines: bool = False) -> Span:
    """Where ``node`` is in ``source`` (with ``whole_lines``: its lines, newline included)."""
    data = source.encode()
    starts = _line_starts(data)
    lineno, end_lineno = node.lineno, node.end_lineno  # type: ignore[attr-defined]
    col, end_col = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]
    if whole_lines:
        end = starts[end_lineno] if end_lineno < len(starts) else len(data)
        return starts[lineno - 1], end
    return starts[lineno - 1] + col, starts[end_lineno - 1] + end_col


def replace_span(source: str, span: Span, text: str) -> str:
    data = source.encode()
    return (data[: span[0]] + text.encode() + data[span[1] :]).decode()


def _decorator_attr(decorator: ast.expr) -> str | None:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return target.attr if isinstance(target, ast.Attribute) else None


def handler_functions(tree: ast.Module) -> list[ast.FunctionDef]:
    """The functions evolution may edit: command handlers (``@<agent>.command``) and plain
    module-level helpers. Appliers, fitness functions, invariants and queries are left alone:
    a candidate must not change how it is judged or how recorded events are read."""
    found = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        kinds = {_decorator_attr(d) for d in node.decorator_list}
        if not node.decorator_list or kinds == {"command"}:
            found.append(node)
    return found
