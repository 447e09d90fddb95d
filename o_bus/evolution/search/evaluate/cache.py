"""Evaluations cached by (candidate, request), in the KV bucket ``o_evalcache``.

A request's result depends on the candidate's code, on the judge (the starting version) and
on the state the candidate reached before it, which the requests before it determine. So the
key of request *i* is a chain: ``k0 = H(candidate, judge, start state, recorded tool
results)`` and ``k_i = H(k_{i-1}, request_i)``. Whoever evaluates the same candidate on the
same requests from the same state (a resumed search re-running an evaluation that was in
flight, a later search on the same dataset, a child pruned at the minibatch and evaluated in
full later) finds the results already there and replays only what follows.

The evaluation process reports, at checkpoints (the end of the smoke stage, the minibatch,
every :data:`CHECKPOINT_EVERY` requests and the end), the per-request figures since the
previous checkpoint and the state it reached; each checkpoint is one KV entry under its
request's key. Restoring reads checkpoints in order until one is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from o_bus.evolution.search.evaluate.dataset import Dataset
from o_bus.store import layout
from o_bus.store.provision import ensure_bucket

__all__ = ["CHECKPOINT_EVERY", "Checkpoint", "EvaluationCache", "chain_keys", "checkpoints"]

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 32


class Checkpoint(BaseModel):
    """Requests ``[start, end)`` of one candidate's run: their figures and the state after."""

    start: int
    end: int
    records: list[dict[str, Any]]  # per request: what the worker's tally adds
    state: str  # JSON of the candidate's state after request ``end - 1``


def _h(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def chain_keys(candidate: str, judge: str, dataset: Dataset) -> list[str]:
    """Key of each request's result (``keys[i]``: after request ``i``), see the module doc."""
    tools: dict[str, Any] = {}
    for request in dataset.requests:
        tools.update(request.tool_results)
    key = _h(
        candidate,
        judge,
        json.dumps(dataset.state, sort_keys=True, separators=(",", ":")),
        json.dumps(tools, sort_keys=True, separators=(",", ":")),
    )
    keys: list[str] = []
    for request in dataset.requests:
        key = _h(key, request.model_dump_json())
        keys.append(key)
    return keys


def checkpoints(total: int, smoke: int, minibatch: int) -> list[int]:
    """Request counts after which the worker reports a checkpoint."""
    marks = {smoke, minibatch, total, *range(CHECKPOINT_EVERY, total, CHECKPOINT_EVERY)}
    return sorted(m for m in marks if 0 < m <= total)


class EvaluationCache:
    """Checkpoints of evaluations in ``o_evalcache`` (kept a week; a cache, never the record:
    the lineage holds every evaluation's outcome)."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await ensure_bucket(self.js, layout.EVAL_CACHE_BUCKET)
        return self._kv

    async def restore(self, keys: list[str], marks: list[int]) -> list[Checkpoint]:
        """The consecutive checkpoints recorded from the first request on (maybe none)."""
        found: list[Checkpoint] = []
        try:
            kv = await self._bucket()
            for mark in marks:
                try:
                    entry = await kv.get(keys[mark - 1])
                except KeyNotFoundError:
                    break
                if entry.value is None:
                    break
                checkpoint = Checkpoint.model_validate_json(entry.value)
                if checkpoint.start != (found[-1].end if found else 0):
                    break
                found.append(checkpoint)
        except nats.errors.Error as err:  # a cache that cannot answer is a miss, not a failure
            log.warning("evaluation cache unavailable: %s", err)
        return found

    async def store(self, key: str, checkpoint: Checkpoint) -> None:
        try:
            kv = await self._bucket()
            await kv.put(key, checkpoint.model_dump_json().encode())
        except nats.errors.Error as err:
            log.warning("evaluation cache: checkpoint not stored: %s", err)
