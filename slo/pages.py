"""Time to page: from the fault's start to the first page Alertmanager delivered for an SLO.

The run folder's `alerts.jsonl` holds every notification the testbed's webhook receiver got (one JSON line
each: `received_unix` and Alertmanager's webhook payload as `notification`). A page is a firing
notification carrying an alert with `severity="page"` for the SLO (label `slo`). Rule evaluation's "time to
detect" says when Prometheus saw the burn; this says when a human would have been told. Pure but for
`read_notifications`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from slo.errors import SloError
from slo.promql import ALERT_NAME

PAGE_SEVERITY = "page"


class NotificationsError(SloError, ValueError):
    """alerts.jsonl cannot be read (a line that is not a notification record)."""


def read_notifications(path: Path) -> list[dict[str, Any]]:
    """The records of an alerts.jsonl; raises NotificationsError naming the file and line of a bad one."""
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise NotificationsError(f"{path}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(record, dict) or not isinstance(record.get("received_unix"), int | float):
            raise NotificationsError(f"{path}:{number}: a notification record needs received_unix")
        records.append(record)
    return records


def paged_slos(record: dict[str, Any]) -> set[str]:
    """The SLOs one notification pages for: its firing SLO burn-rate alerts of severity page."""
    notification = record.get("notification")
    if not isinstance(notification, dict):
        return set()
    out = set()
    for alert in notification.get("alerts") or []:
        labels = alert.get("labels") or {} if isinstance(alert, dict) else {}
        if (
            alert.get("status") == "firing"
            and labels.get("alertname") == ALERT_NAME
            and labels.get("severity") == PAGE_SEVERITY
            and labels.get("slo")
        ):
            out.add(str(labels["slo"]))
    return out


def first_pages(records: Iterable[dict[str, Any]], fault_start: float, until: float) -> dict[str, float]:
    """SLO name -> seconds from the fault's start to the first page delivered for it in [fault_start,
    until]. A page delivered before the fault (an alert still firing from earlier) does not count: it
    would not tell that this fault was noticed."""
    out: dict[str, float] = {}
    for record in sorted(records, key=lambda r: float(r["received_unix"])):
        t = float(record["received_unix"])
        if not fault_start <= t <= until:
            continue
        for slo in paged_slos(record):
            out.setdefault(slo, t - fault_start)
    return out


def delivered_pages(records: Sequence[dict[str, Any]]) -> int:
    """How many notifications paged for at least one SLO."""
    return sum(1 for r in records if paged_slos(r))
