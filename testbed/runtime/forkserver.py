"""A fork-server for the local stack's Python processes (on by default; `TESTBED_FORK_SERVER=off` executes
each process on its own, as before).

About 90 % of a service process is the import-time heap of its libraries (FastAPI and pydantic, uvicorn,
SQLAlchemy, aiohttp, OpenTelemetry, prometheus_client). With the fork-server the supervisor imports them
once, before it starts its own control API (which needs FastAPI and uvicorn too), freezes the garbage
collector's view of them (`gc.freeze()`: collections never scan, so never write to and copy, those pages),
and forks the server; the server forks each replica, the SMTP server and the alert receiver. All of them
share those pages copy-on-write. PSS (each shared page split between its users) is the honest figure for
it; `make bench` measures it beside RSS with and without the fork-server (docs/runtime.md).

What each child re-initialises after the fork: nothing was started before it, by design. Before the fork
the supervisor only imports modules: it has started no thread (`ForkServer.start` refuses otherwise), and
the imports open no database or socket, create no OpenTelemetry provider or exporter and read no shop
configuration, so a child builds all of these itself, from its own environment, exactly as a freshly
executed `python -m sample_shop.<service>` does. Python reseeds `random` in a forked child itself
(os.register_at_fork); uuid4 and secrets read os.urandom. A child's title (`ps`, /proc/PID/cmdline) is
the command it stands for (setproctitle).

The protocol is JSON lines over two pipes, the server's stdin (requests) and stdout (answers and exit
reports):

    -> {"id": 1, "argv": ["sample_shop.catalog"], "env": {...}, "log": "/path/catalog-0.log"}
    <- {"id": 1, "pid": 4242}                    or {"id": 1, "error": "..."}
    <- {"exit": 4242, "code": -9}                 (a child ended; negative: killed by that signal)

Process faults and restarts stay the supervisor's (processes.py): it signals a child by its pid, and reads
its end from the exit reports (`ForkedChild` offers the part of `subprocess.Popen` the process table
uses). Lifetimes chain: each child has PR_SET_PDEATHSIG towards the server, the server towards the
supervisor, so no replica outlives either. If the server cannot start or dies, replicas are executed as
before (processes.py says so in the log).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import psutil

from testbed.runtime.lifetime import bind_to_parent, set_thread_name

ENV_SWITCH = "TESTBED_FORK_SERVER"  # "on" (default) or "off"
# What the services import at start (sample_shop/kit and the services): the heavy part of every process.
PRELOAD: tuple[str, ...] = (
    "asyncio",
    "json",
    "sqlite3",
    "uvloop",
    "httptools",
    "uvicorn",
    "uvicorn.config",
    "uvicorn.server",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.lifespan.on",
    "fastapi",
    "fastapi.responses",
    "pydantic",
    "starlette.middleware",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.ext.asyncio",
    "aiohttp",
    "jwt",
    "prometheus_client",
    "opentelemetry.trace",
    "opentelemetry.sdk.trace",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk.resources",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "argon2",
    # the shop's own modules: none reads its configuration or registers a metric at import (config is
    # read by kit/config.py when a service starts, metrics are made per service by kit/metrics.py)
    "sample_shop.kit.app",
    "sample_shop.kit.db",
    "sample_shop.kit.http_client",
    "sample_shop.kit.telemetry",
    "sample_shop.gateway.app",
    "sample_shop.users.app",
    "sample_shop.catalog.app",
    "sample_shop.cart.app",
    "sample_shop.orders.app",
    "sample_shop.payment.app",
    "sample_shop.recommendations.app",
    "sample_shop.notifications.mailserver",
    "aiosmtpd.controller",
    # the supervisor's own, imported here so that its pages are shared too (its control API)
    "sample_shop.faultd.api",
    "sample_shop.faultd.controller",
    "testbed.runtime.process_routes",
    "testbed.runtime.alertsink",
    "slo.rules",
)
SPAWN_TIMEOUT_S = 10.0


def enabled(env: dict[str, str] | os._Environ[str]) -> bool:
    """Whether the supervisor forks the replicas (TESTBED_FORK_SERVER, on unless "off"); a bad value is an
    input error."""
    value = env.get(ENV_SWITCH, "on").strip().lower()
    if value not in ("on", "off"):
        raise ValueError(f"{ENV_SWITCH}={value!r} is not valid; use on or off")
    return value == "on"


def module_of(command: list[str]) -> list[str] | None:
    """`[python, -m, module, *args]` -> [module, *args]: the only command shape the fork-server runs (the
    shop's replicas, the SMTP server, the alert receiver); None for anything else (Prometheus, ...)."""
    if len(command) >= 3 and command[0] == sys.executable and command[1] == "-m":
        return command[2:]
    return None


# ---- the server (a fork of the supervisor) ------------------------------------------------------------


def preload() -> list[str]:
    """Import PRELOAD into this process (the supervisor, before it forks the server); a module missing
    here is imported by the child that needs it. Returns what was imported."""
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    return sorted(n for n in PRELOAD if n in sys.modules)


def set_title(argv: list[str], short: str) -> None:
    """What `ps` and /proc/PID/cmdline show for this fork: the command it stands for, so a forked replica
    reads like an executed one (setproctitle); and `short`, what `top` shows (15 bytes)."""
    with contextlib.suppress(ImportError):
        import setproctitle

        setproctitle.setproctitle(" ".join(argv))
    set_thread_name(short)


def command_of(process: psutil.Process) -> list[str]:
    """A process's command line as a list, also for a titled fork: setproctitle writes the title as one
    string, padded with empty ones (what psutil reads from /proc/PID/cmdline)."""
    parts = process.cmdline()
    if len(parts) > 1 and not any(parts[1:]):
        return parts[0].split(" ")
    return parts


def _run_child(argv: list[str], env: dict[str, str], log_path: str, server_pid: int) -> None:
    """In the forked child: become `python -m argv[0] argv[1:]` with `env`, output to `log_path`. Never
    returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)  # the server's self-pipe: its number is about to be reused
        bind_to_parent(server_pid)
        # the dispositions a freshly executed Python starts with: SIGPIPE and SIGXFSZ ignored (a write to a
        # closed socket is an EPIPE error, not death: a client that gave up on a paused replica would kill
        # it on its resume otherwise), SIGINT as KeyboardInterrupt, the rest default
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.closerange(3, 65536)  # the server's pipes and the selector are not the child's
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own standard streams
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        os.environ.clear()
        os.environ.update(env)
        # The garbage collector stays as it is: the heap frozen before the fork is never scanned (a scan
        # writes every object's header, which copies every shared page: +33 MB a child, measured), and
        # what the child allocates is collected as usual. gc.unfreeze() here would undo the sharing.
        module = argv[0]
        set_title([sys.executable, "-m", *argv], module.rsplit(".", 1)[-1])
        sys.argv = [module, *argv[1:]]
        import runpy

        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:  # a child's crash is reported like a process's: traceback, exit 1
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _exit_code(status: int) -> int:
    """waitpid status -> Popen's returncode convention (negative signal number for a signal death)."""
    return os.waitstatus_to_exitcode(status)


def serve(parent_pid: int, preloaded: list[str], requests: int = 0, answers: int = 1) -> int:
    """The server's loop, in the fork of the supervisor: report ready, fork on request (a line on the
    `requests` fd), report every child's end (lines on the `answers` fd)."""
    bind_to_parent(parent_pid)
    signal.set_wakeup_fd(-1)  # the supervisor's event loop's, inherited
    rfd, wfd = os.pipe()  # the SIGCHLD self-pipe: the handler writes, the loop reaps
    os.set_blocking(wfd, False)
    os.set_blocking(rfd, False)
    signal.set_wakeup_fd(wfd)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # the supervisor's handlers are not ours
        signal.signal(sig, signal.SIG_DFL)
    me = os.getpid()

    def send(message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(answers, data) :]

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            send({"exit": pid, "code": _exit_code(status)})

    send({"ready": True, "pid": me, "preloaded": preloaded})
    selector = selectors.DefaultSelector()
    selector.register(requests, selectors.EVENT_READ, "request")
    selector.register(rfd, selectors.EVENT_READ, "child")
    buffer = b""
    while True:
        for key, _ in selector.select():
            if key.data == "child":
                with contextlib.suppress(BlockingIOError):
                    os.read(rfd, 4096)
                reap()
                continue
            chunk = os.read(requests, 65536)
            if not chunk:  # the supervisor closed the request pipe: stop; the children follow (PDEATHSIG)
                return 0
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                try:
                    pid = os.fork()
                except OSError as exc:
                    send({"id": request["id"], "error": f"fork failed: {exc}"})
                    continue
                if pid == 0:
                    selector.close()
                    _run_child(request["argv"], request["env"], request["log"], me)
                send({"id": request["id"], "pid": pid})
        reap()


# ---- the supervisor's side -----------------------------------------------------------------------------


class ForkServerError(RuntimeError):
    """The fork-server did not start or did not fork: the supervisor falls back to exec (and says so)."""


class ForkedChild:
    """A replica forked by the server: the part of subprocess.Popen that processes.py uses (pid, poll,
    returncode, send_signal, kill). Its end comes from the server's exit report; if the server itself is
    gone, the child is too (PR_SET_PDEATHSIG), and it reads as killed."""

    def __init__(self, pid: int, server: ForkServer) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._server = server

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server.exit_code(self.pid)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _ServerProcess:
    """The fork-server as the supervisor sees it: its own child (forked, not executed), reaped by pid."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid == 0:
                    return None
                self.returncode = _exit_code(status)
            if self.returncode is None:  # reaped elsewhere: gone all the same
                self.returncode = -int(signal.SIGKILL)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                _, status = os.waitpid(self.pid, 0)
                self.returncode = _exit_code(status)


class ForkServer:
    """Forks the server from the supervisor and asks it for children. Start and spawn from the event
    loop's thread, like every spawn of processes.py (PR_SET_PDEATHSIG is tied to the forking thread), and
    start before the supervisor runs any other thread: forking a process with threads copies their locks
    in whatever state they are, so `start` refuses then (ForkServerError: the replicas are executed)."""

    def __init__(self, log_path: Path, start_timeout_s: float = 60.0) -> None:
        self.log_path = log_path
        self._start_timeout_s = start_timeout_s
        self._process: _ServerProcess | None = None
        self._requests: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._answers: dict[int, dict[str, Any]] = {}
        self._exits: dict[int, int] = {}
        self._changed = threading.Condition(self._lock)
        self._next_id = 0
        self._reader: threading.Thread | None = None
        self.ready_info: dict[str, Any] | None = None  # the server's "ready" line: pid, preloaded modules

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Preload here, freeze the garbage collector's view of it, fork the server. The supervisor keeps
        the same pages: it shares them with the server and every replica instead of holding its own
        FastAPI, uvicorn and pydantic (its control API's)."""
        others = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
        if others:
            raise ForkServerError(f"the supervisor already runs threads ({', '.join(others)}): not forking")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        preloaded = preload()
        gc.collect()
        gc.freeze()  # here and so in every fork: the import-time heap is never scanned, so never copied
        requests_r, requests_w = os.pipe()
        answers_r, answers_w = os.pipe()
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        for stream in (sys.stdout, sys.stderr):  # or the fork would write the supervisor's buffers again
            with contextlib.suppress(Exception):
                stream.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.dup2(requests_r, 0)
                os.dup2(answers_w, 1)
                os.dup2(log_fd, 2)
                os.closerange(3, 65536)
                set_title([sys.executable, "-m", __name__, "--parent", str(parent)], "forkserver")
                code = serve(parent, preloaded)
            except BaseException:
                import traceback

                with contextlib.suppress(Exception):
                    os.write(2, traceback.format_exc().encode())
            finally:
                os._exit(code)
        for fd in (requests_r, answers_w, log_fd):
            os.close(fd)
        self._process = _ServerProcess(pid)
        self._requests = os.fdopen(requests_w, "wb")
        self._reader = threading.Thread(
            target=self._read, args=(os.fdopen(answers_r, "rb"),), name="forkserver-reader", daemon=True
        )
        self._reader.start()
        with self._changed:
            self._changed.wait_for(lambda: self.ready_info is not None or self._gone(), self._start_timeout_s)
        if self.ready_info is None:
            self.stop()
            raise ForkServerError(f"the fork-server did not start (see {self.log_path})")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _gone(self) -> bool:
        return self._process is None or self._process.poll() is not None

    def _read(self, answers: IO[bytes]) -> None:
        with answers:
            for raw in answers:
                message = json.loads(raw)
                with self._changed:
                    if "exit" in message:
                        self._exits[int(message["exit"])] = int(message["code"])
                    elif "ready" in message:
                        self.ready_info = message
                    else:
                        self._answers[int(message["id"])] = message
                    self._changed.notify_all()
        with self._changed:  # the server ended: so did its children
            self._changed.notify_all()

    def spawn(self, argv: list[str], env: dict[str, str], log_path: Path) -> ForkedChild:
        """Fork `python -m argv[0] argv[1:]`; the server is started on the first call (after Prometheus has
        started: its first scrape waits for a 5 s tick, so it goes first)."""
        if self._process is None:
            self.start()
        if self._requests is None or self._gone():
            raise ForkServerError("the fork-server is not running")
        with self._changed:
            self._next_id += 1
            request_id = self._next_id
        line = json.dumps({"id": request_id, "argv": argv, "env": env, "log": str(log_path)}) + "\n"
        try:
            self._requests.write(line.encode())
            self._requests.flush()
        except OSError as exc:
            raise ForkServerError(f"the fork-server is not running ({exc})") from None
        with self._changed:
            self._changed.wait_for(lambda: request_id in self._answers or self._gone(), SPAWN_TIMEOUT_S)
            answer = self._answers.pop(request_id, None)
        if answer is None or "pid" not in answer:
            reason = answer.get("error") if answer else "no answer"
            raise ForkServerError(f"the fork-server did not fork {argv[0]}: {reason} (see {self.log_path})")
        return ForkedChild(int(answer["pid"]), self)

    def exit_code(self, pid: int) -> int | None:
        with self._lock:
            if pid in self._exits:
                return self._exits[pid]
        if self._gone():
            return self._exits.get(pid, -int(signal.SIGKILL))
        return None

    def stop(self, grace_s: float = 5.0) -> None:
        """Close the request pipe (the server returns; PDEATHSIG ends any child left), SIGKILL after the
        grace."""
        if self._process is None:
            return
        with contextlib.suppress(OSError):
            if self._requests is not None:
                self._requests.close()
        deadline = time.monotonic() + grace_s
        while self._process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        self._process.kill()
