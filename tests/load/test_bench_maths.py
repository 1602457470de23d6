"""The pure parts of bench/load.py: the measurement window and the 'max sustainable' rule."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.load import P99_LIMIT_MS, LevelResult, max_sustainable, window_stats


def requests(times_s: list[float], latency_ms: float = 10.0, failed: set[int] | None = None) -> pd.DataFrame:
    failed = failed or set()
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime([1_700_000_000 + t for t in times_s], unit="s", utc=True),
            "response_time_ms": [latency_ms] * len(times_s),
            "ok": [i not in failed for i in range(len(times_s))],
        }
    )


def test_window_excludes_the_warm_up_but_counts_its_failures() -> None:
    times = [i * 0.1 for i in range(101)]  # 10 rps for 10 s
    level = window_stats(requests(times, failed={0}), users=3, warmup_s=2.0)
    assert level.rps == pytest.approx(10.0, rel=0.02)
    assert level.requests == 81 and level.failures == 1 and not level.sustainable


def test_window_p99_and_empty_runs() -> None:
    df = requests([i * 0.1 for i in range(200)], latency_ms=5.0)
    df.loc[df.index[-3:], "response_time_ms"] = 900.0  # 3 slow of the 180 in the window: above p99
    level = window_stats(df, users=1, warmup_s=2.0)
    assert level.p99_ms > P99_LIMIT_MS and not level.sustainable
    empty = window_stats(requests([]), users=1, warmup_s=2.0)
    assert empty.requests == 0 and not empty.sustainable  # no data is never a pass


def lv(users: int, rps: float, p99: float = 100.0, failures: int = 0) -> LevelResult:
    return LevelResult(users, rps, p99, failures, requests=100)


def test_max_sustainable_is_the_best_level_before_the_first_failure() -> None:
    assert max_sustainable([lv(1, 10), lv(2, 20), lv(4, 35), lv(8, 30), lv(16, 50, p99=400)]) == lv(4, 35)
    assert max_sustainable([lv(1, 10), lv(2, 20, failures=1), lv(4, 40)]) == lv(1, 10)  # no comeback
    assert max_sustainable([lv(1, 10, p99=P99_LIMIT_MS)]) is None  # the limit itself is not "under"
    assert max_sustainable([]) is None


def test_cpu_per_request_divides_each_process_delta_and_refuses_no_requests() -> None:
    from bench.floor import per_request_ms

    before = {"gateway": 1.0, "catalog": 2.0}
    after = {"gateway": 1.5, "catalog": 2.25, "payment": 0.1}  # payment started in between
    assert per_request_ms(before, after, 250) == pytest.approx(
        {"gateway": 2.0, "catalog": 1.0, "payment": 0.4}
    )
    with pytest.raises(ValueError, match="no requests"):
        per_request_ms(before, after, 0)
