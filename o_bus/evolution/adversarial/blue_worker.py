"""The sandboxed blue process: ``python -m o_bus.evolution.sandboxed -m
o_bus.evolution.adversarial.blue_worker SPEC [REFERENCE_SPEC]``.

Loads the agent definition named by SPEC (``module:attr`` or ``file.py:attr``), prints one
``ready`` line, then answers one JSON job per stdin line with one JSON result line: the job's
id, the failure (or null) and the slowest step in milliseconds.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from o_bus.agent.catalogue import load_definition
from o_bus.evolution.adversarial.cases import Step
from o_bus.evolution.adversarial.play import play


def _answer(line: str, definition: Any, reference: Any) -> dict[str, Any]:
    job = json.loads(line)
    steps = [Step.model_validate(s) for s in job["steps"]]
    result = play(
        definition,
        steps,
        start_state=job.get("start_state"),
        reference=reference,
        latency_ms=job.get("latency_ms"),
    )
    failure = None if result.failure is None else result.failure.model_dump()
    accepted = sum(1 for answer in result.answers if not answer.startswith("rejected"))
    return {
        "id": job["id"],
        "failure": failure,
        "slowest_ms": result.slowest_ms,
        "accepted": accepted,
        "distinct": len(set(result.answers)),
    }


def main(argv: list[str]) -> None:
    definition = load_definition(argv[0])
    reference = load_definition(argv[1]) if len(argv) > 1 and argv[1] else None
    out = sys.stdout
    out.write(json.dumps({"ready": definition.name}) + "\n")
    out.flush()
    for line in sys.stdin:
        if line.strip():
            out.write(json.dumps(_answer(line, definition, reference)) + "\n")
            out.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
