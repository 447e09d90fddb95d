"""The evaluation process: ``python -m o_bus.evolution.search.evaluate.worker JOB`` in the sandbox.

It imports the candidate (the same check as ``o-bus deploy``'s validation), then replays the
dataset's requests through the pure handler machinery, stage by stage (the cascade): a few
requests, the minibatch, then the rest, unless an earlier stage already rules the candidate
out. Each request's result is printed on its own line, which is also the sign of life the
parent's watchdog waits for; the last line is the summary. Tool calls the candidate asks for
are answered from the results recorded in the dataset when they match, otherwise counted as
unknown; nothing is ever executed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from o_bus.evolution.validate import _describe

__all__ = ["MARK", "EvaluationJob", "main"]

MARK = "O-BUS-EVAL "
SMOKE = 3


class EvaluationJob(BaseModel):
    candidate: Path
    baseline: Path
    dataset: Path
    expected_name: str
    attr: str | None = None
    minibatch: int = 16
    minibatch_floor: float | None = None  # prune below this minibatch fitness
    regressions: Path | None = None  # JSONL of RegressionCase: run after a complete dataset
    checkpoints: list[int] = []  # request counts after which to report a cache checkpoint
    resume: Path | None = None  # JSON list of cached checkpoints to start after


def _emit(out: Any, record: dict[str, Any]) -> None:
    out.write(MARK + json.dumps(record, default=str) + "\n")
    out.flush()


def _load(path: Path, name: str, attr: str | None) -> Any:
    from o_bus.agent.catalogue import find_definition, import_file

    module = import_file(path, name, source=path.read_bytes())
    return module, find_definition(module, attr, path.name)


def _tool_key(tool: str, data: Any) -> str:
    return f"{tool}:{json.dumps(data, sort_keys=True, separators=(',', ':'))}"


def _as_live_events(live: Any, events: list[Any]) -> tuple[list[Any], int]:
    """The candidate's events as the baseline code reads them, and how many it cannot read."""
    read, invalid = [], 0
    for event in events:
        try:
            read.append(
                live.decode_event(
                    event.event_type, event.event_version, event.model_dump_json().encode()
                )
            )
        except Exception:
            invalid += 1
    return read, invalid


def _violations(live: Any, state: Any) -> int:
    """How many of the starting version's invariants ``state`` breaks (as live reads it)."""
    try:
        return len(live.violated_invariants(live.state_type.model_validate(state.model_dump())))
    except Exception:
        return 1  # a state live cannot even read breaks the contract


def _decide(
    candidate: Any,
    live: Any,
    judge: Any,
    checks_invariants: bool,
    recorded_tools: dict[str, Any],
    state: Any,
    request: Any,
) -> tuple[dict[str, Any], Any]:
    """One request decided by the candidate from ``state``: the figures the tally adds and
    the state after it."""
    from o_bus.decision.decider import context_of
    from o_bus.evolution.candidate.evaluation import evaluate
    from o_bus.tools.records import ToolCallRequested, ToolResultCommand
    from o_bus.wire.codec import Encoding
    from o_bus.wire.wal_record import WalRecord

    body = json.dumps(request.data).encode() if request.data is not None else b""
    record = WalRecord(
        request.id, request.command, body, "application/json", accepted_ns=request.accepted_ns
    )
    evaluation = evaluate(candidate, state, record)
    live_events, invalid = _as_live_events(live, evaluation.events)
    fitness = None
    if judge is not None and evaluation.failure is None and evaluation.command is not None:
        try:
            fitness = live.score(
                live.state_type.model_validate(state.model_dump()),
                live.parse_command(request.command, body, Encoding.JSON),
                live_events,
                context_of(record),
            )
        except Exception as exc:
            evaluation.failure = f"judging it raised {type(exc).__name__}: {exc}"[:300]
    answered = unknown = 0
    after = evaluation.state_after if evaluation.state_after is not None else state
    for event in evaluation.events:
        if isinstance(event, ToolCallRequested):
            key = _tool_key(event.tool, event.input)
            if key in recorded_tools and evaluation.failure is None:
                answered += 1
                reply = ToolResultCommand(
                    call_id=event.call_id, tool=event.tool, ok=True, output=recorded_tools[key]
                )
                try:
                    after = candidate.decide(after, reply).state
                except Exception as exc:
                    evaluation.failure = f"tool continuation raised {type(exc).__name__}"
            else:
                unknown += 1
    figures = {
        "fitness": fitness,
        "failure": evaluation.failure,
        "invalid": invalid,
        "violated": _violations(live, after) if checks_invariants else 0,
        "agrees": None if request.output is None else evaluation.output == request.output,
        "elapsed_ms": evaluation.elapsed_ms,
        "tools_answered": answered,
        "tools_unknown": unknown,
    }
    return figures, after


def _reuse(cached: list[dict[str, Any]], done: int) -> dict[str, Any]:
    """How many of the ``done`` requests came from the cache and how many were decided."""
    reused = min(len(cached), done)
    return {"requests_cached": reused, "requests_decided": done - reused}


def run(job: EvaluationJob, out: Any) -> None:
    from o_bus.errors import ConfigurationError
    from o_bus.evolution.search.evaluate.dataset import Dataset
    from o_bus.evolution.search.evaluate.scoring import Tally

    started = time.process_time()
    try:
        _, candidate = _load(job.candidate, "o_bus_search_candidate", job.attr)
    except ConfigurationError as err:
        _emit(out, {"final": True, "outcome": "invalid", "reason": str(err)})
        return
    except BaseException as exc:  # anything the candidate raises is its error, reported
        _emit(out, {"final": True, "outcome": "invalid", "reason": _describe(exc, job.candidate)})
        return
    if candidate.name != job.expected_name:
        reason = f"defines agent {candidate.name!r}, not {job.expected_name!r}"
        _emit(out, {"final": True, "outcome": "invalid", "reason": reason})
        return
    _, live = _load(job.baseline, "o_bus_search_baseline", job.attr)
    dataset = Dataset.from_jsonl(job.dataset)
    recorded_tools: dict[str, Any] = {}
    for request in dataset.requests:
        recorded_tools.update(request.tool_results)
    state = (
        candidate.initial_state()
        if dataset.state is None
        else candidate.state_type.model_validate(dataset.state)
    )
    # Invariants, where the definition declares them (``@definition.invariant``), judged
    # by the starting version's declarations.
    checks_invariants = bool(getattr(live, "invariants", None))
    # The candidate is judged by the baseline's fitness function: a candidate must not
    # change how it is judged.
    judge = live.fitness_function or candidate.fitness_function
    tally = Tally(has_fitness=judge is not None)
    _emit(out, {"stage": "import", "ok": True})
    minibatch_fitness: float | None = None
    cached: list[dict[str, Any]] = []
    if job.resume is not None:
        restored = json.loads(job.resume.read_text())
        for checkpoint in restored:
            cached.extend(checkpoint["records"])
        if restored:
            state = candidate.state_type.model_validate_json(restored[-1]["state"])
    marks = set(job.checkpoints)
    segment: list[dict[str, Any]] = []
    for index, request in enumerate(dataset.requests):
        if index < len(cached):
            figures = cached[index]
        else:
            figures, state = _decide(
                candidate, live, judge, checks_invariants, recorded_tools, state, request
            )
            segment.append(figures)
            _emit(out, {"request": request.id, "fitness": figures["fitness"],
                        "failure": figures["failure"]})  # fmt: skip
        tally.add(**figures)
        done = index + 1
        if done in marks and done > len(cached):
            start = done - len(segment)
            _emit(
                out,
                {"checkpoint": done, "start": start, "records": segment,
                 "state": state.model_dump_json()},
            )  # fmt: skip
            segment = []
        if done == min(SMOKE, len(dataset.requests)) and tally.failures == done:
            _emit(out, tally.final("failed", "every request of the smoke stage failed", done))
            return
        if done == job.minibatch:
            minibatch_fitness = tally.score()
        if (
            done == job.minibatch
            and done < len(dataset.requests)
            and job.minibatch_floor is not None
            and tally.score() < job.minibatch_floor
        ):
            reason = f"minibatch fitness {tally.score():.4g} below {job.minibatch_floor:.4g}"
            _emit(out, tally.final("pruned", reason, done) | _reuse(cached, done))
            return
    final = tally.final("ok", None, len(dataset.requests)) | _reuse(cached, len(dataset.requests))
    final["minibatch_fitness"] = minibatch_fitness
    if job.regressions is not None:
        _regressions(candidate, live, job.regressions, final, out)
    final["cpu_s"] = time.process_time() - started
    _emit(out, final)


def _run_case(candidate: Any, live: Any, case: Any) -> str | None:
    """How ``case`` fails on ``candidate`` (an exception of its code, or a state that breaks
    one of the starting version's invariants), or None."""
    from o_bus.evolution.adversarial.play import answer_of

    state = (
        candidate.initial_state()
        if case.start_state is None
        else candidate.state_type.model_validate(case.start_state)
    )
    for index, step in enumerate(case.steps):
        try:
            _, state = answer_of(candidate, state, step)
        except Exception as exc:
            return f"exception {type(exc).__name__} at step {index}"
        if _violations(live, state):
            return f"invariant at step {index}"
    return None


def _regressions(candidate: Any, live: Any, path: Path, final: dict[str, Any], out: Any) -> None:
    """Run every regression case (requests that once made a version fail) and scale the
    fitness by the share passed: a candidate that reintroduces a known bug loses its score
    in proportion, so the search moves away from it, while a starting version that has the
    bug is still scored."""
    from o_bus.evolution.adversarial.cases import RegressionCase

    cases = [RegressionCase.model_validate_json(line) for line in path.read_text().splitlines()]
    failed: list[str] = []
    for case in cases:
        failure = _run_case(candidate, live, case)
        if failure is not None:
            failed.append(f"case {case.case_id[:12]}: {failure}")
        _emit(out, {"regression": case.case_id, "failure": failure})
    final["regressions"] = len(cases)
    final["regressions_failed"] = len(failed)
    if cases:
        final["fitness"] = float(final["fitness"]) * (len(cases) - len(failed)) / len(cases)
    if failed:
        final["last_failure"] = f"regression {failed[0]}"


def main(argv: list[str]) -> None:
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # whatever the candidate prints must not be taken for an answer
    job = EvaluationJob.model_validate_json(Path(argv[0]).read_text())
    try:
        run(job, real_stdout)
    except MemoryError:
        _emit(
            real_stdout,
            {
                "final": True,
                "outcome": "failed",
                "reason": "MemoryError: over the sandbox's memory limit",
            },
        )


if __name__ == "__main__":
    main(sys.argv[1:])
