"""The fork-server (testbed/runtime/forkserver.py, on unless TESTBED_FORK_SERVER=off): a real stack of its
own on the spare port offset whose Python processes are forked from the pre-importing supervisor. The shop
answers a sign-up and a checkout-sized journey; a killed replica is restarted as a new fork; a pause stops
and resumes the forked process; the supervisor's death takes the server and every fork with it; a bad
value of the switch fails before anything starts. Its memory effect is measured by `make bench`
(runtime.stack), not here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from testbed.runtime.base import RuntimeFailure, UpOptions
from testbed.runtime.forkserver import ENV_SWITCH, ForkServer, ForkServerError, command_of, enabled, module_of
from testbed.runtime.local import LocalTarget
from testbed.runtime.observers import plan_observers
from testbed.runtime.options import parse_replicas
from testbed.runtime.ports import listening
from tests.conftest import processes_gone, wait_until


def test_the_switch_and_the_command_shape() -> None:
    assert enabled({}) is True and enabled({ENV_SWITCH: "on"}) is True  # on by default
    assert enabled({ENV_SWITCH: "OFF"}) is False
    with pytest.raises(ValueError, match="use on or off"):
        enabled({ENV_SWITCH: "yes"})
    assert module_of([sys.executable, "-m", "sample_shop.catalog"]) == ["sample_shop.catalog"]
    assert module_of([sys.executable, "-m", "m", "--port", "1"]) == ["m", "--port", "1"]
    assert module_of(["/usr/bin/prometheus", "--config.file=x"]) is None
    assert module_of(["/other/python", "-m", "sample_shop.catalog"]) is None


def test_the_server_is_not_forked_from_a_process_that_runs_threads(tmp_path: Path) -> None:
    """Forking copies other threads' locks in whatever state they are: the supervisor forks the server
    before it starts any thread, and `start` refuses otherwise (the replicas are then executed)."""
    release = threading.Event()
    other = threading.Thread(target=release.wait, name="some-thread")
    other.start()
    try:
        with pytest.raises(ForkServerError, match=r"already runs threads \(.*some-thread.*\): not forking"):
            ForkServer(tmp_path / "forkserver.log").start()
    finally:
        release.set()
        other.join()


PROBE = """
import json, os, sys, time
from pathlib import Path
from testbed.runtime.forkserver import ForkServer
server = ForkServer(Path(sys.argv[1]) / "forkserver.log")
child = server.spawn(["tests.runtime.freeze_probe"], dict(os.environ), Path(sys.argv[1]) / "child.log")
deadline = time.monotonic() + 20
while child.poll() is None and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({"server": server.pid, "code": child.poll(), "me": os.getpid()}))
server.stop()
"""


def test_a_fork_keeps_the_frozen_heap_frozen_is_titled_and_ignores_sigpipe(tmp_path: Path) -> None:
    """A fresh process (no thread, like the supervisor at its first spawn) starts the server and forks one
    module. The child still has the preloaded heap in the permanent generation: a gc.unfreeze() there
    would let the next full collection write to, and so copy, every shared page (docs/runtime.md)."""
    started = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert started.returncode == 0, started.stderr
    parent = json.loads(started.stdout.splitlines()[-1])
    assert parent["code"] == 0, (tmp_path / "child.log").read_text()
    child = json.loads((tmp_path / "child.log").read_text().splitlines()[-1])
    assert child["frozen"] > 100_000, child  # FastAPI, SQLAlchemy, ... : hundreds of thousands of objects
    assert child["ppid"] == parent["server"] and parent["server"] != parent["me"]
    assert child["command"] == [sys.executable, "-m", "tests.runtime.freeze_probe"]
    # a write to a closed socket is EPIPE, as in an executed Python, not death by SIGPIPE (a client that
    # gave up on a paused replica killed it on its resume once)
    assert child["sigpipe_ignored"] is True


@pytest.fixture
def forked(tmp_path: Path, spare_port_offset: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalTarget]:
    """A stack with the fork-server on, in a fresh state folder; always brought down."""
    monkeypatch.setenv(ENV_SWITCH, "on")
    target = LocalTarget(tmp_path / "state", spare_port_offset, exit_with_pid=os.getpid())
    try:
        target.up(UpOptions(extras=False, timeout_s=90))
        yield target
    finally:
        target.down()


def _server(supervisor: int) -> psutil.Process:
    children = psutil.Process(supervisor).children()
    servers = [p for p in children if "testbed.runtime.forkserver" in command_of(p)]
    assert len(servers) == 1, [p.cmdline() for p in psutil.Process(supervisor).children()]
    return servers[0]


def _replica_pid(target: LocalTarget, service: str, replica: int = 0) -> int:
    (match,) = [p for p in target.status().processes if p.service == service and p.replica == replica]
    assert match.pid is not None, match
    return match.pid


@pytest.mark.stack
def test_replicas_are_forks_that_serve_restart_pause_and_die_with_the_supervisor(forked: LocalTarget) -> None:
    supervisor = forked.supervisor_pid()
    assert supervisor is not None
    server = _server(supervisor)
    forks = {p.pid for p in server.children()}
    replicas = {p.service: p.pid for p in forked.status().processes if p.replica is not None}
    assert len(replicas) == 7 and set(replicas.values()) <= forks, (replicas, forks)
    # the server is a fork of the supervisor, and each fork is titled with the command it stands for
    assert server.ppid() == supervisor
    for service, pid in replicas.items():
        assert command_of(psutil.Process(pid)) == [sys.executable, "-m", f"sample_shop.{service}"]
    assert any(note.startswith("fork-server:") for note in forked.startup_notes()), forked.startup_notes()
    listed = [p for p in forked.status().processes if p.service == "forkserver"]
    assert [p.pid for p in listed] == [server.pid] and listed[0].healthy and listed[0].pss_mb

    # a forked gateway, users (Argon2id) and catalog answer a real journey
    gateway = forked.descriptor().gateway_url
    email = f"fork-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=gateway, timeout=15) as http:
        assert http.get("/api/products").status_code == 200
        account = {"email": email, "password": "password-1", "name": "F"}
        registered = http.post("/api/auth/register", json=account)
        assert registered.status_code in (200, 201), registered.text
        login = http.post("/api/auth/login", json={"email": email, "password": "password-1"})
        assert login.status_code == 200, login.text

    # kill: the exit is seen through the server's report, the restart is a new fork of the same server
    old = _replica_pid(forked, "catalog")
    forked.kill("catalog", 0)
    wait_until(lambda: not psutil.pid_exists(old), 5, message="the kill (the server reaps its children)")

    def restarted() -> bool:
        (catalog,) = [p for p in forked.status().processes if p.service == "catalog"]
        return catalog.pid not in (None, old) and catalog.healthy

    wait_until(restarted, 30, message="catalog's restart")
    new = _replica_pid(forked, "catalog")
    assert psutil.Process(new).ppid() == server.pid

    # pause: the forked process is really stopped, then resumed by the supervisor
    orders = _replica_pid(forked, "orders")
    forked.pause("orders", 0, 1.0)
    assert psutil.Process(orders).status() == psutil.STATUS_STOPPED
    wait_until(lambda: psutil.Process(orders).status() != psutil.STATUS_STOPPED, 5, message="the resume")

    # the supervisor's death: the server (PR_SET_PDEATHSIG) and then every fork end with it
    everything = [server, *server.children()]
    os.kill(supervisor, signal.SIGKILL)

    wait_until(lambda: processes_gone(everything), 5, message="the fork-server and its forks to end")
    observers = plan_observers(forked.layout, forked.ports).names
    ports = forked.ports.stack_ports(parse_replicas(None), observers)
    wait_until(lambda: listening(ports) == {}, 5, message="the ports to be free")


def test_a_bad_switch_value_fails_before_anything_starts(
    tmp_path: Path, spare_port_offset: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_SWITCH, "sometimes")
    target = LocalTarget(tmp_path / "state", spare_port_offset, exit_with_pid=os.getpid())
    try:
        with pytest.raises(RuntimeFailure) as caught:
            target.up(UpOptions(extras=False, timeout_s=60))
        assert f"{ENV_SWITCH}='sometimes' is not valid; use on or off" in caught.value.message
        assert target.supervisor_pid() is None
    finally:
        target.down()
