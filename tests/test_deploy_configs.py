"""The nats-server configs under deploy/ are what the config generator renders, and the
server accepts each of them (``nats-server -t``), so they cannot drift from what runs here."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from o_bus.cli.main import build_parser
from o_bus.server.config import ClusterConfig, ServerConfig, render
from o_bus.server.deploy_files import rendered_files
from o_bus.server.embedded import find_nats_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("relative", sorted(str(p) for p in rendered_files(ROOT)))
def test_the_committed_file_is_the_generated_one(relative: str) -> None:
    expected = rendered_files(ROOT)[Path(relative)]
    assert (ROOT / relative).read_text(encoding="utf-8") == expected, (
        f"{relative} differs from the generator: run `python -m o_bus.server.deploy_files`"
    )


def _nats_server_test(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(find_nats_server()), "-t", "-c", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "SERVER_NAME": "n1"},
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("name", ["single.conf", "cluster-node.conf", "kubernetes-node.conf"])
def test_nats_server_accepts_the_deployed_config(name: str) -> None:
    checked = _nats_server_test(ROOT / "deploy" / "nats" / name)
    assert checked.returncode == 0, checked.stderr
    assert "is valid" in checked.stdout + checked.stderr


def test_compose_runs_the_generated_cluster_config() -> None:
    compose = (ROOT / "deploy" / "compose.yaml").read_text(encoding="utf-8")
    assert compose.count("./nats/cluster-node.conf:/etc/nats/cluster-node.conf:ro") == 3


def test_a_local_cluster_node_config_is_valid(tmp_path: Path) -> None:
    config = ServerConfig(
        server_name="n2",
        host="127.0.0.1",
        port=-1,
        store_dir=str(tmp_path / "n2"),
        cluster=ClusterConfig(
            name="o-bus-local",
            host="127.0.0.1",
            port=6223,
            routes=tuple(f"nats-route://127.0.0.1:{6222 + i}" for i in range(3)),
        ),
    )
    path = tmp_path / "n2.conf"
    path.write_text(render(config), encoding="utf-8")
    checked = _nats_server_test(path)
    assert checked.returncode == 0, checked.stderr


def test_a_bad_setting_is_reported_by_the_server(tmp_path: Path) -> None:
    path = tmp_path / "bad.conf"
    path.write_text(render(ServerConfig(store_dir=str(tmp_path), http="not a port")))
    checked = _nats_server_test(path)
    assert checked.returncode != 0


def _documents(path: Path) -> list[str]:
    return [doc for doc in path.read_text(encoding="utf-8").split("\n---\n") if "kind:" in doc]


def _field(document: str, name: str) -> str:
    found = re.search(rf"^\s*{name}: (.+)$", document, flags=re.MULTILINE)
    assert found is not None, f"no {name} in:\n{document}"
    return found.group(1).strip()


def test_kubernetes_runs_agent_hosts_as_a_statefulset_of_several_replicas() -> None:
    manifest = ROOT / "deploy" / "kubernetes" / "o-bus.yaml"
    by_kind = {_field(doc, "kind"): doc for doc in _documents(manifest)}
    assert {"Deployment", "StatefulSet", "Service"} <= set(by_kind), sorted(by_kind)
    hosts = by_kind["StatefulSet"]
    assert int(_field(hosts, "replicas")) >= 2
    assert _field(hosts, "serviceName") == _field(by_kind["Service"], "name") == "o-bus-host"
    assert "fieldPath: metadata.name" in hosts  # each host is named after its (stable) pod
    # The container's command lines (JSON flow lists) are ones the CLI accepts.
    parser = build_parser()
    up = parser.parse_args(json.loads(_field(by_kind["Deployment"], "args")))
    assert (up.command, up.replicas) == ("up", 3)
    host = parser.parse_args(json.loads(_field(hosts, "args")))
    assert (host.command, host.service, host.host_name) == ("run", "host", "$(POD_NAME)")
    assert host.nats == "nats://nats:4222"
