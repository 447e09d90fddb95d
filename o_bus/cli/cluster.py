"""`o-bus cluster up --nodes 3`: a JetStream cluster of local nats-servers, in the foreground.

Each node has its own store dir under ``--data-dir``, a server name and routes to the others
(see :class:`o_bus.server.cluster.LocalCluster`). A node that dies is restarted on its store
and port. The client URLs are printed and written to ``DATA_DIR/nats-url`` for
`o-bus up --nats URL1,URL2,URL3 --replicas 3`. Runs until SIGINT, SIGTERM or SIGHUP.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from o_bus.common.urls import URL_FILE
from o_bus.errors import OBusError

__all__ = ["add_parser", "cmd_cluster"]

DEFAULT_CLUSTER_DIR = Path(".o-bus-cluster")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = sub.add_parser("cluster", help="run a local JetStream cluster of nats-servers")
    cluster.add_argument("action", choices=["up"])
    cluster.add_argument("--nodes", type=int, default=3)
    cluster.add_argument("--data-dir", type=Path, default=DEFAULT_CLUSTER_DIR)
    cluster.add_argument("--sync-interval", default=None, help="'always' or a duration ('2m')")


def _say(text: str) -> None:
    print(f"o-bus cluster: {text}", file=sys.stderr, flush=True)


def cmd_cluster(args: argparse.Namespace) -> int:
    # Imported here: the parser is built by every command, `o-bus run agent` included.
    from o_bus.platform.lineage import die_with_parent
    from o_bus.platform.lock import DataDirLock, DataDirLockedError
    from o_bus.platform.server_keeper import ServerKeeper
    from o_bus.server.cluster import LocalCluster

    lock = DataDirLock(args.data_dir)
    try:
        lock.acquire()
    except DataDirLockedError as err:
        _say(err.message)
        return 2
    stop = {"signal": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    cluster = LocalCluster(
        args.data_dir,
        args.nodes,
        sync_interval=args.sync_interval,
        preexec_fn=die_with_parent(signal.SIGTERM),
        pass_fds=(lock.fd,),
    )
    try:
        cluster.start()
        lock.record_url(cluster.url)
        (args.data_dir / URL_FILE).write_text(cluster.url + "\n")
        print(f"cluster up ({args.nodes} nodes). NATS: {cluster.url}", flush=True)
        print(f"Try:  o-bus up --nats {cluster.url} --replicas {args.nodes}", flush=True)
        keepers = [ServerKeeper(server, say=_say) for server in cluster.servers]
        while not stop["signal"]:
            for keeper in keepers:
                keeper.check()
            time.sleep(0.1)
        return 0
    except OBusError as err:
        _say(err.message)
        return 1
    finally:
        cluster.stop()
        (args.data_dir / URL_FILE).unlink(missing_ok=True)
        lock.release()
        print("cluster down.", flush=True)
