"""Finding agent definitions: installed plug-ins (entry point group ``o_bus.agents``) and paths."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from o_bus.agent.definition import AgentDefinition
from o_bus.errors import ConfigurationError, ErrorCode, InvalidRequestError

__all__ = ["GENOME_ATTR", "Catalogue", "find_definition", "import_file", "load_definition"]

ENTRY_POINT_GROUP = "o_bus.agents"
GENOME_ATTR = "O_BUS_GENOME"  # a module-level dict: the genome values of this code version


def import_file(path: Path, module_name: str, source: bytes | None = None) -> ModuleType:
    """Import the Python file ``path`` as module ``module_name`` (registered in sys.modules).

    With ``source``, those bytes are executed instead of the file's current content (for code
    whose hash was checked), still under ``path`` so tracebacks point at the file.
    """
    file_spec = importlib.util.spec_from_file_location(module_name, path)
    if file_spec is None or file_spec.loader is None:
        raise ConfigurationError(f"cannot import {path}")
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[module_name] = module
    try:
        if source is None:
            file_spec.loader.exec_module(module)
        else:
            exec(compile(source, str(path), "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def find_definition(module: ModuleType, attr: str | None, what: str) -> AgentDefinition[Any]:
    """``module.attr``, or the module's only AgentDefinition when ``attr`` is empty."""
    if attr:
        found = getattr(module, attr, None)
    else:
        defs = {id(v): v for v in vars(module).values() if isinstance(v, AgentDefinition)}
        found = next(iter(defs.values())) if len(defs) == 1 else None
    if not isinstance(found, AgentDefinition):
        raise ConfigurationError(f"{what!r} does not name one AgentDefinition")
    genome = getattr(module, GENOME_ATTR, None)
    if genome is not None:
        if not isinstance(genome, dict):
            raise ConfigurationError(f"{what!r}: {GENOME_ATTR} must be a dict of genome values")
        found.set_genome(genome)
    return found


def load_definition(spec: str) -> AgentDefinition[Any]:
    """Load ``module:attr`` or ``path/to/file.py:attr`` (attr optional if the module has one)."""
    target, _, attr = spec.partition(":")
    if target.endswith(".py"):
        path = Path(target).resolve()
        if not path.is_file():
            raise ConfigurationError(f"agent file {path} does not exist")
        module = import_file(path, f"o_bus_agent_{path.stem}_{abs(hash(path))}")
    else:
        module = importlib.import_module(target)
    return find_definition(module, attr, spec)


class Catalogue:
    """The agent definitions this process can run, by definition name."""

    def __init__(self, definitions: list[AgentDefinition[Any]] | None = None) -> None:
        self._by_name: dict[str, AgentDefinition[Any]] = {}
        for definition in definitions or []:
            self.add(definition)

    @classmethod
    def discover(cls, extra: list[str] | None = None) -> Catalogue:
        catalogue = cls()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            definition = ep.load()
            if isinstance(definition, AgentDefinition):
                catalogue.add(definition)
        for spec in extra or []:
            catalogue.add(load_definition(spec))
        return catalogue

    def add(self, definition: AgentDefinition[Any]) -> None:
        self._by_name[definition.name] = definition

    def get(self, name: str) -> AgentDefinition[Any]:
        try:
            return self._by_name[name]
        except KeyError:
            raise InvalidRequestError(
                ErrorCode.UNKNOWN_AGENT, f"no agent definition named {name!r} is installed"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._by_name)
