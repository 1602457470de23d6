"""One experiment at a time per stack: `<state>/experiment.lock` holds the pid, the experiment and when it
started. Created with O_EXCL, so two starts cannot both win; a lock left by a process that is gone (or
whose pid now belongs to another process) is taken over."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from sample_shop.basics import utc_iso

LOCK_FILE = "experiment.lock"


class ExperimentBusy(RuntimeError):
    """Another experiment holds the lock; the message says which and how to stop it."""


@dataclass(frozen=True)
class LockOwner:
    pid: int
    experiment: str
    started: str  # ISO UTC
    started_epoch: float
    create_time: float  # psutil process start time: a recycled pid does not hold the lock
    run_dir: str = ""

    def alive(self) -> bool:
        try:
            process = psutil.Process(self.pid)
            return (
                abs(process.create_time() - self.create_time) < 1.0
                and process.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            return False


def _read(path: Path) -> LockOwner | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return LockOwner(**{k: data[k] for k in LockOwner.__dataclass_fields__ if k in data})
    except (FileNotFoundError, ValueError, TypeError):
        return None


class ExperimentLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_FILE
        self.owner: LockOwner | None = None

    def holder(self) -> LockOwner | None:
        """The live holder of the lock, if any."""
        owner = _read(self.path)
        return owner if owner is not None and owner.alive() else None

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
                if current is not None and current.alive():
                    raise ExperimentBusy(self._busy_message(current, now)) from None
                if current is None and time.time() - self._mtime() < 2.0:
                    time.sleep(0.2)  # being written right now by another start
                    continue
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(asdict(owner), f)
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

    def _busy_message(self, owner: LockOwner, now: float) -> str:
        return (
            f"another experiment is running on this stack: {owner.experiment} (pid {owner.pid}, started "
            f"{owner.started}, {now - owner.started_epoch:.0f} s ago"
            + (f", run folder {owner.run_dir}" if owner.run_dir else "")
            + f"). Only one experiment may run at a time per stack ({self.path.parent}). Wait for it to "
            f"finish, or stop it with Ctrl-C in its terminal (or `kill -INT {owner.pid}`): it rolls back."
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
