"""Planning arithmetic (slo/plan.py): events and seconds to a decision per case, and whether a phase is long
enough; plus `testbed experiment plan`'s input errors (no stack needed for those)."""

from __future__ import annotations

import json
import math

import numpy as np
from typer.testing import CliRunner

from slo.plan import outlooks, plan_json, plan_slo
from slo.sequential import first_crossing, rule_for
from testbed.cli import app


def test_clean_case_is_the_clean_events_to_meet() -> None:
    rule = rule_for(0.99)
    clean, healthy, broken = outlooks(rule, events_per_s=2.0)
    assert (clean.case, clean.decision) == ("clean", "met")
    assert clean.events == rule.clean_events_to_meet()
    assert clean.seconds == clean.events / 2.0
    # at the zone's edges the evidence drifts slower than with no bad event at all
    assert healthy.events > clean.events
    assert (broken.case, broken.decision, broken.burn_rate) == ("broken", "breached", 2.0)
    assert math.isfinite(broken.events)


def test_the_planned_average_matches_simulated_streams() -> None:
    """The planned number is an average (Wald's approximation without overshoot): simulated Bernoulli streams
    at the zone's edges take about that many events to the first crossing, within 25 % either way (the
    approximation leaves out the overshoot and the streams that cross the other boundary)."""
    rng = np.random.default_rng(7)
    rule = rule_for(0.95)
    for o in outlooks(rule, None)[1:]:
        p = o.burn_rate * rule.budget
        lengths = []
        for _ in range(400):
            bad = np.cumsum(rng.random(4000) < p)
            total = np.arange(1, 4001)
            c = first_crossing(rule, total, bad)
            assert c.index is not None
            lengths.append(c.total)
        assert 0.75 * o.events <= np.mean(lengths) <= 1.25 * o.events, (o, np.mean(lengths))


def test_a_phase_decides_in_time_only_when_every_case_fits() -> None:
    rule = rule_for(0.99)
    plan = plan_slo(
        "c",
        "Checkout",
        True,
        rule,
        {"baseline": 20.0, "fault": 600.0},
        {"baseline": 5.0, "fault": 5.0},
        ["baseline", "fault", "recovery"],
    )
    baseline, fault = plan.phases  # recovery is not in the experiment: not planned
    assert not baseline.decides_in_time
    assert fault.decides_in_time
    assert baseline.length_needed_s == max(o.seconds for o in baseline.outlooks)
    assert baseline.events_in_phase == 100.0


def test_no_rate_means_no_seconds_and_never_fits() -> None:
    plan = plan_slo("c", "Checkout", False, rule_for(0.99), {"fault": 30.0}, {"fault": 0.0}, ["fault"])
    (fault,) = plan.phases
    assert all(o.seconds is None for o in fault.outlooks)
    assert not fault.decides_in_time and fault.length_needed_s is None
    doc = plan_json([plan])
    assert doc[0]["phases"][0]["outlooks"][0]["seconds"] is None
    json.dumps(doc)  # no infinities in the JSON


def test_plan_refuses_an_unknown_experiment_naming_the_catalog() -> None:
    result = CliRunner().invoke(app, ["experiment", "plan", "no-such-experiment"])
    assert result.exit_code == 2
    assert "payment-errors" in result.output


def test_plan_refuses_a_missing_run_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        app, ["experiment", "plan", "payment-errors", "--from-run", str(tmp_path / "x"), "--json"]
    )
    assert result.exit_code == 2
    assert json.loads(result.output)["kind"] == "input"


def test_plan_refuses_measure_and_from_run_together(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        app, ["experiment", "plan", "payment-errors", "--measure", "20s", "--from-run", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "not both" in result.output
