"""The agents a platform knows: registered with their code, so that `o-bus up` resumes them.

``add_agent`` validates an agent's ``.py`` file in the sandbox, stores it as a code version
(:mod:`o_bus.evolution.code_store`) and registers the agent with that version's digest
(``AgentRecord.code``); every process that runs the agent loads that code from the store, so
neither `o-bus up` nor a supervisor on another machine needs the file or a flag. (The code store
is imported only where it is used: every agent process start imports this module.) A running
supervisor follows the registry, so adding or removing an agent changes a running platform.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from nats.js import JetStreamContext

from o_bus.errors import ConfigurationError, NotFoundError
from o_bus.store import layout
from o_bus.store.event_records import utc_now
from o_bus.store.provision import ensure_agent_stream
from o_bus.store.registry import AgentRecord, Registry
from o_bus.supervision.records import SupervisionPolicy

__all__ = [
    "add_agent",
    "is_file_spec",
    "remove_agent",
]


def is_file_spec(spec: str) -> bool:
    """``path/to/file.py`` or ``path/to/file.py:ATTR`` (not ``package.module:ATTR``)."""
    return spec.partition(":")[0].endswith(".py")


async def add_agent(
    js: JetStreamContext,
    spec: str,
    *,
    by: str,
    name: str | None = None,
    policy: SupervisionPolicy | None = None,
    timeout: float = 20.0,
) -> AgentRecord:
    """Register (or update) the agent defined in ``FILE.py[:ATTR]`` with its code stored.

    The agent is named ``name``, else like its definition. Its supervision policy is
    ``policy``, else the one it already has. Raises
    :class:`~o_bus.evolution.validate.InvalidCodeError` if the file does not import or does not
    define an agent; nothing is registered then."""
    from o_bus.evolution.code_store import CodeStore, default_cache_dir
    from o_bus.evolution.validate import check_code_file, validate_code

    target, _, attr = spec.partition(":")
    if not target.endswith(".py"):
        raise ConfigurationError(f"{spec!r}: give a .py file, optionally with :ATTRIBUTE")
    path = Path(target)
    source = await asyncio.to_thread(check_code_file, path)
    with tempfile.TemporaryDirectory(prefix="o-bus-agent-") as folder:
        copy = Path(folder) / path.name
        await asyncio.to_thread(copy.write_bytes, source)
        validated = await validate_code(
            copy, expected_name=None, attr=attr or None, timeout=timeout
        )
    agent = name or validated.definition_name
    layout.validate_agent_name(agent)
    await ensure_agent_stream(js, agent)
    version = await CodeStore(js, default_cache_dir()).put(
        agent,
        source,
        validated,
        filename=path.name,
        by=by,
        note="registered code",
        attr=attr or None,
    )
    registry = Registry(js)
    try:
        current: AgentRecord | None = await registry.get(agent)
    except NotFoundError:
        current = None
    record = AgentRecord(
        name=agent,
        definition=validated.definition_name,
        commands=sorted(validated.commands),
        created_at=current.created_at if current else utc_now(),
        forked_from=current.forked_from if current else None,
        supervision=policy or (current.supervision if current else SupervisionPolicy()),
        code=version.digest,
    )
    if record != current:
        await registry.register(record)
    return record


async def remove_agent(js: JetStreamContext, name: str) -> None:
    """Unregister ``name``: its processes stop; its streams (history) are kept."""
    await Registry(js).remove(name)
