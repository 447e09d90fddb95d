"""``deploy``: validate a source file for an agent and store it as a new code version."""

from __future__ import annotations

import asyncio
import getpass
import socket
import tempfile
from pathlib import Path

from nats.js import JetStreamContext

from o_bus.evolution.code_store import CodeStore, CodeVersion, default_cache_dir
from o_bus.evolution.validate import check_code_file, validate_code
from o_bus.store import layout
from o_bus.store.registry import Registry

__all__ = ["default_deployer", "deploy"]


def default_deployer() -> str:
    """``user@host`` of this process, for the record of who deployed a version."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _copy_for_validation(source: bytes, filename: str, folder: str) -> Path:
    copy = Path(folder) / filename
    copy.write_bytes(source)
    return copy


async def deploy(
    js: JetStreamContext,
    agent: str,
    path: Path,
    *,
    by: str,
    note: str = "",
    attr: str | None = None,
    timeout: float = 20.0,
    cache_dir: Path | None = None,
) -> CodeVersion:
    """Register the file at ``path`` as a code version of the registered agent ``agent``.

    The file must be a ``.py`` file that imports in the sandbox within ``timeout`` seconds
    and defines one AgentDefinition (or ``attr``) named like the agent's registered
    definition; otherwise :class:`~o_bus.evolution.validate.InvalidCodeError` is raised and
    nothing is stored. The bytes validated are the bytes stored (a private copy is checked).
    """
    layout.validate_agent_name(agent)
    record = await Registry(js).get(agent)
    source = await asyncio.to_thread(check_code_file, path)
    with tempfile.TemporaryDirectory(prefix="o-bus-deploy-") as folder:
        copy = await asyncio.to_thread(_copy_for_validation, source, path.name, folder)
        validated = await validate_code(
            copy, expected_name=record.definition, attr=attr, timeout=timeout
        )
    store = CodeStore(js, cache_dir or default_cache_dir())
    return await store.put(
        agent, source, validated, filename=path.name, by=by, note=note, attr=attr
    )
