"""Pure parts of the report and the live display: span waterfalls, ratios of curves, log and request
summaries per phase, the comparison's slice length, the live sample; and the run-folder format's writers
and readers on a tmp folder."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sample_shop.basics import utc_iso
from testbed.experiment.live import confidence_text, format_line, summarize
from testbed.experiment.schedule import plan_phases, position
from testbed.report.data import comparison_slice_s, curves, log_summary, phase_request_stats, ratio
from testbed.report.traces import slowest_traces, waterfall
from testbed.runfolder import (
    Phase,
    RunFolderError,
    RunInfo,
    SpanRecord,
    create_run,
    read_phases,
    read_run_info,
    resolve_run,
    update_latest,
    write_phases,
    write_run_info,
)

MS = 1_000_000


def _span(
    trace: str,
    span: str,
    parent: str | None,
    start_ms: int,
    end_ms: int,
    service: str = "gateway",
    error: bool = False,
) -> SpanRecord:
    return SpanRecord(
        trace, span, parent, f"op {span}", service, f"{service}-0", start_ms * MS, end_ms * MS, error, {}
    )


def test_waterfall_is_depth_first_with_children_by_start_and_orphans_as_roots() -> None:
    spans = [
        _span("t", "c2", "root", 50, 90, "orders"),
        _span("t", "root", None, 0, 100),
        _span("t", "c1", "root", 10, 40, "cart"),
        _span("t", "g1", "c1", 15, 30, "catalog"),
        _span("t", "orphan", "gone", 60, 70, "payment"),
    ]
    rows = waterfall(spans)
    assert [(r.name, r.depth, r.offset_ms) for r in rows] == [
        ("op root", 0, 0.0),
        ("op c1", 1, 10.0),
        ("op g1", 2, 15.0),
        ("op c2", 1, 50.0),
        ("op orphan", 0, 60.0),
    ]


def test_slowest_traces_are_ordered_and_placed_in_their_phase() -> None:
    spans = [
        _span("fast", "a", None, 1_000, 1_010),
        _span("slow", "b", None, 5_000, 7_000),
        _span("slow", "c", "b", 5_100, 6_900, "payment", error=True),
        _span("mid", "d", None, 9_000, 9_500),
    ]
    phases = [Phase("baseline", 0.0, 4.0), Phase("fault", 4.0, 8.0)]
    views = slowest_traces(spans, phases, count=2)
    assert [v.trace_id for v in views] == ["slow", "mid"]
    assert views[0].duration_ms == pytest.approx(2000.0)
    assert (views[0].phase, views[0].error, views[0].span_count) == ("fault", True, 2)
    assert views[1].phase is None


def test_a_checkout_is_as_slow_as_its_request_not_as_its_later_email() -> None:
    """The e-mail spans continue the checkout's trace seconds later (through the outbox): the ranking and
    the shown duration are the root request's, while the waterfall still holds the e-mail's spans."""
    spans = [
        _span("checkout", "root", None, 1_000, 1_200),
        _span("checkout", "mail", "root", 1_150, 9_000, "notifications"),
        _span("browse", "b", None, 2_000, 2_900),
    ]
    views = slowest_traces(spans, [], count=2)
    assert [v.trace_id for v in views] == ["browse", "checkout"]
    assert views[1].duration_ms == pytest.approx(200.0) and views[1].span_count == 2
    assert [r.service for r in views[1].rows] == ["gateway", "notifications"]


def test_ratio_matches_times_and_counts_a_missing_numerator_as_zero() -> None:
    t = np.array([1.0, 2.0, 3.0])
    total = {"browse": (t, np.array([10.0, 0.0, 4.0])), "cart": (t, np.array([2.0, 2.0, 2.0]))}
    bad = {"browse": (np.array([1.0, 3.0]), np.array([5.0, 1.0]))}
    out = ratio(bad, total)
    assert np.allclose(out["browse"][1], [0.5, np.nan, 0.25], equal_nan=True)
    assert np.allclose(out["cart"][1], [0.0, 0.0, 0.0])


def test_curves_key_by_label_relative_to_the_origin_and_drop_nan() -> None:
    frame = pd.DataFrame(
        {
            "query": ["q", "q", "q", "other"],
            "labels": ['{"journey": "browse"}', '{"journey": "browse"}', '{"journey": "cart"}', "{}"],
            "value": [1.0, float("nan"), 2.0, 3.0],
            "t": [100.0, 101.0, 102.0, 103.0],
        }
    )
    out = curves(frame, "q", "journey", origin=100.0)
    assert set(out) == {"browse", "cart"}
    assert out["browse"][0].tolist() == [0.0] and out["cart"][1].tolist() == [2.0]
    assert curves(None, "q", "journey", 0.0) == {}


def test_log_summary_counts_warnings_errors_and_raw_lines_per_service_and_phase() -> None:
    phases = [Phase("baseline", 0.0, 10.0), Phase("fault", 10.0, 20.0)]
    logs = [
        {"timestamp": utc_iso(1.0), "level": "info", "service": "orders"},
        {"timestamp": utc_iso(11.0), "level": "error", "service": "orders"},
        {"timestamp": utc_iso(12.0), "level": "ERROR", "service": "orders"},
        {"timestamp": utc_iso(13.0), "level": "warn", "service": "gateway"},
        {"timestamp": utc_iso(14.0), "level": "raw", "service": "orders"},
        {"timestamp": utc_iso(30.0), "level": "error", "service": "payment"},
        {"timestamp": "garbage", "level": "error", "service": "payment"},
    ]
    assert log_summary(logs, phases) == [
        {"service": "gateway", "phase": "fault", "warning": 1},
        {"service": "orders", "phase": "fault", "error": 2, "raw": 1},
        {"service": "payment", "phase": "-", "error": 1},
    ]


def test_phase_request_stats_from_the_per_request_record() -> None:
    stamps = pd.to_datetime([0.5, 1.0, 11.0, 12.0, 13.0, 25.0], unit="s", utc=True)
    requests = pd.DataFrame(
        {
            "timestamp": stamps,
            "response_time_ms": [10.0, 20.0, 100.0, 200.0, 300.0, 5.0],
            "ok": [True, True, True, False, True, True],
        }
    )
    rows = phase_request_stats(requests, [Phase("baseline", 0.0, 10.0), Phase("fault", 10.0, 20.0)])
    assert rows[0]["requests"] == 2 and rows[0]["failures"] == 0 and rows[0]["rps"] == pytest.approx(0.2)
    assert rows[1]["requests"] == 3 and rows[1]["error_ratio"] == pytest.approx(1 / 3)
    assert rows[1]["p50_ms"] == pytest.approx(200.0)


def test_comparison_slices_fit_short_phases() -> None:
    assert comparison_slice_s(120.0, 120.0) == 10.0  # slo.compare's default
    assert comparison_slice_s(20.0, 30.0) == pytest.approx(20.0 / 6)
    assert comparison_slice_s(4.0, 30.0) == 2.0  # never below a few scrapes


def test_live_sample_picks_the_fastest_burning_slo() -> None:
    sample = summarize(
        phase=[({"phase": "baseline"}, 0.0), ({"phase": "fault"}, 1.0)],
        rps=[({}, 20.0)],
        failed=[({}, 2.0)],
        p95=[({}, float("nan"))],
        slo_error=[({"slo": "checkout-availability-gateway"}, 0.05), ({"slo": "browse-latency-client"}, 0.1)],
        budget=[({"slo": "checkout-availability-gateway"}, 0.01), ({"slo": "browse-latency-client"}, 0.05)],
        alerts=[({"slo": "checkout-availability-gateway", "severity": "page"}, 1.0)],
        retries=[({}, 0.5)],
    )
    assert (sample.phase, sample.rps, sample.error_ratio, sample.p95_s) == ("fault", 20.0, 0.1, None)
    assert sample.worst_slo == "checkout-availability-gateway" and sample.worst_burn == pytest.approx(5.0)
    line = format_line(75.0, position(plan_phases({"fault": 30.0}, {}), "fault", 0.0, 10.0), sample)
    assert line.startswith("  1:15  fault (1/1) 0:20 left")
    assert "errors 10.0%" in line and "checkout-availability-gateway 95.0% (burn 5.0x)" in line
    assert "retries 0.5/s" in line and "alerts: checkout-availability-gateway" in line
    calm = summarize([], [({}, 5.0)], [], [], [({"slo": "a"}, 0.0)], [({"slo": "a"}, 0.01)], [])
    assert calm.error_ratio == 0.0 and "SLOs: no error budget burning" in format_line(
        1.0, position(plan_phases({"fault": 30.0}, {}), None, None, 0.0), calm
    )
    assert summarize([], [], [], [], [], [], []).error_ratio is None


def test_run_folders_are_unique_and_latest_follows_the_newest(tmp_path: Path) -> None:
    when = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)
    first = create_run(tmp_path, "Payment Errors!", when)
    second = create_run(tmp_path, "Payment Errors!", when)
    assert first.id == "20261126T080000Z-payment-errors"
    assert second.id == "20261126T080000Z-payment-errors-2"
    assert first.load_dir.is_dir() and first.slo_dir.is_dir() and first.spans_jsonl.parent.is_dir()
    update_latest(tmp_path, first)
    update_latest(tmp_path, second)
    assert (tmp_path / "latest").resolve() == second.root
    assert not (tmp_path / "latest").readlink().is_absolute()  # the runs folder can be moved or archived


def test_run_info_and_phases_round_trip_and_bad_folders_say_why(tmp_path: Path) -> None:
    run = create_run(tmp_path, "x", datetime(2026, 1, 1, tzinfo=UTC))
    info = RunInfo(run.id, "x", "t", "/e.yaml", "local", "steady", {"users": 3}, utc_iso(1.0))
    write_run_info(run, info)
    assert read_run_info(run) == info
    write_phases(run, [Phase("baseline", 1.5, 4.25), Phase("fault", 4.25, 9.0)])
    assert read_phases(run) == [Phase("baseline", 1.5, 4.25), Phase("fault", 4.25, 9.0)]
    assert resolve_run(run.root).root == run.root
    with pytest.raises(RunFolderError, match="no such run folder"):
        resolve_run(tmp_path / "missing")
    with pytest.raises(RunFolderError, match="not a run folder"):
        resolve_run(tmp_path)
    run.phases_json.write_text(json.dumps([{"name": "fault", "start": "yesterday", "end": utc_iso(2.0)}]))
    with pytest.raises(RunFolderError, match=r"phases.json: entry \[0\]: start/end must be ISO 8601"):
        read_phases(run)


def test_the_verdict_plot_draws_an_interval_that_does_not_contain_the_observed_sli(tmp_path: Path) -> None:
    """With a handful of events (a run interrupted early) the anytime-valid interval may lie wholly on one
    side of the observed SLI; matplotlib refuses negative whiskers, which lost the whole report.html."""
    from datetime import UTC, datetime

    from testbed.report.data import ReportData
    from testbed.report.plots import verdict_intervals

    run = create_run(tmp_path, "x", datetime(2026, 1, 1, tzinfo=UTC))
    info = RunInfo(
        id=run.id, experiment="x", title="", experiment_file="", target="local", profile="", config={},
        started="2026-01-01T00:00:00.000Z",
    )  # fmt: skip
    window = {
        "window": "fault",
        "judged": True,
        "status": "inconclusive",
        "sli": 0.5,
        "sli_low": 0.6,
        "sli_high": 0.9,
    }
    gate = {"slos": [{"name": "s", "target": 0.99, "windows": [window]}], "judged_windows": ["fault"]}
    assert verdict_intervals(ReportData(run=run, info=info, gate=gate)).startswith("iVBOR")  # a PNG


def test_the_live_confidence_text_counts_decided_slos_and_says_what_a_new_phase_lacks() -> None:
    assert confidence_text(None) is None
    assert confidence_text({"slos": []}) == "deciding: no events in this phase yet"
    status = {
        "slos": [
            {"name": "checkout-availability-gateway", "critical": True, "status": "inconclusive",
             "events": 113.4, "events_needed": 85},
            {"name": "browse-availability-gateway", "critical": False, "status": "met", "events": 400},
            {"name": "login-availability-gateway", "critical": True, "status": "met", "events": 204},
        ]
    }  # fmt: skip
    assert confidence_text(status) == (
        "decided 2/3: checkout-availability-gateway 113 ev, needs ~85;"
        " login-availability-gateway met (204 ev)"
    )
