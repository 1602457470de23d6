"""The gate as library calls (what `testbed slo check` and the experiment orchestrator use):
`check_run(run_dir)` judges a run folder and writes its reports; `check_live(url, start, end)` judges a
window of a live Prometheus. Everything that prevents judging raises `CannotJudge` (exit status 2) with a
message that says how to fix it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from sample_shop import topology
from slo.collect import SeriesFileError
from slo.evaluate import DEFAULT_RECOVERY_WINDOW_S, GateReport, evaluate
from slo.prom import Prometheus, PrometheusError
from slo.report import write_reports
from slo.sources import PrometheusSource, RunFolderSource, SourceError, Window, load_phases
from slo.spec import SLO, SpecError, load_slos


class CannotJudge(RuntimeError):
    """The gate cannot judge (exit status 2): invalid SLO file, unreadable source, unreachable Prometheus."""


def _slos(slo_files: Sequence[Path] | None) -> list:
    try:
        return load_slos(slo_files or None)
    except SpecError as exc:
        raise CannotJudge(str(exc)) from None


def run_windows(run_dir: Path, source: RunFolderSource) -> list[Window]:
    """The run's phases (phases.json), or the whole collected span when the run has none."""
    phases_file = Path(run_dir) / "phases.json"
    return load_phases(phases_file) if phases_file.exists() else [source.span]


def check_run(
    run_dir: Path,
    *,
    slo_files: Sequence[Path] | None = None,
    phases: Sequence[str] | None = None,
    min_events: int | None = None,
    recovery_window_s: float = DEFAULT_RECOVERY_WINDOW_S,
    strict: bool = False,
    out_dir: Path | None = None,
    slos: Sequence[SLO] | None = None,
    not_judged: Mapping[str, str] | None = None,
) -> tuple[GateReport, list[Path]]:
    """Judge runs/<id>/ and write report.json, junit.xml, summary.md to `out_dir` (default RUN/slo).

    `slos`: judge exactly these (already loaded) instead of loading `slo_files`; `not_judged`: the name of
    each SLO left out on purpose -> why. The reports list those with their reason (never silently)."""
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise CannotJudge(
            f"{run_dir}: no such run folder. Run an experiment first (`make experiment`) or give runs/<id>."
        )
    if slos is not None and slo_files is not None:
        raise CannotJudge("give SLO files or a selection of loaded SLOs, not both")
    chosen = list(slos) if slos is not None else _slos(slo_files)
    if not chosen:
        left_out = "; ".join(f"{name}: {why}" for name, why in (not_judged or {}).items())
        raise CannotJudge("no SLO is left to judge" + (f" (not judged: {left_out})" if left_out else ""))
    try:
        source = RunFolderSource(run_dir)
        report = evaluate(
            chosen, source, run_windows(run_dir, source), phases, recovery_window_s, min_events, strict
        )
    except (SourceError, SeriesFileError) as exc:
        raise CannotJudge(str(exc)) from None
    report.not_judged = [{"name": name, "reason": why} for name, why in (not_judged or {}).items()]
    return report, write_reports(report, out_dir or run_dir / "slo")


def check_live(
    prometheus_url: str,
    start: float,
    end: float,
    *,
    slo_files: Sequence[Path] | None = None,
    windows: Sequence[Window] | None = None,
    phases: Sequence[str] | None = None,
    min_events: int | None = None,
    recovery_window_s: float = DEFAULT_RECOVERY_WINDOW_S,
    strict: bool = False,
    timeout_s: float = 15.0,
    step_s: float = topology.SCRAPE_INTERVAL_S,
) -> GateReport:
    """Judge [start, end] (unix seconds) of a live Prometheus, per window when `windows` are given."""
    if end <= start:
        raise CannotJudge(f"the window's end ({end}) must be after its start ({start})")
    slos = _slos(slo_files)
    span = Window("window", start, end)
    try:
        with Prometheus(prometheus_url, timeout_s=timeout_s) as prom:
            prom.check()
            source = PrometheusSource(prom, span, step_s)
            return evaluate(
                slos, source, list(windows or [span]), phases, recovery_window_s, min_events, strict
            )
    except (PrometheusError, SourceError) as exc:
        raise CannotJudge(str(exc)) from None
