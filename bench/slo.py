"""SLO figures: time to evaluate every SLO over one hour of data, from a live Prometheus and from a run
folder (target <= 1 s each).

The history is a deterministic shop-like hour (slo/synthetic.py: every journey's routes at 2 requests/s
per route, one checkout incident) backfilled into a real Prometheus TSDB with promtool; the evaluation
is the gate's own code path (sources + evaluate) over the hour split into the four experiment phases.
Setup (backfill, Prometheus start) is not timed."""

from __future__ import annotations

import time
from pathlib import Path

from bench.harness import BenchContext, Figure, benchmark, timed
from slo.collect import collect_series, queries_for
from slo.evaluate import evaluate
from slo.prom import Prometheus
from slo.sources import PrometheusSource, RunFolderSource, Window
from slo.spec import load_slos
from slo.synthetic import Condition, Incident, Scenario, backfill, prometheus_on, slo_buckets

EVALUATE_TARGET_S = 1.0


def _phases(start: float, duration_s: float) -> list[Window]:
    quarter = duration_s / 4
    names = ("warmup", "baseline", "fault", "recovery")
    return [Window(n, start + i * quarter, start + (i + 1) * quarter) for i, n in enumerate(names)]


@benchmark("slo.evaluate", repeat=3, order=60)
def evaluate_all_slos(ctx: BenchContext) -> list[Figure]:
    """Evaluate all SLOs (per phase, with time to recover) over one hour of 1 s data: live and run folder."""
    duration_s = int(ctx.duration(full_s=3600, smoke_s=300))
    start = float(int(time.time()) - 2 * 3600 - duration_s)
    scenario = Scenario(
        start=start,
        duration_s=duration_s,
        buckets=slo_buckets(load_slos()),
        incidents=(Incident("checkout", duration_s / 2, duration_s * 3 / 4, Condition(0.5, 2.0)),),
    )
    workdir = ctx.workdir / f"slo-{ctx.repeat_index}"
    workdir.mkdir(parents=True, exist_ok=True)
    data = backfill(scenario, workdir)
    slos = load_slos()
    windows = _phases(start, duration_s)
    span = Window("run", start, start + duration_s)
    with prometheus_on(data) as url, Prometheus(url, timeout_s=60) as prom:
        prom.check()
        with timed() as live:
            report = evaluate(slos, PrometheusSource(prom, span), windows)
        live_s = live()
        run = _run_folder(workdir, prom, slos, span)
    with timed() as folder:
        folder_report = evaluate(slos, RunFolderSource(run), windows)
    folder_s = folder()
    if report.status != "breached" or folder_report.status != "breached":
        raise AssertionError(
            f"the checkout incident must breach: live {report.status}, run {folder_report.status}"
        )
    note = f"{len(slos)} SLOs x 4 phases over {duration_s / 60:.0f} min of 1 s samples"
    return [
        Figure(
            "evaluate all SLOs, live Prometheus",
            live_s,
            "s",
            EVALUATE_TARGET_S,
            note=note + ", range queries included",
        ),
        Figure(
            "evaluate all SLOs, run folder",
            folder_s,
            "s",
            EVALUATE_TARGET_S,
            note=note + ", Parquet read included",
        ),
    ]


def _run_folder(workdir: Path, prom: Prometheus, slos: list, span: Window) -> Path:
    run = workdir / "run"
    (run / "metrics").mkdir(parents=True, exist_ok=True)
    collect_series(prom, queries_for(slos), span.start, span.end).to_parquet(
        run / "metrics" / "series.parquet"
    )
    return run
