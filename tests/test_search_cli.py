"""`o-bus evolve search | lineage | archive` as a user runs them."""

from __future__ import annotations

import json

from nats.aio.client import Client
from search_support import DATASET, EXAMPLE
from support import run_cli

from o_bus.agent.catalogue import Catalogue, load_definition
from o_bus.cli.up import register_definitions
from o_bus.evolution.code_store import CodeStore, default_cache_dir
from o_bus.store.provision import provision


async def test_search_prints_baseline_best_and_a_deployed_version(
    nc: Client, nats_url: str
) -> None:
    js = nc.jetstream()
    await provision(js)
    await register_definitions(js, Catalogue([load_definition(str(EXAMPLE))]))
    code, out, err = await run_cli(
        "evolve", "search", "autoscaler", "--nats", nats_url,
        "--source", str(EXAMPLE), "--dataset", str(DATASET),
        "--generations", "2", "--population", "3", "--islands", "1",
        "--workers", "2", "--seed", "4", "--operators", "genome", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["baseline_fitness"] is not None
    assert result["best_fitness"] >= result["baseline_fitness"]
    if result["best_child"] != "root":
        version = await CodeStore(js, default_cache_dir()).get("autoscaler", result["best_version"])
        assert (
            "O_BUS_GENOME"
            in (await CodeStore(js, default_cache_dir()).fetch(version.digest)).read_text()
        )
    code, out, err = await run_cli("evolve", "lineage", "autoscaler", "--nats", nats_url, "--json")
    assert code == 0, err
    lineage = json.loads(out)
    assert lineage["search"] == result["search_id"]
    assert {c["child"] for c in lineage["children"]} >= {"root", "g1.i0.c0"}
    code, out, err = await run_cli("evolve", "lineage", "autoscaler", "--nats", nats_url)
    assert code == 0, err
    assert out.startswith(f"search {result['search_id']}:")
    assert "root [root] fitness" in out
    code, out, err = await run_cli("evolve", "archive", "autoscaler", "--nats", nats_url)
    assert code == 0, err
    assert "genome.max_step" in out
    assert result["best_child"] in out or result["best_child"] == "root"


async def test_search_without_a_dataset_is_a_clear_error(nats_url: str) -> None:
    code, _, err = await run_cli(
        "evolve", "search", "autoscaler", "--nats", nats_url, "--source", str(EXAMPLE)
    )
    assert code != 0
    assert "--dataset FILE or --window N" in err
