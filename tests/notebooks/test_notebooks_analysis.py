"""notebooks.analysis on a real run folder (tests/notebooks/conftest.py: a short payment-latency-breaker
experiment on the session stack): every shaping function against numbers recomputed another way from the
same files, and the run's known finding (checkout fails fast during the fault, nothing else does)."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from notebooks.analysis import compare, logs, overview, traces, whatif
from notebooks.analysis.run import PARTS, RunData, open_run, previous_run_path, resolve_run_path
from slo.spec import load_slos
from testbed.report.traces import group_traces

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]
PHASE_NAMES = ["warmup", "baseline", "fault", "recovery"]


@pytest.fixture(scope="module")
def run(real_run: Path) -> RunData:
    opened = open_run(real_run)
    assert opened.ok, opened.error
    return opened


@pytest.fixture(scope="module")
def requests(run: RunData) -> pd.DataFrame:
    return overview.with_phases(run.requests, run.phases, run.origin)


# --------------------------------------------------------------------------------------------------
# Opening
# --------------------------------------------------------------------------------------------------


def test_a_real_run_opens_with_every_part(run: RunData) -> None:
    assert [p.name for p in run.phases] == PHASE_NAMES
    assert run.origin == run.phases[0].start
    for name in PARTS:
        assert run.present(name), name
        run.get(name)  # loads without PartUnavailable
    lines = "\n".join(run.status_lines())
    assert run.id in lines and "✗" not in lines
    assert all(f"✓ {spec.file}" in lines for spec in PARTS.values())


def test_missing_and_foreign_folders_say_what_is_wrong_and_skip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = open_run(tmp_path / "runs" / "latest")
    assert not missing.ok and "no such run folder" in (missing.error or "")
    assert "make experiment" in "\n".join(missing.status_lines())
    assert missing.require("requests") is False
    assert "skipped" in capsys.readouterr().out

    not_a_run = open_run(tmp_path)
    assert not not_a_run.ok and "no run.json" in (not_a_run.error or "")


def test_relative_paths_are_taken_from_the_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TESTBED_RUN", raising=False)
    monkeypatch.delenv("TESTBED_RUNS_DIR", raising=False)
    root = Path(__file__).resolve().parents[2]
    assert resolve_run_path(None) == root / "runs" / "latest"
    monkeypatch.setenv("TESTBED_RUN", "runs/x")
    assert resolve_run_path(None) == root / "runs" / "x"
    assert resolve_run_path("/abs/run") == Path("/abs/run")


def test_a_partial_folder_skips_only_what_is_missing(real_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / real_run.name
    shutil.copytree(real_run, copy)
    (copy / "traces" / "spans.jsonl").unlink()
    (copy / "metrics" / "series.parquet").write_bytes(b"not parquet")
    partial = open_run(copy)
    assert partial.ok
    assert not partial.require("spans") and not partial.require("series")
    assert partial.require("requests", "logs", "slo_report")
    lines = "\n".join(partial.status_lines())
    assert "✗ traces/spans.jsonl" in lines and "✓ load/requests.parquet" in lines


def test_the_previous_run_is_the_one_before_in_the_same_folder(real_run: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    older = runs / "20000101T000000Z-older"
    shutil.copytree(real_run, older)
    shutil.copytree(real_run, runs / real_run.name)
    assert previous_run_path(open_run(runs / real_run.name)) == older
    assert previous_run_path(open_run(older)) is None


# --------------------------------------------------------------------------------------------------
# Overview
# --------------------------------------------------------------------------------------------------


def test_every_request_lands_in_one_bin_and_its_phase(run: RunData, requests: pd.DataFrame) -> None:
    binned = overview.over_time(requests, 2.0)
    assert binned["requests"].sum() == len(requests)
    assert np.allclose(binned["rps"], binned["requests"] / 2.0)
    busiest = binned["requests"].idxmax()
    inside = requests[(requests["elapsed"] >= busiest) & (requests["elapsed"] < busiest + 2.0)]
    assert binned.loc[busiest, "p95_ms"] == pytest.approx(inside["response_time_ms"].quantile(0.95))
    assert binned.loc[busiest, "error_ratio"] == pytest.approx(1 - inside["ok"].mean())
    for phase in run.phases:
        rows = requests[requests["phase"] == phase.name]
        assert len(rows) > 0
        assert rows["t"].between(phase.start, phase.end, inclusive="left").all()
    summary = overview.phase_summary(run.requests, run.phases)
    assert summary["requests"].to_dict() == requests["phase"].value_counts().to_dict()


def test_checkout_fails_during_the_fault_and_browsing_does_not(requests: pd.DataFrame) -> None:
    table = overview.journey_phase_summary(requests)["error_ratio"]
    assert table["checkout", "fault"] >= table["checkout", "baseline"] + 0.5
    assert table["browse", "fault"] <= 0.05


def test_the_gateway_series_have_one_column_per_journey(run: RunData) -> None:
    from testbed.experiment.queries import quantile_name

    wide = overview.series_wide(run.series, quantile_name(0.95, "server"), ["journey"], run.origin)
    assert {"browse", "checkout"} <= set(wide.columns)
    fault = run.phase("fault")
    assert fault is not None
    during = wide.loc[(wide.index >= fault.start - run.origin) & (wide.index < fault.end - run.origin)]
    assert len(during) >= fault.seconds / 2  # about one sample per scrape


def test_the_slo_table_is_the_gates_report(run: RunData) -> None:
    report = json.loads((run.paths.root / "slo" / "report.json").read_text())  # type: ignore[union-attr]
    table = overview.slo_table(report)
    assert list(table.index) == [s["name"] for s in report["slos"]]
    # the table carries the gate's verdict for every SLO (short phases leave some inconclusive: that is
    # the gate's honest answer, and the table must not round it to met)
    assert dict(table["verdict"]) == {s["name"]: s["status"] for s in report["slos"]}
    assert table.loc["checkout-availability-gateway", "verdict"] == "breached"
    assert set(PHASE_NAMES) <= set(table.columns)


# --------------------------------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------------------------------


def test_baseline_versus_fault_flags_checkout_errors_only(run: RunData, requests: pd.DataFrame) -> None:
    base, fault = run.phase("baseline"), run.phase("fault")
    assert base is not None and fault is not None
    table = compare.compare_requests(requests, base, requests, fault)
    checkout = table.loc[("checkout", "error_ratio")]
    assert checkout["failed"] and checkout["classification"] == "high"
    assert checkout["p_value"] < 0.02 and checkout["cliffs_delta"] >= 0.5
    assert not table.loc[("browse", "error_ratio"), "failed"]


def test_a_window_compared_with_itself_changes_nothing(run: RunData, requests: pd.DataFrame) -> None:
    base = run.phase("baseline")
    assert base is not None
    table = compare.compare_requests(requests, base, requests, base)
    judged = table[table["classification"] != "nodata"]
    assert len(judged) >= 6
    assert (judged["classification"] == "pass").all()
    assert np.allclose(judged["cliffs_delta"].astype(float), 0.0)
    assert np.allclose(judged["hl_shift"].astype(float), 0.0)


def test_cliffs_delta_is_the_pairwise_dominance(requests: pd.DataFrame, run: RunData) -> None:
    base, fault = run.phase("baseline"), run.phase("fault")
    assert base is not None and fault is not None
    x = compare.in_window(requests, base)["response_time_ms"].to_numpy()[:300]
    y = compare.in_window(requests, fault)["response_time_ms"].to_numpy()[:300]
    assert compare.cliffs_delta(x, y) == pytest.approx(np.sign(np.subtract.outer(y, x)).mean())


def test_the_slo_comparison_fails_on_checkout_availability(run: RunData) -> None:
    base, fault = run.phase("baseline"), run.phase("fault")
    assert base is not None and fault is not None
    source = run.slo_source()
    table, report = compare.slo_comparison(load_slos(), (source, base), (source, fault))
    assert report.result.verdict == "fail"
    assert table.loc["checkout-availability-gateway", "failed"]
    assert not table.loc["browse-availability-gateway", "failed"]


# --------------------------------------------------------------------------------------------------
# Traces and logs
# --------------------------------------------------------------------------------------------------


def test_critical_paths_add_up_to_each_trace(run: RunData) -> None:
    checked = 0
    for trace_id, members in group_traces(run.spans).items():
        root = traces.root_of(members)
        path = traces.critical_path(members)
        if root is None:
            continue
        ids = {s.span_id for s in members}
        assert {s.span_id for s in path} <= ids
        assert sum(s.end_ns - s.start_ns for s in path) == root.end_ns - root.start_ns, trace_id
        ordered = sorted(path, key=lambda s: s.start_ns)
        assert ordered[0].start_ns == root.start_ns and ordered[-1].end_ns == root.end_ns
        assert all(a.end_ns == b.start_ns for a, b in itertools.pairwise(ordered))  # no gap, no overlap
        checked += 1
    assert checked >= 20


def test_where_the_time_went_sums_to_the_slowest_traces(run: RunData) -> None:
    table = traces.trace_table(run.spans, run.phases)
    went = traces.where_time_went(run.spans, table, ["baseline", "fault"], 10)
    for phase in ("baseline", "fault"):
        slowest = table[table["phase"] == phase].nlargest(10, "duration_ms")
        assert went[phase].sum() == pytest.approx(slowest["duration_ms"].mean(), rel=1e-9)


def test_span_durations_per_service_and_phase(run: RunData) -> None:
    spans = overview.with_phases(traces.spans_frame(run.spans), run.phases, run.origin, "start")
    table = traces.durations_by_service_phase(spans)
    server = spans[(spans["kind"] == "server") & spans["phase"].notna()]
    assert table["spans"].sum() == len(server)
    assert all(("gateway", p) in table.index for p in ("baseline", "fault"))
    assert (table["p50_ms"] <= table["p95_ms"] + 1e-9).all() and (
        table["p95_ms"] <= table["max_ms"] + 1e-9
    ).all()


def test_error_logs_by_phase_show_the_fault(run: RunData) -> None:
    frame = overview.with_phases(logs.logs_frame(run.logs), run.phases, run.origin)
    levels = logs.levels_by_phase(frame, run.phases)
    assert levels.loc["fault", "error"] > levels.loc["baseline", "error"]
    per_service = logs.problems_by_service_phase(run.logs, run.phases)
    assert per_service.xs("fault", level="phase")["error"].sum() == levels.loc["fault", "error"]
    top = logs.top_errors(frame, "fault")
    assert ((top["service"] == "gateway") & top["pattern"].str.contains("checkout")).any()
    assert logs.message_pattern("POST /api/checkout 503 2381.5 ms") == "POST /api/checkout # # ms"


# --------------------------------------------------------------------------------------------------
# SLO what-if
# --------------------------------------------------------------------------------------------------


def test_the_own_objective_reproduces_the_gate(run: RunData) -> None:
    source = run.slo_source()
    slos = {s.name: s for s in load_slos()}
    for result in run.slo_report["slos"]:
        slo = slos[result["name"]]
        grid = whatif.budget_grid(slo, source.events(slo), run.phases, [slo.target], [f"{slo.period_s}s"])
        rows = grid.set_index("window")
        for window in result["windows"]:
            assert rows.loc[window["window"], "total"] == window["total"], (slo.name, window["window"])
            assert rows.loc[window["window"], "good"] == window["good"], (slo.name, window["window"])
        overall = result["overall"]
        if overall and overall["budget_consumed"] is not None:
            assert rows.loc[whatif.JUDGED, "budget_consumed"] == pytest.approx(overall["budget_consumed"])


def test_budget_grows_with_the_target_and_shrinks_with_the_period(run: RunData) -> None:
    slo = next(s for s in load_slos() if s.name == "checkout-availability-gateway")
    grid = whatif.budget_grid(slo, run.slo_source().events(slo), run.phases)
    budget = grid[grid["window"] == whatif.JUDGED].pivot(
        index="target", columns="period", values="budget_consumed"
    )
    budget = budget[list(whatif.DEFAULT_PERIODS)]
    assert (budget.iloc[0] > 0).all()
    assert (budget.diff(axis=0).iloc[1:] > 0).all().all()  # stricter target: more of the budget
    assert (budget.diff(axis=1).iloc[:, 1:] < 0).all().all()  # longer period: less of it


def test_alert_what_if_at_the_own_objective_is_the_gates_detection(run: RunData) -> None:
    """For SLOs the fault clearly broke (burn rate far above the fastest page factor), the what-if at the
    SLO's own objective detects the fault when the real alerts did, give or take Prometheus' rate()
    extrapolation and rule evaluation. Borderline SLOs (a loaded machine's latency) may differ."""
    fault = run.phase("fault")
    assert fault is not None
    source = run.slo_source()
    slos = {s.name: s for s in load_slos()}
    clear = [
        r
        for r in run.slo_report["slos"]
        if r["time_to_detect_s"] is not None
        and any(w["window"] == "fault" and (w["burn_rate"] or 0) >= 2 * 14.4 for w in r["windows"])
    ]
    assert {"checkout-availability-gateway", "checkout-availability-client"} <= {r["name"] for r in clear}
    for result in clear:
        slo = slos[result["name"]]
        alerts = whatif.alert_grid(
            source.events(slo), fault, source.span.end, [slo.target], [f"{slo.period_s}s"]
        )
        ours = alerts["detect_s"].dropna()
        assert len(ours), f"{slo.name}: the gate detected the fault, the what-if did not"
        assert abs(ours.min() - result["time_to_detect_s"]) <= 10, slo.name


def test_other_latency_thresholds(run: RunData, requests: pd.DataFrame) -> None:
    grid = whatif.latency_threshold_grid(requests, run.phases, [0.1, 0.5, 1.5, 5.0], 0.95, "checkout")
    sli = grid.pivot(index="threshold_s", columns="window", values="sli")
    # A window without checkouts (a short warm-up can have none) has no SLI at all - and only such a window.
    empty = grid[grid["sli"].isna()]
    assert (empty["total"] == 0).all(), empty
    steps = sli.diff().iloc[1:]
    assert ((steps >= 0) | steps.isna()).all().all()  # a looser threshold never has fewer good requests
    totals = grid[grid["threshold_s"] == 0.1].set_index("window")["total"]
    counts = requests[requests["slo_journey"] == "checkout"]["phase"].value_counts()
    assert totals.to_dict() == {p: int(counts.get(p, 0)) for p in totals.index}


def test_the_breaker_run_folder_holds_its_delivered_pages_and_the_time_to_page(run: RunData) -> None:
    """payment-latency-breaker (the notebooks' real run) breaks checkout availability: its run folder holds
    alerts.jsonl with the pages Alertmanager delivered to the testbed's receiver, and the gate's report and
    report.html show the time from the fault's start to the first page, as an on-call engineer saw it."""
    from slo.pages import first_pages, read_notifications

    assert run.paths is not None
    root = run.paths.root
    fault = run.phase("fault")
    assert fault is not None
    records = read_notifications(root / "alerts.jsonl")
    paged = first_pages(records, fault.start, fault.end + 60)
    assert "checkout-availability-gateway" in paged, f"no checkout availability page in {root}/alerts.jsonl"
    report = {s["name"]: s for s in run.slo_report["slos"]}
    to_page = report["checkout-availability-gateway"]["time_to_page_s"]
    assert to_page == pytest.approx(paged["checkout-availability-gateway"], abs=0.01)
    assert 0 < to_page < fault.seconds + 60
    assert report["checkout-availability-gateway"]["time_to_detect_s"] <= to_page + 1  # detect, then deliver
    html = (root / "report.html").read_text()
    assert "time to page" in html and f"{to_page:.0f} s" in html, "report.html shows the time to page"
