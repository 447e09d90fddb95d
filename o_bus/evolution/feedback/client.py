"""Send feedback on a request: what ``o-bus feedback`` and client libraries do."""

from __future__ import annotations

from typing import Any

import nats.errors
from nats.aio.client import Client
from pydantic_core import from_json, to_json

from o_bus.errors import AgentUnavailableError
from o_bus.store import layout

__all__ = ["send_feedback"]


async def send_feedback(
    nc: Client,
    agent: str,
    request_id: str,
    score: float,
    *,
    text: str | None = None,
    by: str | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Send one feedback and return the service's reply (``ok`` true or false)."""
    body: dict[str, Any] = {"request_id": request_id, "score": score}
    if text is not None:
        body["text"] = text
    if by is not None:
        body["by"] = by
    subject, payload = layout.feedback_subject(agent), to_json(body)
    try:
        try:
            msg = await nc.request(subject, payload, timeout=timeout)
        except nats.errors.NoRespondersError:
            # A request right after connecting is sometimes answered "no responders" while a
            # service is subscribed (seen in about 5% of fresh connections); once the
            # connection has done a round trip it is not.
            await nc.flush()
            msg = await nc.request(subject, payload, timeout=timeout)
    except nats.errors.NoRespondersError as err:
        raise AgentUnavailableError(
            "no feedback service is running: is `o-bus up` (or `o-bus run feedback`) running?"
        ) from err
    except nats.errors.TimeoutError as err:
        raise AgentUnavailableError(f"no reply to the feedback within {timeout}s") from err
    reply = from_json(msg.data)
    if not isinstance(reply, dict):
        raise AgentUnavailableError(f"unexpected reply: {reply!r}")
    return reply
