"""Render runs/<id>/report.html from the run folder alone (what `testbed report RUN_DIR` and the
experiment orchestrator call)."""

from __future__ import annotations

from pathlib import Path

from sample_shop.basics import write_text_atomic
from testbed.report.data import load_report_data
from testbed.report.html import render_html
from testbed.report.plots import all_figures
from testbed.runfolder import RunPaths


def render_report(run: RunPaths) -> Path:
    """Write report.html (atomically) and return its path. Raises RunFolderError when run.json is
    missing or unreadable; anything else missing is shown in the report as a problem."""
    data = load_report_data(run)
    html = render_html(data, list(all_figures(data)))
    write_text_atomic(run.report_html, html)
    return run.report_html
