"""``o-bus bench evolution search``: the self-evolution engine's throughput and progress.

On an embedded nats-server (127.0.0.1, temporary folder), with the shipped ``autoscaler``
example and its dataset:

- evaluations per second of the sandboxed pool with 1, 2 and all workers (each evaluation is
  one sandboxed process replaying the whole dataset), and the ratio of all workers to
  ``cores x one worker``;
- best fitness reached after N evaluations, mean over seeds, for the search (genome, syntax
  tree and crossover operators, islands, tournament) and for random search (uniform genomes)
  with the same evaluation budget;
- what a running search costs live traffic: ``counter`` at C=64 alone and while a search of
  the example runs on the same machine and server, beside the raw floor (:mod:`.live_cost`).

Modules: :mod:`.run`, :mod:`.live_cost` (measurements) and :mod:`.cli` (options, output).
"""

from o_bus_bench.search.cli import main

__all__ = ["main"]
