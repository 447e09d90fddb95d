"""The regression set of an agent: cases in the ``O_REGRESSION`` stream, one subject per agent.

Two sources add cases: red's findings (:mod:`.red`) and negative feedback (the feedback
service). A feedback case names its request (and its WAL record, when the request was already
answered); :func:`regression_requests` fills in the command and data from the WAL.
"""

from __future__ import annotations

import nats.errors
from nats.js import JetStreamContext

from o_bus.errors import StorageError
from o_bus.evolution.adversarial.cases import RegressionCase
from o_bus.evolution.adversarial.request_lookup import request_at, wal_seqs_of
from o_bus.store import layout
from o_bus.store.subject_reader import read_subject
from o_bus.wire.headers import NATS_MSG_ID, O_CASE_SOURCE

__all__ = ["RegressionLog", "regression_requests"]


class RegressionLog:
    """Append and read regression cases; a case added twice is stored once."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def add(self, case: RegressionCase) -> int:
        """Store ``case``; returns its stream sequence."""
        try:
            ack = await self.js.publish(
                layout.regression_subject(case.agent),
                case.model_dump_json().encode(),
                headers={NATS_MSG_ID: case.case_id, O_CASE_SOURCE: case.source},
                timeout=5.0,
            )
        except nats.errors.Error as err:
            raise StorageError(f"cannot add a regression case for {case.agent!r}") from err
        return ack.seq

    async def cases(self, agent: str) -> list[RegressionCase]:
        """Every case of ``agent``, oldest first, each once (by content)."""
        found = await read_subject(
            self.js, layout.REGRESSION_STREAM, layout.regression_subject(agent)
        )
        unique: dict[str, RegressionCase] = {}
        for _, _, data in found:
            case = RegressionCase.model_validate_json(data)
            unique.setdefault(case.case_id, case)
        return list(unique.values())


async def regression_requests(js: JetStreamContext, agent: str) -> list[RegressionCase]:
    """The regression set of ``agent`` as runnable requests, for a search to evaluate every
    candidate on. A feedback case whose request is no longer in the WAL is left out."""
    cases = await RegressionLog(js).cases(agent)
    unresolved = {
        c.request_id for c in cases if c.source == "feedback" and c.request_id and not c.wal_seq
    }
    located = await wal_seqs_of(js, agent, unresolved)
    runnable: list[RegressionCase] = []
    for case in cases:
        if case.source == "feedback" and case.request_id:
            wal_seq = case.wal_seq or located.get(case.request_id)
            step = await request_at(js, wal_seq) if wal_seq else None
            if step is None:
                continue
            case = case.model_copy(update={"steps": [step]})
        runnable.append(case)
    return runnable
