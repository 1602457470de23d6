"""The orchestrator's last line of defence, after `chaos run` has ended however it ended: clear every fault
and client-policy override through the control API, and stop the background load. Each step is tried even
when another fails, and nothing here raises: what failed is reported (faults still end at their TTL, the
load at its own deadline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from load.control import LoadError, current_load, stop_load
from sample_shop.faultd.client import ControlApiError, ControlClient
from sample_shop.topology import StackDescriptor

CLEAR_TIMEOUT_S = 20.0


def clear_everything(stack: StackDescriptor, state_dir: Path) -> dict[str, Any]:
    """Faults cleared (pauses resumed), policies reset, load stopped; returns what happened."""
    report: dict[str, Any] = {}
    try:
        with ControlClient(stack, timeout_s=CLEAR_TIMEOUT_S) as api:
            cleared = api.clear()
            report["faults_cleared"] = len(cleared.get("cleared", [])) + len(cleared.get("resumed", []))
            if cleared.get("unconfirmed"):
                report["unconfirmed"] = cleared["unconfirmed"]
            report["policies_reset"] = len(api.reset_policy().get("reset", []))
    except (ControlApiError, OSError) as exc:
        report["control_error"] = f"{exc} (faults end at their TTL by themselves)"
    try:
        handle = current_load(state_dir)
        if handle is None:
            report["load"] = "not running"
        else:
            summary = stop_load(handle, state_dir=state_dir) or {}
            report["load"] = f"stopped (pid {handle.pid}, {summary.get('requests', '?')} requests)"
            report["load_out_dir"] = handle.out_dir
    except (LoadError, OSError) as exc:
        report["load_error"] = str(exc)
    return report
