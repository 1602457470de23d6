"""One experiment at a time per stack: the lock file in a tmp state folder, with real processes as holders."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from testbed.experiment.lock import LOCK_FILE, ExperimentBusy, ExperimentLock


@pytest.fixture
def other_process() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not us, to hold the lock."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _hold(state: Path, pid: int, create_time: float, experiment: str = "payment-errors") -> None:
    (state / LOCK_FILE).write_text(
        json.dumps(
            {
                "pid": pid,
                "experiment": experiment,
                "started": "2026-01-01T00:00:00.000Z",
                "started_epoch": 0.0,
                "create_time": create_time,
                "run_dir": "/runs/x",
            }
        )
    )


def test_acquire_writes_the_owner_and_release_removes_it(tmp_path: Path) -> None:
    lock = ExperimentLock(tmp_path)
    owner = lock.acquire("payment-latency-breaker")
    data = json.loads((tmp_path / LOCK_FILE).read_text())
    assert data["pid"] == owner.pid == psutil.Process().pid
    assert data["experiment"] == "payment-latency-breaker" and data["started"].endswith("Z")
    assert lock.holder() == owner
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_second_experiment_is_refused_naming_the_first(
    tmp_path: Path, other_process: subprocess.Popen[bytes]
) -> None:
    _hold(tmp_path, other_process.pid, psutil.Process(other_process.pid).create_time())
    with pytest.raises(ExperimentBusy) as info:
        ExperimentLock(tmp_path).acquire("catalog-outage")
    message = str(info.value)
    assert "another experiment is running on this stack: payment-errors" in message
    assert f"pid {other_process.pid}" in message and f"kill -INT {other_process.pid}" in message
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == other_process.pid  # untouched


def test_a_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    create_time = psutil.Process(dead.pid).create_time()
    dead.wait()
    _hold(tmp_path, dead.pid, create_time)
    owner = ExperimentLock(tmp_path).acquire("catalog-outage")
    assert owner.experiment == "catalog-outage"
    assert json.loads((tmp_path / LOCK_FILE).read_text())["experiment"] == "catalog-outage"


def test_a_recycled_pid_does_not_hold_the_lock(
    tmp_path: Path, other_process: subprocess.Popen[bytes]
) -> None:
    # the recorded process start time is not the live process's: the pid was reused
    _hold(tmp_path, other_process.pid, psutil.Process(other_process.pid).create_time() - 1000)
    assert ExperimentLock(tmp_path).acquire("catalog-outage").pid == psutil.Process().pid


def test_release_leaves_a_lock_that_is_not_ours(
    tmp_path: Path, other_process: subprocess.Popen[bytes]
) -> None:
    lock = ExperimentLock(tmp_path)
    lock.acquire("mine")
    _hold(tmp_path, other_process.pid, psutil.Process(other_process.pid).create_time())  # replaced behind us
    lock.release()
    assert (tmp_path / LOCK_FILE).exists()


def _dead_pid() -> tuple[int, float]:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    create_time = psutil.Process(dead.pid).create_time()
    dead.wait()
    return dead.pid, create_time


def test_an_orphaned_chaos_run_still_holds_the_lock(
    tmp_path: Path, other_process: subprocess.Popen[bytes]
) -> None:
    """The orchestrator was SIGKILLed, its `chaos run` (own session) lives on with its fault and load:
    the lock is not stale while any process of the run is alive."""
    pid, create_time = _dead_pid()
    _hold(tmp_path, pid, create_time)
    data = json.loads((tmp_path / LOCK_FILE).read_text())
    data["members"] = [
        {
            "role": "chaos",
            "pid": other_process.pid,
            "create_time": psutil.Process(other_process.pid).create_time(),
        }
    ]
    (tmp_path / LOCK_FILE).write_text(json.dumps(data))
    with pytest.raises(ExperimentBusy) as info:
        ExperimentLock(tmp_path).acquire("catalog-outage")
    assert f"chaos pid {other_process.pid}" in str(info.value)
    assert f"kill -INT {other_process.pid}" in str(info.value)
    other_process.kill()
    other_process.wait()
    assert ExperimentLock(tmp_path).acquire("catalog-outage").experiment == "catalog-outage"


def test_add_member_records_the_process_in_the_lock(
    tmp_path: Path, other_process: subprocess.Popen[bytes]
) -> None:
    lock = ExperimentLock(tmp_path)
    lock.acquire("mine", run_dir="/runs/r")
    lock.add_member("chaos", other_process.pid)
    data = json.loads((tmp_path / LOCK_FILE).read_text())
    assert [(m["role"], m["pid"]) for m in data["members"]] == [("chaos", other_process.pid)]
    assert data["run_dir"] == "/runs/r"
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_load_left_running_by_a_dead_run_holds_the_lock(
    tmp_path: Path, other_process: subprocess.Popen[bytes]
) -> None:
    """`chaos run` started the load (load.json) and then died too: the load still belongs to the run."""
    pid, create_time = _dead_pid()
    _hold(tmp_path, pid, create_time)
    load = {
        "pid": other_process.pid,
        "create_time": psutil.Process(other_process.pid).create_time(),
        "out_dir": str(tmp_path / "load"),
        "host": "http://127.0.0.1:1",
        "params": {},
        "started": 1.0,
        "deadline": 2.0,
        "parent_pid": pid,
    }
    (tmp_path / "load.json").write_text(json.dumps(load))
    with pytest.raises(ExperimentBusy) as info:
        ExperimentLock(tmp_path).acquire("catalog-outage")
    assert f"load pid {other_process.pid}" in str(info.value)
