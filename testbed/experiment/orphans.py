"""Runs that died: a run folder whose run.json still says `running` although every process of the run
(orchestrator, `chaos run`) is gone was killed without a chance to finish (kill -9, a crash, a reboot).
Whoever looks next (`testbed experiment list-runs`, the next `testbed experiment run`, `testbed report`)
marks it `died`, so no folder says `running` forever."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import psutil

from sample_shop.basics import utc_iso
from testbed.runfolder import RunFolderError, RunInfo, RunPaths, list_runs, read_run_info, write_run_info

DIED = "died"


def process_identity(pid: int) -> dict[str, Any]:
    """What run.json records of a process: its pid and start time (a recycled pid is not the process)."""
    return {"pid": pid, "create_time": psutil.Process(pid).create_time()}


def _alive(identity: Any) -> bool:
    try:
        process = psutil.Process(int(identity["pid"]))
        return (
            abs(process.create_time() - float(identity["create_time"])) < 1.0
            and process.status() != psutil.STATUS_ZOMBIE
        )
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def has_died(info: RunInfo) -> bool:
    """Says `running`, recorded its processes, and none of them is alive. A folder that recorded no
    process (written before run.json had them) cannot be told apart and is left as it is."""
    return info.status == "running" and bool(info.processes) and not any(map(_alive, info.processes.values()))


def settle(run: RunPaths, now: float) -> RunInfo | None:
    """Mark the run `died` in its run.json when it has; returns the new RunInfo then, else None."""
    try:
        info = read_run_info(run)
    except RunFolderError:
        return None
    if not has_died(info):
        return None
    pids = ", ".join(f"{role} pid {p.get('pid')}" for role, p in info.processes.items())
    info.status = DIED
    info.ended = info.ended or utc_iso(now)
    info.message = (
        f"the run died: its processes ({pids}) were gone at {utc_iso(now)} while run.json still said "
        "running (killed without a chance to finish); nothing was collected or judged"
    )
    write_run_info(run, info)
    return info


def settle_all(runs_dir: Path, now: float) -> list[RunInfo]:
    """settle() every run folder under runs_dir; the ones marked now."""
    marked = []
    for run in list_runs(runs_dir) if runs_dir.is_dir() else []:
        with contextlib.suppress(OSError):
            info = settle(run, now)
            if info is not None:
                marked.append(info)
    return marked
