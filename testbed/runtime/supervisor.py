"""The local stack's supervisor: `python -m testbed.runtime.supervisor --state-dir DIR ...`.

Started detached by `testbed up`. It owns every process of the stack (replicas, Prometheus, extras),
restarts crashed ones with backoff, serves the control API, and writes `<state>/stack.json` once everything
is ready (progress and failures go to `<state>/startup.json` meanwhile). SIGTERM stops everything.
Children are bound to it with PR_SET_PDEATHSIG, so they die with it even when it is SIGKILLed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil

from sample_shop.basics import write_json_atomic
from sample_shop.kit.logs import setup_logging
from sample_shop.topology import SERVICE_NAMES, SHOP_JOB, TESTBED_JOB, ReplicaEndpoint, StackDescriptor
from testbed.runtime import alertmanager, forkserver, functions, nodeexporter
from testbed.runtime import extras as extras_mod
from testbed.runtime.base import InputError, ProcessInfo, RuntimeFailure, StartupProgress, UpOptions
from testbed.runtime.envcontract import service_env
from testbed.runtime.files import log_tail, write_private
from testbed.runtime.layout import PortPlan, StateLayout, loopback_url
from testbed.runtime.logship import LogShipper
from testbed.runtime.metrics import PhaseBoard, SupervisorMetrics
from testbed.runtime.observers import Observers, plan_observers
from testbed.runtime.options import make_options
from testbed.runtime.ports import busy_ports_message, listening
from testbed.runtime.probes import Probe, probe_http, prometheus_up, readiness, shop_targets_up
from testbed.runtime.processes import ManagedProcess, ProcessSpec, ProcessTable
from testbed.runtime.prometheus import ScrapeTarget, prometheus_command, prometheus_config, render_config

if TYPE_CHECKING:  # imported for real after the spawn (control_app)
    from fastapi import FastAPI

    from sample_shop.faultd.controller import FaultController

log = logging.getLogger("testbed.supervisor")
SERVICE_NAME = "supervisor"  # the `service` field of its log lines
STARTUP_CRASH_LIMIT = 3  # a process that crashes this often while the stack starts fails `up`


def write_slo_rules(rules_dir: Path) -> tuple[str, int]:
    """Generate the SLO recording/alerting rules (slo/rules.py) into the rules folder: (a note for the user,
    how many files). A writer that fails is an error (fail closed)."""
    from slo.rules import write_prometheus_rules  # imported after the spawn, as the control API

    try:
        written = write_prometheus_rules(rules_dir)
    except Exception as exc:
        raise RuntimeFailure(
            f"generating the SLO rules failed: {exc}",
            hint="fix the SLO files (`testbed slo rules --check` says what is wrong), then run up again",
        ) from exc
    return f"{len(written)} SLO rule file(s) written to {rules_dir}", len(written)


class _Server:
    """uvicorn without its signal handling (the supervisor owns SIGTERM/SIGINT)."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        class Quiet(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):  # type: ignore[no-untyped-def]
                yield

        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self.server = Quiet(config)

    async def serve(self) -> None:
        try:
            await self.server.serve()
        except SystemExit as exc:  # uvicorn exits when it cannot bind
            raise RuntimeFailure(
                f"the control API could not listen on 127.0.0.1:{self.server.config.port}"
            ) from exc

    def stop(self) -> None:
        self.server.should_exit = True


@dataclass
class Supervisor:
    layout: StateLayout
    ports: PortPlan
    options: UpOptions
    exit_with_pid: int | None = None
    processes: ProcessTable = field(default_factory=ProcessTable)
    phases: PhaseBoard = field(default_factory=PhaseBoard)
    extras: list[extras_mod.ExtraPlan] = field(default_factory=list)
    observers: Observers = field(default_factory=Observers)  # node_exporter, Alertmanager (observers.py)
    notes: list[str] = field(default_factory=list)
    token: str = ""
    prometheus_binary: str = "prometheus"
    rules_pending: int = 0  # rule files written but not yet loaded by Prometheus
    ready: bool = False
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    controller: FaultController | None = None  # the control API's fault controller, once it serves
    runners: dict[str, functions.FunctionRunner] = field(default_factory=dict)  # functions.py
    started: float = field(default_factory=time.monotonic)

    # ---- preparation (before any process starts) -------------------------------------------------

    def prepare(self) -> None:
        self.layout.make_dirs()
        prometheus_binary = shutil.which("prometheus")
        if prometheus_binary is None:
            raise RuntimeFailure(
                "Prometheus is not installed (no `prometheus` on PATH)",
                hint="run `make setup` (installs the system package), or put Prometheus >= 2.40 on PATH",
            )
        self.prometheus_binary = prometheus_binary
        found = extras_mod.find_extras() if self.options.extras else {}
        self.observers = plan_observers(self.layout, self.ports)
        self.notes += self.observers.notes
        self.extras = extras_mod.plan_extras(found, self.layout, self.ports) + self.observers.plans
        busy = listening(self.ports.stack_ports(self.options.replicas, tuple(found) + self.observers.names))
        if busy:
            raise RuntimeFailure(
                busy_ports_message(busy),
                hint="stop that process (`testbed down` if it is another stack), "
                "or move this stack with TESTBED_PORT_OFFSET=N",
            )
        try:
            fork_replicas = forkserver.enabled(os.environ)
        except ValueError as exc:
            raise RuntimeFailure(str(exc), hint=f"unset {forkserver.ENV_SWITCH} or set it to on") from None
        if fork_replicas:
            self.processes.forkserver = forkserver.ForkServer(self.layout.process_log("forkserver"))
            self.notes.append(
                f"fork-server: the shop's Python processes are forked from the supervisor, which imported "
                f"their libraries once ({forkserver.ENV_SWITCH}=on; docs/runtime.md)"
            )
        self.token = secrets.token_urlsafe(32)
        write_private(self.layout.token_file, self.token + "\n")
        jwt_secret = secrets.token_urlsafe(32)
        write_json_atomic(self.layout.options_file, self.options.to_dict(), sort_keys=True)
        self.add_prometheus()

        for plan in self.extras:
            for path, text in plan.files.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            self.processes.add(
                ProcessSpec(
                    plan.name,
                    plan.command,
                    {**os.environ, **plan.env},
                    self.layout.process_log(plan.name),
                    plan.port,
                    health_url=plan.url + plan.ready_path,
                )
            )
        otlp = self.options.otlp_endpoint or (
            loopback_url(self.ports.jaeger_otlp_http) if "jaeger" in found else None
        )
        # a local Jaeger replaces the files (as before); a user's --otlp-endpoint keeps them by default
        trace_files = self.options.trace_files if self.options.otlp_endpoint else "jaeger" not in found
        for service in SERVICE_NAMES:
            for r in range(self.options.replicas[service]):
                env = service_env(
                    os.environ,
                    service,
                    r,
                    self.options,
                    self.ports,
                    self.layout,
                    jwt_secret,
                    otlp,
                    trace_files,
                )
                self.processes.add(
                    ProcessSpec(
                        f"{service}-{r}",
                        [sys.executable, "-m", f"sample_shop.{service}"],
                        env,
                        self.layout.replica_log(service, r),
                        self.ports.app(service, r),
                        health_url=f"{loopback_url(self.ports.app(service, r))}/healthz",
                        service=service,
                        replica=r,
                        admin_port=self.ports.admin(service, r),
                    )
                )
        self.add_functions(jwt_secret, otlp, trace_files)
        for name, note in extras_mod.absent_notes(
            [n for n in extras_mod.EXTRA_NAMES if n not in found], self.layout
        ).items():
            self.notes.append(f"{name}: runs on kind (docs/kind.md) - here {note}")

    def add_functions(self, jwt_secret: str, otlp: str | None, trace_files: bool) -> None:
        """The local SMTP server (a managed process) and the notifications function's runner (functions.py:
        instances on demand, not always on)."""
        self.processes.add(
            ProcessSpec(
                "mailserver",
                functions.mailserver_command(self.ports, self.layout),
                dict(os.environ),
                self.layout.process_log("mailserver"),
                self.ports.smtp,
            )
        )
        env = service_env(
            os.environ, "orders", 0, self.options, self.ports, self.layout, jwt_secret, otlp, trace_files
        )
        try:
            settings = functions.RunnerSettings.from_env(os.environ)
        except InputError as exc:
            raise RuntimeFailure(str(exc), hint="fix the variable, then run up again") from None
        runner = functions.notifications_runner(
            env, self.options.replicas["orders"], self.ports, self.layout, self.token, settings
        )
        self.runners[runner.name] = runner

    def add_prometheus(self) -> None:
        """Prometheus goes first: its scrape manager creates its first scrape pools only on a 5 s tick after
        it starts (Prometheus 2.x), the longest wait of a cold start. It starts with an empty rules folder;
        the SLO rules are written while the replicas start, then loaded with POST /-/reload."""
        for old in self.layout.rules_dir.glob("*.yml"):
            old.unlink()
        targets = [
            ScrapeTarget(s, r, self.ports.app(s, r))
            for s in SERVICE_NAMES
            for r in range(self.options.replicas[s])
        ]
        config = prometheus_config(
            targets,
            self.ports.load_metrics,
            self.ports.control,
            self.layout.rules_dir,
            token_file=self.layout.token_file,
            node_exporter_port=(
                self.ports.node_exporter if self.observers.running(nodeexporter.NAME) else None
            ),
            alertmanager_port=self.ports.alertmanager if self.observers.running(alertmanager.NAME) else None,
        )
        self.layout.prometheus_config.write_text(render_config(config))
        self.processes.add(
            ProcessSpec(
                "prometheus",
                prometheus_command(
                    self.prometheus_binary,
                    self.layout.prometheus_config,
                    self.layout.prometheus_data,
                    self.ports.prometheus,
                ),
                {**os.environ, **extras_mod.go_daemon_env()},
                self.layout.process_log("prometheus"),
                self.ports.prometheus,
                health_url=f"{self.prometheus_url}/-/ready",
            )
        )

    async def load_rules(self, client: httpx.AsyncClient) -> bool:
        """Ask the running Prometheus to load the rule files; True once loaded. Broken rules fail `up` with
        Prometheus' own error message."""
        if self.processes.get("prometheus").state != "running":
            return False
        try:
            response = await client.post(f"{self.prometheus_url}/-/reload", timeout=10.0)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            raise RuntimeFailure(
                f"Prometheus could not load the SLO rules in {self.layout.rules_dir}: "
                f"{await self._rules_problem() or response.text.strip()}",
                hint="fix the SLO files (`testbed slo rules --check`), or check the rules with promtool",
                log_tail=log_tail(self.layout.process_log("prometheus"), lines=5),
                log_path=str(self.layout.process_log("prometheus")),
            )
        log.info("SLO rules loaded")
        return True

    async def _rules_problem(self) -> str:
        """What promtool says about the rule files (file, group, line), when it is installed."""
        promtool = shutil.which("promtool")
        files = sorted(str(p) for p in self.layout.rules_dir.glob("*.yml"))
        if promtool is None or not files:
            return ""
        check = await asyncio.create_subprocess_exec(
            promtool,
            "check",
            "rules",
            *files,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await check.communicate()
        problems = [
            line for line in output.decode().splitlines() if "FAILED" in line or "error" in line.lower()
        ]
        return "; ".join(problems)[:2000]

    @property
    def prometheus_url(self) -> str:
        return loopback_url(self.ports.prometheus)

    # ---- descriptor and progress -----------------------------------------------------------------

    def descriptor(self) -> StackDescriptor:
        running = {p.name: p for p in self.extras}
        replicas = [
            ReplicaEndpoint(r.service, r.replica, r.url, r.admin_url, r.pid)
            for r in self.processes.replicas()
        ]
        return StackDescriptor(
            target="local",
            gateway_url=loopback_url(self.ports.app("gateway", 0)),
            prometheus_url=self.prometheus_url,
            control_url=loopback_url(self.ports.control),
            token_file=str(self.layout.token_file),
            replicas=replicas,
            jaeger_url=running["jaeger"].url if "jaeger" in running else None,
            loki_url=running["loki"].url if "loki" in running else None,
            grafana_url=running["grafana"].url if "grafana" in running else None,
            load_metrics_port=self.ports.load_metrics,
            state_dir=str(self.layout.root),
            traces_dir=str(self.layout.traces_dir) if self._trace_files() else None,
            otlp_endpoint=self.options.otlp_endpoint,
            logs_dir=str(self.layout.logs_dir),
            node_exporter_url=running[nodeexporter.NAME].url if nodeexporter.NAME in running else None,
            alertmanager_url=running[alertmanager.NAME].url if alertmanager.NAME in running else None,
            alerts_file=str(self.layout.alerts_file) if alertmanager.NAME in running else None,
        )

    def _trace_files(self) -> bool:
        if self.options.otlp_endpoint:
            return self.options.trace_files
        return not any(p.name == "jaeger" for p in self.extras)

    def _log_shipper(self) -> LogShipper | None:
        loki = next((p for p in self.extras if p.name == "loki"), None)
        if loki is None:
            return None
        shipper = LogShipper(self.layout.logs_dir, loki.url)
        shipper.start_at_current_end()
        return shipper

    def progress(self, progress: StartupProgress) -> None:
        data = progress.to_dict()
        data["notes"] = self.notes
        data["pid"] = os.getpid()
        write_json_atomic(self.layout.startup_file, data, sort_keys=True)

    def others(self) -> list[ProcessInfo]:
        infos = []
        for m in self.processes.all():
            if m.spec.service is None:
                infos.append(
                    ProcessInfo(
                        m.spec.name,
                        None,
                        m.pid,
                        m.spec.port,
                        loopback_url(m.spec.port),
                        m.state,
                        restarts=m.restarts,
                        log=str(m.spec.log_path),
                        health_url=m.spec.health_url,
                    )
                )
        server = self.processes.forkserver
        if server is not None and server.pid is not None:  # the replicas' parent (TESTBED_FORK_SERVER=on)
            infos.append(
                ProcessInfo(
                    "forkserver",
                    None,
                    server.pid,
                    None,
                    None,
                    "running" if server.running else "stopped",
                    log=str(server.log_path),
                )
            )
        infos.append(
            ProcessInfo(
                "supervisor",
                None,
                os.getpid(),
                self.ports.control,
                loopback_url(self.ports.control),
                "running",
                log=str(self.layout.supervisor_log),
                health_url=f"{loopback_url(self.ports.control)}/healthz",
            )
        )
        return infos

    # ---- running ---------------------------------------------------------------------------------

    def control_app(self) -> FastAPI:
        """The control API (sample_shop.faultd.api) on this stack's process table, plus GET /processes.
        Built after the spawn, on the running event loop: FastAPI's import is slow and the children's
        start-up matters more; the fault controller starts its reconcile loop on this loop."""
        from sample_shop.faultd.api import create_control_app
        from sample_shop.faultd.controller import local_controller
        from testbed.runtime.process_routes import process_router

        self.controller = local_controller(self.processes, self.token, functions.FunctionFaults(self.runners))
        return create_control_app(
            self.controller,
            self.token,
            phases=self.phases,
            metrics=SupervisorMetrics(self.phases, self.processes.replicas).render,
            routes=[process_router(self.processes, self.others), functions.function_router(self.runners)],
            token_hint=f"the token file {self.layout.token_file}",
            title="testbed control API",
        )

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: None)
        tasks: list[asyncio.Task[Any]] = []
        server: _Server | None = None
        code = 0
        try:
            self.prepare()
            shipper = self._log_shipper()  # before the spawn: ships every line this stack writes
            self.progress(StartupProgress("starting", "starting processes"))
            self.processes.start_all()  # first: the children's start-up dominates the cold start
            tasks.append(loop.create_task(self.processes.monitor()))
            note, self.rules_pending = write_slo_rules(self.layout.rules_dir)
            self.notes.append(note)
            server = _Server(self.control_app(), self.ports.control)
            serve_task = loop.create_task(server.serve())
            tasks.append(serve_task)
            if self.exit_with_pid:
                tasks.append(loop.create_task(self._watch_owner(self.exit_with_pid)))
            await self._wait_ready(serve_task)
            if self.stop_event.is_set():
                return 0
            if shipper is not None:  # Loki is ready now
                tasks.append(loop.create_task(shipper.run()))
            self.processes.add_ready_listener(lambda _: self._write_descriptor())
            tasks += [loop.create_task(runner.run()) for runner in self.runners.values()]
            await self.stop_event.wait()
        except RuntimeFailure as failure:
            log.error("startup failed: %s", failure.message)
            self.progress(StartupProgress("failed", failure.message, failure=failure.to_dict()))
            code = 1
        except Exception as exc:  # a supervisor bug: report it like a failure, and still clean up
            log.exception("supervisor failed")
            crash = RuntimeFailure(
                f"the supervisor failed: {exc!r}", log_path=str(self.layout.supervisor_log)
            )
            self.progress(StartupProgress("failed", crash.message, failure=crash.to_dict()))
            code = 1
        finally:
            await self.shutdown(tasks, server)
        return code

    def _write_descriptor(self) -> None:
        """stack.json again, now with the replicas that just became ready."""
        self.descriptor().write(self.layout.root)

    async def shutdown(self, tasks: list[asyncio.Task[Any]], server: _Server | None) -> None:
        log.info("stopping every process")
        await asyncio.gather(*(runner.stop() for runner in self.runners.values()), return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            self.layout.stack_file.unlink()
        try:
            await asyncio.wait_for(self.processes.stop_all(), timeout=self.processes.stop_grace_s * 2 + 5)
        except Exception:
            log.exception("graceful stop failed; killing")
            self.processes.kill_all_now()
        if server is not None:
            server.stop()
        if self.controller is not None:
            await self.controller.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            self.layout.supervisor_pid.unlink()
        if self.ready:
            with contextlib.suppress(FileNotFoundError):
                self.layout.startup_file.unlink()
        log.info("stopped")

    async def _watch_owner(self, pid: int) -> None:
        while psutil.pid_exists(pid):
            await asyncio.sleep(0.5)
        log.warning("owner process %d is gone; stopping the stack", pid)
        self.stop_event.set()

    def _crash_failure(self, managed: ManagedProcess) -> RuntimeFailure | None:
        if managed.consecutive_crashes < STARTUP_CRASH_LIMIT:
            return None
        what = (
            f"{managed.spec.service} replica {managed.spec.replica}"
            if managed.spec.service
            else managed.spec.name
        )
        return RuntimeFailure(
            f"{what} exited with code {managed.exit_code} {managed.consecutive_crashes} times "
            "while the stack was starting",
            hint=f"its log says why: {managed.spec.log_path}",
            log_tail=log_tail(managed.spec.log_path, since=managed.log_offset) or "(no output)",
            log_path=str(managed.spec.log_path),
        )

    async def _wait_ready(self, serve_task: asyncio.Task[Any]) -> None:
        deadline = self.started + self.options.timeout_s  # --timeout covers the preparation too
        expected = [(r.service, r.replica) for r in self.processes.replicas()]
        confirmed: dict[tuple[str, int], int | None] = {}  # replica -> pid whose /readyz answered 200
        timings: dict[str, float] = {}
        waiting: list[str] = []
        async with httpx.AsyncClient(timeout=0.5) as client:
            while not self.stop_event.is_set():
                if serve_task.done():
                    serve_task.result()  # raises the RuntimeFailure of a control API that cannot listen
                for managed in self.processes.all():
                    failure = self._crash_failure(managed)
                    if failure:
                        raise failure
                if self.rules_pending and await self.load_rules(client):
                    self.rules_pending = 0
                readyz = await self._probe_replicas(client, confirmed)
                if all(p.ok for p in readyz.values()):
                    timings.setdefault("replicas_ready", round(time.monotonic() - self.started, 3))
                shop_up: dict[tuple[str, int], bool] = {}
                testbed_up = False
                prometheus = Probe(False, "waits for every replica's /readyz")
                if all(p.ok for p in readyz.values()):  # only then is asking Prometheus worth the CPU
                    try:
                        shop_up = shop_targets_up(await prometheus_up(client, self.prometheus_url, SHOP_JOB))
                        testbed = await prometheus_up(client, self.prometheus_url, TESTBED_JOB)
                        testbed_up = any(v["__value__"] == "1" for v in testbed.values())
                        prometheus = Probe(True, "ready")
                    except (httpx.HTTPError, ValueError, KeyError) as exc:
                        prometheus = Probe(False, f"not answering ({type(exc).__name__})")
                ready, waiting = readiness(expected, readyz, shop_up, testbed_up, prometheus)
                if self.rules_pending:
                    ready = [r for r in ready if r != "prometheus"]
                    waiting.append("prometheus: loading the SLO rules")
                for plan in self.extras:
                    state = self.processes.get(plan.name).state
                    (ready if state == "running" else waiting).append(
                        plan.name if state == "running" else f"{plan.name}: {plan.ready_path} not answering"
                    )
                if not waiting:
                    self.descriptor().write(self.layout.root)
                    self.ready = True
                    timings["ready"] = round(time.monotonic() - self.started, 3)
                    self.progress(
                        StartupProgress(
                            "ready", "every replica is ready and scraped", ready=ready, timings=timings
                        )
                    )
                    log.info("stack ready")
                    return
                self.progress(
                    StartupProgress("starting", f"{len(ready)} ready, {len(waiting)} waiting", ready, waiting)
                )
                if time.monotonic() > deadline:
                    raise self._timeout_failure(waiting)
                await asyncio.sleep(0.2)  # the replicas are starting: leave them the CPU

    async def _probe_replicas(
        self, client: httpx.AsyncClient, confirmed: dict[tuple[str, int], int | None]
    ) -> dict[tuple[str, int], Probe]:
        """/readyz of every replica not yet seen ready (a restarted one is asked again)."""
        replicas = self.processes.replicas()
        keys = [(r.service, r.replica) for r in replicas]
        asked = [
            r for r, key in zip(replicas, keys, strict=True) if confirmed.get(key) != r.pid or r.pid is None
        ]
        answers = await asyncio.gather(*(probe_http(client, f"{r.url}/readyz") for r in asked))
        for r, probe in zip(asked, answers, strict=True):
            confirmed[(r.service, r.replica)] = r.pid if probe.ok else None
        fresh = {(r.service, r.replica): probe for r, probe in zip(asked, answers, strict=True)}
        return {key: fresh.get(key, Probe(True, "ready")) for key in keys}

    def _timeout_failure(self, waiting: list[str]) -> RuntimeFailure:
        names = [w.split(":", 1)[0] for w in waiting]
        waited = [m for m in self.processes.all() if m.spec.name in names]
        # the most telling log: a process that crashed, else the first one waited for
        crashed = [m for m in waited if m.consecutive_crashes > 0]
        managed = (crashed or waited)[0] if (crashed or waited) else None
        if crashed:
            waiting = [
                f"{m.spec.name}: exited {m.consecutive_crashes} time(s), last with code {m.exit_code}"
                for m in crashed
            ] + waiting
        log_path = managed.spec.log_path if managed else self.layout.supervisor_log
        since = managed.log_offset if managed else 0
        return RuntimeFailure(
            f"not ready after {self.options.timeout_s:g} s; waiting for: {'; '.join(waiting)}",
            hint=f"look at {log_path}; a slow or busy machine may need a longer --timeout",
            log_tail=log_tail(log_path, since=since) or "(no output yet)",
            log_path=str(log_path),
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.runtime.supervisor",
        description="Supervise a local chaos-shop stack. Normally started by `testbed up`, not by hand.",
    )
    parser.add_argument("--state-dir", required=True, type=Path, help="the stack's state folder")
    parser.add_argument("--port-offset", type=int, default=0, help="added to every default port")
    parser.add_argument("--replicas", default=None, help="SERVICE=COUNT,... (default: one of each)")
    parser.add_argument("--resilience", default="resilient", help="resilient or naive")
    parser.add_argument("--telemetry", default="on", help="on or off")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness")
    parser.add_argument("--no-extras", action="store_true", help="do not start Jaeger/Loki/Grafana")
    parser.add_argument("--otlp-endpoint", default=None, help="OTLP/HTTP base URL every service sends to")
    parser.add_argument("--no-trace-files", action="store_true", help="traces only to --otlp-endpoint")
    parser.add_argument("--exit-with-pid", type=int, default=None, help="stop the stack when this pid exits")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # the shop's JSON lines (kit/logs.py), on stderr: `testbed up` sends it to <state>/supervisor.log
    setup_logging(SERVICE_NAME, None, "info", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per health probe otherwise
    try:
        options = make_options(
            args.replicas,
            args.resilience,
            args.telemetry,
            args.timeout,
            not args.no_extras,
            args.otlp_endpoint,
            not args.no_trace_files,
        )
        ports = PortPlan(args.port_offset)
        ports.control  # noqa: B018 - validates the offset range early
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    layout = StateLayout(args.state_dir.resolve())
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.supervisor_pid.write_text(f"{os.getpid()}\n")
    supervisor = Supervisor(layout, ports, options, exit_with_pid=args.exit_with_pid)
    return asyncio.run(supervisor.run())


if __name__ == "__main__":
    sys.exit(main())
