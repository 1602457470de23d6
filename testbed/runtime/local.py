"""The local target: the stack as processes on this machine, owned by a detached supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

from sample_shop.topology import StackDescriptor, default_state_dir, port_offset
from testbed.runtime.base import (
    InputError,
    ProcessInfo,
    ProgressCallback,
    RuntimeFailure,
    StackStatus,
    StartupProgress,
    UpOptions,
    UpRequest,
)
from testbed.runtime.extras import EXTRA_NAMES, find_extras
from testbed.runtime.files import log_tail
from testbed.runtime.forkserver import command_of
from testbed.runtime.layout import PortPlan, StateLayout
from testbed.runtime.options import format_replicas, make_options
from testbed.runtime.ports import busy_ports_message, listening
from testbed.runtime.probes import Probe, probe_http

SUPERVISOR_MODULE = "testbed.runtime.supervisor"
STOP_TIMEOUT_S = 20.0  # the supervisor's own grace (5 s per group) plus margin
PORT_RELEASE_TIMEOUT_S = 5.0
UP_LOCK_MARGIN_S = 10.0  # a second `up` waits for the first one's whole start and cleanup, plus this


def same_stack(a: UpOptions, b: UpOptions) -> bool:
    """Two `up` requests describe the same stack (the timeout is not part of it)."""
    return (a.replicas, a.resilience, a.telemetry, a.extras, a.otlp_endpoint, a.trace_files) == (
        b.replicas,
        b.resilience,
        b.telemetry,
        b.extras,
        b.otlp_endpoint,
        b.trace_files,
    )


def _alive(pid: int) -> bool:
    """True while pid runs (a zombie is dead; reap it when it is our child)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class LocalTarget:
    name = "local"
    down_note: str | None = None  # `down` stops every process of the stack

    def __init__(
        self, state_dir: Path | None = None, offset: int | None = None, exit_with_pid: int | None = None
    ) -> None:
        self.layout = StateLayout((state_dir or default_state_dir()).resolve())
        self.ports = PortPlan(port_offset() if offset is None else offset)
        self.exit_with_pid = exit_with_pid  # tests: the stack stops when the test process dies

    # ---- inspection ------------------------------------------------------------------------------

    def supervisor_pid(self) -> int | None:
        """The pid of this state folder's supervisor when it runs (stale pid files are ignored)."""
        try:
            pid = int(self.layout.supervisor_pid.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid):
            return None
        try:
            cmdline = psutil.Process(pid).cmdline()
        except psutil.Error:
            return None
        if SUPERVISOR_MODULE not in cmdline or str(self.layout.root) not in cmdline:
            return None  # the pid was reused by something else
        return pid

    def is_up(self) -> bool:
        return self.supervisor_pid() is not None and self.layout.stack_file.exists()

    def running_options(self) -> UpOptions | None:
        try:
            data = json.loads(self.layout.options_file.read_text())
            return UpOptions(**data)
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def descriptor(self) -> StackDescriptor:
        if not self.is_up():
            raise RuntimeFailure(
                f"no stack is running in {self.layout.root}",
                hint="start one with `testbed up` (or `make up`)",
            )
        return StackDescriptor.load(self.layout.root)

    def startup_progress(self) -> StartupProgress | None:
        try:
            return StartupProgress.from_dict(json.loads(self.layout.startup_file.read_text()))
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def check_up_request(self, request: UpRequest) -> None:
        """Every `up` option works here (the supervisor honours them all)."""

    def running_stack(self, request: UpRequest) -> StackDescriptor | None:
        """`up` on a running stack: nothing to do, unless the user explicitly asked for something else."""
        if not self.is_up():
            return None
        running = self.running_options()
        if running is not None:
            wanted = make_options(
                request.replicas,
                request.resilience or running.resilience,
                request.telemetry or running.telemetry,
            )
            differences = []
            if request.replicas is not None and wanted.replicas != running.replicas:
                differences.append(f"replicas {format_replicas(running.replicas) or 'one each'}")
            if wanted.resilience != running.resilience:
                differences.append(f"resilience {running.resilience}")
            if wanted.telemetry != running.telemetry:
                differences.append(f"telemetry {running.telemetry}")
            asked_otlp = request.otlp_endpoint
            if asked_otlp is not None and asked_otlp.rstrip("/") != running.otlp_endpoint:
                differences.append(f"OTLP endpoint {running.otlp_endpoint or 'none'}")
            if differences:  # a bad request, not a stack that could not come up: exit 2
                raise InputError(
                    f"a stack is already up in {self.layout.root} with other options "
                    f"({', '.join(differences)}); run `testbed down` first to change them"
                )
        return self.descriptor()

    def startup_notes(self) -> list[str]:
        try:
            return list(json.loads(self.layout.startup_file.read_text()).get("notes", []))
        except (FileNotFoundError, ValueError):
            return []

    # ---- up --------------------------------------------------------------------------------------

    def up(self, options: UpOptions, progress: ProgressCallback | None = None) -> StackDescriptor:
        """Start the stack and return when it is ready; leaves nothing running when it fails. One `up` at a
        time per state folder: a second one waits for the first (the up lock) and then finds its stack.
        A stack that is up with other options, or one still starting without an `up` waiting for it, is a
        bad request (InputError, exit 2)."""
        self.layout.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._up_lock(options.timeout_s + STOP_TIMEOUT_S + UP_LOCK_MARGIN_S):
            return self._up_locked(options, progress)

    @contextlib.contextmanager
    def _up_lock(self, timeout_s: float) -> Iterator[None]:
        """flock(2) on <state>/up.lock: the kernel releases it when its holder exits, however it exits."""
        with open(self.layout.up_lock, "a+") as handle:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        handle.seek(0)
                        holder = handle.read().strip() or "?"
                        raise InputError(
                            f"another `testbed up` (pid {holder}) is still starting the stack in "
                            f"{self.layout.root} after {timeout_s:g} s; wait for it, or stop it and run "
                            "`testbed down`"
                        ) from None
                    time.sleep(0.2)
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _up_locked(self, options: UpOptions, progress: ProgressCallback | None) -> StackDescriptor:
        if self.supervisor_pid() is not None:
            running = self.running_options()
            if running is not None and not same_stack(running, options) and self.layout.stack_file.exists():
                raise InputError(
                    f"a stack is already up in {self.layout.root} with other options "
                    f"(replicas {format_replicas(running.replicas) or 'one each'}, "
                    f"resilience {running.resilience}, telemetry {running.telemetry}); "
                    "run `testbed down` first to change them"
                )
            if self.layout.stack_file.exists():
                return StackDescriptor.load(self.layout.root)
            raise InputError(
                f"a stack in {self.layout.root} is still starting (supervisor pid {self.supervisor_pid()}) "
                "with no `testbed up` waiting for it; wait for it, or run `testbed down`"
            )
        self._clean_stale_files()
        self._preflight(options)
        self.layout.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        popen = self._spawn_supervisor(options)
        try:
            return self._wait_ready(popen, options, progress)
        except BaseException:  # KeyboardInterrupt included: never leave half a stack behind
            self._stop_supervisor(popen.pid)
            raise

    def _preflight(self, options: UpOptions) -> None:
        if shutil.which("prometheus") is None:
            raise RuntimeFailure(
                "Prometheus is not installed (no `prometheus` on PATH)",
                hint="run `make setup` (installs the system package), or put Prometheus >= 2.40 on PATH",
            )
        extras = tuple(find_extras()) if options.extras else ()
        busy = listening(self.ports.stack_ports(options.replicas, extras))
        if busy:
            raise RuntimeFailure(
                busy_ports_message(busy),
                hint="stop that process (`testbed down` if it is another stack), "
                "or move this stack with TESTBED_PORT_OFFSET=N",
            )

    def _spawn_supervisor(self, options: UpOptions) -> subprocess.Popen[bytes]:
        command = [
            sys.executable,
            "-m",
            SUPERVISOR_MODULE,
            "--state-dir",
            str(self.layout.root),
            "--port-offset",
            str(self.ports.offset),
            "--resilience",
            options.resilience,
            "--telemetry",
            options.telemetry,
            "--timeout",
            str(options.timeout_s),
        ]
        if replicas := format_replicas(options.replicas):
            command += ["--replicas", replicas]
        if not options.extras:
            command.append("--no-extras")
        if options.otlp_endpoint:
            command += ["--otlp-endpoint", options.otlp_endpoint]
        if not options.trace_files:
            command.append("--no-trace-files")
        if self.exit_with_pid:
            command += ["--exit-with-pid", str(self.exit_with_pid)]
        with self.layout.supervisor_log.open("ab") as log_file:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # detached: outlives this command and its terminal's Ctrl-C
                close_fds=True,
            )

    def _wait_ready(
        self, popen: subprocess.Popen[bytes], options: UpOptions, progress: ProgressCallback | None
    ) -> StackDescriptor:
        # the supervisor gives up after options.timeout_s and then needs time to stop what it started
        deadline = time.monotonic() + options.timeout_s + STOP_TIMEOUT_S
        last: StartupProgress | None = None
        while True:
            state = self.startup_progress()
            if state is not None and state.state == "ready" and self.layout.stack_file.exists():
                if progress:
                    progress(state)
                return StackDescriptor.load(self.layout.root)
            failed = state is not None and state.state == "failed"
            if popen.poll() is not None or (failed and time.monotonic() > deadline):
                self._stop_supervisor(popen.pid)
                self._wait_ports_released(options)
                if state is not None and state.failure:
                    f = state.failure
                    raise RuntimeFailure(
                        f["error"],
                        hint=f.get("hint", ""),
                        log_tail=f.get("log_tail", ""),
                        log_path=f.get("log", ""),
                    )
                raise RuntimeFailure(
                    f"the supervisor exited with code {popen.returncode} before the stack was ready",
                    hint=f"see {self.layout.supervisor_log}",
                    log_tail=log_tail(self.layout.supervisor_log),
                    log_path=str(self.layout.supervisor_log),
                )
            if progress and state is not None and state != last and not failed:
                progress(state)
                last = state
            if time.monotonic() > deadline and not failed:
                raise RuntimeFailure(
                    f"the supervisor did not report ready within {options.timeout_s + STOP_TIMEOUT_S:g} s",
                    hint=f"see {self.layout.supervisor_log}",
                    log_tail=log_tail(self.layout.supervisor_log),
                    log_path=str(self.layout.supervisor_log),
                )
            time.sleep(0.1)

    def _wait_ports_released(self, options: UpOptions | None) -> dict[int, str]:
        replicas = (options or self.running_options() or UpOptions()).replicas
        ports = self.ports.stack_ports(replicas, EXTRA_NAMES)
        deadline = time.monotonic() + PORT_RELEASE_TIMEOUT_S
        busy = listening(ports)
        while busy and time.monotonic() < deadline:
            time.sleep(0.1)
            busy = listening(busy)
        return busy

    # ---- down ------------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop the supervisor (which stops its children) and verify nothing of the stack remains."""
        options = self.running_options()
        stopped: list[str] = []
        pid = self.supervisor_pid()
        if pid is not None:
            try:
                tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
                stopped = [f"{' '.join(command_of(p)[1:4])} (pid {p.pid})" for p in tree]
            except psutil.Error:
                tree = []
            self._stop_supervisor(pid)
            leftovers = [p for p in tree if _alive(p.pid)]
            for p in leftovers:  # should not happen (PDEATHSIG); never leave one behind
                with contextlib.suppress(psutil.Error):
                    p.kill()
        busy = self._wait_ports_released(options)
        self._clean_stale_files()
        if busy:
            raise RuntimeFailure(
                "after stopping the stack, " + busy_ports_message(busy),
                hint="that process is not part of this stack's state folder; stop it by its pid",
            )
        return stopped

    def _stop_supervisor(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # its children die with it (PR_SET_PDEATHSIG)
            while _alive(pid):
                time.sleep(0.01)

    def _clean_stale_files(self) -> None:
        for path in (self.layout.stack_file, self.layout.supervisor_pid):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # ---- status ----------------------------------------------------------------------------------

    def status(self) -> StackStatus:
        pid = self.supervisor_pid()
        root = str(self.layout.root)
        if pid is None:
            stale = self.layout.stack_file.exists() or self.layout.supervisor_pid.exists()
            message = f"no stack is running in {root}"
            if stale:
                message += " (stale state from a supervisor that died; `testbed down` cleans it up)"
            return StackStatus(False, "local", root, message=message)
        if not self.layout.stack_file.exists():
            return StackStatus(True, "local", root, message=f"the stack is starting (supervisor pid {pid})")
        descriptor = StackDescriptor.load(self.layout.root)
        try:
            listing = self._control("GET", "/processes", descriptor)
        except RuntimeFailure as failure:
            return StackStatus(
                True, "local", root, message=f"supervisor pid {pid} is not answering: {failure}"
            )
        processes = asyncio.run(self._probe_all(listing))
        for info in processes:
            info.rss_mb, info.pss_mb = process_memory_mb(info.pid)
        try:
            functions = self._control("GET", "/functions", descriptor).get("functions", [])
        except RuntimeFailure:  # a supervisor from before functions: no such route
            functions = []
        return StackStatus(
            True, "local", root, processes, message=f"supervisor pid {pid}", functions=functions
        )

    async def _probe_all(self, listing: dict[str, Any]) -> list[ProcessInfo]:
        infos: list[ProcessInfo] = []
        async with httpx.AsyncClient(timeout=1.0) as client:
            replicas = listing.get("processes", [])
            probes = await asyncio.gather(*(probe_http(client, f"{r['url']}/readyz") for r in replicas))
            for r, probe in zip(replicas, probes, strict=True):
                health = "paused" if r["state"] == "paused" else probe.detail
                infos.append(
                    ProcessInfo(
                        r["service"],
                        r["replica"],
                        r["pid"],
                        r["port"],
                        r["url"],
                        r["state"],
                        health,
                        probe.ok and r["state"] == "running",
                        r["restarts"],
                        str(self.layout.replica_log(r["service"], r["replica"])),
                    )
                )
            others = listing.get("others", [])
            probes = await asyncio.gather(*(self._probe_other(client, o) for o in others))
            for o, probe in zip(others, probes, strict=True):
                o.update(health=probe.detail, healthy=probe.ok)
                infos.append(ProcessInfo(**o))
        return infos

    @staticmethod
    async def _probe_other(client: httpx.AsyncClient, other: dict[str, Any]) -> Probe:
        """A process without an HTTP health URL (the SMTP server) is as healthy as its state says."""
        if other.get("health_url"):
            return await probe_http(client, other["health_url"])
        return Probe(other["state"] == "running", other["state"])

    # ---- process faults (through the control API) ------------------------------------------------

    def _control(
        self,
        method: str,
        path: str,
        descriptor: StackDescriptor | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        descriptor = descriptor or self.descriptor()
        try:
            response = httpx.request(
                method,
                f"{descriptor.control_url}{path}",
                json=body,
                headers={"Authorization": f"Bearer {descriptor.token()}"},
                timeout=10.0,
            )
        except httpx.HTTPError as exc:
            raise RuntimeFailure(
                f"the control API at {descriptor.control_url} is unreachable: {exc}"
            ) from exc
        if response.status_code >= 400:
            try:
                errors = "; ".join(e["message"] for e in response.json()["errors"])
            except (ValueError, KeyError, TypeError):
                errors = response.text[:300]
            raise RuntimeFailure(f"control API {method} {path}: {response.status_code} {errors}")
        answer: dict[str, Any] = response.json()
        return answer

    def _fault(self, service: str, replica: int, body: dict[str, Any]) -> dict[str, Any]:
        return self._control("POST", f"/faults/{service}?replica={replica}", body=body)

    def kill(self, service: str, replica: int) -> dict[str, Any]:
        return self._fault(service, replica, {"kind": "kill"})

    def pause(self, service: str, replica: int, seconds: float) -> dict[str, Any]:
        return self._fault(service, replica, {"kind": "pause", "ttl_s": seconds})

    def restart(self, service: str, replica: int) -> dict[str, Any]:
        return self._fault(service, replica, {"kind": "restart"})


def process_memory_mb(pid: int | None) -> tuple[float | None, float | None]:
    """(RSS, PSS) of a process in MB (10^6 bytes); (None, None) when it is gone or not readable."""
    if pid is None:
        return None, None
    try:
        info = psutil.Process(pid).memory_full_info()
    except psutil.Error:
        return None, None
    pss = getattr(info, "pss", None)  # Linux only
    return round(info.rss / 1e6, 1), None if pss is None else round(pss / 1e6, 1)
