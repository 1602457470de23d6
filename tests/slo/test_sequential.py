"""The sequential rule's pieces: validation, boundaries, latching, events needed and the interval."""

from __future__ import annotations

import math

import pytest

from slo.sequential import (
    NEVER,
    RuleError,
    SequentialJudge,
    bad_rate_interval,
    events_needed,
    first_crossing,
    neutral_rate,
    parse_zone,
    rule_for,
    sli_interval,
)


def test_clean_events_needed_to_meet_follow_from_the_boundaries() -> None:
    """ln(0.05) / ln((1 - 0.02) / (1 - 0.005)) = 198 clean events at 99 %; 38 at 95 %."""
    assert rule_for(0.99).clean_events_to_meet() == 198
    assert rule_for(0.95).clean_events_to_meet() == 38
    assert rule_for(0.99).decide(197, 0) == "inconclusive"
    assert rule_for(0.99).decide(198, 0) == "met"
    assert rule_for(0.99).decide(3, 3) == "breached"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target": 1.0}, "target"),
        ({"target": 0.99, "zone": (2.0, 0.5)}, "zone"),
        ({"target": 0.99, "zone": (0.0, 2.0)}, "zone"),
        ({"target": 0.5, "zone": (0.5, 2.0)}, "zone"),
        ({"target": 0.99, "alpha": 0.5}, "alpha"),
        ({"target": 0.99, "beta": 0.0}, "beta"),
    ],
)
def test_bad_parameters_are_refused_by_name(kwargs: dict, field: str) -> None:
    with pytest.raises(RuleError, match=f"^{field}:"):
        rule_for(**kwargs)


def test_parse_zone() -> None:
    assert parse_zone("0.5, 2") == (0.5, 2.0)
    with pytest.raises(RuleError, match="zone"):
        parse_zone("fast")


def test_the_first_crossing_is_latched() -> None:
    rule = rule_for(0.99)
    # three failures at once breach; the 500 clean events after them cannot undo it
    crossing = first_crossing(rule, [3, 100, 500], [3, 3, 3])
    assert (crossing.decision, crossing.index) == ("breached", 0)
    assert rule.decide(500, 3) == "met"  # the point estimate at the end would have said met
    judge = SequentialJudge(rule)
    assert judge.update(3, 3, at=1.0) == "breached"
    assert judge.update(500, 3, at=9.0) == "breached" and judge.decided_at == 1.0


def test_events_needed() -> None:
    rule = rule_for(0.99)
    assert events_needed(rule, 50, 0) == 148  # 198 clean in all
    assert events_needed(rule, 198, 0) == 0
    assert events_needed(rule, 100, 100 * neutral_rate(rule)) == NEVER
    assert events_needed(rule, 10, 1, rate=0.1) < 20  # drifting fast to breached
    judge = SequentialJudge(rule)
    judge.update(20, 0)
    assert judge.events_needed() == 178


def test_interval_covers_the_estimate_and_narrows() -> None:
    rule = rule_for(0.99)
    assert bad_rate_interval(rule, 0, 0) == (0.0, 1.0)
    low, high = sli_interval(rule, 200, 0)
    assert high == 1.0 and 0.97 < low < 0.99
    wide = sli_interval(rule, 1000, 10)
    narrow = sli_interval(rule, 100_000, 1000)
    assert wide[0] < 0.99 < wide[1]
    assert narrow[0] < 0.99 < narrow[1]
    assert narrow[1] - narrow[0] < (wide[1] - wide[0]) / 5
    assert all(math.isfinite(v) for v in wide)
