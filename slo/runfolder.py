"""The run-folder layout: which file of `runs/<id>/` holds what, in one place.

It lives here, low in the house (standard library only), because both sides of the folder need it: the
testbed writes it (`testbed/runfolder.py`: writers, readers and the format of each file, re-exporting
`RunPaths`) and the SLO gate reads it (`slo/gate.py`, `slo/sources.py`), and `slo/` must not import
`testbed`. The file formats are described in `testbed/runfolder.py` and docs/architecture.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RUN_JSON = "run.json"
PHASES_JSON = "phases.json"
ALERTS_JSONL = "alerts.jsonl"  # what Alertmanager delivered during the run (slo/pages.py)
SLO_DIR = "slo"  # the gate's reports, written by slo/report.py:
REPORT_JSON, JUNIT_XML, SUMMARY_MD = "report.json", "junit.xml", "summary.md"


@dataclass(frozen=True)
class RunPaths:
    """Every path of one run folder."""

    root: Path

    @property
    def id(self) -> str:
        return self.root.name

    @property
    def run_json(self) -> Path:
        return self.root / RUN_JSON

    @property
    def phases_json(self) -> Path:
        return self.root / PHASES_JSON

    @property
    def journal_json(self) -> Path:
        return self.root / "journal.json"

    @property
    def chaos_log(self) -> Path:
        return self.root / "chaos.log"

    @property
    def chaos_vars(self) -> Path:
        return self.root / "chaos-vars.json"

    @property
    def load_dir(self) -> Path:
        return self.root / "load"

    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    @property
    def series_parquet(self) -> Path:
        return self.metrics_dir / "series.parquet"

    @property
    def queries_json(self) -> Path:
        return self.metrics_dir / "queries.json"

    @property
    def spans_jsonl(self) -> Path:
        return self.root / "traces" / "spans.jsonl"

    @property
    def logs_jsonl(self) -> Path:
        return self.root / "logs" / "logs.jsonl"

    @property
    def alerts_jsonl(self) -> Path:
        """The notifications Alertmanager delivered during the run (slo/pages.py reads them)."""
        return self.root / ALERTS_JSONL

    @property
    def slo_dir(self) -> Path:
        return self.root / SLO_DIR

    @property
    def slo_report_json(self) -> Path:
        return self.slo_dir / REPORT_JSON

    @property
    def slo_summary_md(self) -> Path:
        return self.slo_dir / SUMMARY_MD

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    def make_dirs(self) -> None:
        for folder in (
            self.root,
            self.load_dir,
            self.metrics_dir,
            self.spans_jsonl.parent,
            self.logs_jsonl.parent,
            self.slo_dir,
        ):
            folder.mkdir(parents=True, exist_ok=True)
