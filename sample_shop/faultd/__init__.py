"""The fault controller: one fault API for a whole stack (docs/faults.md).

Locally the supervisor mounts its routes on the control API through `create_control_router` (the factory
testbed/runtime/supervisor.py looks for); on kind it runs as its own Deployment, `python -m
sample_shop.faultd`, finding the replicas through the Kubernetes API. Importing this package is cheap (the
CLI imports its client): the server parts are imported by the factory.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_control_router"]


def create_control_router(processes: Any, token: str) -> Any:
    """The /faults and /policy routes (a FastAPI APIRouter) for the local supervisor's control API. Must be
    called on the supervisor's running event loop: it starts the reconcile loop there, and re-applies faults
    as soon as the process table reports a (re)started replica ready."""
    from sample_shop.faultd.api import fault_router
    from sample_shop.faultd.controller import FaultController
    from sample_shop.faultd.discovery import ProcessTableDiscovery

    controller = FaultController(ProcessTableDiscovery(processes), token, processes)
    controller.start()
    processes.add_ready_listener(controller.replica_ready)
    return fault_router(controller, token)
