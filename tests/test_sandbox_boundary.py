"""Hostile candidates against the sandbox's boundary: network, file read (/etc/passwd, the data
dir), credential read, file write and process start, at deploy validation, in evaluation and
in a shadow. Each attempt is refused and the refusal recorded (the deploy error, the
evaluation's reason, the arbiter's rollback reason); live keeps serving throughout.

The hostile code tries everything, then raises with the list of what escaped and what was
refused, so one process shows every attack's fate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from evolution_support import (
    FAST,
    deploy_source,
    running_arbiter,
    scorer_platform,
    scorer_source,
    start_evolution,
    steady_traffic,
)

import o_bus
from o_bus.evolution.bus_broker import BusBroker
from o_bus.evolution.search.evaluate.pool import EvaluationPool
from o_bus.evolution.search.evaluate.worker import EvaluationJob
from o_bus.evolution.validate import InvalidCodeError, validate_code

pytestmark = pytest.mark.slow

ATTACKS = ("network", "read_passwd", "read_data_dir", "read_creds", "write_file", "start_process")

# Every attempt that does not raise OSError (PermissionError, connection refused...) escaped.
HOSTILE = """import ctypes, os, socket
def attempt(name, action, refused, escaped):
    try:
        action()
    except OSError as err:
        refused.append(f"{{name}}: {{type(err).__name__}}")
    else:
        escaped.append(name)
def start_process():
    pid = ctypes.CDLL(None, use_errno=True).fork()
    if pid == 0:
        os._exit(0)
    if pid < 0:
        raise OSError(ctypes.get_errno(), "fork")
def attack():
    refused, escaped = [], []
    attempt("network", lambda: socket.create_connection(("127.0.0.1", {port}), 2).close(),
            refused, escaped)
    attempt("read_passwd", lambda: open("/etc/passwd").read(), refused, escaped)
    attempt("read_data_dir", lambda: os.listdir({data_dir!r}), refused, escaped)
    attempt("read_creds", lambda: open({creds!r}).read(), refused, escaped)
    attempt("write_file", lambda: open({target!r}, "w").write("pwned"), refused, escaped)
    attempt("start_process", start_process, refused, escaped)
    raise RuntimeError(f"ESCAPED={{escaped}} REFUSED={{refused}}")
"""


class Victim:
    """What the hostile code goes for: a TCP server, a data dir with credentials, a file."""

    def __init__(self, folder: Path, port: int) -> None:
        self.port = port
        self.data_dir = folder / ".o-bus"
        self.creds = self.data_dir / "creds" / "operator.creds"
        self.creds.parent.mkdir(parents=True)
        self.creds.write_text("-----BEGIN NATS USER JWT-----\nsecret\n")
        self.creds.chmod(0o600)
        self.target = folder / "written-by-candidate"
        self.connections = 0

    def code(self) -> str:
        return HOSTILE.format(
            port=self.port,
            data_dir=str(self.data_dir),
            creds=str(self.creds),
            target=str(self.target),
        )

    def on_connect(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    def assert_unharmed(self, recorded: str) -> None:
        """``recorded`` (the refusal as recorded) lists every attack as refused, none escaped;
        and indeed nothing reached the server or wrote the file."""
        assert "ESCAPED=[]" in recorded, recorded
        refused = re.search(r"REFUSED=\[(.*?)\]", recorded)
        assert refused is not None, recorded
        for name in ATTACKS:
            assert f"'{name}: " in refused.group(1), (name, recorded)
        assert self.connections == 0
        assert not self.target.exists()


@contextlib.asynccontextmanager
async def victim(folder: Path) -> AsyncIterator[Victim]:
    holder: list[Victim] = []
    server = await asyncio.start_server(lambda r, w: holder[0].on_connect(r, w), "127.0.0.1", 0)
    holder.append(Victim(folder, server.sockets[0].getsockname()[1]))
    try:
        yield holder[0]
    finally:
        server.close()
        await server.wait_closed()


async def test_hostile_code_is_refused_at_deploy_validation(tmp_path: Path) -> None:
    async with victim(tmp_path) as target:
        path = tmp_path / "hostile.py"
        path.write_text(target.code() + "attack()\n")
        with pytest.raises(InvalidCodeError) as refused:
            await validate_code(path, expected_name=None)
        assert "importing it raised RuntimeError" in refused.value.message
        target.assert_unharmed(refused.value.message)


async def test_hostile_code_is_refused_in_evaluation(tmp_path: Path) -> None:
    async with victim(tmp_path) as target:
        candidate = tmp_path / "child.py"
        candidate.write_text(target.code() + "attack()\n")
        pool = EvaluationPool(1, timeout=30, memory_mb=512, workdir=tmp_path)
        result = await pool.run(
            EvaluationJob(
                candidate=candidate,
                baseline=tmp_path / "baseline.py",
                dataset=tmp_path / "dataset.jsonl",
                expected_name="scorer",
            )
        )
        assert result["outcome"] == "invalid", result
        target.assert_unharmed(result["reason"])


async def test_hostile_code_is_refused_at_deploy_and_in_a_shadow_while_live_serves(
    nats_url: str, tmp_path: Path
) -> None:
    async with (
        victim(tmp_path) as target,
        scorer_platform(nats_url, tmp_path) as (platform, spec),
        running_arbiter(nats_url, spec) as arbiter,
        steady_traffic(platform) as seen,
    ):
        at_import = scorer_source("1.1.0", module_prelude=target.code() + "attack()")
        with pytest.raises(InvalidCodeError) as refused:
            await deploy_source(platform.js, tmp_path, "hostile_import", at_import)
        target.assert_unharmed(refused.value.message)

        in_handler = scorer_source(
            "1.2.0", module_prelude=target.code(), handler_prelude="attack()"
        )
        version = await deploy_source(platform.js, tmp_path, "hostile_shadow", in_handler)
        await start_evolution(platform.js, version, **FAST)
        done = await arbiter.finished()
        assert done.status == "rolled_back", done.decisions
        reason = done.decisions[-1].reason
        assert "candidate code fails more than live" in reason, reason
        target.assert_unharmed(reason)
        assert seen.answered > 0
    assert not seen.failed, seen.failed
    assert not seen.not_live, seen.not_live


# A kernel without network namespaces or Landlock, as the sandbox sees one: the functions
# that ask the kernel fail, and the process enters the sandbox as usual.
WITHOUT_NETNS_AND_LANDLOCK = """
import json, socket
from o_bus.evolution import landlock, netns
def no_netns():
    raise netns.NetworkUnavailable("no network namespace: kernel refused (simulated)")
netns.isolate_network = no_netns
landlock.abi_version = lambda: 0
from o_bus.evolution.sandbox import SandboxLimits, enter_sandbox
report = enter_sandbox(SandboxLimits())
sockets = {}
for name in ("AF_INET", "AF_INET6", "AF_UNIX"):
    try:
        socket.socket(getattr(socket, name), socket.SOCK_STREAM).close()
        sockets[name] = "opened"
    except OSError as err:
        sockets[name] = type(err).__name__
print(json.dumps({"summary": report.summary(), "boundary": report.boundary.model_dump(),
                  "sockets": sockets}))
"""


async def test_without_namespaces_or_landlock_ip_sockets_are_refused_and_the_report_says_so() -> (
    None
):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WITHOUT_NETNS_AND_LANDLOCK, stdout=subprocess.PIPE
    )
    out, _ = await process.communicate()
    found = json.loads(out.decode().strip().splitlines()[-1])
    assert found["sockets"] == {
        "AF_INET": "PermissionError",
        "AF_INET6": "PermissionError",
        "AF_UNIX": "opened",
    }
    boundary = found["boundary"]
    assert boundary["network"] is None
    assert boundary["landlock"] == []
    assert any("no landlock" in error for error in boundary["errors"]), boundary
    assert "no sockets but AF_UNIX" in found["summary"]
    assert "NOT in force: no network namespace" in found["summary"]
    assert "landlock ABI" not in found["summary"]


# The same attacks by a process that enters the sandbox from an interpreter others may read
# (so, as root, it becomes uid 65534) and from an unprivileged user (a user namespace holds
# its network namespace). Needs a system Python of this minor version, for the venv's
# compiled packages, and setpriv.
AS_ANOTHER_USER = """
import json, os, socket
from o_bus.evolution.sandbox import SandboxLimits, enter_sandbox
report = enter_sandbox(SandboxLimits())
found = {"uid": os.getuid(), "summary": report.summary()}
def attempt(name, action):
    try:
        action()
        found[name] = "escaped"
    except OSError as err:
        found[name] = type(err).__name__
attempt("network", lambda: socket.create_connection(("127.0.0.1", PORT), 2))
attempt("read_passwd", lambda: open("/etc/passwd").read())
attempt("write_file", lambda: open(TARGET, "w").write("pwned"))
attempt("start_process", lambda: os.fork() or None)
print(json.dumps(found))
"""


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder anyone may write to (in /tmp, so reachable by anyone): only the sandbox can
    stop a write there."""
    folder = Path(tempfile.mkdtemp(prefix="o-bus-open-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


SYSTEM_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")


@pytest.mark.skipif(
    not SYSTEM_PYTHON.exists() or not Path("/usr/bin/setpriv").exists() or os.getuid() != 0,
    reason="needs root, setpriv and a system Python of this minor version",
)
@pytest.mark.parametrize("as_nobody", [False, True], ids=["root-drops-to-nobody", "unprivileged"])
async def test_the_boundary_holds_as_nobody_and_for_an_unprivileged_user(
    tmp_path: Path, open_folder: Path, as_nobody: bool
) -> None:
    async with victim(tmp_path) as target:
        code = AS_ANOTHER_USER.replace("PORT", str(target.port))
        code = code.replace("TARGET", repr(str(open_folder / "pwned")))
        packages = [str(Path(o_bus.__file__).parent.parent), *site.getsitepackages()]
        user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        process = await asyncio.create_subprocess_exec(
            *(user if as_nobody else []),
            "env",
            "-i",
            "PATH=/usr/bin:/bin",
            f"PYTHONPATH={':'.join(packages)}",
            str(SYSTEM_PYTHON),
            "-c",
            code,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()[-2000:]
        found = json.loads(out.decode().strip().splitlines()[-1])
    assert found["uid"] == 65534
    assert "NOT in force" not in found["summary"], found["summary"]
    namespace = "user and network namespace" if as_nobody else "network namespace"
    assert f"network: {namespace}: loopback only" in found["summary"]
    for attack in ("network", "read_passwd", "write_file", "start_process"):
        assert found[attack] == "PermissionError", (attack, found)
    assert target.connections == 0
    assert not (open_folder / "pwned").exists()


async def test_the_broker_reaches_only_its_server_and_only_a_few_times(nats_url: str) -> None:
    broker = await BusBroker(nats_url, max_connections=2).start()
    try:
        opened = [await asyncio.open_unix_connection(str(broker.path)) for _ in range(3)]
        first_lines = [await reader.readline() for reader, _ in opened]
        assert first_lines[0].startswith(b"INFO ")  # the NATS server speaks
        assert first_lines[1].startswith(b"INFO ")
        assert first_lines[2] == b""  # over the limit: closed at once
        assert broker.refused == 1
        for _, writer in opened:
            writer.close()
    finally:
        await broker.close()
    assert not broker.path.exists()
