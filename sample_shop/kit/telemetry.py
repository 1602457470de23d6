"""Tracing: the OpenTelemetry SDK tracer provider of a service, its sampler and exporter, W3C trace-context
and baggage helpers, and the OTLP-JSON encoding of spans.

Spans go over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set; otherwise they are written as OTLP/JSON
lines (one ExportTraceServiceRequest object per line; hex trace/span ids, int64 nanos as strings) to
<state>/traces/<service>-<replica>.jsonl, so traces exist without a collector. Export runs in the SDK's
batch processor thread, off the request path. Sampling is ParentBased(TraceIdRatio): the ratio decides for
root spans only, a caller's decision is always respected so a trace is never cut in the middle.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from sample_shop.topology import SYNTHETIC_BAGGAGE_KEY

SCOPE_NAME = "sample_shop"

# --------------------------------------------------------------------------------------------------
# OTLP/JSON encoding (pure)
# --------------------------------------------------------------------------------------------------


def encode_value(value: Any) -> dict[str, Any]:
    """An attribute value as an OTLP AnyValue (int64 as a string, per the OTLP/JSON mapping)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [encode_value(v) for v in value]}}
    if isinstance(value, bytes):
        return {"bytesValue": value.hex()}
    return {"stringValue": str(value)}


def encode_attributes(attributes: Any) -> list[dict[str, Any]]:
    if not attributes:
        return []
    return [{"key": str(k), "value": encode_value(v)} for k, v in attributes.items()]


def encode_span(span: ReadableSpan) -> dict[str, Any]:
    context = span.context
    assert context is not None
    data: dict[str, Any] = {
        "traceId": format(context.trace_id, "032x"),
        "spanId": format(context.span_id, "016x"),
        "name": span.name,
        "kind": span.kind.value + 1,  # OTLP enum: 0 unspecified, 1 internal, 2 server, 3 client, ...
        "startTimeUnixNano": str(span.start_time or 0),
        "endTimeUnixNano": str(span.end_time or 0),
        "attributes": encode_attributes(span.attributes),
        "status": {"code": span.status.status_code.value},
    }
    if span.parent is not None:
        data["parentSpanId"] = format(span.parent.span_id, "016x")
    if context.trace_state:
        data["traceState"] = context.trace_state.to_header()
    if span.status.description:
        data["status"]["message"] = span.status.description
    if span.events:
        data["events"] = [
            {"timeUnixNano": str(e.timestamp), "name": e.name, "attributes": encode_attributes(e.attributes)}
            for e in span.events
        ]
    if span.links:
        data["links"] = [
            {
                "traceId": format(link.context.trace_id, "032x"),
                "spanId": format(link.context.span_id, "016x"),
                "attributes": encode_attributes(link.attributes),
            }
            for link in span.links
        ]
    return data


def encode_spans(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """One ExportTraceServiceRequest (as a JSON-ready dict) for a batch of spans, grouped by resource and
    instrumentation scope as OTLP requires."""
    by_resource: dict[int, tuple[Any, dict[tuple[str, str], list[dict[str, Any]]]]] = {}
    for span in spans:
        resource = span.resource
        entry = by_resource.setdefault(id(resource), (resource, {}))
        scope = span.instrumentation_scope
        key = (scope.name if scope else SCOPE_NAME, (scope.version or "") if scope else "")
        entry[1].setdefault(key, []).append(encode_span(span))
    resource_spans = []
    for resource, scopes in by_resource.values():
        scope_spans = []
        for (name, version), encoded in scopes.items():
            scope_doc: dict[str, Any] = {"name": name}
            if version:
                scope_doc["version"] = version
            scope_spans.append({"scope": scope_doc, "spans": encoded})
        resource_spans.append(
            {
                "resource": {"attributes": encode_attributes(resource.attributes if resource else {})},
                "scopeSpans": scope_spans,
            }
        )
    return {"resourceSpans": resource_spans}


class OtlpJsonFileExporter(SpanExporter):
    """Appends one OTLP/JSON ExportTraceServiceRequest line per batch to a file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        line = json.dumps(encode_spans(spans), separators=(",", ":"))
        with self._lock:
            if self._file.closed:
                return SpanExportResult.FAILURE
            self._file.write(line + "\n")
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._file.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


# --------------------------------------------------------------------------------------------------
# Provider
# --------------------------------------------------------------------------------------------------


def create_tracer_provider(
    service: str,
    replica: int,
    *,
    sample_ratio: float,
    traces_file: Path,
    otlp_endpoint: str | None,
    trace_files: bool = False,
) -> TracerProvider:
    """Spans go to the OTLP/HTTP endpoint when one is set (the standard protobuf exporter: Jaeger, Tempo,
    Phoenix and the vendors take it), and to `traces_file` as OTLP-JSON lines when there is no endpoint or
    `trace_files` asks for both (a run folder then still holds its traces)."""
    resource = Resource.create(
        {"service.name": service, "service.instance.id": f"{service}-{replica}", "service.namespace": "shop"}
    )
    provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(sample_ratio)))
    exporters: list[SpanExporter] = []
    if otlp_endpoint:
        # Imported only when used: the protobuf exporter costs memory every idle replica would pay.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter())  # reads OTEL_EXPORTER_OTLP_ENDPOINT and appends /v1/traces
    if trace_files or not otlp_endpoint:
        exporters.append(OtlpJsonFileExporter(traces_file))
    for exporter in exporters:
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter, max_queue_size=8192, schedule_delay_millis=500, max_export_batch_size=512
            )
        )
    return provider


# --------------------------------------------------------------------------------------------------
# W3C trace context and baggage, done by hand on the hot path (the generic propagators cost more)
# --------------------------------------------------------------------------------------------------


def parse_traceparent(value: str) -> SpanContext | None:
    """`00-<32 hex>-<16 hex>-<2 hex>` -> a remote SpanContext, or None when malformed (then a new trace)."""
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    version, trace_hex, span_hex, flags_hex = parts[:4]
    if (
        len(trace_hex) != 32
        or len(span_hex) != 16
        or len(flags_hex) != 2
        or (version == "00" and len(parts) != 4)
    ):
        return None
    try:
        trace_id, span_id, flags = int(trace_hex, 16), int(span_hex, 16), int(flags_hex, 16)
    except ValueError:
        return None
    if trace_id == 0 or span_id == 0:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 0x01))


def format_traceparent(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags) & 0x01:02x}"


def parent_context(traceparent: str | None) -> Any:
    """An OpenTelemetry Context whose parent is the caller's span (None: start a new trace)."""
    if not traceparent:
        return None
    span_context = parse_traceparent(traceparent)
    if span_context is None:
        return None
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def baggage_value(header: str, key: str = SYNTHETIC_BAGGAGE_KEY) -> str | None:
    """The value of one W3C baggage member (`k=v;prop,k2=v2`), percent-decoded, or None."""
    for member in header.split(","):
        name, sep, rest = member.partition("=")
        if sep and name.strip() == key:
            return unquote(rest.split(";", 1)[0].strip())
    return None


# The incoming W3C `baggage` header of the request being served; the outbound client forwards it as is, so
# baggage such as `synthetic=true` crosses every hop without the generic propagator's parsing cost.
request_baggage: ContextVar[str | None] = ContextVar("request_baggage", default=None)
