"""Span names and attribute keys, one spelling each (docs/tracing.md lists them)."""

from __future__ import annotations

from typing import Final

__all__ = [
    "AGENT",
    "AGENT_COMMIT",
    "AGENT_DECIDE",
    "CANARY_DECIDE",
    "CODE_VERSION",
    "COMMAND",
    "OUTCOME",
    "REQUEST_ID",
    "SHADOW_EVALUATE",
    "SPLITTER_ACCEPT",
    "TOOL",
    "TOOL_CALL",
    "TOOL_CALL_ID",
    "WAL_SEQ",
]

SPLITTER_ACCEPT: Final = "o-bus splitter.accept"  # admission, canary routing, the WAL append
AGENT_DECIDE: Final = "o-bus agent.decide"  # the decision (handler, or a canary's)
AGENT_COMMIT: Final = "o-bus agent.commit"  # staged -> durable in the agent's log -> replied
TOOL_CALL: Final = "o-bus tool.call"  # one tool call: execution and submitting the result
CANARY_DECIDE: Final = "o-bus canary.decide"  # the live agent asking its canary to decide
SHADOW_EVALUATE: Final = "o-bus shadow.evaluate"  # a shadow comparing candidate with live

AGENT: Final = "o_bus.agent"
COMMAND: Final = "o_bus.command"
REQUEST_ID: Final = "o_bus.request_id"
WAL_SEQ: Final = "o_bus.wal_seq"
OUTCOME: Final = "o_bus.outcome"
CODE_VERSION: Final = "o_bus.code_version"
TOOL: Final = "o_bus.tool"
TOOL_CALL_ID: Final = "o_bus.tool_call_id"
