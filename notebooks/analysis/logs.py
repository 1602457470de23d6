"""Log lines of a run, pure: a frame of the JSON lines, counts per level and phase, warnings and errors per
service and phase (the report's own summary), and the most frequent error messages of a phase."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from testbed.experiment.telemetry import log_time
from testbed.report.data import LOG_LEVELS_SHOWN, log_summary
from testbed.runfolder import Phase

LOG_COLUMNS = ["t", "level", "service", "replica", "logger", "event", "message", "trace_id"]
ERROR_LEVELS = ("error", "critical", "raw")  # raw: a non-JSON line on stderr, typically a traceback
_VARIABLE = re.compile(r"\b(?:[0-9a-f]{8,}|\d+(?:\.\d+)?)\b")


def logs_frame(logs: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per log line with a time; `level` lower-cased (`warn` read as `warning`)."""
    rows = []
    for entry in logs:
        t = log_time(entry)
        if t is None:
            continue
        level = str(entry.get("level", "")).lower()
        rows.append(
            (
                t,
                "warning" if level == "warn" else level,
                str(entry.get("service", "?")),
                entry.get("replica"),
                entry.get("logger"),
                entry.get("event"),
                str(entry.get("message", "")),
                entry.get("trace_id"),
            )
        )
    return pd.DataFrame(rows, columns=LOG_COLUMNS)


def levels_by_phase(frame: pd.DataFrame, phases: Sequence[Phase]) -> pd.DataFrame:
    """Lines per phase (rows, in phase order) and level (columns); `phase` from overview.with_phases."""
    inside = frame[frame["phase"].notna()]
    table = pd.crosstab(inside["phase"], inside["level"])
    return table.reindex([p.name for p in phases], fill_value=0)


def problems_by_service_phase(logs: Sequence[dict[str, Any]], phases: Sequence[Phase]) -> pd.DataFrame:
    """Warnings, errors and raw lines per service and phase (the same counts as report.html)."""
    table = pd.DataFrame(log_summary(logs, phases))
    if table.empty:
        return pd.DataFrame(columns=["service", "phase", *LOG_LEVELS_SHOWN]).set_index(["service", "phase"])
    for level in LOG_LEVELS_SHOWN:
        if level not in table:
            table[level] = 0
    return table.set_index(["service", "phase"])[list(LOG_LEVELS_SHOWN)].fillna(0).astype(int)


def message_pattern(message: str) -> str:
    """The message with numbers and hex ids replaced by '#', so repeats of one error group together."""
    return _VARIABLE.sub("#", message)


def top_errors(frame: pd.DataFrame, phase: str, count: int = 10) -> pd.DataFrame:
    """The most frequent error messages of a phase: service, pattern, lines, one example."""
    errors = frame[(frame["phase"] == phase) & frame["level"].isin(ERROR_LEVELS)]
    if errors.empty:
        return pd.DataFrame(columns=["service", "pattern", "lines", "example"])
    errors = errors.assign(pattern=errors["message"].map(message_pattern))
    grouped = errors.groupby(["service", "pattern"])
    table = pd.DataFrame({"lines": grouped.size(), "example": grouped["message"].first()}).reset_index()
    return table.sort_values("lines", ascending=False, ignore_index=True).head(count)
