"""Lint and strict typing are part of the test suite, so one command checks everything."""

from __future__ import annotations

import os
import shutil
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
        pytest.param(
            [str(BIN / "lint-imports"), "--no-cache", "--contract", "layers"], id="layers"
        ),
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


def _lint_imports(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """Run the import contracts of ``root``'s pyproject against the o_bus package in ``root``."""
    selected = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache", "--no-logo", *selected],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_no_package_level_import_cycle() -> None:
    """No two packages of o_bus import each other, directly or through others."""
    result = _lint_imports(ROOT, "acyclic")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def source_copy(tmp_path: Path) -> Path:
    """A copy of the package as installed (agents and handlers inside o_bus) and its config."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "o_bus", tmp_path / "o_bus", symlinks=False, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_copy_keeps_the_contracts(source_copy: Path) -> None:
    """The copy alone passes, so the failures below come from the injected import only."""
    result = _lint_imports(source_copy, "layers", "acyclic")
    assert result.returncode == 0, result.stdout + result.stderr


def test_layer_rules_fail_on_an_import_from_a_higher_layer(source_copy: Path) -> None:
    (source_copy / "o_bus" / "store" / "forbidden.py").write_text(
        "from o_bus.runtime import host\n"
    )
    result = _lint_imports(source_copy, "layers")
    assert result.returncode != 0
    assert "o_bus.store.forbidden -> o_bus.runtime.host" in result.stdout


def test_layer_rules_fail_on_an_import_between_independent_packages(source_copy: Path) -> None:
    (source_copy / "o_bus" / "wire" / "forbidden.py").write_text("from o_bus.events import model\n")
    result = _lint_imports(source_copy, "layers")
    assert result.returncode != 0
    assert "o_bus.wire.forbidden -> o_bus.events.model" in result.stdout


def test_cycle_rule_fails_on_a_package_level_cycle(source_copy: Path) -> None:
    # store <- client already; client <- store closes the cycle
    (source_copy / "o_bus" / "store" / "forbidden.py").write_text("from o_bus import client\n")
    result = _lint_imports(source_copy, "acyclic")
    assert result.returncode != 0
    assert "No cycles are allowed in o_bus." in result.stdout
    assert ".store -> .client" in result.stdout
