"""A run whose processes were all killed (kill -9 of the orchestrator and of `chaos run`) is marked `died`
the next time anyone looks, never left `running`: real processes (one dead, one alive), real run folders,
the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from testbed.cli import app
from testbed.experiment.orphans import settle_all
from testbed.runfolder import RunInfo, RunPaths, write_run_info

runner = CliRunner()


@pytest.fixture
def alive() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _identity(pid: int) -> dict[str, float]:
    return {"pid": pid, "create_time": psutil.Process(pid).create_time()}


def _dead() -> dict[str, float]:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = _identity(proc.pid)
    proc.wait()
    return identity


def _run(runs: Path, name: str, processes: dict[str, dict[str, float]]) -> RunPaths:
    run = RunPaths(runs / name)
    run.make_dirs()
    info = RunInfo(
        id=name,
        experiment="payment-errors",
        title="t",
        experiment_file="experiments/payment-errors.yaml",
        target="local",
        profile="steady",
        config={},
        started="2026-01-01T00:00:00.000Z",
        processes=processes,
    )
    write_run_info(run, info)
    return run


def test_list_runs_marks_a_run_whose_processes_are_gone_as_died(
    tmp_path: Path, alive: subprocess.Popen[bytes]
) -> None:
    runs = tmp_path / "runs"
    dead = _run(runs, "20260101T000000Z-payment-errors", {"orchestrator": _dead(), "chaos": _dead()})
    going = _run(
        runs, "20260101T000100Z-payment-errors", {"orchestrator": _dead(), "chaos": _identity(alive.pid)}
    )
    result = runner.invoke(app, ["experiment", "list-runs", "--runs-dir", str(runs), "--json"])
    assert result.exit_code == 0, result.output
    listed = {r["id"]: r["status"] for r in json.loads(result.output)["runs"]}
    assert listed == {dead.id: "died", going.id: "running"}
    on_disk = json.loads(dead.run_json.read_text())
    assert on_disk["status"] == "died" and "the run died" in on_disk["message"] and on_disk["ended"]
    assert json.loads(going.run_json.read_text())["status"] == "running"


def test_the_report_marks_a_dead_run_too(tmp_path: Path) -> None:
    run = _run(tmp_path / "runs", "20260101T000000Z-payment-errors", {"orchestrator": _dead()})
    runner.invoke(app, ["report", str(run.root)])
    assert json.loads(run.run_json.read_text())["status"] == "died"


def test_a_folder_that_recorded_no_process_is_left_alone(tmp_path: Path) -> None:
    run = _run(tmp_path / "runs", "20260101T000000Z-payment-errors", {})
    assert settle_all(tmp_path / "runs", 0.0) == []
    assert json.loads(run.run_json.read_text())["status"] == "running"
