"""The gate as library calls (what `testbed slo check` and the experiment orchestrator use):
`check_run(run_dir)` judges a run folder and writes its reports; `check_live(url, start, end)` judges a
window of a live Prometheus. Everything that prevents judging raises `CannotJudge` (exit status 2) with a
message that says how to fix it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sample_shop import topology
from slo.collect import SeriesFileError
from slo.errors import SloError
from slo.evaluate import DEFAULT_RECOVERY_WINDOW_S, GateReport, RuleOverride, evaluate
from slo.pages import NotificationsError, first_pages, read_notifications
from slo.prom import Prometheus, PrometheusError
from slo.report import write_reports
from slo.runfolder import ALERTS_JSONL, RunPaths
from slo.sources import (
    PrometheusSource,
    RunFolderSource,
    SourceError,
    Window,
    load_phases,
    load_run_json,
)
from slo.spec import SLO, SpecError, load_slos


class CannotJudge(SloError, RuntimeError):
    """The gate cannot judge (exit status 2): invalid SLO file, unreadable source, unreachable Prometheus."""


def _slos(slo_files: Sequence[Path] | None) -> list[SLO]:
    try:
        return load_slos(slo_files or None)
    except SpecError as exc:
        raise CannotJudge(str(exc)) from None


def measurable(
    slos: Sequence[SLO], *, client_metrics_scraped: bool, where: str
) -> tuple[list[SLO], dict[str, str]]:
    """The SLOs a stack can measure, and the name of each one it cannot -> why. A stack whose Prometheus
    does not scrape the load generator (kind: `client_metrics_scraped` false) cannot measure the client-side
    SLOs: judging them would be "no data" (exit 2) on every run. `where` names that Prometheus. An SLO
    annotated `testbed/gate: "false"` is never judged by a run's gate."""
    ungated = (
        'testbed/gate: "false": judged by its burn-rate alerts and its own experiments, not by every run'
    )
    not_judged = {s.name: ungated for s in slos if not s.gated}
    slos = [s for s in slos if s.gated]
    if client_metrics_scraped:
        return list(slos), not_judged
    why = (
        f"source client: {where} does not scrape the load generator's metrics "
        "(stack.json client_metrics_scraped: false)"
    )
    not_judged.update({s.name: why for s in slos if s.source == "client"})
    return [s for s in slos if s.source != "client"], not_judged


def _run_stack(run_dir: Path) -> dict[str, Any]:
    """The stack a run folder was recorded on (run.json's "stack"); {} for a folder without run.json."""
    path = RunPaths(run_dir).run_json
    if not path.exists():
        return {}
    try:
        info = load_run_json(path)
    except SourceError as exc:
        raise CannotJudge(str(exc)) from None
    stack = info.get("stack")
    return stack if isinstance(stack, dict) else {}


def run_windows(run_dir: Path) -> list[Window]:
    """The run's phases (phases.json), which must include its fault. Without them the gate cannot tell
    this run's data from what ran on the stack before it (the collected series reach a staleness
    lookback back), so it refuses instead of judging the whole collected span."""
    phases_file = RunPaths(Path(run_dir)).phases_json
    if not phases_file.exists():
        raise CannotJudge(
            f"{phases_file} does not exist: the run recorded no phase (it never reached its method), so "
            "there is no window of this run's own to judge; cannot judge. Run the experiment again."
        )
    windows = load_phases(phases_file)
    if not any(w.name == "fault" for w in windows):
        names = ", ".join(w.name for w in windows) or "none"
        raise CannotJudge(
            f"{phases_file}: no fault phase (phases: {names}): the run never reached its fault, so "
            "there is nothing to judge it on; cannot judge. Run the experiment again."
        )
    return windows


def attach_pages(report: GateReport, run_dir: Path) -> None:
    """Time to page per SLO from the run's alerts.jsonl (what Alertmanager delivered), beside the rules'
    time to detect. A run without the file had no Alertmanager: every SLO says so instead of a time."""
    fault = next((w for w in report.windows if w.name == "fault"), None)
    if fault is None:
        return
    path = RunPaths(run_dir).alerts_jsonl
    if not path.is_file():
        for s in report.slos:
            s.page_note = f"no {ALERTS_JSONL}: no Alertmanager ran with this stack, so no page was delivered"
        return
    try:
        records = read_notifications(path)
    except NotificationsError as exc:
        raise CannotJudge(str(exc)) from None
    pages = first_pages(records, fault.start, float("inf"))  # the file holds this run's window only
    for s in report.slos:
        s.time_to_page_s = pages.get(s.name)
        if s.time_to_page_s is None:
            s.page_note = "no page delivered after the fault started"


def check_run(
    run_dir: Path,
    *,
    slo_files: Sequence[Path] | None = None,
    phases: Sequence[str] | None = None,
    min_events: int | None = None,
    recovery_window_s: float = DEFAULT_RECOVERY_WINDOW_S,
    rule_override: RuleOverride | None = None,
    out_dir: Path | None = None,
) -> tuple[GateReport, list[Path]]:
    """Judge runs/<id>/ and write report.json, junit.xml, summary.md to `out_dir` (default RUN/slo).

    The SLOs the run's stack could not measure (run.json: a Prometheus that did not scrape the load
    generator, as on kind) are left out and listed with their reason in every report, never silently; a
    folder without run.json is judged on every SLO (what it lacks is "no data", exit 2)."""
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise CannotJudge(
            f"{run_dir}: no such run folder. Run an experiment first (`make experiment`) or give runs/<id>."
        )
    stack = _run_stack(run_dir)
    where = f"the {stack.get('target', '?')} stack's Prometheus ({stack.get('prometheus_url', '?')})"
    chosen, not_judged = measurable(
        _slos(slo_files),
        client_metrics_scraped=stack.get("client_metrics_scraped", True) is not False,
        where=where,
    )
    if not chosen:
        left_out = "; ".join(f"{name}: {why}" for name, why in not_judged.items())
        raise CannotJudge("no SLO is left to judge" + (f" (not judged: {left_out})" if left_out else ""))
    try:
        source = RunFolderSource(run_dir)
        report = evaluate(
            chosen, source, run_windows(run_dir), phases, recovery_window_s, min_events, rule_override
        )
    except (SourceError, SeriesFileError) as exc:
        raise CannotJudge(str(exc)) from None
    report.not_judged = [{"name": name, "reason": why} for name, why in not_judged.items()]
    attach_pages(report, run_dir)
    return report, write_reports(report, out_dir or RunPaths(run_dir).slo_dir)


def check_live(
    prometheus_url: str,
    start: float,
    end: float,
    *,
    slo_files: Sequence[Path] | None = None,
    slos: Sequence[SLO] | None = None,
    windows: Sequence[Window] | None = None,
    phases: Sequence[str] | None = None,
    min_events: int | None = None,
    recovery_window_s: float = DEFAULT_RECOVERY_WINDOW_S,
    rule_override: RuleOverride | None = None,
    timeout_s: float = 15.0,
    step_s: float = topology.SCRAPE_INTERVAL_S,
) -> GateReport:
    """Judge [start, end] (unix seconds) of a live Prometheus, per window when `windows` are given.
    `slos` (already loaded) replaces reading `slo_files`."""
    if end <= start:
        raise CannotJudge(f"the window's end ({end}) must be after its start ({start})")
    not_judged: dict[str, str] = {}
    if slos is None:  # the files' SLOs, less those a run's gate leaves out (testbed/gate: "false")
        slos, not_judged = measurable(_slos(slo_files), client_metrics_scraped=True, where=prometheus_url)
    slos = list(slos)
    span = Window("window", start, end)
    try:
        with Prometheus(prometheus_url, timeout_s=timeout_s) as prom:
            prom.check()
            source = PrometheusSource(prom, span, step_s)
            report = evaluate(
                slos, source, list(windows or [span]), phases, recovery_window_s, min_events, rule_override
            )
            report.not_judged = [{"name": name, "reason": why} for name, why in not_judged.items()]
            return report
    except (PrometheusError, SourceError) as exc:
        raise CannotJudge(str(exc)) from None
