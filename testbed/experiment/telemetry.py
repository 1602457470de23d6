"""Traces and logs of a run's window, from the state folder's files into the run folder.

The services append OTLP-JSON lines to `<state>/traces/<service>-<r>.jsonl` and JSON log lines to
`<state>/logs/<service>-<r>.log` for as long as the stack lives, so the files hold far more than one run.
The orchestrator notes every file's size when the run starts (`snapshot`) and the collector reads only
what was appended since, then keeps what falls in the window. The window filters are pure."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sample_shop.basics import parse_iso, utc_iso

TRACE_GLOB = "*.jsonl"
LOG_GLOB = "*.log"
# Prometheus logs logfmt, and none of these is a service: the observers' logs stay in the state folder
NOT_SERVICE_LOGS = {"prometheus", "alertmanager", "node-exporter", "alert-webhook"}
_FILE_NAME = re.compile(r"^(?P<service>[a-z][a-z0-9_]*?)(?:-(?P<replica>\d+))?$")


def snapshot(paths: Iterable[Path]) -> dict[str, int]:
    """Size of each file now: where the run's data will begin."""
    marks = {}
    for path in paths:
        try:
            marks[str(path)] = path.stat().st_size
        except FileNotFoundError:
            continue
    return marks


def trace_files(traces_dir: Path | None) -> list[Path]:
    return sorted(traces_dir.glob(TRACE_GLOB)) if traces_dir and traces_dir.is_dir() else []


def log_files(logs_dir: Path | None, supervisor_log: Path | None = None) -> list[Path]:
    files = []
    if logs_dir and logs_dir.is_dir():
        files = [p for p in sorted(logs_dir.glob(LOG_GLOB)) if p.stem not in NOT_SERVICE_LOGS]
    if supervisor_log is not None and supervisor_log.is_file():
        files.append(supervisor_log)
    return files


def lines_since(path: Path, offset: int) -> Iterator[str]:
    """Lines appended after `offset` (the whole file when it shrank: rotated or recreated). A line cut in
    half by the offset is skipped."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return
    with f:
        size = path.stat().st_size
        start = offset if 0 < offset <= size else 0
        if start:
            f.seek(start - 1)
            if f.read(1) != b"\n":
                f.readline()  # the rest of a line that began before the offset
        for raw in f:
            yield raw.decode("utf-8", errors="replace").rstrip("\n")


# --------------------------------------------------------------------------------------------------
# Pure window filters
# --------------------------------------------------------------------------------------------------


def window_request(request: dict[str, Any], start_ns: int, end_ns: int) -> dict[str, Any] | None:
    """The spans of one ExportTraceServiceRequest that start within [start_ns, end_ns), structure kept;
    None when none does."""
    resource_spans = []
    for rs in request.get("resourceSpans") or []:
        scope_spans = []
        for ss in rs.get("scopeSpans") or []:
            kept = []
            for span in ss.get("spans") or []:
                try:
                    t = int(span.get("startTimeUnixNano", -1))
                except (TypeError, ValueError):
                    continue
                if start_ns <= t < end_ns:
                    kept.append(span)
            if kept:
                scope_spans.append({**ss, "spans": kept})
        if scope_spans:
            resource_spans.append({**rs, "scopeSpans": scope_spans})
    return {"resourceSpans": resource_spans} if resource_spans else None


def source_of(path: Path) -> tuple[str, int | None]:
    """`catalog-1.log` -> ("catalog", 1); `supervisor.log` -> ("supervisor", None)."""
    match = _FILE_NAME.match(path.stem)
    if not match:
        return path.stem, None
    replica = match.group("replica")
    return match.group("service"), int(replica) if replica is not None else None


def log_time(entry: dict[str, Any]) -> float | None:
    raw = entry.get("timestamp", entry.get("time"))
    if isinstance(raw, int | float):
        return float(raw)
    try:
        return parse_iso(str(raw)) if raw else None
    except ValueError:
        return None


def window_log_lines(
    lines: Iterable[str], start: float, end: float, service: str, replica: int | None
) -> Iterator[dict[str, Any]]:
    """JSON log lines whose timestamp is in [start, end). A line that is not JSON (a traceback printed to
    stderr) is kept as {"level": "raw", "message": line} at the time of the JSON line before it."""
    last: float | None = None
    for line in lines:
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            entry = None
        if isinstance(entry, dict):
            t = log_time(entry)
            if t is None:
                continue
            last = t
        else:
            if last is None:
                continue
            t = last
            entry = {"timestamp": utc_iso(t), "level": "raw", "message": line}
        if start <= t < end:
            entry.setdefault("service", service)
            if replica is not None:
                entry.setdefault("replica", replica)
            yield entry


# --------------------------------------------------------------------------------------------------
# Into the run folder
# --------------------------------------------------------------------------------------------------


def collect_traces(files: Iterable[Path], marks: dict[str, int], start: float, end: float, out: Path) -> int:
    """OTLP-JSON lines of the window into `out`; returns the number of spans kept."""
    start_ns, end_ns = int(start * 1e9), int(end * 1e9)
    count = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as sink:
        for path in files:
            for line in lines_since(path, marks.get(str(path), 0)):
                try:
                    request = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if not isinstance(request, dict):
                    continue
                kept = window_request(request, start_ns, end_ns)
                if kept is not None:
                    count += sum(len(ss["spans"]) for rs in kept["resourceSpans"] for ss in rs["scopeSpans"])
                    sink.write(json.dumps(kept, separators=(",", ":")) + "\n")
    return count


def collect_logs(files: Iterable[Path], marks: dict[str, int], start: float, end: float, out: Path) -> int:
    """JSON log lines of the window into `out`, in time order; returns the number of lines."""
    entries: list[tuple[float, dict[str, Any]]] = []
    for path in files:
        service, replica = source_of(path)
        for entry in window_log_lines(
            lines_since(path, marks.get(str(path), 0)), start, end, service, replica
        ):
            entries.append((log_time(entry) or 0.0, entry))
    entries.sort(key=lambda pair: pair[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as sink:
        for _, entry in entries:
            sink.write(json.dumps(entry, separators=(",", ":"), default=str) + "\n")
    return len(entries)


def window_notifications(lines: Iterable[str], start: float, end: float) -> Iterator[str]:
    """The webhook receiver's records (testbed/runtime/alertsink.py) received in [start, end), as they
    were written."""
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash of the receiver
        received = record.get("received_unix") if isinstance(record, dict) else None
        if isinstance(received, int | float) and start <= received < end:
            yield line


def collect_alerts(alerts_file: Path, marks: dict[str, int], start: float, end: float, out: Path) -> int:
    """The notifications Alertmanager delivered in the window into `out` (written even when none came, so
    that a run with Alertmanager says "no page" rather than "not measured"); returns how many."""
    kept = list(window_notifications(lines_since(alerts_file, marks.get(str(alerts_file), 0)), start, end))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    return len(kept)
