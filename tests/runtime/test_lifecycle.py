"""Stacks of their own (on the spare port offset, one at a time): `testbed up`/`down` through the CLI leave
nothing behind; bad input, a busy port, a missing Prometheus and a crashing service fail clearly and
start nothing; the supervisor dying does not orphan its children."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from testbed.runtime import forkserver
from testbed.runtime.base import RuntimeFailure, UpOptions
from testbed.runtime.extras import find_extras
from testbed.runtime.forkserver import command_of
from testbed.runtime.local import LocalTarget
from testbed.runtime.observers import plan_observers
from testbed.runtime.options import parse_replicas
from testbed.runtime.ports import listening
from tests.conftest import processes_gone

pytestmark = pytest.mark.stack


@pytest.fixture
def spare(tmp_path: Path, spare_port_offset: int) -> Iterator[LocalTarget]:
    """A target on the spare offset in a fresh state folder; always brought down."""
    target = LocalTarget(tmp_path / "state", spare_port_offset, exit_with_pid=os.getpid())
    try:
        yield target
    finally:
        target.down()


def _cli(
    target: LocalTarget, *args: str, path: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TESTBED_STATE_DIR": str(target.layout.root),
        "TESTBED_PORT_OFFSET": str(target.ports.offset),
    }
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "testbed.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _stack_ports(target: LocalTarget, replicas: str | None = None) -> dict[int, str]:
    observers = plan_observers(target.layout, target.ports).names  # node_exporter, Alertmanager, receiver
    return target.ports.stack_ports(parse_replicas(replicas), observers)


def test_cli_up_then_down_leaves_no_process_and_no_port(spare: LocalTarget) -> None:
    up = _cli(spare, "up", "--replicas", "catalog=2", "--json")
    assert up.returncode == 0, up.stdout + up.stderr
    result = json.loads(up.stdout)
    assert result["status"] == "up" and result["elapsed_s"] > 0
    stack = result["stack"]
    assert len([r for r in stack["replicas"] if r["service"] == "catalog"]) == 2
    if not find_extras():  # absent extras are reported with where their data goes instead
        notes = " | ".join(result["notes"])
        assert (
            "jaeger: runs on kind (docs/kind.md) - here traces are written as OTLP-JSON lines to "
            f"{stack['traces_dir']}" in notes
        )
        assert (
            f"loki: runs on kind (docs/kind.md) - here logs stay as JSON lines in {stack['logs_dir']}"
            in notes
        )
        assert "grafana: runs on kind (docs/kind.md) - here" in notes
        assert stack["jaeger_url"] is None and stack["loki_url"] is None and stack["grafana_url"] is None
    supervisor = spare.supervisor_pid()
    assert supervisor is not None
    processes = _tree(supervisor)
    observers = plan_observers(spare.layout, spare.ports).names  # node_exporter, Alertmanager, receiver
    # supervisor, 8 replicas, Prometheus, the SMTP server, observers, the fork-server (unless it is off);
    # the notifications function is at zero (no order event is pending), so none of its instances runs
    expected = 1 + 8 + 1 + 1 + len(observers) + int(forkserver.enabled(os.environ))
    assert len(processes) == expected, [" ".join(command_of(p)[:3]) for p in processes]
    ports = _stack_ports(spare, "catalog=2")
    assert listening(ports) == ports

    down = _cli(spare, "down", "--json")
    assert down.returncode == 0, down.stderr
    assert len(json.loads(down.stdout)["stopped"]) == len(processes)
    assert processes_gone(processes)
    assert listening(ports) == {}
    assert not spare.layout.stack_file.exists() and not spare.layout.supervisor_pid.exists()

    again = _cli(spare, "down")
    assert again.returncode == 0 and "nothing was running" in again.stderr
    status = _cli(spare, "status")
    assert status.returncode == 3 and "no stack is running" in status.stdout


def test_supervisor_death_does_not_orphan_the_services(spare: LocalTarget) -> None:
    spare.up(UpOptions(extras=False, timeout_s=90))
    supervisor = spare.supervisor_pid()
    assert supervisor is not None
    children = _tree(supervisor)[1:]
    # 7 replicas, Prometheus, the SMTP server, the observers installed here (node_exporter,
    # Alertmanager + receiver) and the fork-server (unless it is off)
    observers = plan_observers(spare.layout, spare.ports).names
    expected = 7 + 1 + 1 + len(observers) + int(forkserver.enabled(os.environ))
    assert len(children) == expected, [" ".join(command_of(p)[:3]) for p in children]
    os.kill(supervisor, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while not processes_gone(children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_gone(children), [p.pid for p in children if p.is_running()]
    deadline = time.monotonic() + 5
    while listening(_stack_ports(spare)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listening(_stack_ports(spare)) == {}
    status = spare.status()
    assert not status.running and "stale state" in status.message
    assert spare.down() == []
    assert not spare.layout.stack_file.exists()


def test_bad_replicas_give_a_clear_error_and_start_nothing(spare: LocalTarget) -> None:
    """Every wrong form is covered by test_options; here: the CLI's exit code, message and nothing started."""
    result = _cli(spare, "up", "--replicas", "catalgo=2")
    assert result.returncode == 2
    assert (
        "--replicas item 1 ('catalgo=2'): unknown service 'catalgo'; valid services: gateway" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert not spare.layout.root.exists() or not any(spare.layout.root.iterdir())
    assert listening(_stack_ports(spare)) == {}


def test_a_busy_port_is_named_with_its_process(spare: LocalTarget) -> None:
    port = spare.ports.app("users", 0)
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        result = _cli(spare, "up", "--no-extras")
    assert result.returncode == 1
    assert f"port {port} (users replica 0) is already in use by pid {os.getpid()}" in result.stderr
    assert "TESTBED_PORT_OFFSET" in result.stderr
    assert spare.supervisor_pid() is None and not spare.layout.supervisor_pid.exists()


def test_missing_prometheus_says_make_setup(spare: LocalTarget, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = _cli(spare, "up", path=str(empty))
    assert result.returncode == 1
    assert "Prometheus is not installed" in result.stderr and "make setup" in result.stderr
    assert spare.supervisor_pid() is None


def test_a_service_that_cannot_start_is_named_with_its_log(spare: LocalTarget) -> None:
    """A corrupt state folder (the catalog's database path is a directory) makes the real catalog fail."""
    (spare.layout.data_dir / "catalog.db").mkdir(parents=True)
    with pytest.raises(RuntimeFailure) as caught:
        spare.up(UpOptions(extras=False, timeout_s=90))
    failure = caught.value
    assert "catalog" in failure.message
    assert failure.log_path.endswith("catalog-0.log") and failure.log_tail
    assert spare.supervisor_pid() is None
    assert listening(_stack_ports(spare)) == {}
