"""Lint and strict typing are part of the test suite, so one command checks everything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        pytest.param([str(BIN / "ruff"), "check", "--exclude", ".venv*", "."], id="ruff"),
        pytest.param(
            [str(BIN / "ruff"), "format", "--check", "--exclude", ".venv*", "."], id="ruff-format"
        ),
        pytest.param([sys.executable, "-m", "mypy"], id="mypy"),
    ],
)
def test_tool_passes(command: list[str]) -> None:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_package_folder_is_installed() -> None:
    """pyproject lists packages explicitly (agents/ and handlers/ map under o_bus)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = {"agents": "o_bus.agents", "handlers": "o_bus.handlers"}
    found = set()
    for init in ROOT.glob("*/**/__init__.py"):
        parts = init.parent.relative_to(ROOT).parts
        if parts[0] not in ("o_bus", "agents", "handlers"):
            continue
        head = mapping.get(parts[0], parts[0])
        found.add(".".join((head, *parts[1:])))
    assert found == listed, f"missing from pyproject: {found - listed}; stale: {listed - found}"
