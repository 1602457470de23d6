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
# One colour per service in span waterfalls (report.html, the click-to-e-mail picture), in order seen.
SERVICE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
