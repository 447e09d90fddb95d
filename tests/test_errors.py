"""One exception root with precise codes, and a public API that says what it exports."""

from __future__ import annotations

import ast
import builtins
import importlib
from pathlib import Path

import pytest

import o_bus
from o_bus.errors import (
    AgentNotFoundError,
    CodeVersionNotFoundError,
    DeadLetterNotFoundError,
    ErrorCode,
    EvolutionNotFoundError,
    NotFoundError,
    OBusError,
)

ROOT = Path(__file__).resolve().parent.parent
BUILTIN_EXCEPTIONS = {
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    head = {"agents": "o_bus.agents", "handlers": "o_bus.handlers"}.get(parts[0], parts[0])
    return ".".join((head, *parts[1:])).removesuffix(".__init__")


def _exception_classes() -> list[tuple[str, str]]:
    """(module, class) of each class whose bases name a built-in exception, or whose imported
    class is an exception: every exception the package defines."""
    found = []
    for folder in ("o_bus", "handlers", "agents"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    bases = {ast.unparse(base).split(".")[-1] for base in node.bases}
                    if bases & BUILTIN_EXCEPTIONS or any(b.endswith("Error") for b in bases):
                        found.append((_module_name(path), node.name))
    return found


def test_every_exception_of_the_package_comes_under_obus_error() -> None:
    classes = _exception_classes()
    assert ("o_bus.handlers.health.http", "BadRequest") in classes  # the scan sees handlers/
    outside = []
    for module, name in classes:
        if name.startswith("_"):  # a private signal that never leaves its module
            continue
        cls = getattr(importlib.import_module(module), name)
        if cls is not OBusError and not issubclass(cls, OBusError):
            outside.append(f"{module}.{name}")
    assert not outside, f"exceptions outside OBusError: {outside}"


def test_each_kind_of_missing_thing_has_its_own_code() -> None:
    kinds = NotFoundError.__subclasses__()
    assert set(kinds) == {
        AgentNotFoundError,
        CodeVersionNotFoundError,
        DeadLetterNotFoundError,
        EvolutionNotFoundError,
    }
    codes = [kind.code for kind in kinds]
    assert len(set(codes)) == len(codes)
    assert ErrorCode.INTERNAL not in codes
    assert AgentNotFoundError("x").code is ErrorCode.UNKNOWN_AGENT


@pytest.mark.parametrize("name", o_bus.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(o_bus, name) is not None


def test_the_client_and_queries_are_public() -> None:
    from o_bus import Query, QueryContext, query, send
    from o_bus.agent import queries
    from o_bus.client import query as client_query
    from o_bus.client import send as client_send

    assert (send, query) == (client_send, client_query)
    assert (Query, QueryContext) == (queries.Query, queries.QueryContext)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = o_bus.nothing


def test_nothing_raises_the_bare_not_found_error() -> None:
    """NotFoundError has no code of its own: each raise names the kind of missing thing."""
    bare = []
    for folder in ("o_bus", "handlers", "agents"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call) and ast.unparse(node.func) == "NotFoundError":
                    bare.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bare, f"raise a NotFoundError subclass instead: {bare}"
