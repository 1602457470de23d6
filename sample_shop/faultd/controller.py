"""The fault controller: one fault API for a whole stack.

It validates a fault once (`kit.faultspec`), keeps it in the desired state with an absolute expiry, and
pushes to every replica of the service (or one) the full set that replica must carry (`PUT /faults` on its
admin API). A reconcile loop pushes the set again to any replica whose process changed (a restart, a new
pod) within `reconcile_s`, and forgets expired faults. Process kinds (`kill`, `pause`, `restart`) go to
process control when there is one (the local supervisor); on kind they are done by chaostoolkit-kubernetes.

Every fault also expires on the replica by itself, so a fault never outlives its TTL even if this
controller dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from sample_shop.faultd.desired import (
    DesiredState,
    faults_version,
    policy_version,
    push_body,
)
from sample_shop.faultd.discovery import Discovery, DiscoveryError, ProcessTableDiscovery, Replica
from sample_shop.faultd.processes import (
    FunctionControl,
    ProcessControl,
    ReplicaProcess,
    validate_function_fault,
)
from sample_shop.kit.control import ControlError
from sample_shop.kit.faultspec import (
    PROCESS_KINDS,
    TTL_RANGE_S,
    Fault,
    FaultSpecError,
    new_fault_id,
    validate_fault_spec,
)
from sample_shop.kit.policy import validate_policy_override
from sample_shop.topology import SERVICES

log = logging.getLogger("sample_shop.faultd")

RECONCILE_S = 0.5
PUSH_TIMEOUT_S = 2.0
LIST_TIMEOUT_S = 1.0
MAX_PAUSE_S = 600.0  # the supervisor's bound on a pause


@dataclass
class PushResult:
    service: str
    replica: int
    applied: bool
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "replica": self.replica,
            "applied": self.applied,
            "error": self.error,
        }


class FaultController:
    def __init__(
        self,
        discovery: Discovery,
        token: str,
        processes: ProcessControl | None = None,
        *,
        clock: Callable[[], float] = time.time,
        reconcile_s: float = RECONCILE_S,
        functions: FunctionControl | None = None,
    ) -> None:
        self.discovery = discovery
        self.processes = processes  # the local supervisor's process table; None on kind
        self.functions = functions  # the local supervisor's function runners; None on kind
        self.clock = clock
        self.reconcile_s = reconcile_s
        self.desired = DesiredState()
        self._http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"}, timeout=PUSH_TIMEOUT_S, trust_env=False
        )
        # (service, replica) -> (incarnation, faults version, policy version) last confirmed by the replica
        self._applied: dict[tuple[str, int], tuple[str, str, str]] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_discovery_error: str | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the reconcile loop on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="faultd-reconcile")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._http.aclose()

    async def run(self) -> None:
        while True:
            try:
                await self.reconcile_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must survive anything, or restarted replicas would miss faults
                log.exception("reconcile pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.reconcile_s)
            self._wake.clear()

    def replica_ready(self, _replica: ReplicaProcess | None = None) -> None:
        """A replica (re)started and answers: reconcile now instead of at the next tick."""
        self._wake.set()

    # ---- discovery -------------------------------------------------------------------------------

    async def _replicas(self) -> list[Replica]:
        try:
            replicas = await self.discovery.replicas()
        except DiscoveryError as exc:
            self.last_discovery_error = str(exc)
            raise ControlError(503, "discovery", str(exc)) from None
        self.last_discovery_error = None
        return replicas

    async def _targets(self, service: str, replica: int | None) -> list[Replica]:
        if service not in SERVICES:
            raise ControlError(404, "service", f"unknown service {service!r}; valid: {', '.join(SERVICES)}")
        of_service = sorted(
            (r for r in await self._replicas() if r.service == service), key=lambda r: r.replica
        )
        if not of_service:
            raise ControlError(
                409, "service", f"no replica of {service} is known to the controller ({self.discovery.name})"
            )
        if replica is None:
            return of_service
        chosen = [r for r in of_service if r.replica == replica]
        if not chosen:
            raise ControlError(
                404,
                "replica",
                f"{service} has no replica {replica}; it runs replicas 0 to {of_service[-1].replica}",
            )
        return chosen

    # ---- pushing ---------------------------------------------------------------------------------

    def _lock(self, key: tuple[str, int]) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def _push(self, replica: Replica, force: bool = False) -> PushResult:
        """Make the replica carry its desired faults and policy (computed now, under its lock)."""
        result = PushResult(replica.service, replica.replica, False)
        if not replica.running or not replica.admin_url:
            result.error = f"not running ({replica.state}); applied when it runs again"
            return result
        async with self._lock(replica.key):
            now = self.clock()
            faults = self.desired.faults_for(replica.service, replica.replica, now)
            policy = self.desired.policy_for(replica.service, now)
            want = (replica.incarnation, faults_version(faults), policy_version(policy))
            have = self._applied.get(replica.key)
            if have == want and not force:
                result.applied = True
                return result
            try:
                if have is None or have[0] != want[0] or have[1] != want[1] or force:
                    response = await self._http.put(f"{replica.admin_url}/faults", json=push_body(faults))
                    _check(response, "PUT /faults")
                if have is None or have[0] != want[0] or have[2] != want[2] or force:
                    if policy is None:
                        response = await self._http.delete(f"{replica.admin_url}/policy")
                    else:
                        response = await self._http.put(
                            f"{replica.admin_url}/policy", json=policy.push_body(self.clock())
                        )
                    _check(response, "PUT /policy")
            except (httpx.HTTPError, _PushRefused) as exc:
                self._applied.pop(replica.key, None)
                result.error = (
                    f"{type(exc).__name__}: {exc}" if isinstance(exc, httpx.HTTPError) else str(exc)
                )
                # a replica that is still starting refuses connections: expected, retried next tick
                level = logging.DEBUG if replica.state == "starting" else logging.WARNING
                log.log(level, "push to %s-%d failed: %s", replica.service, replica.replica, result.error)
                return result
            self._applied[replica.key] = want
            result.applied = True
            return result

    async def _push_all(self, replicas: list[Replica], force: bool = False) -> list[PushResult]:
        return list(await asyncio.gather(*(self._push(r, force) for r in replicas)))

    async def reconcile_once(self) -> None:
        self.desired.expire(self.clock())
        try:
            replicas = await self._replicas()
        except ControlError:
            return
        known = {r.key for r in replicas}
        for key in list(self._applied):
            if key not in known:
                del self._applied[key]
        await self._push_all(replicas)

    # ---- faults ----------------------------------------------------------------------------------

    def _function_names(self) -> list[str]:
        return self.functions.function_names() if self.functions is not None else []

    def _unknown(self, service: str) -> ControlError:
        valid = [*SERVICES, *self._function_names()]
        return ControlError(404, "service", f"unknown service {service!r}; valid: {', '.join(valid)}")

    def _inject_function(self, function: str, body: Any) -> dict[str, Any]:
        assert self.functions is not None
        try:
            fault = validate_function_fault(function, body)
        except ValueError as exc:
            field, _, message = str(exc).partition(": ")
            raise ControlError(422, field, message) from None
        done = self.functions.inject(function, fault)
        log.warning(
            "function fault",
            extra={"fields": {"event": "function_fault", "function": function, "kind": fault.kind}},
        )
        return done

    async def inject(self, service: str, body: Any, replica: int | None = None) -> dict[str, Any]:
        if service in self._function_names():
            return self._inject_function(service, body)
        if service not in SERVICES:
            raise self._unknown(service)
        kind = body.get("kind") if isinstance(body, dict) else None
        if kind == "pause" and isinstance(body, dict):
            _check_pause_ttl(body.get("ttl_s"))
        try:
            spec = validate_fault_spec(body, service, allow_process=True)
        except FaultSpecError as exc:
            raise _spec_error(exc) from None
        targets = await self._targets(service, replica)
        now = self.clock()
        if spec.kind in PROCESS_KINDS:
            return await self._process_fault(service, spec.kind, spec.ttl_s, targets, now)
        fault = Fault(id=new_fault_id(), spec=spec, created_at=now, expires_at=now + spec.ttl_s)
        entry = self.desired.add_fault(service, replica, fault)
        results = await self._push_all(targets)
        log.warning(
            "fault injected",
            extra={
                "fields": {
                    "event": "fault_injected",
                    "service": service,
                    "replica": replica,
                    **fault.to_dict(),
                }
            },
        )
        return {
            "fault": entry.to_dict(self.clock()),
            "service": service,
            "replicas": [r.to_dict() for r in results],
            "applied": sum(r.applied for r in results),
        }

    async def _process_fault(
        self, service: str, kind: str, ttl_s: float, targets: list[Replica], now: float
    ) -> dict[str, Any]:
        if self.processes is None:
            raise ControlError(
                501,
                "kind",
                f"{kind!r} is a process fault; on {self.discovery.name} it is done by "
                "chaostoolkit-kubernetes (terminate_pods, scale_deployment) in the kind-only experiments, "
                "not by this controller",
            )
        results = []
        for target in targets:
            # a refusal (not running, already paused) is a ControlError: it answers as it is
            if kind == "kill":
                done = await self.processes.kill(service, target.replica)
            elif kind == "pause":
                done = await self.processes.pause(service, target.replica, ttl_s)
            else:
                done = await self.processes.restart(service, target.replica)
            results.append(done.to_dict())
        self.replica_ready()
        log.warning(
            "process fault",
            extra={"fields": {"event": "process_fault", "service": service, "kind": kind, "ttl_s": ttl_s}},
        )
        return {"kind": kind, "service": service, "at": now, "ttl_s": ttl_s, "replicas": results}

    async def clear(self, service: str | None = None, fault_id: str | None = None) -> dict[str, Any]:
        if service is not None and service in self._function_names():
            assert self.functions is not None
            return {
                "cleared": self.functions.clear(service),
                "resumed": [],
                "replicas": [],
                "unconfirmed": [],
            }
        if service is not None and service not in SERVICES:
            raise self._unknown(service)
        functions_cleared = (
            self.functions.clear(None) if self.functions is not None and service is None else []
        )
        removed = self.desired.remove_faults(service, fault_id)
        if fault_id is not None and not removed:
            active = [f.fault.id for f in self.desired.active(self.clock()) if f.service == service]
            raise ControlError(
                404,
                "id",
                f"no active fault {fault_id!r} on {service}"
                + (f"; active: {', '.join(active)}" if active else "; it has none (expired or cleared)"),
            )
        resumed = []
        if self.processes is not None and fault_id is None:
            for paused in self.processes.paused():
                if service is None or paused.service == service:
                    done = self.processes.resume(paused.service, paused.replica)
                    resumed.append(done.to_dict())
        try:
            replicas = await self._replicas()
        except ControlError:
            replicas = []
        targets = [r for r in replicas if service is None or r.service == service]
        # force: the replicas may carry faults this controller does not know (pushed before it restarted)
        results = await self._push_all(targets, force=fault_id is None)
        return {
            "cleared": [f.to_dict(self.clock()) for f in removed] + functions_cleared,
            "resumed": resumed,
            "replicas": [r.to_dict() for r in results],
            "unconfirmed": [r.to_dict() for r in results if not r.applied],
        }

    async def list_faults(self) -> dict[str, Any]:
        """What is active where: each replica's own answer (application faults), the process faults of
        process control (pauses), and desired faults a replica does not carry yet (pending)."""
        now = self.clock()
        self.desired.expire(now)
        replicas = await self._replicas()
        faults: list[dict[str, Any]] = []
        unreachable: list[dict[str, Any]] = []

        async def ask(replica: Replica) -> None:
            if replica.paused_until is not None or replica.state == "paused":
                faults.append(
                    {
                        "service": replica.service,
                        "replica": replica.replica,
                        "kind": "pause",
                        "source": "process",
                        "expires_at": replica.paused_until,
                        "remaining_s": None
                        if replica.paused_until is None
                        else round(max(0.0, replica.paused_until - now), 3),
                    }
                )
                return
            if not replica.running:
                unreachable.append(
                    {
                        "service": replica.service,
                        "replica": replica.replica,
                        "error": f"not running ({replica.state})",
                    }
                )
                return
            try:
                response = await self._http.get(f"{replica.admin_url}/faults", timeout=LIST_TIMEOUT_S)
                _check(response, "GET /faults")
                items = response.json().get("faults", [])
            except (httpx.HTTPError, _PushRefused, ValueError) as exc:
                unreachable.append(
                    {"service": replica.service, "replica": replica.replica, "error": str(exc)}
                )
                return
            for item in items:
                faults.append(
                    {"service": replica.service, "replica": replica.replica, "source": "replica", **item}
                )

        await asyncio.gather(*(ask(r) for r in replicas))
        carried = {(f["service"], f["replica"], f.get("id")) for f in faults}
        pending = [
            {"service": r.service, "replica": r.replica, **d.fault.to_dict(now)}
            for d in self.desired.active(now)
            for r in replicas
            if d.applies_to(r.service, r.replica) and (r.service, r.replica, d.fault.id) not in carried
        ]
        if self.functions is not None:
            faults += [{"replica": None, "source": "function", **f} for f in self.functions.active()]
        order = {name: i for i, name in enumerate(SERVICES)}
        faults.sort(
            key=lambda f: (order.get(f["service"], 99), f["replica"] or 0, str(f.get("created_at") or ""))
        )
        return {
            "faults": faults,
            "pending": pending,
            "unreachable": unreachable,
            "desired": [d.to_dict(now) for d in self.desired.active(now)],
            "policies": self._policies(now),
            "discovery": self.discovery.name,
        }

    # ---- client policy ---------------------------------------------------------------------------

    async def set_policy(self, service: str, body: Any) -> dict[str, Any]:
        if service not in SERVICES:
            raise ControlError(404, "service", f"unknown service {service!r}; valid: {', '.join(SERVICES)}")
        if not SERVICES[service].depends_on:
            raise ControlError(
                422,
                "service",
                f"{service} calls no other service, so it has no client policy; services with one: "
                + ", ".join(s for s, spec in SERVICES.items() if spec.depends_on),
            )
        policy, ttl_s, errors = validate_policy_override(body)
        if policy is None:
            first, *rest = errors
            raise ControlError(
                422, first["field"], first["message"], [(e["field"], e["message"]) for e in rest]
            )
        targets = await self._targets(service, None)
        now = self.clock()
        kept = {k: v for k, v in body.items() if k in ("profile", "overrides")}
        self.desired.set_policy(service, kept, policy, now + ttl_s)
        results = await self._push_all(targets)
        return {
            "service": service,
            "policy": policy.to_dict(),
            "expires_at": now + ttl_s,
            "replicas": [r.to_dict() for r in results],
            "applied": sum(r.applied for r in results),
        }

    async def clear_policy(self, service: str | None = None) -> dict[str, Any]:
        if service is not None and service not in SERVICES:
            raise ControlError(404, "service", f"unknown service {service!r}; valid: {', '.join(SERVICES)}")
        removed = self.desired.remove_policy(service)
        try:
            replicas = await self._replicas()
        except ControlError:
            replicas = []
        targets = [
            r
            for r in replicas
            if (service is None or r.service == service) and SERVICES[r.service].depends_on
        ]
        results = await self._push_all(targets, force=True)
        return {
            "reset": removed,
            "replicas": [r.to_dict() for r in results],
            "unconfirmed": [r.to_dict() for r in results if not r.applied],
        }

    def _policies(self, now: float) -> list[dict[str, Any]]:
        return [
            {
                "service": p.service,
                **p.body,
                "expires_at": p.expires_at,
                "remaining_s": round(max(0.0, p.expires_at - now), 3),
            }
            for p in self.desired.policies.values()
            if p.expires_at > now
        ]

    async def list_policies(self) -> dict[str, Any]:
        now = self.clock()
        self.desired.expire(now)
        return {"policies": self._policies(now)}


class _PushRefused(Exception):
    pass


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 300:
        try:
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in response.json()["errors"])
        except (ValueError, KeyError, TypeError):
            detail = response.text[:200]
        raise _PushRefused(f"{what} answered {response.status_code}: {detail}")


def _check_pause_ttl(ttl: Any) -> None:
    ok = isinstance(ttl, int | float) and not isinstance(ttl, bool) and TTL_RANGE_S[0] <= ttl <= MAX_PAUSE_S
    if not ok:
        raise ControlError(
            422,
            "ttl_s",
            f"a pause needs ttl_s: the seconds the process stays stopped, between {TTL_RANGE_S[0]} and "
            f"{MAX_PAUSE_S:g} (got {ttl!r})",
        )


def _spec_error(exc: FaultSpecError) -> ControlError:
    first, *rest = exc.errors
    status = 404 if first.field == "service" else 422
    return ControlError(status, first.field, first.message, [(e.field, e.message) for e in rest])


def local_controller(
    processes: ProcessControl, token: str, functions: FunctionControl | None = None
) -> FaultController:
    """The controller of a local stack, on the running event loop: it finds the replicas in the supervisor's
    process table, does process faults through it, and re-applies faults as soon as the table reports a
    (re)started replica ready."""
    controller = FaultController(ProcessTableDiscovery(processes), token, processes, functions=functions)
    controller.start()
    processes.add_ready_listener(controller.replica_ready)
    return controller
