"""Every generated file, in memory: the schemas, the AsyncAPI document and the guide."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from o_bus.agent.catalogue import Catalogue

from .asyncapi import asyncapi
from .build import dump
from .documents import agent_schemas, reply_schema, system_schemas
from .envelope import envelope_schemas
from .error_codes import check_error_meanings
from .evolution import evolution_schemas
from .headers import check_headers_match_runtime
from .health import check_health_summary_matches_monitor
from .paths import ASYNCAPI_FILE, README_FILE, REPLY
from .queries import query_schemas
from .readme import readme
from .self_improvement import self_improvement_schemas
from .tools import tools_schemas

__all__ = ["render"]


def render(catalogue: Catalogue | None = None) -> dict[str, str]:
    """Every generated file, by path relative to ``schemas/``, with its exact text."""
    check_headers_match_runtime()
    check_error_meanings()
    check_health_summary_matches_monitor()
    catalogue = catalogue if catalogue is not None else Catalogue.discover()
    definitions = [catalogue.get(name) for name in catalogue.names()]
    envelope = envelope_schemas()
    documents: dict[str, Mapping[str, Any]] = dict(envelope)
    documents[REPLY] = reply_schema()
    documents.update(system_schemas())
    documents.update(evolution_schemas())
    documents.update(self_improvement_schemas())
    documents.update(tools_schemas())
    for definition in definitions:
        documents.update(agent_schemas(definition))
    documents.update(query_schemas(definitions))
    documents[ASYNCAPI_FILE] = asyncapi(definitions)
    files = {path: dump(document) for path, document in documents.items()}
    files[README_FILE] = readme(definitions, [*files, README_FILE], envelope)
    return dict(sorted(files.items()))
