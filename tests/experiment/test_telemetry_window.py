"""Which spans and log lines belong to a run: the window filters (pure) and reading only what was appended
after a run began (real files in a tmp folder)."""

from __future__ import annotations

import json
from pathlib import Path

from sample_shop.basics import utc_iso
from testbed.experiment.telemetry import (
    collect_logs,
    collect_traces,
    lines_since,
    snapshot,
    source_of,
    window_log_lines,
    window_request,
)
from testbed.runfolder import spans_of_request

S = 1_000_000_000  # ns per second


def _span(span_id: str, start_s: float, end_s: float, parent: str | None = None) -> dict[str, object]:
    span: dict[str, object] = {
        "traceId": "a" * 32,
        "spanId": span_id,
        "name": f"GET /{span_id}",
        "kind": 2,
        "startTimeUnixNano": str(int(start_s * S)),
        "endTimeUnixNano": str(int(end_s * S)),
        "attributes": [{"key": "http.status_code", "value": {"intValue": "200"}}],
        "status": {"code": 0},
    }
    if parent:
        span["parentSpanId"] = parent
    return span


def _request(service: str, spans: list[dict[str, object]]) -> dict[str, object]:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return {
        "resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "s"}, "spans": spans}]}]
    }


def test_window_request_keeps_spans_starting_in_the_window_and_the_structure() -> None:
    request = _request("gateway", [_span("01", 9.5, 10.5), _span("02", 10.0, 11.0), _span("03", 20.0, 21.0)])
    kept = window_request(request, 10 * S, 20 * S)
    assert kept is not None
    spans = spans_of_request(kept)
    assert [s.span_id for s in spans] == ["02"]  # 9.5 starts before, 20.0 is the (open) end
    assert spans[0].service == "gateway" and spans[0].attributes == {"http.status_code": 200}
    assert window_request(request, 30 * S, 40 * S) is None


def test_window_log_lines_keep_raw_lines_at_the_time_of_the_line_before() -> None:
    lines = [
        json.dumps({"timestamp": utc_iso(9.0), "level": "info", "message": "before"}),
        json.dumps({"timestamp": utc_iso(10.0), "level": "error", "message": "boom", "service": "orders"}),
        "Traceback (most recent call last):",
        "",
        json.dumps({"timestamp": utc_iso(12.0), "level": "info", "message": "after"}),
        "not json at the end",
        json.dumps({"level": "info", "message": "no time"}),
    ]
    out = list(window_log_lines(lines, 10.0, 12.0, "payment", 1))
    assert [e["message"] for e in out] == ["boom", "Traceback (most recent call last):"]
    assert out[0]["service"] == "orders"  # a line's own service wins
    assert out[1] == {
        "timestamp": utc_iso(10.0),
        "level": "raw",
        "message": "Traceback (most recent call last):",
        "service": "payment",
        "replica": 1,
    }


def test_source_of_reads_service_and_replica_from_the_file_name() -> None:
    assert source_of(Path("logs/catalog-1.log")) == ("catalog", 1)
    assert source_of(Path("traces/recommendations-0.jsonl")) == ("recommendations", 0)
    assert source_of(Path("supervisor.log")) == ("supervisor", None)


def test_lines_since_reads_what_was_appended_and_skips_a_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "gateway-0.log"
    path.write_text("old 1\nold 2\n")
    marks = snapshot([path, tmp_path / "missing.log"])
    assert marks == {str(path): len("old 1\nold 2\n")}
    with path.open("a") as f:
        f.write("new 1\nnew 2\n")
    assert list(lines_since(path, marks[str(path)])) == ["new 1", "new 2"]
    assert list(lines_since(path, 3)) == ["old 2", "new 1", "new 2"]  # "d 1" was cut by the offset
    path.write_text("rotated\n")  # shorter than the mark: read from the start
    assert list(lines_since(path, marks[str(path)])) == ["rotated"]
    assert list(lines_since(tmp_path / "gone.log", 0)) == []


def test_collect_writes_only_the_window_and_only_new_data(tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    traces.mkdir()
    gateway = traces / "gateway-0.jsonl"
    gateway.write_text(json.dumps(_request("gateway", [_span("0a", 11.0, 12.0)])) + "\n")  # earlier run
    marks = snapshot([gateway])
    with gateway.open("a") as f:
        f.write(json.dumps(_request("gateway", [_span("0b", 11.0, 12.0), _span("0c", 50.0, 51.0)])) + "\n")
    (traces / "orders-0.jsonl").write_text(
        json.dumps(_request("orders", [_span("0d", 12.0, 13.0, "0b")])) + "\n"
    )
    out = tmp_path / "run" / "traces" / "spans.jsonl"
    assert collect_traces(sorted(traces.glob("*.jsonl")), marks, 10.0, 20.0, out) == 2
    kept = [s.span_id for line in out.read_text().splitlines() for s in spans_of_request(json.loads(line))]
    assert kept == ["0b", "0d"]

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "cart-0.log").write_text(
        "\n".join(
            json.dumps({"timestamp": utc_iso(t), "level": "info", "message": str(t)}) for t in (15.0, 9.0)
        )
        + "\n"
    )
    (logs / "users-0.log").write_text(json.dumps({"timestamp": utc_iso(12.0), "message": "u"}) + "\n")
    out_logs = tmp_path / "run" / "logs" / "logs.jsonl"
    assert collect_logs(sorted(logs.glob("*.log")), {}, 10.0, 20.0, out_logs) == 2
    entries = [json.loads(line) for line in out_logs.read_text().splitlines()]
    assert [(e["service"], e["replica"], e["message"]) for e in entries] == [
        ("users", 0, "u"),
        ("cart", 0, "15.0"),
    ]
