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


def _listed_packages(pyproject: Path) -> set[str]:
    import tomllib

    config = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]
    return set(config["packages"])


def _package_folders(root: Path, mapping: dict[str, str]) -> set[str]:
    """Dotted names of the folders with an ``__init__.py`` under ``root``'s top folders in
    ``mapping`` (folder -> the package name it installs as)."""
    found = set()
    for init in root.glob("*/**/__init__.py"):
        parts = init.parent.relative_to(root).parts
        if parts[0] in mapping:
            found.add(".".join((mapping[parts[0]], *parts[1:])))
    return found


@pytest.mark.parametrize(
    ("pyproject", "mapping"),
    [
        pytest.param(
            ROOT / "pyproject.toml",
            {"o_bus": "o_bus", "agents": "o_bus.agents", "handlers": "o_bus.handlers"},
            id="o-bus",
        ),
        pytest.param(
            ROOT / "bench" / "pyproject.toml", {"o_bus_bench": "o_bus_bench"}, id="o-bus-bench"
        ),
    ],
)
def test_every_package_folder_is_installed(pyproject: Path, mapping: dict[str, str]) -> None:
    """pyproject lists packages explicitly (agents/ and handlers/ map under o_bus)."""
    listed = _listed_packages(pyproject)
    found = _package_folders(pyproject.parent, mapping)
    assert found == listed, f"missing from pyproject: {found - listed}; stale: {listed - found}"


def test_the_runtime_wheel_carries_no_benchmark() -> None:
    runtime = _listed_packages(ROOT / "pyproject.toml")
    assert not [name for name in runtime if "bench" in name.split(".")], runtime
    assert not list((ROOT / "o_bus").glob("**/bench*/__init__.py"))
