"""The supervisor's process table: starts every process of the stack, restarts crashed ones with backoff,
and carries out process faults (kill, pause with a supervisor-owned resume, restart).

Threading rule: every process is spawned from the event loop's thread. Children are bound to the
supervisor with PR_SET_PDEATHSIG, which fires when the *thread* that forked them ends, so spawning from a
short-lived worker thread would kill the child with that thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import httpx
import psutil

from sample_shop.faultd.processes import ReplicaListener, ReplicaProcess
from sample_shop.kit.control import ControlError
from testbed.runtime.backoff import RestartPolicy
from testbed.runtime.files import file_size
from testbed.runtime.forkserver import ForkServer, ForkServerError, module_of
from testbed.runtime.lifetime import bind_to_parent

log = logging.getLogger("testbed.supervisor")

MAX_PAUSE_S = 600.0


class ProcessError(ControlError):
    """A process operation that cannot be done; `status` is the HTTP status the control API answers (with
    the field `replica`)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(status, "replica", message)


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """preexec_fn: the child gets SIGKILL when the supervisor dies, so no replica outlives it (Linux)."""

    def preexec() -> None:
        bind_to_parent(parent_pid)

    return preexec


async def _until_stopped(pid: int, timeout_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    with contextlib.suppress(psutil.Error):
        while psutil.Process(pid).status() != psutil.STATUS_STOPPED and time.monotonic() < deadline:
            await asyncio.sleep(0.002)


class Child(Protocol):
    """A started process: a subprocess.Popen, or a replica forked by the fork-server (forkserver.py)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


@dataclass
class ProcessSpec:
    name: str  # "catalog-1", "prometheus", "loki"
    command: list[str]
    env: dict[str, str]
    log_path: Path
    port: int
    health_url: str | None = None  # polled after each start; "running" once it answers 200
    service: str | None = None  # set for shop replicas
    replica: int | None = None
    admin_port: int | None = None


@dataclass
class ManagedProcess:
    spec: ProcessSpec
    popen: Child | None = None
    state: str = "stopped"
    restarts: int = 0
    consecutive_crashes: int = 0
    started_at: float | None = None
    restart_at: float | None = None
    paused_until: float | None = None
    exit_code: int | None = None
    log_file: IO[bytes] | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    resume_task: asyncio.Task[None] | None = None
    log_offset: int = 0  # where this stack's output starts in the (appended) log file

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None and self.popen.poll() is None else None

    def snapshot(self) -> ReplicaProcess:
        spec = self.spec
        return ReplicaProcess(
            service=spec.service or spec.name,
            replica=spec.replica if spec.replica is not None else 0,
            port=spec.port,
            admin_port=spec.admin_port or 0,
            url=f"http://127.0.0.1:{spec.port}",
            admin_url=f"http://127.0.0.1:{spec.admin_port}" if spec.admin_port else "",
            pid=self.pid,
            state=self.state,
            restarts=self.restarts,
            started_at=self.started_at,
            paused_until=self.paused_until,
            exit_code=self.exit_code,
        )


class ProcessTable:
    """Implements `sample_shop.faultd.processes.ProcessControl` for the local supervisor."""

    def __init__(
        self,
        policy: RestartPolicy | None = None,
        stop_grace_s: float = 5.0,
        forkserver: ForkServer | None = None,
    ) -> None:
        self.policy = policy or RestartPolicy()
        self.forkserver = forkserver  # set: shop replicas are forked from it instead of executed
        self.stop_grace_s = stop_grace_s
        self._processes: dict[str, ManagedProcess] = {}
        self._ready_listeners: list[ReplicaListener] = []
        self._stopping = False
        self._http = httpx.AsyncClient(timeout=0.5)

    # ---- discovery -------------------------------------------------------------------------------

    def add(self, spec: ProcessSpec) -> ManagedProcess:
        if spec.name in self._processes:
            raise ValueError(f"duplicate process name {spec.name}")
        managed = ManagedProcess(spec)
        self._processes[spec.name] = managed
        return managed

    def all(self) -> list[ManagedProcess]:
        return list(self._processes.values())

    def get(self, name: str) -> ManagedProcess:
        return self._processes[name]

    def replicas(self, service: str | None = None) -> list[ReplicaProcess]:
        return [
            m.snapshot()
            for m in self._processes.values()
            if m.spec.service is not None and (service is None or m.spec.service == service)
        ]

    def add_ready_listener(self, listener: ReplicaListener) -> None:
        self._ready_listeners.append(listener)

    def _replica(self, service: str, replica: int) -> ManagedProcess:
        matches = [m for m in self._processes.values() if m.spec.service == service]
        if not matches:
            services = sorted({m.spec.service for m in self._processes.values() if m.spec.service})
            raise ProcessError(f"unknown service {service!r}; running services: {', '.join(services)}", 404)
        for m in matches:
            if m.spec.replica == replica:
                return m
        raise ProcessError(
            f"{service} has no replica {replica}; it runs replicas 0 to {len(matches) - 1}", 404
        )

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self, managed: ManagedProcess) -> None:
        spec = managed.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        if managed.log_file is None or managed.log_file.closed:
            managed.log_offset = file_size(spec.log_path)
            managed.log_file = open(spec.log_path, "ab")  # noqa: SIM115 - kept open for the child's life
        argv = module_of(spec.command)
        forked: Child | None = None
        if self.forkserver is not None and argv is not None:
            try:
                forked = self.forkserver.spawn(argv, spec.env, spec.log_path)
            except ForkServerError as exc:  # the replica still starts, the old way
                log.warning("%s; starting %s as its own process instead", exc, spec.name)
        if forked is not None:
            managed.popen = forked
        else:
            managed.popen = subprocess.Popen(
                spec.command,
                env=spec.env,
                stdin=subprocess.DEVNULL,
                stdout=managed.log_file,
                stderr=subprocess.STDOUT,
                close_fds=True,
                preexec_fn=die_with_parent(os.getpid()),
            )
        managed.started_at = time.time()
        managed.restart_at = None
        managed.exit_code = None
        managed.paused_until = None
        managed.state = "starting" if spec.health_url else "running"
        log.info("started %s pid %s", spec.name, managed.popen.pid)
        if spec.health_url:
            self._spawn_task(managed, self._watch_health(managed, managed.popen))

    def start_all(self) -> None:
        for managed in self._processes.values():
            if managed.popen is None:
                self.start(managed)

    def _spawn_task(self, managed: ManagedProcess, coro: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        managed.tasks.add(task)
        task.add_done_callback(managed.tasks.discard)
        return task

    async def _watch_health(self, managed: ManagedProcess, popen: Child) -> None:
        """Mark the process running once its health URL answers 200, then tell the listeners."""
        assert managed.spec.health_url
        while popen.poll() is None and managed.popen is popen and not self._stopping:
            if managed.state == "starting":
                try:
                    response = await self._http.get(managed.spec.health_url)
                    if response.status_code == 200:
                        managed.state = "running"
                        await self._notify_ready(managed)
                        return
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.2)

    async def _notify_ready(self, managed: ManagedProcess) -> None:
        if managed.spec.service is None:
            return
        snapshot = managed.snapshot()
        for listener in self._ready_listeners:
            try:
                result = listener(snapshot)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a listener's bug must not stop the supervisor
                log.exception("ready listener failed for %s", managed.spec.name)

    async def monitor(self, interval_s: float = 0.1) -> None:
        """Forever: notice exits, schedule restarts with backoff, restart when due."""
        while not self._stopping:
            now = time.time()
            for managed in self._processes.values():
                self._check(managed, now)
            await asyncio.sleep(interval_s)

    def _check(self, managed: ManagedProcess, now: float) -> None:
        if managed.state in ("stopping", "stopped", "failed"):
            return
        if managed.popen is not None and managed.state != "backoff":
            code = managed.popen.poll()
            if code is not None:
                self._record_exit(managed, code, now)
        if managed.state == "backoff" and managed.restart_at is not None and now >= managed.restart_at:
            managed.restarts += 1
            log.info("restarting %s (restart %d)", managed.spec.name, managed.restarts)
            self.start(managed)

    def _record_exit(self, managed: ManagedProcess, code: int, now: float) -> None:
        ran_for = now - (managed.started_at or now)
        managed.consecutive_crashes = self.policy.crashes_after(managed.consecutive_crashes, ran_for)
        delay = self.policy.delay(managed.consecutive_crashes)
        managed.exit_code = code
        managed.state = "backoff"
        managed.restart_at = now + delay
        managed.paused_until = None
        if managed.resume_task is not None:
            managed.resume_task.cancel()
            managed.resume_task = None
        log.warning(
            "%s exited with code %s after %.1f s; restart in %.1f s (crash %d in a row)",
            managed.spec.name,
            code,
            ran_for,
            delay,
            managed.consecutive_crashes,
        )

    # ---- process faults --------------------------------------------------------------------------

    def _require_alive(self, managed: ManagedProcess, action: str) -> Child:
        popen = managed.popen
        if popen is None or popen.poll() is not None or managed.state in ("backoff", "stopping", "stopped"):
            raise ProcessError(
                f"cannot {action} {managed.spec.name}: it is not running (state {managed.state}); "
                "wait for its restart and try again"
            )
        return popen

    async def kill(self, service: str, replica: int) -> ReplicaProcess:
        """SIGKILL; the monitor restarts it with backoff like any crash."""
        managed = self._replica(service, replica)
        popen = self._require_alive(managed, "kill")
        popen.send_signal(signal.SIGKILL)
        while (code := popen.poll()) is None:  # SIGKILL is immediate; this is the reap
            await asyncio.sleep(0.005)
        self._record_exit(managed, code, time.time())
        return managed.snapshot()

    async def pause(self, service: str, replica: int, seconds: float) -> ReplicaProcess:
        """SIGSTOP now, SIGCONT from the supervisor after `seconds`: a pause never outlives its TTL."""
        if not 0 < seconds <= MAX_PAUSE_S:
            raise ProcessError(f"pause seconds must be in (0, {MAX_PAUSE_S:g}], got {seconds:g}", 422)
        managed = self._replica(service, replica)
        popen = self._require_alive(managed, "pause")
        if managed.state == "paused":
            raise ProcessError(
                f"{managed.spec.name} is already paused until {managed.paused_until:.0f} (unix time); "
                "clear the fault first"
            )
        popen.send_signal(signal.SIGSTOP)
        await _until_stopped(popen.pid)  # delivery is asynchronous; the fault starts when it is stopped
        managed.state = "paused"
        managed.paused_until = time.time() + seconds
        managed.resume_task = self._spawn_task(managed, self._resume_later(managed, popen, seconds))
        return managed.snapshot()

    async def _resume_later(self, managed: ManagedProcess, popen: Child, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._resume(managed, popen)

    def _resume(self, managed: ManagedProcess, popen: Child) -> None:
        if popen.poll() is None:
            popen.send_signal(signal.SIGCONT)
        if managed.popen is popen and managed.state == "paused":
            managed.state = "running"
            managed.paused_until = None
        managed.resume_task = None

    def resume(self, service: str, replica: int) -> ReplicaProcess:
        """End a pause early (clearing the fault)."""
        managed = self._replica(service, replica)
        if managed.state == "paused" and managed.popen is not None:
            if managed.resume_task is not None:
                managed.resume_task.cancel()
            self._resume(managed, managed.popen)
        return managed.snapshot()

    async def restart(self, service: str, replica: int) -> ReplicaProcess:
        """Graceful: SIGTERM, SIGKILL after the grace period, start again at once (no backoff)."""
        managed = self._replica(service, replica)
        popen = self._require_alive(managed, "restart")
        if managed.resume_task is not None:
            managed.resume_task.cancel()
            managed.resume_task = None
        managed.state = "stopping"  # keeps the monitor from counting this exit as a crash
        await self._terminate(popen)
        managed.restarts += 1
        managed.consecutive_crashes = 0
        self.start(managed)
        return managed.snapshot()

    async def _terminate(self, popen: Child) -> None:
        if popen.poll() is not None:
            return
        popen.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace_s
        while popen.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if popen.poll() is None:
            popen.send_signal(signal.SIGKILL)
            while popen.poll() is None:
                await asyncio.sleep(0.005)

    def paused(self) -> list[ReplicaProcess]:
        return [m.snapshot() for m in self._processes.values() if m.state == "paused"]

    # ---- shutdown --------------------------------------------------------------------------------

    async def stop_all(self) -> None:
        """SIGTERM every process (the shop first, then the rest), SIGKILL after the grace period."""
        self._stopping = True
        for managed in self._processes.values():
            for task in list(managed.tasks):
                task.cancel()
            if managed.state != "stopped":
                managed.state = "stopping"
        shop = [m for m in self._processes.values() if m.spec.service is not None]
        rest = [m for m in self._processes.values() if m.spec.service is None]
        for group in (shop, rest):
            await asyncio.gather(*(self._terminate(m.popen) for m in group if m.popen is not None))
        for managed in self._processes.values():
            managed.state = "stopped"
            if managed.log_file is not None:
                managed.log_file.close()
        if self.forkserver is not None:
            self.forkserver.stop()
        with contextlib.suppress(Exception):
            await self._http.aclose()

    def kill_all_now(self) -> None:
        """Last resort (the supervisor is failing): SIGKILL everything without waiting."""
        for managed in self._processes.values():
            if managed.popen is not None and managed.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    managed.popen.kill()
        if self.forkserver is not None and self.forkserver.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.forkserver.pid, signal.SIGKILL)
