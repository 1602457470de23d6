"""The phase schedule, phase boundaries and the overhead arithmetic (pure)."""

from __future__ import annotations

import pytest

from sample_shop.basics import parse_iso, utc_iso
from testbed.experiment.schedule import (
    END_ALLOWANCE_S,
    SLACK_SHARE,
    START_ALLOWANCE_S,
    check_phases,
    hard_timeout_s,
    overhead_s,
    phases_from_gauge,
    phases_from_journal,
    plan_phases,
    position,
)
from testbed.runfolder import Phase

DURATIONS = {"warmup": 15.0, "baseline": 20.0, "fault": 45.0, "recovery": 15.0}


def test_plan_keeps_the_experiments_durations_in_phase_order() -> None:
    plan = plan_phases({"recovery": 15.0, "fault": 45.0, "warmup": 15.0, "baseline": 20.0}, {})
    assert [name for name, _ in plan.durations] == ["warmup", "baseline", "fault", "recovery"]
    assert plan.total_s == 95.0
    assert plan.config_values() == {"warmup_s": 15.0, "baseline_s": 20.0, "fault_s": 45.0, "recovery_s": 15.0}


def test_overrides_replace_only_the_phases_given() -> None:
    plan = plan_phases(DURATIONS, {"baseline": 30.0, "fault": None})
    assert plan.seconds("baseline") == 30.0
    assert plan.seconds("fault") == 45.0
    assert plan.total_s == 105.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"fault": 0.0}, "the fault phase must last more than 0 s"), ({"soak": 3.0}, "unknown phase(s) soak")],
)
def test_bad_overrides_are_refused_by_name(overrides: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_phases(DURATIONS, overrides)


def test_hard_timeout_allows_start_end_and_a_share_of_the_phases() -> None:
    plan = plan_phases(DURATIONS, {})
    assert hard_timeout_s(plan) == pytest.approx(95 + START_ALLOWANCE_S + END_ALLOWANCE_S + SLACK_SHARE * 95)


def test_overhead_is_wall_time_minus_the_configured_phases() -> None:
    plan = plan_phases(DURATIONS, {"warmup": 5.0, "baseline": 10.0, "fault": 15.0, "recovery": 10.0})
    assert overhead_s(52.5, plan) == pytest.approx(12.5)
    assert overhead_s(40.0, plan) == 0.0


def test_position_counts_down_the_phase_and_the_run() -> None:
    plan = plan_phases(DURATIONS, {})
    pos = position(plan, "fault", phase_started=1000.0, now=1010.0)
    assert (pos.index, pos.count, pos.next_phase) == (3, 4, "recovery")
    assert pos.left_s == pytest.approx(35.0)
    assert pos.run_left_s == pytest.approx(50.0)  # 35 s of fault + 15 s of recovery
    late = position(plan, "recovery", phase_started=1000.0, now=1100.0)
    assert late.left_s == 0.0 and late.next_phase is None
    assert position(plan, None, None, 5.0).phase is None


def _journal(phases: list[dict[str, object]]) -> dict[str, object]:
    return {"extensions": [{"name": "other"}, {"name": "chaosshop", "phases": phases}]}


def test_phases_from_the_journal_with_an_open_phase_ended_at_the_fallback() -> None:
    t0 = 1_800_000_000.0
    journal = _journal(
        [
            {"name": "warmup", "start": utc_iso(t0), "end": utc_iso(t0 + 5)},
            {"name": "baseline", "start": utc_iso(t0 + 5), "end": utc_iso(t0 + 15)},
            {"name": "bogus", "start": utc_iso(t0 + 15), "end": utc_iso(t0 + 16)},
            {"name": "fault", "start": utc_iso(t0 + 15), "end": None},
        ]
    )
    phases = phases_from_journal(journal, fallback_end=t0 + 20)
    assert [(p.name, p.start - t0, p.end - t0) for p in phases] == [
        ("warmup", 0.0, 5.0),
        ("baseline", 5.0, 15.0),
        ("fault", 15.0, 20.0),
    ]
    assert phases_from_journal({"run": []}, fallback_end=t0) == []


def test_phases_from_the_gauge_take_the_first_one_and_the_first_zero_after_it() -> None:
    series = [
        ({"phase": "baseline"}, [10.0, 11.0, 12.0, 13.0, 14.0], [0.0, 1.0, 1.0, 0.0, 0.0]),
        ({"phase": "fault"}, [10.0, 13.0, 14.0, 15.0], [0.0, 1.0, 1.0, 1.0]),
        ({"phase": "recovery"}, [10.0, 11.0], [0.0, 0.0]),
        ({"phase": "nonsense"}, [10.0], [1.0]),
    ]
    phases = phases_from_gauge(series, not_before=0.0)
    assert [(p.name, p.start, p.end) for p in phases] == [("baseline", 11.0, 13.0), ("fault", 13.0, 15.0)]


def test_phases_from_the_gauge_ignore_phases_that_started_before_this_run() -> None:
    """The collected samples reach one staleness lookback before the run (slo.collect): a previous run's
    phases on the same stack, which ended 8 s before this run began, are not this run's phases."""
    previous = [
        ({"phase": "baseline"}, [100.0, 101.0, 130.0, 131.0], [0.0, 1.0, 1.0, 0.0]),
        ({"phase": "fault"}, [130.0, 131.0, 160.0, 161.0], [0.0, 1.0, 1.0, 0.0]),
        ({"phase": "recovery"}, [160.0, 161.0, 190.0, 191.0, 200.0], [0.0, 1.0, 1.0, 0.0, 0.0]),
    ]
    assert phases_from_gauge(previous, not_before=199.0) == []
    # a phase already on when the run began (a stale 1 left by another run) does not count either
    straddling = [({"phase": "warmup"}, [190.0, 195.0, 205.0, 210.0], [1.0, 1.0, 1.0, 0.0])]
    assert phases_from_gauge(straddling, not_before=199.0) == []
    own = [({"phase": "warmup"}, [195.0, 200.0, 205.0, 210.0], [0.0, 1.0, 1.0, 0.0])]
    assert [(p.name, p.start, p.end) for p in phases_from_gauge(own, not_before=199.0)] == [
        ("warmup", 200.0, 210.0)
    ]


def test_check_phases_names_missing_and_overlapping_phases() -> None:
    plan = plan_phases(DURATIONS, {})
    ok = [
        Phase("warmup", 0, 15),
        Phase("baseline", 15, 35),
        Phase("fault", 35, 80),
        Phase("recovery", 80, 95),
    ]
    assert check_phases(ok, plan) == []
    broken = [Phase("warmup", 0, 15), Phase("baseline", 10, 35), Phase("fault", 35, 80)]
    assert check_phases(broken, plan) == [
        "the recovery phase never started",
        "phases warmup and baseline overlap",
    ]


def test_iso_round_trip_keeps_milliseconds() -> None:
    t = 1_800_000_000.123
    assert utc_iso(t) == "2027-01-15T08:00:00.123Z"
    assert parse_iso(utc_iso(t)) == pytest.approx(t, abs=1e-3)
