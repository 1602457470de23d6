"""Process control: what a runtime that owns the replicas' processes offers the fault controller.

The local supervisor's process table (testbed/runtime/processes.py) implements `ProcessControl`; on kind
there is none (process faults are chaostoolkit-kubernetes' there). The types live here, beside their one
consumer, so the shop never imports the testbed: the testbed imports them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol


@dataclass
class ReplicaProcess:
    """A replica as the process table exposes it to the control API and to the fault controller."""

    service: str
    replica: int
    port: int
    admin_port: int
    url: str
    admin_url: str
    pid: int | None
    state: str
    restarts: int
    started_at: float | None  # unix time of the last (re)start
    paused_until: float | None = None
    exit_code: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ReplicaListener = Callable[[ReplicaProcess], Awaitable[None] | None]


class ProcessControl(Protocol):
    """Kill, pause, resume and restart replicas. A refused operation raises
    `sample_shop.kit.control.ControlError` (the supervisor's ProcessError is one)."""

    def replicas(self, service: str | None = None) -> list[ReplicaProcess]: ...

    def paused(self) -> list[ReplicaProcess]: ...

    async def kill(self, service: str, replica: int) -> ReplicaProcess: ...

    async def pause(self, service: str, replica: int, seconds: float) -> ReplicaProcess: ...

    def resume(self, service: str, replica: int) -> ReplicaProcess: ...

    async def restart(self, service: str, replica: int) -> ReplicaProcess: ...

    def add_ready_listener(self, listener: ReplicaListener) -> None:
        """`listener(replica)` runs each time a replica (re)started and answers /healthz (re-apply faults)."""
        ...


# Faults of a function (a consumer run on demand, such as notifications: docs/shop.md, "The asynchronous
# path"). The local supervisor's function runner implements FunctionControl; `spec` is what
# `validate_function_fault` returned.
FUNCTION_FAULT_KINDS: dict[str, str] = {
    "kill": "SIGKILL one running instance of the function (the runner starts another while events wait)",
    "down": "keep the function at zero instances for ttl_s seconds (every instance is killed); events wait",
    "smtp-latency": "the SMTP server answers every message params.ms late for ttl_s seconds",
}
MAX_FUNCTION_FAULT_S = 600.0
MAX_SMTP_LATENCY_MS = 120_000


@dataclass(frozen=True)
class FunctionFault:
    kind: str
    ttl_s: float
    ms: int | None = None


def validate_function_fault(function: str, body: Any) -> FunctionFault:
    """`{"kind", "params"?, "ttl_s"?}` for a function; ValueError naming the field otherwise."""
    if not isinstance(body, dict):
        raise ValueError('body: send a JSON object such as {"kind": "down", "ttl_s": 30}')
    unknown = sorted(set(body) - {"kind", "params", "ttl_s"})
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field; a function fault has kind, params, ttl_s")
    kind = body.get("kind")
    if kind not in FUNCTION_FAULT_KINDS:
        raise ValueError(
            f"kind: {kind!r} is not a fault of function {function}; one of {', '.join(FUNCTION_FAULT_KINDS)}"
        )
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError("params: must be an object")
    ttl = body.get("ttl_s", 30 if kind != "kill" else 0)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise ValueError(f"ttl_s: must be a number of seconds, got {ttl!r}")
    if kind != "kill" and not 0 < ttl <= MAX_FUNCTION_FAULT_S:
        raise ValueError(f"ttl_s: must be in (0, {MAX_FUNCTION_FAULT_S:g}] seconds, got {ttl!r}")
    allowed = {"ms"} if kind == "smtp-latency" else set()
    extra = sorted(set(params) - allowed)
    if extra:
        raise ValueError(f"params.{extra[0]}: {kind} takes " + (", ".join(sorted(allowed)) or "no params"))
    ms = None
    if kind == "smtp-latency":
        ms = params.get("ms")
        if isinstance(ms, bool) or not isinstance(ms, int) or not 1 <= ms <= MAX_SMTP_LATENCY_MS:
            raise ValueError(
                f"params.ms: a whole number of milliseconds in [1, {MAX_SMTP_LATENCY_MS}], got {ms!r}"
            )
    return FunctionFault(kind, float(ttl), ms)


class FunctionControl(Protocol):
    """The functions of a stack and their faults. A refused operation raises ControlError."""

    def function_names(self) -> list[str]: ...

    def inject(self, function: str, fault: FunctionFault) -> dict[str, Any]: ...

    def clear(self, function: str | None) -> list[dict[str, Any]]: ...

    def active(self) -> list[dict[str, Any]]: ...
