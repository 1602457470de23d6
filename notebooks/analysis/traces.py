"""Spans of a run, pure: durations per service and phase, and where the time went on the critical path
of the slowest traces.

The critical path of a trace is the chain of work that decided its duration (Jaeger's definition): walk
back from the root's end; at each span take the child that finished last before the current point, count
the gap after it as the span's own time, descend into that child, then continue before the child's start.
Children are first clipped to their parent's interval (a callee that outlives a client timeout did not
delay the caller beyond it). So the sections of a trace add up exactly to its root's duration.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from testbed.report.traces import group_traces, phase_at, root_of
from testbed.runfolder import Phase, SpanRecord

SPAN_COLUMNS = ["trace_id", "span_id", "parent_id", "service", "instance", "name", "kind", "peer", "route",
                "status_code", "error", "start", "end", "duration_ms"]  # fmt: skip


def span_kind(span: SpanRecord) -> str:
    """`client` for an outbound call, `server` for a request served (the kit's spans are one or the other)."""
    return "client" if span.kind == "client" else "server"


def spans_frame(spans: Iterable[SpanRecord]) -> pd.DataFrame:
    """One row per span; `start`/`end` in unix seconds."""
    rows = [
        (
            s.trace_id,
            s.span_id,
            s.parent_id,
            s.service,
            s.instance,
            s.name,
            span_kind(s),
            s.attributes.get("peer.service"),
            s.attributes.get("http.route"),
            s.attributes.get("http.response.status_code"),
            s.error,
            s.start_ns / 1e9,
            s.end_ns / 1e9,
            s.duration_ms,
        )
        for s in spans
    ]
    return pd.DataFrame(rows, columns=SPAN_COLUMNS)


def durations_by_service_phase(frame: pd.DataFrame) -> pd.DataFrame:
    """Server spans (the time each service spent answering) per service and phase (`phase` column from
    overview.with_phases): count, percentiles, max, share of errors."""
    server = frame[(frame["kind"] == "server") & frame["phase"].notna()]
    grouped = server.groupby(["service", "phase"], observed=True)["duration_ms"]
    table = pd.DataFrame(
        {
            "spans": grouped.size(),
            "p50_ms": grouped.median(),
            "p95_ms": grouped.quantile(0.95),
            "p99_ms": grouped.quantile(0.99),
            "max_ms": grouped.max(),
            "error_share": server.groupby(["service", "phase"], observed=True)["error"].mean(),
        }
    )
    return table.sort_index()


# --------------------------------------------------------------------------------------------------
# Critical path
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """A stretch of a trace's critical path spent in one span's own work (not waiting on a child)."""

    span_id: str
    service: str
    name: str
    kind: str
    peer: str | None
    start_ns: int
    end_ns: int

    @property
    def ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def component(self) -> str:
        """Where the time went: a service's own work, or a call's time outside the callee's server span
        (connecting, queueing, retries and back-off, timeouts)."""
        return f"{self.service} → {self.peer} (call)" if self.kind == "client" else self.service


@dataclass(frozen=True)
class _Clipped:
    span: SpanRecord
    start_ns: int
    end_ns: int


def critical_path(spans: Sequence[SpanRecord]) -> list[Section]:
    """The critical path of one trace as sections, latest first; they add up to the root's duration.
    Spans not under the root (orphans of sampling or of the window) are ignored."""
    root = root_of(spans)
    if root is None:
        return []
    children: dict[str, list[SpanRecord]] = {}
    for s in spans:
        if s.parent_id is not None and s is not root:
            children.setdefault(s.parent_id, []).append(s)

    def clipped_children(parent: _Clipped) -> list[_Clipped]:
        out = []
        for child in children.get(parent.span.span_id, []):
            start, end = max(child.start_ns, parent.start_ns), min(child.end_ns, parent.end_ns)
            if end > start:
                out.append(_Clipped(child, start, end))
        return out

    sections: list[Section] = []

    def own(node: _Clipped, start: int, end: int) -> None:
        if end > start:
            s = node.span
            kind = span_kind(s)
            sections.append(
                Section(s.span_id, s.service, s.name, kind, s.attributes.get("peer.service"), start, end)
            )

    def walk(node: _Clipped, depth: int) -> None:
        if depth > 100:  # a malformed trace with a cycle: stop rather than recurse forever
            return
        kids = clipped_children(node)
        cursor = node.end_ns
        while True:
            last = max((k for k in kids if k.end_ns <= cursor), key=lambda k: k.end_ns, default=None)
            if last is None:
                own(node, node.start_ns, cursor)
                return
            own(node, last.end_ns, cursor)
            walk(last, depth + 1)
            cursor = last.start_ns

    walk(_Clipped(root, root.start_ns, root.end_ns), 0)
    return sections


def trace_table(spans: Sequence[SpanRecord], phases: Sequence[Phase]) -> pd.DataFrame:
    """One row per trace with a root: root service and name, start, duration, spans, error, phase."""
    rows = []
    for trace_id, members in group_traces(spans).items():
        root = root_of(members)
        if root is None:
            continue
        start = root.start_ns / 1e9
        rows.append(
            {
                "trace_id": trace_id,
                "root": f"{root.service}: {root.name}",
                "start": start,
                "duration_ms": root.duration_ms,
                "spans": len(members),
                "error": any(s.error for s in members),
                "phase": phase_at(phases, start),
            }
        )
    columns = ["trace_id", "root", "start", "duration_ms", "spans", "error", "phase"]
    return pd.DataFrame(rows, columns=columns).sort_values("duration_ms", ascending=False, ignore_index=True)


def slowest(traces: pd.DataFrame, phase: str, count: int) -> list[str]:
    """Trace ids of the `count` slowest traces that started in `phase`."""
    return traces[traces["phase"] == phase].nlargest(count, "duration_ms")["trace_id"].tolist()


def critical_path_frame(spans: Sequence[SpanRecord], trace_ids: Iterable[str]) -> pd.DataFrame:
    """The critical-path sections of the given traces: trace_id, component, service, name, kind, ms."""
    by_trace = group_traces(spans)
    rows = [
        {
            "trace_id": tid,
            "component": s.component,
            "service": s.service,
            "name": s.name,
            "kind": s.kind,
            "ms": s.ms,
        }
        for tid in trace_ids
        for s in critical_path(by_trace.get(tid, []))
    ]
    return pd.DataFrame(rows, columns=["trace_id", "component", "service", "name", "kind", "ms"])


def where_time_went(
    spans: Sequence[SpanRecord], traces: pd.DataFrame, phases: Sequence[str], count: int = 20
) -> pd.DataFrame:
    """Per component, the mean critical-path time per trace among the `count` slowest traces of each
    phase (columns: one per phase, ms), sorted by the last phase. Components absent in a phase count 0."""
    columns = {}
    for phase in phases:
        ids = slowest(traces, phase, count)
        path = critical_path_frame(spans, ids)
        columns[phase] = path.groupby("component")["ms"].sum() / max(1, len(ids))
    table = pd.DataFrame(columns).fillna(0.0)
    if table.empty:
        return table
    return table.sort_values(list(phases)[-1], ascending=False)
