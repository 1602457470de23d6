"""THE run-folder format: `runs/<UTC YYYYmmddTHHMMSSZ>-<experiment>/`, its paths, writers and readers.

Everything that writes or reads a run folder goes through here (the experiment collector, the report,
`testbed report`, notebooks). The layout itself (`RunPaths`: which file holds what) lives once in
`slo/runfolder.py`, low enough for the SLO gate to use it too (`slo/` must not import `testbed`); the gate
reads the same folder with its own readers (`slo.collect.read_series`, `slo.sources.load_phases`,
`slo.sources.load_run_json`), and the readers here delegate to them so both always agree.

```
run.json              RunInfo: experiment, target, profile, config, started/ended, status, verdict, exit code
phases.json           [{"name": "warmup|baseline|fault|recovery", "start": ISO, "end": ISO}]
journal.json          the Chaos Toolkit journal;   chaos.log (the `chaos run` console output)
chaos-vars.json       the configuration values handed to `chaos run --var-file`
load/                 the load generator's result files (docs/load.md)
metrics/series.parquet, metrics/queries.json    Prometheus series (slo.collect format) and their PromQL
traces/spans.jsonl    OTLP-JSON lines (ExportTraceServiceRequest) of the run's window
logs/logs.jsonl       JSON log lines of the window, every service (and the supervisor)
slo/report.json, slo/junit.xml, slo/summary.md
report.html
```
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sample_shop.basics import utc_iso, write_json_atomic
from slo.runfolder import RunPaths as RunPaths  # the layout, re-exported for the testbed's readers

RUNS_DIR_ENV = "TESTBED_RUNS_DIR"
LATEST = "latest"
RUN_SCHEMA = 1
_ID_SAFE = re.compile(r"[^a-z0-9._-]+")
_RUN_ID = re.compile(r"^\d{8}T\d{6}Z-")


class RunFolderError(ValueError):
    """A run folder is missing, incomplete or not in this format; the message says which file and how."""


# --------------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------------


def default_runs_dir() -> Path:
    """TESTBED_RUNS_DIR, else `runs/` in the current directory."""
    return Path(os.environ.get(RUNS_DIR_ENV) or "runs").resolve()


def run_id(experiment: str, started: datetime) -> str:
    """`20250101T120000Z-payment-latency-breaker` (UTC; the name made safe for a folder)."""
    stamp = started.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = _ID_SAFE.sub("-", experiment.lower()).strip("-") or "experiment"
    return f"{stamp}-{name[:80]}"


def create_run(runs_dir: Path, experiment: str, started: datetime) -> RunPaths:
    """A new, empty run folder (a suffix keeps two runs started in the same second apart)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    base = run_id(experiment, started)
    for n in range(1, 100):
        root = runs_dir / (base if n == 1 else f"{base}-{n}")
        try:
            root.mkdir()
        except FileExistsError:
            continue
        paths = RunPaths(root)
        paths.make_dirs()
        return paths
    raise RunFolderError(f"{runs_dir}: cannot create a folder for {base} (99 exist)")


def update_latest(runs_dir: Path, run: RunPaths) -> Path:
    """Point `runs/latest` at this run (relative symlink, replaced atomically)."""
    link = runs_dir / LATEST
    tmp = runs_dir / f".{LATEST}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run.root.name)
    tmp.replace(link)
    return link


def resolve_run(path: Path | str) -> RunPaths:
    """A run folder given by the user (runs/<id>, runs/latest); RunFolderError says what is wrong."""
    given = Path(path)
    root = given.resolve()
    if not root.is_dir():
        hint = "run an experiment first (`make experiment`)" if given.name == LATEST else "give runs/<id>"
        raise RunFolderError(f"{given}: no such run folder; {hint}")
    paths = RunPaths(root)
    if not paths.run_json.is_file():
        raise RunFolderError(f"{given}: not a run folder (no run.json); give runs/<id> or runs/latest")
    return paths


def list_runs(runs_dir: Path) -> list[RunPaths]:
    """Run folders under runs_dir, oldest first."""
    if not runs_dir.is_dir():
        return []
    return [RunPaths(p) for p in sorted(runs_dir.iterdir()) if _RUN_ID.match(p.name) and p.is_dir()]


# --------------------------------------------------------------------------------------------------
# run.json
# --------------------------------------------------------------------------------------------------


@dataclass
class RunInfo:
    """run.json. `status`: running, completed, deviated (the hypothesis did not hold: a finding), failed
        (an action failed or the steady state did not hold before the method: nothing learned), aborted,
        interrupted, timeout, error, died (its processes were found gone while it still said running: killed
    with no chance to finish). `verdict`: the SLO gate's met / breached / nodata, or None when it could
        not judge. `exit_code`: what `testbed experiment run` exited with."""

    id: str
    experiment: str
    title: str
    experiment_file: str
    target: str
    profile: str
    config: dict[str, Any]
    started: str
    ended: str | None = None
    status: str = "running"
    verdict: str | None = None
    exit_code: int | None = None
    message: str = ""
    description: str = ""
    hypothesis: dict[str, Any] = field(default_factory=dict)
    chaos: dict[str, Any] = field(default_factory=dict)
    cleanup: dict[str, Any] = field(default_factory=dict)
    collection: dict[str, Any] = field(default_factory=dict)
    stack: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    # role (orchestrator, chaos) -> {"pid", "create_time"}: how a later reader tells a run that died
    # (status "running", every process gone) from one that is still going (testbed/experiment/orphans.py)
    processes: dict[str, Any] = field(default_factory=dict)
    schema: int = RUN_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "run.json") -> RunInfo:
        missing = [k for k in ("id", "experiment", "started") if k not in data]
        if missing:
            raise RunFolderError(f"{where}: missing field(s) {', '.join(missing)}")
        known = set(cls.__dataclass_fields__)
        defaults = {"title": "", "experiment_file": "", "target": "local", "profile": "", "config": {}}
        return cls(**{**defaults, **{k: v for k, v in data.items() if k in known}})


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunFolderError(f"{path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None


def write_run_info(run: RunPaths, info: RunInfo) -> None:
    write_json_atomic(run.run_json, info.to_dict())


def read_run_info(run: RunPaths) -> RunInfo:
    """run.json through the SLO gate's own reader, so report and gate accept and refuse the same files."""
    from slo.sources import SourceError, load_run_json

    try:
        data = load_run_json(run.run_json)
    except SourceError as exc:
        raise RunFolderError(str(exc)) from None
    return RunInfo.from_dict(data, str(run.run_json))


# --------------------------------------------------------------------------------------------------
# phases.json
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    name: str
    start: float  # unix seconds
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "start": utc_iso(self.start), "end": utc_iso(self.end)}


def write_phases(run: RunPaths, phases: list[Phase]) -> None:
    write_json_atomic(run.phases_json, [p.to_dict() for p in phases])


def read_phases(run: RunPaths) -> list[Phase]:
    """phases.json through the SLO gate's own reader, so report and gate see the same phases."""
    from slo.sources import SourceError, load_phases

    try:
        return [Phase(w.name, w.start, w.end) for w in load_phases(run.phases_json)]
    except SourceError as exc:
        raise RunFolderError(str(exc)) from None


# --------------------------------------------------------------------------------------------------
# metrics/
# --------------------------------------------------------------------------------------------------


def write_series(run: RunPaths, frame: Any, queries: dict[str, str]) -> None:
    """series.parquet (slo.collect's long format) and queries.json (name -> PromQL)."""
    run.metrics_dir.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(run.series_parquet, index=False)
    write_json_atomic(run.queries_json, queries)


def read_series_frame(run: RunPaths) -> Any:
    """series.parquet as a DataFrame with a float `t` column (unix seconds) added."""
    import pandas as pd

    from slo.collect import SERIES_COLUMNS

    if not run.series_parquet.is_file():
        raise RunFolderError(f"{run.series_parquet} does not exist (the run collected no metrics)")
    frame = pd.read_parquet(run.series_parquet, columns=list(SERIES_COLUMNS))
    ts = frame["timestamp"]
    if pd.api.types.is_datetime64_any_dtype(ts):
        aware = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts
        frame["t"] = (aware - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    else:
        frame["t"] = ts.astype("float64")
    return frame


# --------------------------------------------------------------------------------------------------
# traces/ and logs/ (JSON lines)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpanRecord:
    """One span, flattened out of an OTLP ExportTraceServiceRequest."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    instance: str
    start_ns: int
    end_ns: int
    error: bool
    attributes: dict[str, Any]
    kind: str = "internal"  # OTLP span kind: server, client, internal, producer, consumer

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def _any_value(value: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [_any_value(v) for v in value["arrayValue"].get("values", [])]
    return None


# OTLP's SpanKind enum as numbers in OTLP/JSON
_SPAN_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def attributes_of(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _any_value(a.get("value", {})) for a in items or [] if "key" in a}


def spans_of_request(request: dict[str, Any]) -> list[SpanRecord]:
    """Flatten one OTLP-JSON ExportTraceServiceRequest (malformed spans are skipped)."""
    out = []
    for rs in request.get("resourceSpans", []) or []:
        resource = attributes_of((rs.get("resource") or {}).get("attributes"))
        service = str(resource.get("service.name", "?"))
        instance = str(resource.get("service.instance.id") or resource.get("k8s.pod.name") or service)
        for ss in rs.get("scopeSpans", []) or []:
            for span in ss.get("spans", []) or []:
                try:
                    out.append(
                        SpanRecord(
                            trace_id=span["traceId"],
                            span_id=span["spanId"],
                            parent_id=span.get("parentSpanId") or None,
                            name=str(span.get("name", "")),
                            service=service,
                            instance=instance,
                            start_ns=int(span["startTimeUnixNano"]),
                            end_ns=int(span["endTimeUnixNano"]),
                            error=(span.get("status") or {}).get("code") == 2,
                            attributes=attributes_of(span.get("attributes")),
                            kind=_SPAN_KINDS.get(int(span.get("kind") or 1), "internal"),
                        )
                    )
                except (KeyError, TypeError, ValueError):
                    continue
    return out


def iter_json_lines(path: Path) -> Iterator[dict[str, Any]]:
    """Objects of a JSON-lines file; lines that are not JSON objects are skipped."""
    if not path.is_file():
        return
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                yield obj


def read_spans(run: RunPaths) -> list[SpanRecord]:
    return [span for request in iter_json_lines(run.spans_jsonl) for span in spans_of_request(request)]


def read_logs(run: RunPaths) -> list[dict[str, Any]]:
    return list(iter_json_lines(run.logs_jsonl))
