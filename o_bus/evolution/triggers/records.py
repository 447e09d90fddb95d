"""The trigger log: every firing with its reason, every pause, every search it started.

Records go to ``o.sys.trigger.<agent>``; :func:`project` folds them into the agent's trigger
status, so a new trigger service leader knows what the last one did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import nats.errors
from nats.js import JetStreamContext
from pydantic import BaseModel, ConfigDict

from o_bus.agent.improvement import SearchBudget
from o_bus.errors import StorageError
from o_bus.store import layout
from o_bus.store.subject_reader import read_subject

__all__ = ["TriggerLog", "TriggerRecord", "TriggerStatus", "project"]

RecordKind = Literal["fired", "paused", "resumed", "search_started", "search_finished"]


class TriggerRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: RecordKind
    agent: str
    at: str
    at_epoch: float
    reason: str = ""
    trigger: str | None = None  # "<index>:<kind>" of the trigger in the definition
    search_id: str | None = None
    budget: SearchBudget | None = None
    by: str | None = None  # the operator (pause, resume) or the service instance
    feedback_seq: int = 0  # fired: the last feedback counted
    outcome: dict[str, Any] | None = None  # search_finished: what the search reported


@dataclass(slots=True)
class TriggerStatus:
    paused: bool = False
    pause_reason: str = ""
    running: TriggerRecord | None = None  # the search_started record without a finish
    last_fired: dict[str, float] = field(default_factory=dict)  # trigger -> epoch
    feedback_seq: dict[str, int] = field(default_factory=dict)  # trigger -> feedback counted
    history: list[TriggerRecord] = field(default_factory=list)


def project(records: list[TriggerRecord]) -> TriggerStatus:
    status = TriggerStatus(history=records)
    for record in records:
        if record.kind == "paused":
            status.paused, status.pause_reason = True, record.reason
        elif record.kind == "resumed":
            status.paused, status.pause_reason = False, ""
        elif record.kind == "fired" and record.trigger is not None:
            status.last_fired[record.trigger] = record.at_epoch
            status.feedback_seq[record.trigger] = record.feedback_seq
        elif record.kind == "search_started":
            status.running = record
        elif record.kind == "search_finished" and (
            status.running is not None and status.running.search_id == record.search_id
        ):
            status.running = None
    return status


class TriggerLog:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def append(self, record: TriggerRecord) -> int:
        try:
            ack = await self.js.publish(
                layout.trigger_event_subject(record.agent),
                record.model_dump_json(exclude_none=True).encode(),
                headers={"O-Trigger-Record": record.kind},
                timeout=5.0,
            )
        except nats.errors.Error as err:
            raise StorageError(
                f"cannot record a trigger {record.kind} of {record.agent!r}"
            ) from err
        return ack.seq

    async def records(self, agent: str) -> list[TriggerRecord]:
        found = await read_subject(
            self.js, layout.SYSTEM_STREAM, layout.trigger_event_subject(agent)
        )
        return [TriggerRecord.model_validate_json(data) for _, _, data in found]

    async def status(self, agent: str) -> TriggerStatus:
        return project(await self.records(agent))
