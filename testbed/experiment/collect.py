"""Collect a finished run into its folder: the Prometheus series (the SLOs' raw counters via slo.collect,
plus what the plots need), the phase boundaries, and the traces and logs of the run's window. The journal
and the load results are already there (chaos and the load wrote them)."""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sample_shop import topology
from sample_shop.basics import utc_iso
from sample_shop.topology import StackDescriptor
from slo.collect import NamedQuery, collect_series, empty_series_frame, queries_for, read_series
from slo.prom import Prometheus, PrometheusError
from slo.spec import SpecError, load_slos
from testbed.experiment import queries, telemetry
from testbed.experiment.schedule import PhasePlan, check_phases, phases_from_gauge, phases_from_journal
from testbed.runfolder import Phase, RunPaths, write_phases, write_series

SCRAPE_SETTLE_S = 2 * topology.SCRAPE_INTERVAL_S + 0.5  # the last samples of the window are scraped
PARALLEL_QUERIES = 4


@dataclass
class Collected:
    phases: list[Phase] = field(default_factory=list)
    phases_source: str = ""
    series_rows: int = 0
    spans: int = 0
    log_lines: int = 0
    notifications: int | None = None  # Alertmanager's deliveries in the window; None: no Alertmanager ran
    window: tuple[float, float] = (0.0, 0.0)  # what was collected: from before chaos started to its end
    errors: list[str] = field(default_factory=list)  # each makes the run unjudgeable
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": {"start": utc_iso(self.window[0]), "end": utc_iso(self.window[1])},
            "phases_source": self.phases_source,
            "series_rows": self.series_rows,
            "spans": self.spans,
            "log_lines": self.log_lines,
            "notifications": self.notifications,
            "errors": self.errors,
            "notes": self.notes,
        }


def wait_for_scrapes(end: float) -> None:
    """Prometheus scrapes every second: wait until it has samples past the window's end."""
    left = end + SCRAPE_SETTLE_S - time.time()
    if left > 0:
        time.sleep(left)


def _collect_part(prom_url: str, part: list[NamedQuery], start: float, end: float) -> pd.DataFrame:
    with Prometheus(prom_url, timeout_s=30.0) as prom:
        return collect_series(prom, part, start, end)


def collect_metrics(prom_url: str, run: RunPaths, experiment_id: str, start: float, end: float) -> int:
    """series.parquet + queries.json; raises PrometheusError / SpecError when it cannot. The queries go out
    a few at a time: Prometheus answers in its own process, so the waits overlap."""
    named = queries_for(load_slos()) + queries.plot_queries(experiment_id)
    with Prometheus(prom_url, timeout_s=10.0) as prom:
        prom.check()
    parts = [named[i::PARALLEL_QUERIES] for i in range(PARALLEL_QUERIES)]
    with ThreadPoolExecutor(max_workers=PARALLEL_QUERIES) as pool:
        frames = list(pool.map(lambda part: _collect_part(prom_url, part, start, end), parts))
    frames = [f for f in frames if not f.empty]
    frame = pd.concat(frames, ignore_index=True) if frames else empty_series_frame()
    write_series(run, frame, {q.name: q.promql for q in named})
    return len(frame)


def relocate_load(run: RunPaths, load_out_dir: str | None) -> str | None:
    """Move the load results into run/load when the experiment wrote them elsewhere (it declares no
    `load_out` configuration, so `chaos run` could not be told where to put them)."""
    if not load_out_dir:
        return None
    source = Path(load_out_dir)
    if source.resolve() == run.load_dir.resolve() or not source.is_dir():
        return None
    for item in source.iterdir():
        target = run.load_dir / item.name
        if target.exists():
            continue
        shutil.move(str(item), str(target))
    shutil.rmtree(source, ignore_errors=True)
    return f"load results moved from {source} (declare `load_out` in the experiment's configuration)"


def collect_run(
    run: RunPaths,
    stack: StackDescriptor,
    experiment_id: str,
    plan: PhasePlan,
    journal: dict[str, Any] | None,
    start: float,
    end: float,
    marks: dict[str, int],
) -> Collected:
    """Everything into the run folder. What cannot be collected is recorded in `errors` (fail closed:
    the orchestrator then does not pass the run), never raised."""
    out = Collected(window=(start, end))
    out.phases = phases_from_journal(journal or {}, fallback_end=end)
    out.phases_source = "journal"
    # the judged data ends with the last phase; the rollbacks after it usually took longer than this wait
    wait_for_scrapes(max((p.end for p in out.phases), default=end))
    try:
        out.series_rows = collect_metrics(stack.prometheus_url, run, experiment_id, start, end)
    except (PrometheusError, SpecError) as exc:
        out.errors.append(f"metrics not collected: {exc}")
    if not out.phases and run.series_parquet.is_file():
        gauge = read_series(run.series_parquet).get(queries.name("phase", ""), [])
        out.phases = phases_from_gauge([(s.labels, s.timestamps, s.values) for s in gauge], not_before=start)
        out.phases_source = "testbed_experiment_phase"
        if out.phases:
            out.notes.append("phases read from the phase gauge in Prometheus (no journal): accurate to 1 s")
    if out.phases:
        write_phases(run, out.phases)
        out.errors += check_phases(out.phases, plan)
    else:
        out.phases_source = ""
        out.errors.append("no phase was recorded: the experiment never reached its method")
    traces_dir = Path(stack.traces_dir) if stack.traces_dir else None
    out.spans = telemetry.collect_traces(
        telemetry.trace_files(traces_dir), marks, start, end, run.spans_jsonl
    )
    if traces_dir is None:
        out.notes.append(f"traces go to {stack.jaeger_url or 'an OTLP endpoint'}; none in the run folder")
    logs_dir = Path(stack.logs_dir) if stack.logs_dir else None
    supervisor_log = Path(stack.state_dir) / "supervisor.log" if stack.state_dir else None
    out.log_lines = telemetry.collect_logs(
        telemetry.log_files(logs_dir, supervisor_log), marks, start, end, run.logs_jsonl
    )
    if stack.alerts_file:
        out.notifications = telemetry.collect_alerts(
            Path(stack.alerts_file), marks, start, end, run.alerts_jsonl
        )
    else:
        out.notes.append("no Alertmanager ran with this stack: no alerts.jsonl, no time to page")
    return out


def telemetry_files(stack: StackDescriptor) -> list[Path]:
    """Every trace and log file whose size marks where a run begins."""
    traces_dir = Path(stack.traces_dir) if stack.traces_dir else None
    logs_dir = Path(stack.logs_dir) if stack.logs_dir else None
    supervisor_log = Path(stack.state_dir) / "supervisor.log" if stack.state_dir else None
    alerts = [Path(stack.alerts_file)] if stack.alerts_file else []
    return telemetry.trace_files(traces_dir) + telemetry.log_files(logs_dir, supervisor_log) + alerts
