"""The function runner of the local stack: runs the notifications function on demand, not always on
(docs/runtime.md, "Functions").

The supervisor owns one FunctionRunner per function. It polls orders' outbox backlog
(`GET /outbox/backlog`, service token) every `poll_s`; while events are undelivered it keeps
`ceil(undelivered / EVENTS_PER_INSTANCE)` instances running, at least one and at most `max_instances`
(the concurrency limit), each one a cold start (`python -m sample_shop.notifications`, a new process);
once the backlog has been empty for `idle_s` it stops them all (SIGTERM: an instance finishes the event in
hand), so the function scales to zero. An instance that dies (a crash, the `kill` fault) is replaced by
the next tick while events wait. A `hold` (the `down` fault) keeps the function at zero for its TTL:
the backlog grows, and the function scales up again when the hold ends.

It also owns the local SMTP server the function sends to (`sample_shop.notifications.mailserver`, a
Maildir under the state folder), restarted when it exits, and the slow-SMTP switch of that server.
Processes are spawned on the event loop's thread and bound to the supervisor (PR_SET_PDEATHSIG), like
every process of the stack (processes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx

from sample_shop.basics import write_json_atomic
from sample_shop.faultd.processes import FunctionFault
from sample_shop.kit.auth import SERVICE_TOKEN_HEADER
from sample_shop.kit.control import ControlError
from sample_shop.topology import NOTIFICATIONS_FUNCTION
from testbed.runtime.base import InputError
from testbed.runtime.layout import PortPlan, StateLayout, loopback_url
from testbed.runtime.processes import die_with_parent

if TYPE_CHECKING:  # FastAPI is imported after the spawn (supervisor.control_app)
    from fastapi import APIRouter

log = logging.getLogger("testbed.supervisor")

EVENTS_PER_INSTANCE = 5  # undelivered events one instance is expected to drain before another starts
MAX_INSTANCES_LIMIT = 8
MAX_HOLD_S = 600.0
MAX_SMTP_DELAY_S = 120.0


@dataclass(frozen=True)
class RunnerSettings:
    """The knobs of a function runner (env `TESTBED_FUNCTION_MAX_INSTANCES`, `TESTBED_FUNCTION_IDLE_S`,
    `TESTBED_FUNCTION_POLL_S`, read by `from_env`)."""

    max_instances: int = 2
    idle_s: float = 10.0
    poll_s: float = 0.5

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunnerSettings:
        def number(name: str, default: float, lo: float, hi: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise InputError(f"{name}={raw!r}: must be a number between {lo:g} and {hi:g}") from None
            if not lo <= value <= hi:
                raise InputError(f"{name}={raw!r}: must be a number between {lo:g} and {hi:g}")
            return value

        maximum = number("TESTBED_FUNCTION_MAX_INSTANCES", cls.max_instances, 1, MAX_INSTANCES_LIMIT)
        if maximum != int(maximum):
            raise InputError(f"TESTBED_FUNCTION_MAX_INSTANCES={maximum:g}: must be a whole number")
        return cls(
            max_instances=int(maximum),
            idle_s=number("TESTBED_FUNCTION_IDLE_S", cls.idle_s, 0.5, 3600),
            poll_s=number("TESTBED_FUNCTION_POLL_S", cls.poll_s, 0.1, 30),
        )


def wanted_instances(undelivered: int, running: int, max_instances: int, idle: bool) -> int:
    """How many instances should run: enough for the backlog (never fewer than run while it is not
    drained), none once idle. Pure."""
    if undelivered <= 0:
        return 0 if idle else running
    needed = math.ceil(undelivered / EVENTS_PER_INSTANCE)
    return min(max_instances, max(1, needed, running))


@dataclass
class Instance:
    slot: int  # SHOP_FUNCTION_INSTANCE: log and trace files are per slot
    popen: subprocess.Popen[bytes]
    started_at: float
    log_file: IO[bytes]

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.slot,
            "pid": self.popen.pid,
            "started_at": self.started_at,
            "uptime_s": round(time.time() - self.started_at, 1),
        }


@dataclass
class FunctionRunner:
    name: str
    command: list[str]
    env: dict[str, str]  # every instance's environment (SHOP_FUNCTION_INSTANCE is added per instance)
    backlog_urls: list[str]  # orders' /outbox/backlog on each replica
    token: str
    layout: StateLayout
    settings: RunnerSettings = field(default_factory=RunnerSettings)
    instances: dict[int, Instance] = field(default_factory=dict)
    cold_starts: int = 0
    crashes: int = 0
    backlog: dict[str, Any] | None = None
    backlog_error: str | None = None
    held_until: float | None = None
    empty_since: float | None = None
    _stopping: bool = False

    # ---- scaling ---------------------------------------------------------------------------------

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=2.0, headers={SERVICE_TOKEN_HEADER: self.token}) as client:
            while not self._stopping:
                try:
                    await self.tick(client)
                except Exception:  # the runner must outlive any one tick
                    log.exception("function runner %s: tick failed", self.name)
                await asyncio.sleep(self.settings.poll_s)

    async def tick(self, client: httpx.AsyncClient) -> None:
        self._reap()
        await self._poll(client)
        now = time.time()
        if self.held_until is not None and now >= self.held_until:
            log.info("function %s: the hold ended", self.name)
            self.held_until = None
        if self.held_until is not None:
            await self._scale_to(0)
            return
        if self.backlog is None:  # orders not answering: leave the instances be
            return
        undelivered = int(self.backlog.get("undelivered", 0))
        if undelivered > 0:
            self.empty_since = None
        elif self.empty_since is None:
            self.empty_since = now
        idle = self.empty_since is not None and now - self.empty_since >= self.settings.idle_s
        await self._scale_to(
            wanted_instances(undelivered, len(self.instances), self.settings.max_instances, idle)
        )

    async def _poll(self, client: httpx.AsyncClient) -> None:
        errors = []
        for url in self.backlog_urls:
            try:
                response = await client.get(url)
                response.raise_for_status()
                self.backlog, self.backlog_error = response.json(), None
                return
            except (httpx.HTTPError, ValueError) as exc:
                errors.append(f"{url}: {exc}")
        self.backlog, self.backlog_error = None, "; ".join(errors) or "no orders replica"

    async def _scale_to(self, wanted: int) -> None:
        while len(self.instances) < wanted:
            self._start()
        surplus = sorted(self.instances.values(), key=lambda i: -i.slot)[
            : max(0, len(self.instances) - wanted)
        ]
        if surplus:
            await asyncio.gather(*(self._stop_instance(i) for i in surplus))

    def _start(self) -> Instance:
        slot = next(s for s in range(self.settings.max_instances + 1) if s not in self.instances)
        log_path = self.layout.process_log(f"{self.name}-{slot}")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log_path, "ab")  # noqa: SIM115 - kept open for the instance's life
        popen = subprocess.Popen(
            self.command,
            env={**self.env, "SHOP_FUNCTION_INSTANCE": str(slot)},
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            close_fds=True,
            preexec_fn=die_with_parent(os.getpid()),
        )
        instance = Instance(slot, popen, time.time(), log_file)
        self.instances[slot] = instance
        self.cold_starts += 1
        log.info(
            "function %s: cold start of instance %d (pid %d, backlog %s)",
            self.name,
            slot,
            popen.pid,
            (self.backlog or {}).get("undelivered"),
        )
        return instance

    def _reap(self) -> None:
        for slot, instance in list(self.instances.items()):
            code = instance.popen.poll()
            if code is None:
                continue
            del self.instances[slot]
            instance.log_file.close()
            if code != 0:
                self.crashes += 1
            log.warning("function %s: instance %d exited with code %s", self.name, slot, code)

    async def _stop_instance(self, instance: Instance, grace_s: float = 10.0) -> None:
        self.instances.pop(instance.slot, None)
        popen = instance.popen
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while popen.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if popen.poll() is None:
                popen.kill()
                while popen.poll() is None:
                    await asyncio.sleep(0.005)
        instance.log_file.close()
        log.info("function %s: instance %d stopped", self.name, instance.slot)

    # ---- faults ----------------------------------------------------------------------------------

    def kill(self, slot: int | None = None) -> list[dict[str, Any]]:
        """SIGKILL one instance (the lowest slot, or `slot`), or every one with slot -1; the killed."""
        targets = list(self.instances.values())
        if slot is not None and slot >= 0:
            targets = [i for i in targets if i.slot == slot]
        elif slot is None:
            targets = sorted(targets, key=lambda i: i.slot)[:1]
        killed = []
        for instance in targets:
            if instance.popen.poll() is None:
                instance.popen.send_signal(signal.SIGKILL)
                instance.popen.wait()
            killed.append(instance.to_dict())
        self._reap()
        return killed

    def hold(self, seconds: float) -> float:
        """Keep the function at zero instances for `seconds` (killed at the next tick); the hold's end."""
        if not 0 < seconds <= MAX_HOLD_S:
            raise InputError(f"hold seconds must be in (0, {MAX_HOLD_S:g}], got {seconds:g}")
        self.held_until = time.time() + seconds
        for instance in list(self.instances.values()):  # down means down: no graceful finish
            if instance.popen.poll() is None:
                instance.popen.send_signal(signal.SIGKILL)
                instance.popen.wait()
        self._reap()
        return self.held_until

    def release(self) -> None:
        self.held_until = None

    def slow_smtp(self, delay_s: float, seconds: float) -> float:
        """The SMTP server answers every message `delay_s` late for `seconds`; when that ends."""
        if not 0 < delay_s <= MAX_SMTP_DELAY_S:
            raise InputError(f"SMTP delay must be in (0, {MAX_SMTP_DELAY_S:g}] s, got {delay_s:g}")
        if not 0 < seconds <= MAX_HOLD_S:
            raise InputError(f"the slow SMTP TTL must be in (0, {MAX_HOLD_S:g}] s, got {seconds:g}")
        until = time.time() + seconds
        write_json_atomic(smtp_delay_file(self.layout), {"delay_s": delay_s, "until": until})
        return until

    def fast_smtp(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            smtp_delay_file(self.layout).unlink()

    def smtp_delay(self) -> tuple[float, float] | None:
        """(delay_s, until) of the slow SMTP in force, or None."""
        from sample_shop.notifications.mailserver import current_delay

        if current_delay(maildir(self.layout)) <= 0:
            return None
        try:
            spec = json.loads(smtp_delay_file(self.layout).read_text())
            return float(spec["delay_s"]), float(spec["until"])
        except (OSError, ValueError, KeyError, TypeError):  # cleared meanwhile
            return None

    # ---- status and shutdown ---------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "instances": [i.to_dict() for i in sorted(self.instances.values(), key=lambda i: i.slot)],
            "running": len(self.instances),
            "max_instances": self.settings.max_instances,
            "idle_s": self.settings.idle_s,
            "cold_starts": self.cold_starts,
            "crashes": self.crashes,
            "backlog": self.backlog,
            "backlog_error": self.backlog_error,
            "held_until": self.held_until,
            "maildir": str(maildir(self.layout)),
        }

    async def stop(self) -> None:
        self._stopping = True
        await asyncio.gather(*(self._stop_instance(i, grace_s=5.0) for i in list(self.instances.values())))


def maildir(layout: StateLayout) -> Path:
    """Where the local SMTP server stores the order e-mails (a Maildir: new/, cur/, tmp/)."""
    return layout.root / "mail"


def smtp_delay_file(layout: StateLayout) -> Path:
    from sample_shop.notifications.mailserver import delay_file

    return delay_file(maildir(layout))


def mailserver_command(ports: PortPlan, layout: StateLayout) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sample_shop.notifications.mailserver",
        "--port",
        str(ports.smtp),
        "--maildir",
        str(maildir(layout)),
    ]


def notifications_runner(
    replica_env: dict[str, str],
    orders_replicas: int,
    ports: PortPlan,
    layout: StateLayout,
    token: str,
    settings: RunnerSettings,
) -> FunctionRunner:
    """The notifications function's runner. `replica_env` is an orders replica's environment (the env
    contract: state folder, token file, upstream URLs, telemetry); the function's own variables replace
    the replica's."""
    env = {k: v for k, v in replica_env.items() if k not in ("SHOP_PORT", "SHOP_ADMIN_PORT", "SHOP_REPLICA")}
    env.update(
        {
            "SHOP_SERVICE": NOTIFICATIONS_FUNCTION,
            "SHOP_SMTP_HOST": "127.0.0.1",
            "SHOP_SMTP_PORT": str(ports.smtp),
            "SHOP_NOTIFY_IDLE_EXIT_S": str(max(60.0, settings.idle_s * 6)),  # if the runner forgets it
        }
    )
    return FunctionRunner(
        NOTIFICATIONS_FUNCTION,
        [sys.executable, "-m", "sample_shop.notifications"],
        env,
        [f"{loopback_url(ports.app('orders', r))}/outbox/backlog" for r in range(orders_replicas)],
        token,
        layout,
        settings,
    )


class FunctionFaults:
    """The fault controller's view of the runners (sample_shop.faultd.processes.FunctionControl)."""

    def __init__(self, runners: Mapping[str, FunctionRunner]) -> None:
        self.runners = runners

    def function_names(self) -> list[str]:
        return list(self.runners)

    def inject(self, function: str, fault: FunctionFault) -> dict[str, Any]:
        runner = self.runners[function]
        now = time.time()
        base = {"service": function, "kind": fault.kind, "at": now, "ttl_s": fault.ttl_s}
        if fault.kind == "kill":
            killed = runner.kill()
            if not killed:
                raise ControlError(
                    409,
                    "kind",
                    f"no instance of {function} is running (it is at zero until events wait); "
                    "kill it while it works, or use kind 'down' to keep it at zero",
                )
            return {**base, "instances": killed}
        try:
            if fault.kind == "down":
                return {**base, "expires_at": runner.hold(fault.ttl_s)}
            assert fault.ms is not None
            return {**base, "ms": fault.ms, "expires_at": runner.slow_smtp(fault.ms / 1000, fault.ttl_s)}
        except InputError as exc:
            raise ControlError(422, "ttl_s", str(exc)) from None

    def clear(self, function: str | None) -> list[dict[str, Any]]:
        cleared = []
        for name, runner in self.runners.items():
            if function is not None and name != function:
                continue
            cleared += [{**f, "cleared": True} for f in self._active(name, runner)]
            runner.release()
            runner.fast_smtp()
        return cleared

    def active(self) -> list[dict[str, Any]]:
        return [f for name, runner in self.runners.items() for f in self._active(name, runner)]

    @staticmethod
    def _active(name: str, runner: FunctionRunner) -> list[dict[str, Any]]:
        now = time.time()
        found = []
        if runner.held_until is not None and runner.held_until > now:
            found.append(
                {
                    "service": name,
                    "kind": "down",
                    "expires_at": runner.held_until,
                    "remaining_s": round(runner.held_until - now, 3),
                }
            )
        slow = runner.smtp_delay()
        if slow is not None:
            found.append(
                {
                    "service": name,
                    "kind": "smtp-latency",
                    "ms": round(slow[0] * 1000),
                    "expires_at": slow[1],
                    "remaining_s": round(slow[1] - now, 3),
                }
            )
        return found


def function_router(runners: Mapping[str, FunctionRunner]) -> APIRouter:
    """GET /functions on the control API: each function's instances, cold starts and backlog."""
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/functions")
    async def list_functions() -> dict[str, Any]:
        return {"functions": [r.status() for r in runners.values()]}

    return router
