"""What a run's end means, pure: the run's status from the Chaos Toolkit journal and how it ended, the
steady-state hypothesis in numbers, and the exit status.

Exit status: the SLO gate's (0 met, 1 breached, 2 cannot judge) when the experiment ran as planned
(completed, or deviated: the hypothesis not holding is a finding, judged by the gate); 130 when the user
interrupted it; 2 for everything else (an action failed, the steady state did not hold before the method,
chaos aborted or timed out, nothing collected): a run that did not happen as planned is never a pass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from testbed.experiment.schedule import journal_extension

EXIT_MET, EXIT_BREACHED, EXIT_CANNOT_JUDGE, EXIT_INTERRUPTED = 0, 1, 2, 130
JUDGEABLE = ("completed", "deviated")


def run_status(
    journal: Mapping[str, Any] | None, chaos_exit: int | None, *, interrupted: bool, timed_out: bool
) -> tuple[str, str]:
    """(status, why) of a run: completed, deviated, failed, aborted, interrupted, timeout or error."""
    if timed_out:
        return "timeout", "the experiment exceeded its hard timeout and was interrupted (rollbacks played)"
    if interrupted:
        return "interrupted", "interrupted by the user (rollbacks played)"
    if journal is None:
        return "error", f"`chaos run` exited with code {chaos_exit} without writing a journal; see chaos.log"
    ext = journal_extension(journal)
    failed_actions = [str(a) for a in ext.get("failed_actions") or []]
    status = str(journal.get("status", "error"))
    before = (journal.get("steady_states") or {}).get("before") or {}
    if failed_actions:
        return "failed", f"action(s) failed: {', '.join(failed_actions)}; see chaos.log"
    if before and not before.get("steady_state_met", True):
        failing = _failing_probes(before)
        return "failed", (
            "the steady state did not hold before the method ran"
            + (f" ({', '.join(failing)})" if failing else "")
            + ", so no fault was injected; fix the stack (`testbed status`) and run again"
        )
    if journal.get("deviated"):
        return "deviated", "the steady-state hypothesis did not hold (a finding)"
    if status == "completed":
        return "completed", "the experiment ran as planned; the hypothesis held"
    if status in ("aborted", "interrupted"):
        return status, f"chaos ended the run as {status}; see chaos.log"
    return "failed", f"chaos ended the run as {status}; see chaos.log"


def _failing_probes(state: Mapping[str, Any]) -> list[str]:
    return [
        str((p.get("activity") or {}).get("name", "?"))
        for p in state.get("probes") or []
        if isinstance(p, dict) and not p.get("tolerance_met", True)
    ]


def hypothesis_summary(journal: Mapping[str, Any] | None) -> dict[str, Any]:
    """Before / during (how many checks, how many deviated, which probes) / after, from the journal."""
    if journal is None:
        return {}
    states = journal.get("steady_states") or {}
    during = [s for s in states.get("during") or [] if isinstance(s, dict)]
    deviations = [s for s in during if not s.get("steady_state_met", True)]
    failing: dict[str, int] = {}
    for s in deviations:
        for name in _failing_probes(s):
            failing[name] = failing.get(name, 0) + 1

    def met(state: Any) -> bool | None:
        return state.get("steady_state_met") if isinstance(state, dict) else None

    return {
        "title": (journal.get("experiment") or {}).get("steady-state-hypothesis", {}).get("title", ""),
        "before": met(states.get("before")),
        "after": met(states.get("after")),
        "during_checks": len(during),
        "during_deviations": len(deviations),
        "failing_probes": failing,
        "after_failing_probes": _failing_probes(states.get("after") or {}),
        "deviated": bool(journal.get("deviated")),
    }


def exit_code(status: str, gate_exit: int | None) -> int:
    if status == "interrupted":
        return EXIT_INTERRUPTED
    if status in JUDGEABLE and gate_exit is not None:
        return gate_exit
    return EXIT_CANNOT_JUDGE


def verdict_line(status: str, why: str, gate_status: str | None, gate_message: str) -> str:
    """One line a person reads first."""
    gate = {
        "met": "SLOs met",
        "breached": "SLOs BREACHED",
        "nodata": "SLOs cannot be judged (no data)",
        "inconclusive": "SLOs cannot be judged yet (too few events to decide)",
        "unreliable": "SLOs cannot be judged (the machine was saturated: latency unreliable)",
    }
    head = gate.get(gate_status or "", "cannot judge")
    if status not in JUDGEABLE:
        return f"cannot judge: {why}" + (f" (the gate alone says: {head})" if gate_status else "")
    return f"{head}: {gate_message}" if gate_message else head
