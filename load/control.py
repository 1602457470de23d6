"""Start a load run in the background and stop it: the Python API used by `testbed load` and by the Chaos
Toolkit extension. No Locust here (it would monkey-patch the caller); the load runs in its own process,
`python -m load`, which:

- has its own time bound (profile duration + grace, then SIGALRM), so it ends even if nobody stops it;
- watches its parent: when the process that started it dies (a killed `chaos run`), it stops and
  writes its results;
- is recorded in the state folder (`<state>/load.json`: pid, process start time, out dir), so a later
  process (a rollback, `testbed load --stop`) can find and stop it.

`stop_load` sends SIGTERM, waits for summary.json, and escalates to SIGKILL only after `timeout_s`;
no orphan is left behind either way."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from load.bounds import STOP_TIMEOUT_S, hard_limit_s
from load.profiles import LoadParams, resolve_params, resolve_workers
from load.results import LOG_FILE, PROGRESS_JSONL, SUMMARY_JSON, read_summary
from load.target import check_reachable, resolve_target
from sample_shop.basics import write_json_atomic
from sample_shop.topology import default_state_dir

HANDLE_FILE = "load.json"
STDERR_FILE = "stderr.log"
READY_TIMEOUT_S = 30.0

_children: dict[int, subprocess.Popen[bytes]] = {}  # our own children, reaped on stop (no zombies)


class LoadError(RuntimeError):
    """The load run could not be started, or its results are missing."""


@dataclass(frozen=True)
class LoadHandle:
    pid: int
    create_time: float  # psutil's process start time: a recycled pid is not mistaken for the load
    out_dir: str
    host: str
    params: dict[str, Any]
    started: float  # epoch seconds
    deadline: float  # epoch seconds by which the process will have ended by itself
    parent_pid: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadHandle:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def _state(state_dir: Path | str | None) -> Path:
    return Path(state_dir) if state_dir else default_state_dir()


def handle_path(state_dir: Path | str | None = None) -> Path:
    return _state(state_dir) / HANDLE_FILE


def read_handle(state_dir: Path | str | None = None) -> LoadHandle | None:
    path = handle_path(state_dir)
    try:
        return LoadHandle.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise LoadError(f"{path} is not a load handle ({exc}); delete it if no load is running") from exc


def is_running(handle: LoadHandle) -> bool:
    """True while the load process of this handle exists (zombies of our own children are reaped)."""
    child = _children.get(handle.pid)
    if child is not None:
        return child.poll() is None
    try:
        proc = psutil.Process(handle.pid)
        return abs(proc.create_time() - handle.create_time) < 0.5 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def current_load(state_dir: Path | str | None = None) -> LoadHandle | None:
    """The running load of this state folder, if any (a stale handle file is removed)."""
    handle = read_handle(state_dir)
    if handle is not None and not is_running(handle):
        handle_path(state_dir).unlink(missing_ok=True)
        return None
    return handle


def start_load(
    profile: str,
    *,
    out_dir: Path | str,
    users: Any = None,
    duration: Any = None,
    spawn_rate: Any = None,
    think_time_factor: Any = None,
    mix: Any = None,
    host: str | None = None,
    state_dir: Path | str | None = None,
    metrics_port: int | None = None,
    allow_non_loopback: bool = False,
    ready_timeout_s: float = READY_TIMEOUT_S,
    workers: Any = None,
) -> LoadHandle:
    """Validate, start `python -m load` in the background, wait until it runs, record and return its
    handle. Raises LoadConfigError for bad parameters (nothing started), LoadError when it cannot run."""
    params = resolve_params(profile, users, duration, spawn_rate, think_time_factor, mix)
    worker_count = resolve_workers(workers)
    target = resolve_target(
        host, state_dir=state_dir, metrics_port=metrics_port, allow_non_loopback=allow_non_loopback
    )
    existing = current_load(state_dir)
    if existing is not None:
        raise LoadError(
            f"a load run is already active (pid {existing.pid}, results in {existing.out_dir}); "
            "stop it first with `testbed load --stop`"
        )
    try:
        check_reachable(target.host)
    except ConnectionError as exc:
        raise LoadError(str(exc)) from exc
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in (PROGRESS_JSONL, SUMMARY_JSON):
        (out / stale).unlink(missing_ok=True)
    argv = [
        sys.executable, "-m", "load", *_param_args(params),
        "--host", target.host, "--out", str(out), "--metrics-port", str(target.metrics_port),
        "--progress", "none", "--parent-pid", str(os.getpid()),
    ]  # fmt: skip
    if allow_non_loopback:
        argv.append("--allow-non-loopback")
    if worker_count:
        argv += ["--workers", str(worker_count)]
    with (out / STDERR_FILE).open("wb") as stderr:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # a Ctrl-C meant for the caller reaches the load as SIGTERM via stop
            cwd=Path(__file__).resolve().parent.parent,  # `-m load` must import this package
        )
    _children[child.pid] = child
    started = time.time()
    handle = LoadHandle(
        pid=child.pid,
        create_time=psutil.Process(child.pid).create_time(),
        out_dir=str(out),
        host=target.host,
        params=params.to_dict(),
        started=started,
        deadline=started + hard_limit_s(params.duration_s),
        parent_pid=os.getpid(),
    )
    try:
        _wait_started(child, out, ready_timeout_s)
    except BaseException:
        _terminate(handle, timeout_s=5.0)
        _children.pop(child.pid, None)
        raise
    write_json_atomic(handle_path(state_dir), handle.to_dict(), allow_nan=False)
    return handle


def _param_args(params: LoadParams) -> list[str]:
    return [
        "--profile", params.profile, "--users", str(params.users), "--duration", f"{params.duration_s:g}",
        "--spawn-rate", f"{params.spawn_rate:g}", "--think-time-factor", f"{params.think_time_factor:g}",
        "--mix", params.mix,
    ]  # fmt: skip


def _wait_started(child: subprocess.Popen[bytes], out: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = list(read_progress(out))
        if any(e.get("event") == "started" for e in events):
            return
        if child.poll() is not None:
            errors = [e.get("message", "") for e in events if e.get("event") == "error"]
            raise LoadError(
                f"the load process exited with code {child.returncode} before starting: "
                + ("; ".join(errors) or _tail(out / STDERR_FILE) or "no message")
            )
        time.sleep(0.1)
    raise LoadError(f"the load process did not start within {timeout_s:g}s; see {out / LOG_FILE}")


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def read_progress(out_dir: Path | str) -> Iterator[dict[str, Any]]:
    """Progress events written so far (an incomplete last line is skipped)."""
    path = Path(out_dir) / PROGRESS_JSONL
    try:
        text = path.read_text()
    except FileNotFoundError:
        return
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            yield json.loads(line)


def follow_progress(handle: LoadHandle, poll_s: float = 0.5) -> Iterator[dict[str, Any]]:
    """Yield progress events as the run writes them, until the process has exited."""
    path = Path(handle.out_dir) / PROGRESS_JSONL
    position = 0
    buffer = ""
    while True:
        running = is_running(handle)
        try:
            with path.open() as f:
                f.seek(position)
                buffer += f.read()
                position = f.tell()
        except FileNotFoundError:
            pass
        *complete, buffer = buffer.split("\n")
        for line in complete:
            with contextlib.suppress(ValueError):
                yield json.loads(line)
        if not running:
            return
        time.sleep(poll_s)


def wait_load(
    handle: LoadHandle, timeout_s: float | None = None, state_dir: Path | str | None = None
) -> dict[str, Any]:
    """Wait for the run to end by itself and return its summary."""
    limit = max(0.0, handle.deadline - time.time()) if timeout_s is None else timeout_s
    end = time.monotonic() + limit
    while is_running(handle) and time.monotonic() < end:
        time.sleep(0.2)
    if is_running(handle):
        raise LoadError(f"load pid {handle.pid} still running after {limit:.0f}s; stop it with stop_load")
    return _finish(handle, state_dir)


def stop_load(
    handle: LoadHandle | None = None,
    *,
    state_dir: Path | str | None = None,
    timeout_s: float = STOP_TIMEOUT_S + 25.0,
) -> dict[str, Any] | None:
    """Stop the run (this handle, or the state folder's) and return its summary. None when no load was
    running. SIGTERM first (results are written); SIGKILL after `timeout_s` (then LoadError: incomplete)."""
    handle = handle or read_handle(state_dir)
    if handle is None:
        return None
    if is_running(handle):
        _terminate(handle, timeout_s=timeout_s)
    return _finish(handle, state_dir)


def _finish(handle: LoadHandle, state_dir: Path | str | None) -> dict[str, Any]:
    child = _children.pop(handle.pid, None)
    if child is not None:
        child.wait()
    path = handle_path(state_dir)
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
        if LoadHandle.from_dict(json.loads(path.read_text())).pid == handle.pid:
            path.unlink()
    try:
        return read_summary(handle.out_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise LoadError(
            f"the load run ended without a complete summary: {exc}. See {Path(handle.out_dir) / LOG_FILE} "
            f"and {Path(handle.out_dir) / STDERR_FILE}"
        ) from exc


def _terminate(handle: LoadHandle, timeout_s: float) -> None:
    """SIGTERM, wait, SIGKILL; only ever the process of this handle (a recycled pid is left alone).
    Our own child is reaped, so no zombie stays."""
    child = _children.get(handle.pid)
    if not is_running(handle):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(handle.pid, signal.SIGTERM)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if not is_running(handle):
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(handle.pid, signal.SIGKILL)
    if child is not None:
        child.wait(timeout=10)
