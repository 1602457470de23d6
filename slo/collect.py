"""What the experiment collector must store so a run folder alone can be judged, and how it is stored.

The collector (testbed/) calls `queries_for(slos)` for the list of range queries and
`collect_series(prom, queries, start, end)` for the long-format table it writes to
`runs/<id>/metrics/series.parquet`; `read_series(path)` is the matching reader. Because both the live
gate and the run-folder gate range-query the *raw counter selectors* and do the counting with the same
pure function (slo/maths.py `cumulative_events`), they produce the same numbers for the same window.

series.parquet columns: timestamp (datetime64[ns, UTC]), query (str: the NamedQuery name), labels (str:
JSON object of the series' labels, sorted keys), value (float64).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sample_shop import topology
from slo import promql
from slo.errors import SloError
from slo.prom import Prometheus, RawSeries
from slo.promql import ALERT_NAME, RULE_PREFIX
from slo.spec import SLO

if TYPE_CHECKING:  # pandas/pyarrow cost ~0.5 s of import: loaded only when a table is built or read
    import pandas as pd

ALERTS_QUERY_NAME = "slo:alerts"
ALERTS_QUERY = f'ALERTS{{alertname="{ALERT_NAME}", alertstate="firing"}}'
BURN_RATE_QUERY_NAME = f"{RULE_PREFIX}:current_burn_rate:ratio"
SERIES_COLUMNS = ("timestamp", "query", "labels", "value")
LOOKBACK_S = 300.0  # Prometheus' staleness lookback
_SELECTOR = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?$", re.DOTALL)


def is_selector(promql: str) -> bool:
    """A plain vector selector (metric{...}) rather than an expression."""
    return bool(_SELECTOR.match(promql.strip())) and "(" not in promql


@dataclass(frozen=True)
class NamedQuery:
    """A PromQL range query and the name its rows carry in series.parquet."""

    name: str
    promql: str


def selector_query_name(promql: str) -> str:
    """Counter selectors are stored under their own PromQL text: readable and collision-free."""
    return promql


# The measuring instruments the noise guard reads (slo/noise.py): the host's CPU from node_exporter and the
# load generator's own CPU. Stored with every run so the gate can say when a latency verdict measured the
# machine rather than the shop.
NOISE_QUERIES: tuple[NamedQuery, ...] = (
    NamedQuery("noise:host_cpu_busy", promql.host_cpu_busy(job=topology.NODE_JOB)),
    NamedQuery("noise:host_cpu_waiting", promql.host_cpu_waiting(job=topology.NODE_JOB)),
    NamedQuery("noise:load_cpu", f"max({topology.LOAD_CPU.name})"),
)


def queries_for(slos: Iterable[SLO]) -> list[NamedQuery]:
    """Range queries that make a run folder judgeable: the SLOs' counter selectors (raw series, so resets
    and new series are counted exactly; a good/bad selector that only narrows the total is picked out of
    the total's series instead of being stored twice), the burn-rate alerts (time to detect) and the
    current burn rate per SLO (for plots). Deduplicated, in a stable order."""
    seen: dict[str, NamedQuery] = {}
    for slo in slos:
        for sel in slo.queried_selectors:
            text = sel.promql()
            seen.setdefault(text, NamedQuery(selector_query_name(text), text))
    seen[ALERTS_QUERY_NAME] = NamedQuery(ALERTS_QUERY_NAME, ALERTS_QUERY)
    seen[BURN_RATE_QUERY_NAME] = NamedQuery(BURN_RATE_QUERY_NAME, BURN_RATE_QUERY_NAME)
    for query in NOISE_QUERIES:
        seen[query.name] = query
    return list(seen.values())


def collect_series(
    prom: Prometheus,
    queries: Sequence[NamedQuery],
    start: float,
    end: float,
    step_s: float = topology.SCRAPE_INTERVAL_S,
) -> pd.DataFrame:
    """Every NamedQuery over [start, end] into one long-format DataFrame (columns as in SERIES_COLUMNS):
    the raw stored samples of each selector (`Prometheus.samples`), from one staleness lookback before
    `start` so the first phase has a sample at its start. Other PromQL expressions are range-queried
    at `step_s`. Raises slo.prom.PrometheusError when Prometheus cannot answer."""
    import pandas as pd

    frames: list[pd.DataFrame] = []
    for q in queries:
        if is_selector(q.promql):
            found = prom.samples(q.promql, start - LOOKBACK_S, end)
        else:
            found = prom.range(q.promql, start, end, step_s)
        frames.extend(_frame(q.name, series) for series in found)
    if not frames:
        return empty_series_frame()
    return pd.concat(frames, ignore_index=True)


def _frame(name: str, series: RawSeries) -> pd.DataFrame:
    import pandas as pd

    labels = json.dumps(series.labels, sort_keys=True)
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(series.timestamps, unit="s", utc=True),
            "query": name,
            "labels": labels,
            "value": series.values.astype("float64"),
        }
    )


def empty_series_frame() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        {
            "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
            "query": pd.Series([], dtype="object"),
            "labels": pd.Series([], dtype="object"),
            "value": pd.Series([], dtype="float64"),
        }
    )


class SeriesFileError(SloError, ValueError):
    """series.parquet is missing, unreadable or not in the documented format."""


def read_series(path: Path) -> dict[str, list[RawSeries]]:
    """series.parquet -> {query name: [RawSeries]}. Accepts timestamps as datetimes or unix seconds."""
    import pandas as pd
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise SeriesFileError(
            f"{path} does not exist: the run folder has no collected metrics "
            "(was the experiment interrupted before collection?)"
        )
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise SeriesFileError(f"{path} is not a readable Parquet file: {exc}") from None
    missing = [c for c in SERIES_COLUMNS if c not in schema.names]
    if missing:
        raise SeriesFileError(
            f"{path} lacks column(s) {', '.join(missing)}; expected {', '.join(SERIES_COLUMNS)} (docs/slo.md)"
        )
    try:
        # The two string columns repeat on every row: reading them dictionary-encoded (categorical) is
        # several times faster than materialising one Python string per sample.
        table = pq.read_table(path, columns=list(SERIES_COLUMNS), read_dictionary=["query", "labels"])
        df = table.to_pandas()
    except Exception as exc:
        raise SeriesFileError(f"{path} is not a readable Parquet file: {exc}") from None
    ts = df["timestamp"]
    if pd.api.types.is_datetime64_any_dtype(ts):
        aware = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts
        df = df.assign(_t=(aware - pd.Timestamp(0, tz="UTC")).dt.total_seconds())
    elif pd.api.types.is_numeric_dtype(ts):
        df = df.assign(_t=ts.astype("float64"))
    else:
        raise SeriesFileError(f"{path}: column timestamp must be datetimes or unix seconds, got {ts.dtype}")
    out: dict[str, list[RawSeries]] = {}
    for (query, labels), group in df.groupby(["query", "labels"], sort=False, observed=True):
        try:
            label_map = json.loads(labels) if labels else {}
        except json.JSONDecodeError:
            raise SeriesFileError(f"{path}: labels {labels!r} of query {query!r} are not JSON") from None
        group = group.sort_values("_t")
        out.setdefault(str(query), []).append(
            RawSeries(label_map, group["_t"].to_numpy(dtype=float), group["value"].to_numpy(dtype=float))
        )
    return out
