"""The `chaos run` subprocess: its command line (pure), starting it in its own session, and stopping it so
that it still runs its rollbacks (SIGINT first, as a Ctrl-C; SIGTERM, then SIGKILL only when it hangs).
If the orchestrator dies (even by SIGKILL), the kernel sends `chaos run` a SIGINT (Linux
`prctl(PR_SET_PDEATHSIG)`), so it plays its rollbacks instead of keeping its fault and load alive."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from testbed.runfolder import RunPaths

DEFAULT_HYPOTHESIS_FREQUENCY_S = 5.0
ROLLBACK_GRACE_S = 60.0  # after SIGINT: time to finish rollbacks before SIGTERM
TERM_GRACE_S = 10.0  # after SIGTERM: before SIGKILL


PR_SET_PDEATHSIG = 1  # linux/prctl.h
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)  # loaded before any fork


def signal_when_parent_dies(parent_pid: int, signum: int = signal.SIGINT) -> None:
    """In a freshly forked child (a preexec_fn): the kernel sends `signum` when our parent dies. Only
    async-signal-safe calls here (the parent may have threads); a parent already gone gets it at once."""
    _libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died between fork and prctl
        os.kill(os.getpid(), signum)


def chaos_binary() -> str:
    """The `chaos` next to this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("chaos")
    if beside.is_file():
        return str(beside)
    found = shutil.which("chaos")
    if found is None:
        raise FileNotFoundError("the Chaos Toolkit CLI (`chaos`) is not installed; run `make setup`")
    return found


def chaos_command(
    experiment_file: Path,
    run: RunPaths,
    *,
    hypothesis_frequency_s: float = DEFAULT_HYPOTHESIS_FREQUENCY_S,
    chaos: str = "chaos",
) -> list[str]:
    """`chaos run` with rollbacks always played and the steady-state hypothesis checked continuously.
    Not --fail-fast: a deviation is a finding, and the run goes on so recovery can be measured."""
    return [
        chaos,
        "--no-version-check",
        "--no-log-file",  # its console output goes to chaos.log (one file, tracebacks included)
        "run",
        "--journal-path",
        str(run.journal_json),
        "--rollback-strategy",
        "always",
        "--hypothesis-strategy",
        "continuously",
        "--hypothesis-frequency",
        f"{hypothesis_frequency_s:g}",
        "--var-file",
        str(run.chaos_vars),
        str(experiment_file),
    ]


class ChaosProcess:
    """A running `chaos run`; its own session, so a Ctrl-C at the terminal reaches only the orchestrator,
    which forwards exactly one SIGINT."""

    def __init__(self, command: list[str], run: RunPaths, env: Mapping[str, str]) -> None:
        self.command = command
        self.interrupted_at: float | None = None
        self.terminated = False
        self.killed = False
        with run.chaos_log.open("ab") as log:
            self.popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=run.root,
                start_new_session=True,
                preexec_fn=functools.partial(signal_when_parent_dies, os.getpid()),
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def interrupt(self) -> None:
        """Like Ctrl-C: chaos marks the run interrupted and plays its rollbacks."""
        if self.poll() is None and self.interrupted_at is None:
            self.interrupted_at = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT)

    def escalate(self) -> None:
        """Called periodically after interrupt(): SIGTERM after the rollback grace, SIGKILL after that."""
        if self.poll() is not None or self.interrupted_at is None:
            return
        waited = time.monotonic() - self.interrupted_at
        if not self.terminated and waited > ROLLBACK_GRACE_S:
            self.terminate()
        elif not self.killed and waited > ROLLBACK_GRACE_S + TERM_GRACE_S:
            self.kill()

    def terminate(self) -> None:
        """SIGTERM: chaos stops at once, skipping the rollbacks it has not played yet."""
        self.terminated = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        self.killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()
        self.popen.wait()

    def stop(self, timeout_s: float = ROLLBACK_GRACE_S + TERM_GRACE_S + 5) -> int:
        """Interrupt, wait with escalation, and return the exit code (never leaves the process behind)."""
        self.interrupt()
        deadline = time.monotonic() + timeout_s
        while self.poll() is None and time.monotonic() < deadline:
            self.escalate()
            time.sleep(0.2)
        if self.poll() is None:
            self.kill()
        return int(self.popen.returncode)
