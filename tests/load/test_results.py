"""Result files: the summary maths (pure) and the Parquet writer/reader round trip (real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from load.results import (
    REQUEST_COLUMNS,
    REQUESTS_PARQUET,
    SUMMARY_JSON,
    RequestRecorder,
    read_requests,
    read_summary,
    summarize,
)
from sample_shop.basics import write_json_atomic

PARAMS = {"profile": "steady", "users": 2, "duration_s": 10.0, "spawn_rate": 1.0, "think_time_factor": 1.0}


def frame(rows: list[tuple[str, str, float, bool, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["name", "method", "response_time_ms", "ok", "exception"])


def summary_of(df: pd.DataFrame, wall_s: float = 10.0) -> dict:
    return summarize(
        df, params=PARAMS, host="http://127.0.0.1:8080", started="s", ended="e", wall_s=wall_s,
        exit_reason="completed", peak_users=2,
    )  # fmt: skip


def test_summary_counts_rates_and_percentiles() -> None:
    rows = [("/api/products", "GET", float(ms), True, None) for ms in range(1, 101)]
    rows += [("/api/checkout", "POST", 500.0, False, "HTTP 503 payment_unavailable")] * 2
    rows += [("/api/checkout", "POST", 40.0, True, None)] * 8
    s = summary_of(frame(rows))
    assert (s["requests"], s["failures"], s["rps"]) == (110, 2, 11.0)
    assert s["failure_ratio"] == pytest.approx(2 / 110, abs=1e-6)
    products = next(r for r in s["by_name"] if r["name"] == "/api/products")
    assert products["latency_ms"]["p50"] == pytest.approx(50.5)
    assert products["latency_ms"]["p99"] == pytest.approx(99.01)
    assert products["rps"] == 10.0
    checkout = next(r for r in s["by_name"] if r["name"] == "/api/checkout")
    assert (checkout["requests"], checkout["failures"], checkout["latency_ms"]["max"]) == (10, 2, 500.0)
    assert s["errors"] == [
        {"name": "/api/checkout", "method": "POST", "error": "HTTP 503 payment_unavailable", "count": 2}
    ]
    json.dumps(s, allow_nan=False)  # summary.json must be strict JSON


def test_summary_of_no_requests_says_so_instead_of_inventing_numbers() -> None:
    s = summary_of(frame([]))
    assert (s["requests"], s["failures"], s["failure_ratio"], s["rps"]) == (0, 0, None, 0.0)
    assert s["latency_ms"]["p99"] is None and s["by_name"] == [] and s["errors"] == []


def test_summary_rejects_rows_without_the_needed_columns() -> None:
    with pytest.raises(ValueError, match="response_time_ms"):
        summarize(pd.DataFrame({"name": []}), params=PARAMS, host="h", started="s", ended="e",
                  wall_s=1, exit_reason="completed", peak_users=1)  # fmt: skip


def test_recorder_writes_row_groups_that_read_back_with_the_documented_columns(tmp_path: Path) -> None:
    recorder = RequestRecorder(tmp_path / REQUESTS_PARQUET, flush_rows=3)  # forces several row groups
    for i in range(7):
        recorder.add(
            start_time_s=1_700_000_000.0 + i, name="/api/cart", method="GET", journey="view_cart",
            response_time_ms=10.0 + i, status_code=200 if i != 4 else 0,
            exception=None if i != 4 else "no response: ConnectionRefusedError", response_length=42, users=3,
        )  # fmt: skip
    recorder.close()
    df = read_requests(tmp_path)
    assert tuple(df.columns) == REQUEST_COLUMNS
    assert len(df) == 7 and recorder.rows_written == 7
    assert str(df["timestamp"].dtype) == "datetime64[ms, UTC]"
    assert df["timestamp"].iloc[0] == pd.Timestamp(1_700_000_000, unit="s", tz="UTC")
    assert df["ok"].tolist() == [True] * 4 + [False] + [True] * 2
    assert df.loc[4, "status_code"] == 0 and df.loc[4, "exception"].startswith("no response")
    assert df["exception"].isna().sum() == 6


def test_an_empty_run_still_leaves_a_readable_parquet_file(tmp_path: Path) -> None:
    RequestRecorder(tmp_path / REQUESTS_PARQUET).close()
    df = read_requests(tmp_path)
    assert df.empty and tuple(df.columns) == REQUEST_COLUMNS


def test_readers_say_what_is_missing_or_broken(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"requests\.parquet does not exist"):
        read_requests(tmp_path)
    with pytest.raises(FileNotFoundError, match="has not finished"):
        read_summary(tmp_path)
    (tmp_path / SUMMARY_JSON).write_text('{"schema": 1,\n "requests": ')
    with pytest.raises(ValueError, match="line 2"):
        read_summary(tmp_path)
    write_json_atomic(tmp_path / SUMMARY_JSON, {"schema": 99}, allow_nan=False)
    with pytest.raises(ValueError, match="schema 1"):
        read_summary(tmp_path)
