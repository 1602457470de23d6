"""The supervisor's process table with real (tiny) processes: restart with backoff, kill, pause with a
supervisor-owned resume, graceful restart, stop with escalation to SIGKILL, ready listeners."""

from __future__ import annotations

import asyncio
import itertools
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil
import pytest

from sample_shop.faultd.processes import ReplicaProcess
from testbed.runtime.backoff import RestartPolicy
from testbed.runtime.processes import ProcessError, ProcessSpec, ProcessTable

SLEEPER = ["sleep", "60"]
IGNORES_SIGTERM = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
]


def _spec(tmp_path: Path, command: list[str], name: str = "catalog-0", **kw: object) -> ProcessSpec:
    return ProcessSpec(
        name,
        command,
        {"PATH": "/usr/bin:/bin"},
        tmp_path / f"{name}.log",
        1,
        service="catalog",
        replica=0,
        **kw,
    )  # type: ignore[arg-type]


def run_with_table(table: ProcessTable, body: Callable[[ProcessTable], Awaitable[None]]) -> None:
    """Start the table, run the test body against it, always stop every process."""

    async def main() -> None:
        monitor = asyncio.get_running_loop().create_task(table.monitor(0.02))
        try:
            table.start_all()
            await body(table)
        finally:
            await table.stop_all()
            monitor.cancel()

    asyncio.run(main())


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def test_a_crash_loop_backs_off_exponentially(tmp_path: Path) -> None:
    table = ProcessTable(RestartPolicy(initial_delay_s=0.2, factor=2.0, max_delay_s=0.8, stable_after_s=5))
    table.add(_spec(tmp_path, [sys.executable, "-c", "raise SystemExit(3)"]))
    starts: list[float] = []

    async def body(t: ProcessTable) -> None:
        managed = t.get("catalog-0")
        seen = -1
        while len(starts) < 5:
            if managed.restarts != seen and managed.started_at is not None:
                seen = managed.restarts
                starts.append(managed.started_at)
            await asyncio.sleep(0.005)
        await _until(lambda: managed.state == "backoff")
        assert managed.exit_code == 3

    run_with_table(table, body)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # each gap = the process' own run time (python start-up, ~0.05 s) + the backoff delay 0.2, 0.4, 0.8, 0.8
    for gap, delay in zip(gaps, [0.2, 0.4, 0.8, 0.8], strict=True):
        assert delay <= gap < delay + 0.5, gaps


def test_kill_is_restarted_fast_with_a_new_pid(tmp_path: Path) -> None:
    table = ProcessTable()
    table.add(_spec(tmp_path, SLEEPER))

    async def body(t: ProcessTable) -> None:
        before = t.replicas()[0].pid
        assert before is not None
        killed = await t.kill("catalog", 0)
        assert killed.state == "backoff" and killed.exit_code == -9 and killed.pid is None
        waited = await _until(lambda: t.replicas()[0].state == "running")
        assert 0.4 <= waited < 1.5  # the first restart comes after RestartPolicy().initial_delay_s = 0.5 s
        after = t.replicas()[0]
        assert after.pid not in (None, before) and after.restarts == 1
        assert not psutil.pid_exists(before) or psutil.Process(before).status() == psutil.STATUS_ZOMBIE

    run_with_table(table, body)


def test_pause_is_resumed_by_the_supervisor(tmp_path: Path) -> None:
    table = ProcessTable()
    table.add(_spec(tmp_path, SLEEPER))

    async def body(t: ProcessTable) -> None:
        pid = t.replicas()[0].pid
        assert pid is not None
        paused = await t.pause("catalog", 0, 0.3)
        assert paused.state == "paused" and paused.paused_until is not None
        assert psutil.Process(pid).status() == psutil.STATUS_STOPPED
        with pytest.raises(ProcessError, match="already paused"):
            await t.pause("catalog", 0, 1)
        await _until(lambda: t.replicas()[0].state == "running", timeout=2)
        assert psutil.Process(pid).status() != psutil.STATUS_STOPPED
        assert t.replicas()[0].pid == pid and t.replicas()[0].restarts == 0
        # clearing a pause early resumes at once
        await t.pause("catalog", 0, 60)
        t.resume("catalog", 0)
        assert psutil.Process(pid).status() != psutil.STATUS_STOPPED

    run_with_table(table, body)


def test_restart_is_graceful_and_immediate(tmp_path: Path) -> None:
    table = ProcessTable(stop_grace_s=0.3)
    table.add(_spec(tmp_path, IGNORES_SIGTERM))

    async def body(t: ProcessTable) -> None:
        await asyncio.sleep(0.2)  # let it install its SIGTERM handler
        before = t.replicas()[0].pid
        started = time.monotonic()
        after = await t.restart("catalog", 0)
        assert 0.3 <= time.monotonic() - started < 1.0  # waited the grace period, then SIGKILL
        assert after.pid not in (None, before) and after.restarts == 1 and after.state == "running"

    run_with_table(table, body)


def test_bad_requests_name_the_problem(tmp_path: Path) -> None:
    table = ProcessTable()
    table.add(_spec(tmp_path, SLEEPER))

    async def body(t: ProcessTable) -> None:
        with pytest.raises(ProcessError, match="unknown service 'nope'; running services: catalog"):
            await t.kill("nope", 0)
        with pytest.raises(ProcessError, match="catalog has no replica 3; it runs replicas 0 to 0"):
            await t.kill("catalog", 3)
        with pytest.raises(ProcessError, match="pause seconds must be in"):
            await t.pause("catalog", 0, 0)
        await t.kill("catalog", 0)
        with pytest.raises(ProcessError, match="it is not running \\(state backoff\\)"):
            await t.pause("catalog", 0, 1)

    run_with_table(table, body)


def test_stop_all_escalates_to_sigkill_and_leaves_nothing(tmp_path: Path) -> None:
    table = ProcessTable(stop_grace_s=0.3)
    table.add(_spec(tmp_path, IGNORES_SIGTERM))
    table.add(ProcessSpec("prometheus", SLEEPER, {"PATH": "/usr/bin:/bin"}, tmp_path / "p.log", 2))
    pids: list[int] = []

    async def body(t: ProcessTable) -> None:
        await asyncio.sleep(0.2)
        await t.pause("catalog", 0, 60)  # a stopped process must be stopped too
        pids.extend(m.pid for m in t.all() if m.pid)

    run_with_table(table, body)
    assert len(pids) == 2
    assert all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE for p in pids)
    assert {m.state for m in table.all()} == {"stopped"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ready_listeners_hear_each_start(tmp_path: Path) -> None:
    port = _free_port()
    server = [
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(tmp_path),
    ]
    table = ProcessTable()
    table.add(_spec(tmp_path, server, health_url=f"http://127.0.0.1:{port}/"))
    heard: list[ReplicaProcess] = []

    async def listener(replica: ReplicaProcess) -> None:
        heard.append(replica)

    table.add_ready_listener(listener)

    async def body(t: ProcessTable) -> None:
        await _until(lambda: len(heard) == 1, timeout=10)
        assert heard[0].state == "running" and heard[0].restarts == 0
        await t.kill("catalog", 0)
        await _until(lambda: len(heard) == 2, timeout=10)
        assert heard[1].restarts == 1 and heard[1].pid != heard[0].pid

    run_with_table(table, body)
