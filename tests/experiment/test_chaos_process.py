"""Stopping `chaos run` so that it still rolls back: SIGINT first, SIGTERM and SIGKILL only when it hangs.

The child here is a small Python program standing in for `chaos run` (its signal handling is what is
tested, and a real chaos run that ignores Ctrl-C cannot be produced on purpose); the real `chaos run` is
interrupted in tests/experiment/test_experiment_e2e.py (Ctrl-C rolls back)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import pytest

from testbed.experiment import chaos as chaos_module
from testbed.experiment.chaos import ChaosProcess
from testbed.runfolder import RunPaths

POLITE = """
import time
print("ready", flush=True)
try:
    time.sleep(60)
except KeyboardInterrupt:
    print("rolling back", flush=True)
"""
STUBBORN = """
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


def _start(tmp_path: Path, program: str) -> ChaosProcess:
    run = RunPaths(tmp_path / "run")
    run.make_dirs()
    process = ChaosProcess([sys.executable, "-c", program], run, os.environ)
    deadline = time.monotonic() + 20
    while "ready" not in run.chaos_log.read_text():
        assert time.monotonic() < deadline and process.poll() is None, run.chaos_log.read_text()
        time.sleep(0.05)
    return process


def test_ctrl_c_is_forwarded_once_and_the_child_finishes_its_rollback(tmp_path: Path) -> None:
    process = _start(tmp_path, POLITE)
    try:
        assert process.stop(timeout_s=20) == 0
        assert not process.terminated and not process.killed
        assert "rolling back" in (tmp_path / "run" / "chaos.log").read_text()
    finally:
        process.kill()


def test_a_child_that_ignores_ctrl_c_and_sigterm_is_killed_after_the_graces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chaos_module, "ROLLBACK_GRACE_S", 0.5)
    monkeypatch.setattr(chaos_module, "TERM_GRACE_S", 0.5)
    process = _start(tmp_path, STUBBORN)
    try:
        started = time.monotonic()
        code = process.stop(timeout_s=20)
        assert code == -9
        assert process.terminated and process.killed
        assert time.monotonic() - started < 10
    finally:
        process.kill()


ORCHESTRATOR = """
import os, sys, time
from pathlib import Path
from testbed.experiment.chaos import ChaosProcess
from testbed.runfolder import RunPaths
run = RunPaths(Path(sys.argv[1]))
process = ChaosProcess([sys.executable, "-c", sys.argv[2]], run, os.environ)
print(process.pid, flush=True)
time.sleep(60)
"""


def test_a_killed_orchestrator_takes_chaos_with_it_through_its_rollbacks(tmp_path: Path) -> None:
    """`chaos run` has its own session (a Ctrl-C reaches only the orchestrator), so a SIGKILL of the
    orchestrator used to leave it running with its fault and load. The kernel now sends it SIGINT."""
    import signal
    import subprocess

    import psutil

    run = RunPaths(tmp_path / "run")
    run.make_dirs()
    orchestrator = subprocess.Popen(
        [sys.executable, "-c", ORCHESTRATOR, str(run.root), POLITE], stdout=subprocess.PIPE, text=True
    )
    try:
        assert orchestrator.stdout is not None
        chaos_pid = int(orchestrator.stdout.readline())
        deadline = time.monotonic() + 20
        while "ready" not in run.chaos_log.read_text():
            assert time.monotonic() < deadline, run.chaos_log.read_text()
            time.sleep(0.05)
        orchestrator.send_signal(signal.SIGKILL)
        orchestrator.wait()
        deadline = time.monotonic() + 10
        while psutil.pid_exists(chaos_pid) and psutil.Process(chaos_pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "chaos outlived its orchestrator"
            time.sleep(0.05)
        assert "rolling back" in run.chaos_log.read_text()  # SIGINT, as a Ctrl-C: rollbacks played
    finally:
        orchestrator.kill()
        orchestrator.wait()
        with contextlib.suppress(psutil.Error):
            psutil.Process(chaos_pid).kill()
