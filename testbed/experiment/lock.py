"""One experiment at a time per stack: `<state>/experiment.lock` holds the pid, the experiment and when it
started, and every other process of the run (`chaos run`, in its own session so that it survives its
orchestrator; the load it started, from `load.json`). Created with O_EXCL, so two starts cannot both win.
The lock is stale only when every process of the run is gone (a pid now belonging to another process
counts as gone): an orphaned `chaos run` with its fault and load still holds it."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import psutil

from sample_shop.basics import utc_iso, write_json_atomic

LOCK_FILE = "experiment.lock"


class ExperimentBusy(RuntimeError):
    """Another experiment holds the lock; the message says which and how to stop it."""


def _process_alive(pid: int, create_time: float) -> bool:
    try:
        process = psutil.Process(pid)
        return abs(process.create_time() - create_time) < 1.0 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@dataclass(frozen=True)
class LockMember:
    """A process of the run besides the orchestrator: role (chaos | load), pid, its start time."""

    role: str
    pid: int
    create_time: float

    def alive(self) -> bool:
        return _process_alive(self.pid, self.create_time)


@dataclass(frozen=True)
class LockOwner:
    pid: int
    experiment: str
    started: str  # ISO UTC
    started_epoch: float
    create_time: float  # psutil process start time: a recycled pid does not hold the lock
    run_dir: str = ""
    members: tuple[LockMember, ...] = ()

    def alive(self) -> bool:
        """The orchestrator itself is alive (its children may not have started yet)."""
        return _process_alive(self.pid, self.create_time)

    def pids(self) -> set[int]:
        return {self.pid, *(m.pid for m in self.members)}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "members": [asdict(m) for m in self.members]}


def _read(path: Path) -> LockOwner | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        fields = {k: data[k] for k in LockOwner.__dataclass_fields__ if k in data}
        fields["members"] = tuple(LockMember(**m) for m in data.get("members") or [])
        return LockOwner(**fields)
    except (FileNotFoundError, ValueError, TypeError, AttributeError):
        return None


def _load_member(state_dir: Path, owner: LockOwner) -> LockMember | None:
    """The load the run started (load.json, written by load.control inside `chaos run`), if it is one of
    this run's processes' children."""
    try:
        data = json.loads((state_dir / "load.json").read_text())
        member = LockMember("load", int(data["pid"]), float(data["create_time"]))
        parent = int(data.get("parent_pid", -1))
    except (FileNotFoundError, ValueError, TypeError, KeyError):
        return None
    return member if parent in owner.pids() else None


def live_processes(state_dir: Path, owner: LockOwner) -> list[tuple[str, int]]:
    """(role, pid) of every process of the lock's run that is still alive: orchestrator, chaos, load."""
    out = [("orchestrator", owner.pid)] if owner.alive() else []
    load = _load_member(state_dir, owner)
    for member in (*owner.members, *([load] if load else [])):
        if member.alive() and member.pid not in {pid for _, pid in out}:
            out.append((member.role, member.pid))
    return out


class ExperimentLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_FILE
        self.owner: LockOwner | None = None

    def holder(self) -> LockOwner | None:
        """The holder of the lock while any process of its run is alive, else None."""
        owner = _read(self.path)
        return owner if owner is not None and live_processes(self.path.parent, owner) else None

    def acquire(self, experiment: str, run_dir: str = "") -> LockOwner:
        """Take the lock or raise ExperimentBusy naming the running experiment."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = psutil.Process(os.getpid())
        now = time.time()
        owner = LockOwner(os.getpid(), experiment, utc_iso(now), now, me.create_time(), run_dir)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                current = _read(self.path)
                if current is not None and live_processes(self.path.parent, current):
                    raise ExperimentBusy(self._busy_message(current, now)) from None
                if current is None and time.time() - self._mtime() < 2.0:
                    time.sleep(0.2)  # being written right now by another start
                    continue
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(owner.to_dict(), f)
            self.owner = owner
            return owner
        current = _read(self.path)
        raise ExperimentBusy(
            self._busy_message(current, now)
            if current
            else f"cannot take {self.path}; another experiment is starting"
        )

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def add_member(self, role: str, pid: int) -> None:
        """Record another process of our run in the lock (atomically), so the lock covers it too."""
        if self.owner is None:
            raise RuntimeError("add_member before acquire")
        member = LockMember(role, pid, psutil.Process(pid).create_time())
        self.owner = replace(self.owner, members=(*self.owner.members, member))
        write_json_atomic(self.path, self.owner.to_dict())

    def set_run_dir(self, run_dir: str) -> None:
        """Name the run folder in the lock once it exists."""
        if self.owner is None:
            raise RuntimeError("set_run_dir before acquire")
        self.owner = replace(self.owner, run_dir=run_dir)
        write_json_atomic(self.path, self.owner.to_dict())

    def _busy_message(self, owner: LockOwner, now: float) -> str:
        alive = live_processes(self.path.parent, owner)
        if alive and alive[0][0] == "orchestrator":
            return (
                f"another experiment is running on this stack: {owner.experiment} (pid {owner.pid}, "
                f"started {owner.started}, {now - owner.started_epoch:.0f} s ago"
                + (f", run folder {owner.run_dir}" if owner.run_dir else "")
                + f"). Only one experiment may run at a time per stack ({self.path.parent}). Wait for it "
                f"to finish, or stop it with Ctrl-C in its terminal (or `kill -INT {owner.pid}`): it "
                "rolls back."
            )
        left = ", ".join(f"{role} pid {pid}" for role, pid in alive)
        first = alive[0][1] if alive else owner.pid
        return (
            f"an orphaned experiment is still running on this stack: {owner.experiment} (started "
            f"{owner.started}; its orchestrator, pid {owner.pid}, is gone, but {left} still run"
            + (f"; run folder {owner.run_dir}" if owner.run_dir else "")
            + f"). Its fault and load are still active. Stop it with `kill -INT {first}` (chaos plays its "
            "rollbacks), wait for it to exit, then `testbed fault clear` and start again."
        )

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        if self.owner is None:
            return
        current = _read(self.path)
        if current is not None and current.pid == self.owner.pid:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.owner = None

    def __enter__(self) -> ExperimentLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
