"""The result files of one load run, their columns, and how to write and read them.

A result folder (standalone `testbed load --out DIR`, or `runs/<id>/load/` inside an experiment run):

    stats.csv            Locust's per-endpoint statistics (final)
    stats_history.csv    Locust's statistics every second, one row per endpoint plus "Aggregated"
    failures.csv         Locust's failures grouped by endpoint and error
    exceptions.csv       exceptions raised inside journeys (a journey bug, should stay empty)
    requests.parquet     one row per request, columns REQUEST_COLUMNS below
    summary.json         totals, percentiles, achieved rps, profile and parameters (`summarize`)
    progress.jsonl       the runner's progress events (one JSON object per line)
    locust.log           the load process's log

`summarize` is pure (a DataFrame in, a dict out); the writer and readers do the file I/O."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas and pyarrow are imported when used: `testbed` starts faster without them
    import pandas as pd
    import pyarrow as pa

STATS_CSV = "stats.csv"
STATS_HISTORY_CSV = "stats_history.csv"
FAILURES_CSV = "failures.csv"
EXCEPTIONS_CSV = "exceptions.csv"
REQUESTS_PARQUET = "requests.parquet"
SUMMARY_JSON = "summary.json"
PROGRESS_JSONL = "progress.jsonl"
LOG_FILE = "locust.log"
LOCUST_CSV_PREFIX = "locust"  # Locust writes locust_stats.csv ...; renamed to the names above at the end

SUMMARY_SCHEMA_VERSION = 1

# The per-request time series. Order and types are part of the contract (docs/load.md).
# (name, Arrow type, nullable, meaning)
REQUEST_FIELDS: tuple[tuple[str, str, bool, str], ...] = (
    ("timestamp", "timestamp[ms, tz=UTC]", False, "when the request started"),
    ("name", "string", False, "route template, e.g. /api/products/{product_id}"),
    ("method", "string", False, "GET, POST, DELETE"),
    ("journey", "string", False, "the user journey that made the request"),
    ("response_time_ms", "double", False, "latency as seen by the client"),
    (
        "status_code",
        "int32",
        False,
        "HTTP status; 0 when there was no HTTP response (connect error, timeout)",
    ),
    ("ok", "bool", False, "counted as a success (status and body checked)"),
    ("exception", "string", True, "why it failed; null when ok"),
    ("response_length", "int64", False, "body bytes"),
    ("users", "int32", False, "simulated users running at that moment"),
)
REQUEST_COLUMNS: tuple[str, ...] = tuple(f[0] for f in REQUEST_FIELDS)


@functools.cache
def request_schema() -> pa.Schema:
    import pyarrow as pa

    types = {
        "timestamp[ms, tz=UTC]": pa.timestamp("ms", tz="UTC"),
        "string": pa.string(),
        "double": pa.float64(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "bool": pa.bool_(),
    }
    return pa.schema([pa.field(name, types[kind], nullable=null) for name, kind, null, _ in REQUEST_FIELDS])


SUMMARY_PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 0.50),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
)


class RequestRecorder:
    """Collects one row per request and appends them to requests.parquet in row groups, so memory stays
    bounded on a soak and a killed process keeps what it flushed."""

    def __init__(self, path: Path, flush_rows: int = 20_000) -> None:
        self.path = path
        self.flush_rows = flush_rows
        self.rows_written = 0
        self._columns: dict[str, list[Any]] = {name: [] for name in REQUEST_COLUMNS}
        import pyarrow.parquet as pq

        self._schema = request_schema()
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(str(path), self._schema)

    def __len__(self) -> int:
        return len(self._columns["name"])

    def add(
        self,
        *,
        start_time_s: float,
        name: str,
        method: str,
        journey: str,
        response_time_ms: float,
        status_code: int,
        exception: str | None,
        response_length: int,
        users: int,
    ) -> None:
        cols = self._columns
        cols["timestamp"].append(int(start_time_s * 1000))
        cols["name"].append(name)
        cols["method"].append(method)
        cols["journey"].append(journey)
        cols["response_time_ms"].append(float(response_time_ms))
        cols["status_code"].append(int(status_code))
        cols["ok"].append(exception is None)
        cols["exception"].append(exception)
        cols["response_length"].append(int(response_length or 0))
        cols["users"].append(int(users))
        if len(self) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if self._writer is None or not len(self):
            return
        import pyarrow as pa

        schema = self._schema
        batch = pa.record_batch([pa.array(self._columns[f.name], f.type) for f in schema], schema)
        self._writer.write_batch(batch)
        self.rows_written += batch.num_rows
        for values in self._columns.values():
            values.clear()

    def close(self) -> None:
        if self._writer is None:
            return
        self.flush()
        self._writer.close()
        self._writer = None


def _ms(value: float) -> float:
    return round(float(value), 3)


def summarize(
    requests: pd.DataFrame,
    *,
    params: Mapping[str, Any],
    host: str,
    started: str,
    ended: str,
    wall_s: float,
    exit_reason: str,
    peak_users: int,
) -> dict[str, Any]:
    """The summary of one run, computed from its per-request rows (requests.parquet).

    `rps` is achieved requests per second over the wall time of the run (`wall_s`); percentiles are
    over every request (failed ones included - a timeout is the slowest answer of all)."""
    missing = [c for c in ("name", "method", "response_time_ms", "ok", "exception") if c not in requests]
    if missing:
        raise ValueError(f"request rows lack columns {missing}")
    total = len(requests)
    failures = int((~requests["ok"]).sum()) if total else 0
    times = requests["response_time_ms"]

    def latency(series: pd.Series) -> dict[str, float | None]:
        if series.empty:
            return {key: None for key, _ in SUMMARY_PERCENTILES} | {"mean": None, "max": None}
        out: dict[str, float | None] = {key: _ms(series.quantile(q)) for key, q in SUMMARY_PERCENTILES}
        out["mean"] = _ms(series.mean())
        out["max"] = _ms(series.max())
        return out

    by_name = []
    if total:
        for (name, method), group in requests.groupby(["name", "method"], sort=True):
            n_fail = int((~group["ok"]).sum())
            by_name.append(
                {
                    "name": name,
                    "method": method,
                    "requests": len(group),
                    "failures": n_fail,
                    "rps": round(len(group) / wall_s, 3) if wall_s > 0 else None,
                    "latency_ms": latency(group["response_time_ms"]),
                }
            )
    errors = []
    if failures:
        failed = requests[~requests["ok"]]
        counts = failed.groupby(["name", "method", "exception"], sort=False).size()
        for (name, method, error), count in counts.sort_values(ascending=False).head(20).items():
            errors.append({"name": name, "method": method, "error": error, "count": int(count)})
    return {
        "schema": SUMMARY_SCHEMA_VERSION,
        "profile": params.get("profile"),
        "params": dict(params),
        "host": host,
        "started": started,
        "ended": ended,
        "wall_s": round(wall_s, 3),
        "exit_reason": exit_reason,
        "requests": total,
        "failures": failures,
        "failure_ratio": round(failures / total, 6) if total else None,
        "rps": round(total / wall_s, 3) if wall_s > 0 else None,
        "peak_users": peak_users,
        "latency_ms": latency(times),
        "by_name": by_name,
        "errors": errors,
    }


# ----------------------------------------------------------------------------------------------------
# Readers (for the collector, the report, notebooks and tests)
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResults:
    folder: Path
    summary: dict[str, Any]
    requests: pd.DataFrame


def read_requests(folder: Path | str) -> pd.DataFrame:
    path = Path(folder) / REQUESTS_PARQUET
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: not a load result folder, or the run did not start")
    import pyarrow.parquet as pq

    return pq.read_table(path, schema=request_schema()).to_pandas()


def read_summary(folder: Path | str) -> dict[str, Any]:
    path = Path(folder) / SUMMARY_JSON
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: the load run has not finished (or was killed)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON (line {exc.lineno}): {exc.msg}") from exc
    if not isinstance(data, dict) or data.get("schema") != SUMMARY_SCHEMA_VERSION:
        raise ValueError(f"{path}: not a load summary of schema {SUMMARY_SCHEMA_VERSION}")
    return data


def read_results(folder: Path | str) -> LoadResults:
    return LoadResults(Path(folder), read_summary(folder), read_requests(folder))


def default_out_dir(profile: str, now: datetime | None = None) -> Path:
    """load-results/<UTC time>-<profile>/ in the current folder (experiments pass runs/<id>/load/)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path("load-results") / f"{stamp}-{profile}"
