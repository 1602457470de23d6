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
