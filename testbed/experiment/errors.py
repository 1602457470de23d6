"""The one error of the orchestrator before a run folder exists (exit 2)."""

from __future__ import annotations

from typing import Any

from testbed.experiment.outcome import EXIT_CANNOT_JUDGE


class ExperimentError(RuntimeError):
    """The experiment could not start. `kind`: input (bad name, file or option), busy (another experiment
    holds the lock), stack (the stack could not start or is unhealthy). `hint` says how to fix it; `detail`
    holds a log tail."""

    def __init__(self, kind: str, message: str, hint: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.kind, self.message, self.hint, self.detail = kind, message, hint, detail

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "refused" if self.kind == "busy" else "error",
            "kind": self.kind,
            "error": self.message,
            "hint": self.hint,
            "detail": self.detail,
            "exit_code": EXIT_CANNOT_JUDGE,
        }
