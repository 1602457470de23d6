"""Open a run folder for the notebooks: say what is there and what is missing, then load each part lazily.

A run folder that cannot be opened (missing, not a run folder) gives a `RunData` whose `show()` prints
the reason and how to produce one, and whose `require()` skips every section: a notebook over a bad
folder prints clear messages, never a traceback. A partial folder (no traces, say) only skips the
sections that need the missing part. Paths and readers come from testbed/runfolder.py and load/results.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from load.results import read_requests, read_summary
from sample_shop.basics import parse_iso
from slo.sources import RunFolderSource, SourceError
from testbed.runfolder import (
    LATEST,
    RUNS_DIR_ENV,
    Phase,
    RunFolderError,
    RunInfo,
    RunPaths,
    SpanRecord,
    list_runs,
    read_json,
    read_logs,
    read_phases,
    read_run_info,
    read_series_frame,
    read_spans,
    resolve_run,
)

RUN_ENV = "TESTBED_RUN"
REPO_ROOT = Path(__file__).resolve().parents[2]
PRODUCE_HINT = (
    "Produce one with `make experiment` (or `testbed experiment run NAME`, see `testbed experiment list`), "
    f"or point the notebooks at another run: set RUN in the parameters cell or {RUN_ENV}=runs/<id>."
)
# What a part failing to load can raise: missing or unreadable files, bad JSON/Parquet (pyarrow's errors
# are OSError/ValueError subclasses), fields of the wrong shape.
LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError)


class PartUnavailable(RuntimeError):
    """A part of the run folder is missing or unreadable; the message says which and how to get it."""


@dataclass(frozen=True)
class PartSpec:
    name: str
    file: str  # relative to the run folder
    fix: str  # how a run gets this part


PARTS: dict[str, PartSpec] = {
    p.name: p
    for p in (
        PartSpec(
            "requests",
            "load/requests.parquet",
            "the load generator writes it when it stops; an experiment without load has none",
        ),
        PartSpec("load_summary", "load/summary.json", "the load generator writes it when it stops"),
        PartSpec(
            "series",
            "metrics/series.parquet",
            "collected from Prometheus at the end of `testbed experiment run` (was Prometheus up?)",
        ),
        PartSpec(
            "spans",
            "traces/spans.jsonl",
            "spans of the run's window; the stack needs telemetry on and sampled requests "
            "(`testbed up --telemetry on`, SHOP_TRACE_SAMPLE_RATIO)",
        ),
        PartSpec("logs", "logs/logs.jsonl", "the services' JSON log lines of the run's window"),
        PartSpec("slo_report", "slo/report.json", "`testbed slo check --run RUN` writes it"),
    )
}


def resolve_run_path(given: str | Path | None = None) -> Path:
    """The run folder to analyse: `given`, else $TESTBED_RUN, else ($TESTBED_RUNS_DIR or runs)/latest.
    Relative paths are taken from the repository root, since Jupyter starts kernels in notebooks/."""
    raw = given or os.environ.get(RUN_ENV) or Path(os.environ.get(RUNS_DIR_ENV) or "runs") / LATEST
    path = Path(raw).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


class RunData:
    """One run folder for the notebooks. Parts load on first use and are cached (failures too)."""

    def __init__(
        self,
        given: Path,
        paths: RunPaths | None,
        info: RunInfo | None = None,
        phases: list[Phase] | None = None,
        error: str | None = None,
        notes: list[str] | None = None,
    ) -> None:
        self.given = given
        self.paths = paths
        self.info = info
        self.phases = phases or []
        self.error = error
        self.notes = notes or []
        self._cache: dict[str, Any] = {}
        self._failures: dict[str, str] = {}

    # -------------------------------------------------------------------------------- opening

    @classmethod
    def open(cls, given: str | Path | None = None) -> RunData:
        """Never raises for a bad folder: the problem is kept in `error` and shown by `show()`."""
        path = resolve_run_path(given)
        try:
            paths = resolve_run(path)
            info = read_run_info(paths)
        except RunFolderError as exc:
            return cls(path, None, error=str(exc))
        notes = []
        if info.status == "running":
            notes.append(
                "run.json says the run is still running: the experiment is in progress or was killed, "
                "so parts may be missing or incomplete"
            )
        phases: list[Phase] = []
        try:
            phases = read_phases(paths)
        except RunFolderError as exc:
            fallback = _whole_run(info)
            if fallback:
                phases = [fallback]
            notes.append(f"no usable phases ({exc}); the whole run is treated as one window")
        return cls(path, paths, info, phases, notes=notes)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def id(self) -> str:
        return self.paths.id if self.paths else str(self.given)

    @property
    def origin(self) -> float:
        """Unix time that plots call 0: the start of the first phase (else the run's start)."""
        if self.phases:
            return self.phases[0].start
        if self.info:
            try:
                return parse_iso(self.info.started)
            except ValueError:
                pass
        return 0.0

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    # -------------------------------------------------------------------------------- parts

    def file_of(self, name: str) -> Path | None:
        return self.paths.root / PARTS[name].file if self.paths else None

    def present(self, name: str) -> bool:
        """The part's file exists and is not empty (it may still fail to load)."""
        path = self.file_of(name)
        return bool(path and path.is_file() and path.stat().st_size > 0)

    def get(self, name: str) -> Any:
        """The loaded part; PartUnavailable (with the reason and the fix) when it cannot be had."""
        if name not in PARTS:
            raise KeyError(f"unknown part {name!r}; parts: {', '.join(PARTS)}")
        if name in self._cache:
            return self._cache[name]
        if name not in self._failures:
            try:
                self._cache[name] = self._load(name)
                return self._cache[name]
            except PartUnavailable as exc:
                self._failures[name] = str(exc)
            except LOAD_ERRORS as exc:
                self._failures[name] = f"{PARTS[name].file} cannot be read: {exc}"
        raise PartUnavailable(self._failures[name])

    def require(self, *names: str) -> bool:
        """True when every named part loads; otherwise print why the section is skipped and how to get
        the part, and return False. Notebook sections start with `if run.require(...):`."""
        if not self.ok:
            print(f"⚠ skipped: no run folder to analyse ({self.error}); see the first cell.")
            return False
        problems = []
        for name in names:
            try:
                self.get(name)
            except PartUnavailable as exc:
                problems.append(f"{exc} ({PARTS[name].fix})")
        if problems:
            print("⚠ skipped: " + "; ".join(problems))
        return not problems

    def require_phases(self, *names: str) -> bool:
        """True when the run has every named phase; otherwise print why the section is skipped."""
        if not self.ok:
            return self.require()
        missing = [n for n in names if self.phase(n) is None]
        if missing:
            have = ", ".join(p.name for p in self.phases) or "none"
            print(f"⚠ skipped: the run has no {' or '.join(missing)} phase (phases here: {have})")
        return not missing

    def _load(self, name: str) -> Any:
        assert self.paths is not None
        spec = PARTS[name]
        if not self.present(name):
            raise PartUnavailable(f"{spec.file} is missing or empty")
        if name == "requests":
            frame = read_requests(self.paths.load_dir)
            if frame.empty:
                raise PartUnavailable(f"{spec.file} holds no requests")
            return frame.assign(t=(frame["timestamp"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds())
        if name == "load_summary":
            return read_summary(self.paths.load_dir)
        if name == "series":
            frame = read_series_frame(self.paths)
            if frame.empty:
                raise PartUnavailable(f"{spec.file} holds no samples")
            return frame
        if name == "spans":
            spans = read_spans(self.paths)
            if not spans:
                raise PartUnavailable(f"{spec.file} holds no spans")
            return spans
        if name == "logs":
            logs = read_logs(self.paths)
            if not logs:
                raise PartUnavailable(f"{spec.file} holds no log lines")
            return logs
        report = read_json(self.paths.slo_report_json)
        if not isinstance(report, dict) or not isinstance(report.get("slos"), list):
            raise PartUnavailable(f"{spec.file} is not an SLO gate report (no 'slos' list)")
        return report

    def slo_source(self) -> RunFolderSource:
        """The SLO gate's own reader of metrics/series.parquet (guard with require("series"))."""
        if "slo_source" not in self._cache:
            assert self.paths is not None
            try:
                self._cache["slo_source"] = RunFolderSource(self.paths.root)
            except SourceError as exc:
                raise PartUnavailable(str(exc)) from None
        return self._cache["slo_source"]  # type: ignore[no-any-return]

    # Typed shortcuts for the notebooks (each raises PartUnavailable: guard with require()).
    @property
    def requests(self) -> pd.DataFrame:
        return self.get("requests")  # type: ignore[no-any-return]

    @property
    def series(self) -> pd.DataFrame:
        return self.get("series")  # type: ignore[no-any-return]

    @property
    def spans(self) -> list[SpanRecord]:
        return self.get("spans")  # type: ignore[no-any-return]

    @property
    def logs(self) -> list[dict[str, Any]]:
        return self.get("logs")  # type: ignore[no-any-return]

    @property
    def slo_report(self) -> dict[str, Any]:
        return self.get("slo_report")  # type: ignore[no-any-return]

    # -------------------------------------------------------------------------------- showing

    def status_lines(self) -> list[str]:
        """What the first cell prints: the run, its phases, each part present or missing, notes."""
        if not self.ok:
            return [
                f"✗ Cannot analyse: {self.error}",
                f"  {PRODUCE_HINT}",
                "  Every section below is skipped.",
            ]
        assert self.info is not None and self.paths is not None
        info = self.info
        lines = [
            f"Run {self.id}  ({self.paths.root})",
            f"  experiment {info.experiment}: {info.title}"
            if info.title
            else f"  experiment {info.experiment}",
            f"  target {info.target}, profile {info.profile or '-'}; status {info.status}, "
            f"verdict {info.verdict or '-'}, exit code {'-' if info.exit_code is None else info.exit_code}",
            "  phases: " + (", ".join(f"{p.name} {p.seconds:.0f} s" for p in self.phases) or "none"),
        ]
        for spec in PARTS.values():
            if self.present(spec.name):
                size = self.file_of(spec.name).stat().st_size  # type: ignore[union-attr]
                lines.append(f"  ✓ {spec.file:<24} {size / 1024:,.0f} KiB")
            else:
                lines.append(
                    f"  ✗ {spec.file:<24} missing or empty: sections that need it are skipped ({spec.fix})"
                )
        lines += [f"  note: {note}" for note in self.notes]
        return lines

    def show(self) -> None:
        print("\n".join(self.status_lines()))


def _whole_run(info: RunInfo) -> Phase | None:
    try:
        start = parse_iso(info.started)
        end = parse_iso(info.ended) if info.ended else None
    except ValueError:
        return None
    return Phase("run", start, end) if end and end > start else None


def previous_run_path(run: RunData) -> Path | None:
    """The run folder before this one in the same runs folder (by id, i.e. by start time), if any."""
    if run.paths is None:
        return None
    earlier = [r for r in list_runs(run.paths.root.parent) if r.id < run.paths.id]
    return earlier[-1].root if earlier else None


def open_run(given: str | Path | None = None) -> RunData:
    """The notebooks' first call: `run = open_run(RUN); run.show()`."""
    return RunData.open(given)
