"""The local supervisor's own route on the control API: GET /processes (every replica and the other
processes of the stack, as `testbed status` shows them). The control API itself is the fault controller's
(`sample_shop.faultd.api.create_control_app`), which serves this router behind its token check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from sample_shop.faultd.processes import ProcessControl
from testbed.runtime.base import ProcessInfo


def process_router(processes: ProcessControl, others: Callable[[], list[ProcessInfo]]) -> APIRouter:
    router = APIRouter()

    @router.get("/processes")
    async def list_processes() -> dict[str, Any]:
        return {
            "processes": [r.to_dict() for r in processes.replicas()],
            "others": [p.to_dict() for p in others()],
        }

    return router
