"""Red's side: a population of request sequences evolved to make the blue side fail.

Each individual is a short sequence of requests drawn from the agent's command schemas. Blue
runs it in a sandboxed worker (:class:`~.blue.BlueWorker`); an individual that fails is a
finding, cut to the failing step and shrunk (earlier steps dropped while it still fails the
same way), then kept once per failure signature. The next generation keeps the best, mutates
them (a payload nudged, a step inserted, dropped, duplicated or replaced) and adds fresh random
sequences. Seeded: the same seed, budget and agent code give the same findings (unless a
latency limit is set or a sequence hits the timeout: both depend on timing).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from o_bus.agent.definition import AgentDefinition
from o_bus.errors import ConfigurationError
from o_bus.evolution.adversarial.blue import BlueWorker, JobResult, definition_spec
from o_bus.evolution.adversarial.cases import Failure, RegressionCase, Step
from o_bus.evolution.adversarial.payloads import PayloadGenerator

__all__ = ["RedConfig", "RedReport", "red_search"]

STALE_GENERATIONS = 20  # this many generations with no new sequence: the space is exhausted


@dataclass(frozen=True, slots=True)
class RedConfig:
    budget: int = 300  # evaluations (one sequence run by blue each)
    seed: int = 0
    population: int = 16
    max_steps: int = 6
    latency_ms: float | None = None  # a step slower than this is a finding
    timeout: float = 2.0  # hard limit per sequence; a hang is a finding


@dataclass(slots=True)
class RedReport:
    agent: str
    spec: str
    seed: int
    evaluations: int = 0
    generations: int = 0
    findings: list[RegressionCase] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "spec": self.spec,
            "seed": self.seed,
            "evaluations": self.evaluations,
            "generations": self.generations,
            "findings": [
                {"case_id": c.case_id, **c.model_dump(mode="json", exclude_none=True)}
                for c in self.findings
            ],
        }


class _Red:
    def __init__(
        self, definition: AgentDefinition[Any], worker: BlueWorker, config: RedConfig
    ) -> None:
        self.rng = random.Random(config.seed)
        self.config = config
        self.worker = worker
        self.generators = {
            name: PayloadGenerator(cmd.model_json_schema(), self.rng)
            for name, cmd in sorted(definition.command_types.items())
        }
        if not self.generators:
            raise ConfigurationError(f"agent {definition.name!r} has no commands for red")
        self.evaluations = 0
        self._seen: dict[str, JobResult] = {}  # blue is deterministic: never run a sequence twice

    def step(self) -> Step:
        command = self.rng.choice(sorted(self.generators))
        return Step(command=command, data=self.generators[command].draw())

    def fresh(self) -> list[Step]:
        return [self.step() for _ in range(self.rng.randint(1, self.config.max_steps))]

    def mutate(self, steps: list[Step]) -> list[Step]:
        out = list(steps)
        roll = self.rng.random()
        index = self.rng.randrange(len(out))
        if roll < 0.5:
            chosen = out[index]
            data = self.generators[chosen.command].mutate(chosen.data)
            out[index] = Step(command=chosen.command, data=data)
        elif roll < 0.65 and len(out) < self.config.max_steps:
            out.insert(index, self.step())
        elif roll < 0.8 and len(out) < self.config.max_steps:
            out.insert(index, out[index])
        elif roll < 0.9 and len(out) > 1:
            del out[index]
        else:
            out[index] = self.step()
        return out

    def score(self, result: JobResult) -> float:
        """How promising a sequence that did not fail is. Accepted steps build up state, which
        is how limits are reached; distinct answers reward variety. Latency counts only when a
        limit is set: timings vary from run to run, and the search is meant to be repeatable."""
        value = result.accepted + 0.5 * result.distinct
        if self.config.latency_ms:
            value += result.slowest_ms / self.config.latency_ms
        return value

    async def run(self, steps: list[Step]) -> JobResult:
        key = json.dumps([s.model_dump(mode="json") for s in steps], sort_keys=True)
        cached = self._seen.get(key)
        if cached is None:
            self.evaluations += 1
            cached = await self.worker.run(steps, latency_ms=self.config.latency_ms)
            self._seen[key] = cached
        return cached

    async def shrink(self, steps: list[Step], failure: Failure) -> tuple[list[Step], Failure]:
        """Drop steps that the failure does not need, while the budget lasts."""
        steps = steps[: failure.step + 1]
        index = 0
        while index < len(steps) - 1 and self.evaluations < self.config.budget:
            trial = steps[:index] + steps[index + 1 :]
            result = await self.run(trial)
            if result.failure is not None and result.failure.signature == failure.signature:
                steps, failure = trial[: result.failure.step + 1], result.failure
            else:
                index += 1
        return steps, failure


async def red_search(
    definition: AgentDefinition[Any],
    config: RedConfig | None = None,
    *,
    reference: AgentDefinition[Any] | None = None,
    version: str = "",
) -> RedReport:
    """Evolve requests against ``definition`` (and a ``reference`` version, for divergence)
    within ``config.budget`` evaluations; return one regression case per distinct failure."""
    config = config or RedConfig()
    spec = definition_spec(definition)
    ref_spec = definition_spec(reference) if reference is not None else None
    report = RedReport(definition.name, spec, config.seed)
    found: dict[str, RegressionCase] = {}
    async with BlueWorker(spec, reference_spec=ref_spec, timeout=config.timeout) as worker:
        red = _Red(definition, worker, config)
        population = [red.fresh() for _ in range(config.population)]
        stale = 0  # generations in a row that tried nothing new
        while red.evaluations < config.budget and stale < STALE_GENERATIONS:
            before = red.evaluations
            scored: list[tuple[float, list[Step]]] = []
            for individual in population:
                if red.evaluations >= config.budget:
                    break
                result = await red.run(individual)
                score = red.score(result)
                if result.failure is not None:
                    score = 1e9 - len(individual)
                    if result.failure.signature not in found:
                        steps, failure = await red.shrink(individual, result.failure)
                        found[failure.signature] = RegressionCase(
                            agent=definition.name,
                            source="red",
                            steps=steps,
                            failure=failure,
                            found_in=version,
                        )
                scored.append((score, individual))
            report.generations += 1
            stale = stale + 1 if red.evaluations == before else 0
            scored.sort(key=lambda item: -item[0])  # stable: ties keep their order
            elite = [ind for _, ind in scored[: max(2, config.population // 4)]] or [red.fresh()]
            population = list(elite)
            while len(population) < config.population:
                if red.rng.random() < 0.6:
                    population.append(red.mutate(red.rng.choice(elite)))
                else:
                    population.append(red.fresh())
    report.evaluations = red.evaluations
    report.findings = list(found.values())
    return report
