"""`--replicas`, `--resilience`, `--telemetry`, `--timeout` validation (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sample_shop.topology import MAX_REPLICAS, SERVICE_NAMES
from testbed.runtime import get_target
from testbed.runtime.base import InputError, RuntimeFailure, Target
from testbed.runtime.options import format_replicas, make_options, parse_replicas


def test_default_is_one_replica_of_every_service() -> None:
    assert parse_replicas(None) == dict.fromkeys(SERVICE_NAMES, 1)


def test_pairs_override_the_default_and_tolerate_spaces() -> None:
    counts = parse_replicas(" catalog=2 , payment = 3")
    assert counts["catalog"] == 2 and counts["payment"] == 3 and counts["gateway"] == 1
    assert format_replicas(counts) == "catalog=2,payment=3"
    assert parse_replicas(format_replicas(counts)) == counts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("catalgo=2", "unknown service 'catalgo'; valid services: gateway, users, catalog"),
        ("catalog=0", f"out of range; allowed 1 to {MAX_REPLICAS}"),
        (f"catalog={MAX_REPLICAS + 1}", f"out of range; allowed 1 to {MAX_REPLICAS}"),
        ("catalog=two", "the count must be a whole number"),
        ("catalog", "expected SERVICE=COUNT"),
        ("catalog=2,,payment=2", "--replicas item 2 (''): expected SERVICE=COUNT"),
        ("catalog=2,catalog=3", "catalog is given twice"),
        ("  ", "--replicas is empty"),
    ],
)
def test_bad_replicas_say_what_and_where(text: str, expected: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_replicas(text)
    assert expected in str(caught.value)


def test_other_options_are_checked() -> None:
    with pytest.raises(
        InputError, match="--resilience 'fragile' is not valid; choose one of resilient, naive"
    ):
        make_options(resilience="fragile")
    with pytest.raises(InputError, match="--telemetry 'maybe'"):
        make_options(telemetry="maybe")
    with pytest.raises(InputError, match="--timeout 0 is out of range"):
        make_options(timeout_s=0)
    options = make_options("catalog=2", "naive", "off", 30, extras=False)
    assert (options.replicas["catalog"], options.resilience, options.telemetry, options.extras) == (
        2,
        "naive",
        "off",
        False,
    )


def test_targets_are_chosen_by_name(tmp_path: Path) -> None:
    local = get_target("local", tmp_path)
    assert isinstance(local, Target) and local.name == "local"
    with pytest.raises(RuntimeFailure, match="unknown target 'docker'; choose one of local, kind"):
        get_target("docker", tmp_path)
    kind = get_target("kind", tmp_path)
    assert isinstance(kind, Target) and kind.name == "kind"
