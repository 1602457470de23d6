"""Presentation constants shared by report.html and the notebooks. No matplotlib import here: the report's
plotting module selects the Agg backend, which a notebook must not inherit."""

from __future__ import annotations

PHASE_COLORS: dict[str, str] = {
    "warmup": "#dddddd",
    "baseline": "#d9f0d3",
    "fault": "#f4a6a6",
    "recovery": "#cfe3f7",
}
UNKNOWN_PHASE_COLOR = "#eeeeee"
