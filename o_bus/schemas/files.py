"""The ``schemas/`` directory on disk: what is stale in it, and bringing it up to date."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from .generate import render

__all__ = ["DEFAULT_OUT", "check", "write"]


def _default_out() -> Path:
    """``schemas/`` beside ``pyproject.toml`` in a source checkout, else under the current dir."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file():
        return root / "schemas"
    return Path.cwd() / "schemas"


DEFAULT_OUT: Final = _default_out()


def _existing(out: Path) -> set[str]:
    """Every file under ``out`` by relative path, except hidden ones."""
    if not out.is_dir():
        return set()
    return {
        path.relative_to(out).as_posix()
        for path in out.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(out).parts)
    }


def check(out: Path = DEFAULT_OUT, files: Mapping[str, str] | None = None) -> list[str]:
    """What is stale in ``out``: ``missing:``, ``changed:`` or ``obsolete:`` and a path each."""
    files = render() if files is None else files
    problems = []
    for path, text in files.items():
        target = out / path
        if not target.is_file():
            problems.append(f"missing: {path}")
        elif target.read_bytes() != text.encode():
            problems.append(f"changed: {path}")
    problems.extend(f"obsolete: {path}" for path in sorted(_existing(out) - set(files)))
    return problems


def write(out: Path = DEFAULT_OUT, files: Mapping[str, str] | None = None) -> list[str]:
    """Bring ``out`` up to date; return what changed (as :func:`check` names it)."""
    files = render() if files is None else files
    problems = check(out, files)
    for problem in problems:
        kind, path = problem.split(": ", 1)
        target = out / path
        if kind == "obsolete":
            target.unlink()
            for parent in target.parents:
                if parent == out or not parent.is_relative_to(out) or any(parent.iterdir()):
                    break
                parent.rmdir()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[path].encode())
    return problems
