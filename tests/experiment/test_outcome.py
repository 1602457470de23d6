"""What a run's end means: status from the journal, the hypothesis in numbers, the exit status (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from testbed.experiment.outcome import exit_code, hypothesis_summary, run_status, verdict_line


def _probe(name: str, met: bool) -> dict[str, Any]:
    return {"activity": {"name": name}, "tolerance_met": met}


def _journal(**overrides: Any) -> dict[str, Any]:
    journal: dict[str, Any] = {
        "status": "completed",
        "deviated": False,
        "experiment": {"steady-state-hypothesis": {"title": "checkout answers"}},
        "steady_states": {
            "before": {"steady_state_met": True, "probes": [_probe("healthy", True)]},
            "after": {"steady_state_met": True, "probes": []},
            "during": [
                {"steady_state_met": True, "probes": [_probe("fast", True)]},
                {"steady_state_met": False, "probes": [_probe("fast", False), _probe("healthy", True)]},
                {"steady_state_met": False, "probes": [_probe("fast", False)]},
            ],
        },
        "extensions": [{"name": "chaosshop", "failed_actions": []}],
    }
    journal.update(overrides)
    return journal


@pytest.mark.parametrize(
    ("journal", "kwargs", "status"),
    [
        (_journal(), {}, "completed"),
        (_journal(deviated=True, status="failed"), {}, "deviated"),
        (
            _journal(status="failed", extensions=[{"name": "chaosshop", "failed_actions": ["inject"]}]),
            {},
            "failed",
        ),
        (_journal(status="aborted"), {}, "aborted"),
        (None, {}, "error"),
        (_journal(), {"interrupted": True}, "interrupted"),
        (_journal(), {"timed_out": True, "interrupted": True}, "timeout"),
    ],
)
def test_run_status(journal: dict[str, Any] | None, kwargs: dict[str, bool], status: str) -> None:
    flags = {"interrupted": False, "timed_out": False, **kwargs}
    assert run_status(journal, 1, **flags)[0] == status


def test_a_steady_state_broken_before_the_method_is_a_failure_naming_the_probe() -> None:
    journal = _journal()
    journal["steady_states"]["before"] = {
        "steady_state_met": False,
        "probes": [_probe("stack-healthy", False)],
    }
    status, why = run_status(journal, 0, interrupted=False, timed_out=False)
    assert status == "failed"
    assert "stack-healthy" in why and "no fault was injected" in why


def test_hypothesis_summary_counts_the_continuous_checks() -> None:
    summary = hypothesis_summary(_journal())
    assert summary["title"] == "checkout answers"
    assert (summary["before"], summary["after"]) == (True, True)
    assert (summary["during_checks"], summary["during_deviations"]) == (3, 2)
    assert summary["failing_probes"] == {"fast": 2}
    assert hypothesis_summary(None) == {}


@pytest.mark.parametrize(
    ("status", "gate", "code"),
    [
        ("completed", 0, 0),
        ("completed", 1, 1),
        ("deviated", 0, 0),  # a deviated hypothesis is a finding; the gate decides
        ("deviated", 2, 2),
        ("completed", None, 2),  # no gate report: cannot judge
        ("failed", 0, 2),  # the run did not happen as planned: never a pass
        ("timeout", 0, 2),
        ("error", 1, 2),
        ("interrupted", 0, 130),
    ],
)
def test_exit_code(status: str, gate: int | None, code: int) -> None:
    assert exit_code(status, gate) == code


def test_verdict_line_puts_cannot_judge_first_when_the_run_failed() -> None:
    assert verdict_line("completed", "", "met", "all 16 SLOs met") == "SLOs met: all 16 SLOs met"
    line = verdict_line("failed", "action(s) failed: inject", "met", "")
    assert line.startswith("cannot judge: action(s) failed: inject") and "SLOs met" in line
