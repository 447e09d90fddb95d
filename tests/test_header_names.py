"""Header names are spelled once, in ``o_bus.wire.headers``: a literal elsewhere in the code
base is how two spellings of one header start to drift apart."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

from o_bus.schemas import headers as schema_headers
from o_bus.wire import headers

ROOT = Path(__file__).resolve().parent.parent
NAMES = {
    value
    for name, value in vars(headers).items()
    if name.isupper() and isinstance(value, str) and name != "NATS_STATUS"  # also a word
}
# TypedDict keys must be literals: the schema of the headers checks them against NAMES below.
EXEMPT = {ROOT / "o_bus" / "wire" / "headers.py", Path(schema_headers.__file__).resolve()}


def literal_header_names(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.name}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in NAMES
    ]


def test_no_header_name_is_spelled_outside_the_wire_module() -> None:
    found = [
        hit
        for folder in ("o_bus", "handlers", "agents")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path not in EXEMPT
        for hit in literal_header_names(path)
    ]
    assert found == []


def test_the_check_sees_a_literal(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('HEADERS = {"Content-Type": "json", "ce-id": "1"}\nDOC = "a Content-Type"\n')
    assert literal_header_names(sample) == [
        "sample.py:1: 'Content-Type'",
        "sample.py:1: 'ce-id'",
    ]


@pytest.mark.parametrize(
    "typed_dict",
    [
        schema_headers.BinaryRequestHeaders,
        schema_headers.ReplyHeaders,
        schema_headers.EventHeaders,
        schema_headers.DeadLetterHeaders,
    ],
)
def test_the_documented_headers_are_the_ones_the_code_uses(typed_dict: type) -> None:
    assert set(typing.get_type_hints(typed_dict)) <= NAMES
