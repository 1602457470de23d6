"""OTLP/JSON encoding of real SDK spans, the file exporter, and W3C traceparent/baggage parsing."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode

from sample_shop.kit.telemetry import (
    OtlpJsonFileExporter,
    baggage_value,
    encode_spans,
    format_traceparent,
    parent_context,
    parse_traceparent,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def provider_with(exporter: object, ratio: float = 1.0) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "orders"}), sampler=ParentBased(TraceIdRatioBased(ratio))
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[arg-type]
    return provider


def test_encoding_follows_otlp_json_rules() -> None:
    memory = InMemorySpanExporter()
    tracer = provider_with(memory).get_tracer("sample_shop")
    server = tracer.start_span(
        "POST /checkout",
        context=parent_context(TRACEPARENT),
        kind=SpanKind.SERVER,
        attributes={"http.route": "/checkout", "n": 3, "ratio": 0.5, "ok": True, "ids": ["a", "b"]},
    )
    server.add_event("retry", {"attempt": 2})
    server.set_status(Status(StatusCode.ERROR, "boom"))
    server.end()
    request = encode_spans(memory.get_finished_spans())
    [resource_spans] = request["resourceSpans"]
    assert {"key": "service.name", "value": {"stringValue": "orders"}} in resource_spans["resource"][
        "attributes"
    ]
    [scope] = resource_spans["scopeSpans"]
    assert scope["scope"]["name"] == "sample_shop"
    [span] = scope["spans"]
    assert span["traceId"] == "0af7651916cd43dd8448eb211c80319c"  # hex, not base64
    assert span["parentSpanId"] == "b7ad6b7169203331"
    assert len(span["spanId"]) == 16 and int(span["spanId"], 16) != 0
    assert span["kind"] == 2  # SPAN_KIND_SERVER
    assert isinstance(span["startTimeUnixNano"], str) and int(span["endTimeUnixNano"]) >= int(
        span["startTimeUnixNano"]
    )
    attrs = {a["key"]: a["value"] for a in span["attributes"]}
    assert attrs["n"] == {"intValue": "3"} and attrs["ratio"] == {"doubleValue": 0.5}
    assert attrs["ok"] == {"boolValue": True}
    assert attrs["ids"] == {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}}
    assert span["status"] == {"code": 2, "message": "boom"}
    assert span["events"][0]["name"] == "retry" and span["events"][0]["attributes"][0]["value"] == {
        "intValue": "2"
    }
    json.dumps(request)  # serialisable as is


def test_file_exporter_writes_one_request_per_line(tmp_path: Path) -> None:
    path = tmp_path / "traces" / "orders-0.jsonl"
    exporter = OtlpJsonFileExporter(path)
    tracer = provider_with(exporter).get_tracer("sample_shop")
    for name in ("a", "b"):
        tracer.start_span(name, kind=SpanKind.CLIENT).end()
    exporter.shutdown()
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    spans = [json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"][0] for line in lines]
    assert [s["name"] for s in spans] == ["a", "b"] and spans[0]["kind"] == 3


def test_parent_decision_is_respected_whatever_the_ratio() -> None:
    memory = InMemorySpanExporter()
    tracer = provider_with(memory, ratio=0.0).get_tracer("t")
    tracer.start_span("root").end()  # ratio 0: roots are dropped
    tracer.start_span("child", context=parent_context(TRACEPARENT)).end()  # sampled parent: kept
    unsampled = TRACEPARENT[:-2] + "00"
    tracer.start_span("child2", context=parent_context(unsampled)).end()
    assert [s.name for s in memory.get_finished_spans()] == ["child"]


def test_traceparent_round_trip_and_rejects_malformed() -> None:
    context = parse_traceparent(TRACEPARENT)
    assert context is not None and context.is_remote and context.trace_flags.sampled
    assert format_traceparent(context) == TRACEPARENT
    for bad in (
        "",
        "garbage",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        "ff-" + TRACEPARENT[3:],
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-xyz-b7ad6b7169203331-01",
        TRACEPARENT + "-extra",
    ):
        assert parse_traceparent(bad) is None, bad
    assert parent_context(None) is None and parent_context("nope") is None


def test_baggage_member_lookup() -> None:
    assert baggage_value("synthetic=true") == "true"
    assert baggage_value("user=1, synthetic = true ;prop=1,x=y") == "true"
    assert baggage_value("k=hello%20world", "k") == "hello world"
    assert baggage_value("notsynthetic=true") is None
    assert baggage_value("") is None
