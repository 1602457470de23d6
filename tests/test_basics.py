"""sample_shop.basics: one spelling of times, one duration grammar, atomic writes (pure, no servers)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sample_shop.basics import (
    DurationError,
    format_duration,
    parse_duration,
    parse_iso,
    prom_duration,
    utc_iso,
    write_json_atomic,
    write_text_atomic,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        (90, 90.0),
        (1.5, 1.5),
        ("90s", 90.0),
        ("1.5s", 1.5),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        (" 2M ", 120.0),
    ],
)
def test_parse_duration_accepts_the_one_grammar(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5 minutes", "-5s", "1y", "5m-", True, None, "nan"])
def test_parse_duration_rejects_with_the_accepted_forms(text: object) -> None:
    with pytest.raises(DurationError, match="500ms, 90s, 5m, 1h30m"):
        parse_duration(text)  # type: ignore[arg-type]


def test_parse_duration_bounds() -> None:
    with pytest.raises(DurationError, match="greater than 0"):
        parse_duration("0s")
    assert parse_duration("0", allow_zero=True) == 0.0
    with pytest.raises(DurationError, match="at most 1h"):
        parse_duration("2h", max_s=3600)
    with pytest.raises(DurationError, match="greater than 0"):
        parse_duration(float("inf"))


def test_format_and_prom_duration() -> None:
    assert format_duration(5400) == "1h30m"
    assert format_duration(90) == "1m30s"
    assert format_duration(1.5) == "1.5s"
    assert format_duration(0) == "0s"
    for seconds in (5400, 90, 1.5, 45, 3600 * 26):
        assert parse_duration(format_duration(seconds)) == seconds
    assert prom_duration(3600) == "1h"
    assert prom_duration(120) == "2m"
    assert prom_duration(514) == "514s"
    assert prom_duration(0.5) == "500ms"
    assert prom_duration(86400 * 3) == "3d"
    with pytest.raises(ValueError):
        prom_duration(0)


def test_times_round_trip() -> None:
    assert utc_iso(0) == "1970-01-01T00:00:00.000Z"
    assert utc_iso(1.25, "seconds") == "1970-01-01T00:00:01Z"
    assert parse_iso(utc_iso(1234567.891)) == pytest.approx(1234567.891)
    assert parse_iso("1970-01-01T00:00:10") == 10.0  # naive is UTC
    with pytest.raises(ValueError):
        parse_iso("yesterday")


def test_atomic_writes_leave_no_temporary_file_and_set_the_mode_first(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    write_json_atomic(target, {"b": 1, "a": float("nan")}, sort_keys=True)
    assert json.loads(target.read_text().replace("NaN", "null")) == {"a": None, "b": 1}
    write_text_atomic(target, "secret\n", mode=0o600)
    assert target.read_text() == "secret\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(target.parent) == ["state.json"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_json_atomic(target, {"old": True})
    with pytest.raises(TypeError):
        write_text_atomic(target, 42)  # type: ignore[arg-type]
    assert json.loads(target.read_text()) == {"old": True}
    assert os.listdir(tmp_path) == ["state.json"]
