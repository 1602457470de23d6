"""The slowest traces of a run as span waterfalls, pure: spans in, rows to draw out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from testbed.runfolder import Phase, SpanRecord

MAX_ROWS = 40  # spans shown per trace (the rest are counted)


@dataclass(frozen=True)
class WaterfallRow:
    depth: int
    service: str
    instance: str
    name: str
    offset_ms: float  # from the trace's start
    duration_ms: float
    error: bool


@dataclass(frozen=True)
class TraceView:
    trace_id: str
    root_service: str
    root_name: str
    start: float  # unix seconds
    duration_ms: float
    span_count: int
    error: bool
    phase: str | None
    rows: tuple[WaterfallRow, ...]
    hidden: int  # spans not shown (beyond MAX_ROWS)


def group_traces(spans: Sequence[SpanRecord]) -> dict[str, list[SpanRecord]]:
    traces: dict[str, list[SpanRecord]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    return traces


def phase_at(phases: Sequence[Phase], t: float) -> str | None:
    for phase in phases:
        if phase.start <= t < phase.end:
            return phase.name
    return None


def waterfall(spans: Sequence[SpanRecord]) -> list[WaterfallRow]:
    """Depth-first from the root(s), children by start time. A span whose parent is not in the trace (cut
    off by sampling or by the window) is drawn as a root."""
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for s in spans:
        parent = s.parent_id if s.parent_id in ids else None
        children.setdefault(parent, []).append(s)
    for group in children.values():
        group.sort(key=lambda s: (s.start_ns, -s.end_ns))
    t0 = min(s.start_ns for s in spans)
    rows: list[WaterfallRow] = []
    stack: list[tuple[SpanRecord, int]] = [(s, 0) for s in reversed(children.get(None, []))]
    seen: set[str] = set()
    while stack:
        span, depth = stack.pop()
        if span.span_id in seen:  # a malformed trace with a cycle
            continue
        seen.add(span.span_id)
        rows.append(
            WaterfallRow(
                depth,
                span.service,
                span.instance,
                span.name,
                (span.start_ns - t0) / 1e6,
                span.duration_ms,
                span.error,
            )
        )
        stack.extend((child, depth + 1) for child in reversed(children.get(span.span_id, [])))
    return rows


def root_of(spans: Sequence[SpanRecord]) -> SpanRecord | None:
    """The trace's root: a span whose parent is not in the trace (the longest if several)."""
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_id is None or s.parent_id not in ids]
    return max(roots, key=lambda s: (s.end_ns - s.start_ns, -s.start_ns), default=None)


def slowest_traces(spans: Sequence[SpanRecord], phases: Sequence[Phase], count: int = 5) -> list[TraceView]:
    """The `count` traces whose root span (the request a shopper waited for) took longest. Not first start
    to last end: a checkout's trace goes on through the outbox to its e-mail, seconds later, and that wait
    is no request's latency (the e-mail spans still show in the waterfall)."""
    views = []
    for trace_id, members in group_traces(spans).items():
        root = root_of(members)
        if root is not None:
            duration = root.end_ns - root.start_ns
        else:  # a malformed trace whose spans are all each other's parents: its whole extent
            duration = max(s.end_ns for s in members) - min(s.start_ns for s in members)
        views.append((duration, trace_id, members))
    views.sort(key=lambda v: (-v[0], v[1]))
    out = []
    for duration_ns, trace_id, members in views[:count]:
        rows = waterfall(members)
        first = rows[0]
        start_s = min(s.start_ns for s in members) / 1e9
        out.append(
            TraceView(
                trace_id=trace_id,
                root_service=first.service,
                root_name=first.name,
                start=start_s,
                duration_ms=duration_ns / 1e6,
                span_count=len(members),
                error=any(s.error for s in members),
                phase=phase_at(phases, start_s),
                rows=tuple(rows[:MAX_ROWS]),
                hidden=max(0, len(rows) - MAX_ROWS),
            )
        )
    return out
