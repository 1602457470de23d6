"""The runtime target interface: how the testbed brings a stack up, describes it and disturbs its processes.

A target (local processes now; kind later) is chosen once, at the edge, and describes the running stack in
`<state>/stack.json` (`topology.StackDescriptor`). Everything below the edge reads the descriptor and never
asks which target it runs on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from sample_shop.topology import SERVICE_NAMES, StackDescriptor

Resilience = Literal["resilient", "naive"]
Telemetry = Literal["on", "off"]
RESILIENCE_PROFILES: tuple[str, ...] = ("resilient", "naive")
TELEMETRY_MODES: tuple[str, ...] = ("on", "off")

# What a replica can be doing, as the supervisor sees it.
ProcessState = Literal["starting", "running", "paused", "backoff", "stopping", "stopped", "failed"]


class RuntimeFailure(Exception):
    """The stack could not be brought up, inspected or stopped. `hint` says how to fix it; `log_tail` holds
    the last lines of the log of the process at fault, when there is one."""

    def __init__(self, message: str, *, hint: str = "", log_tail: str = "", log_path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.log_tail = log_tail
        self.log_path = log_path

    def to_dict(self) -> dict[str, str]:
        return {"error": self.message, "hint": self.hint, "log": self.log_path, "log_tail": self.log_tail}


class InputError(ValueError):
    """A user's input is wrong; the message names the input, what is wrong and what is valid."""


@dataclass(frozen=True)
class UpOptions:
    replicas: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SERVICE_NAMES, 1))
    resilience: Resilience = "resilient"
    telemetry: Telemetry = "on"
    timeout_s: float = 60.0
    extras: bool = True  # start Jaeger/Loki/Grafana when their binaries are on PATH
    otlp_endpoint: str | None = None  # every service also sends its traces there (OTLP/HTTP protobuf)
    trace_files: bool = True  # keep writing OTLP-JSON trace files for the run folders (off: endpoint only)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class UpRequest:
    """What the user explicitly asked `up` for (None: not given, the target's or running stack's own)."""

    replicas: str | None = None  # SERVICE=COUNT,...
    resilience: str | None = None
    telemetry: str | None = None
    otlp_endpoint: str | None = None


@dataclass
class ProcessInfo:
    """One process of the stack as `status` shows it."""

    service: str  # a shop service, or "prometheus", "supervisor", "jaeger", "loki", "grafana"
    replica: int | None
    pid: int | None
    port: int | None
    url: str | None
    state: str  # ProcessState for replicas; "running"/"stopped" for the rest
    health: str = "unknown"  # "ready", "not ready (503)", "unreachable", "paused", ...
    healthy: bool = False
    restarts: int = 0
    log: str | None = None
    health_url: str | None = None  # what `health` was probed on
    # memory of the local process in MB: RSS counts shared pages in every process that maps them, PSS
    # splits them between those processes (the honest share; the two sum very differently)
    rss_mb: float | None = None
    pss_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StackStatus:
    running: bool
    target: str
    state_dir: str
    processes: list[ProcessInfo] = field(default_factory=list)
    message: str = ""
    # functions run on demand (testbed/runtime/functions.py): instances, cold starts, backlog of each
    functions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.running and bool(self.processes) and all(p.healthy for p in self.processes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "healthy": self.healthy,
            "target": self.target,
            "state_dir": self.state_dir,
            "message": self.message,
            "processes": [p.to_dict() for p in self.processes],
            "functions": self.functions,
        }


@dataclass
class StartupProgress:
    """What `up` is waiting for; the local supervisor writes it to `<state>/startup.json`."""

    state: Literal["starting", "ready", "failed"]
    message: str = ""
    ready: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    failure: dict[str, str] | None = None  # RuntimeFailure.to_dict()
    # seconds from the supervisor's start: "replicas_ready" (every /readyz 200), "ready" (scraped too)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StartupProgress:
        return cls(
            state=data["state"],
            message=data.get("message", ""),
            ready=list(data.get("ready", [])),
            waiting=list(data.get("waiting", [])),
            failure=data.get("failure"),
            timings=dict(data.get("timings", {})),
        )


ProgressCallback = Callable[[StartupProgress], None]


@runtime_checkable
class Target(Protocol):
    """A place the stack runs. `up` returns when every replica is ready and Prometheus scrapes every one."""

    name: str
    # None: `down` stops the stack; else what `down` leaves running, said to the user (kind: the cluster)
    down_note: str | None

    def check_up_request(self, request: UpRequest) -> None:
        """InputError for the `up` options this target cannot honour, before anything starts."""
        ...

    def running_stack(self, request: UpRequest) -> StackDescriptor | None:
        """The stack already up that satisfies this `up` (nothing to do), or None: `up` must run. InputError
        when one is up with other options than the user explicitly asked for."""
        ...

    def startup_notes(self) -> list[str]:
        """What the user should know about the stack `up` brought up (missing extras, kind's limits)."""
        ...

    def up(self, options: UpOptions, progress: ProgressCallback | None = None) -> StackDescriptor: ...

    def down(self) -> list[str]:
        """Stop everything; return what was stopped (empty when nothing ran). Idempotent."""
        ...

    def status(self) -> StackStatus: ...

    def descriptor(self) -> StackDescriptor:
        """The running stack's descriptor; RuntimeFailure when none runs."""
        ...

    def kill(self, service: str, replica: int) -> dict[str, Any]: ...

    def pause(self, service: str, replica: int, seconds: float) -> dict[str, Any]: ...

    def restart(self, service: str, replica: int) -> dict[str, Any]: ...
