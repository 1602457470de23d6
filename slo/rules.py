"""Prometheus recording and alerting rules generated from the SLO files.

Per SLO, one rule group `slo-<name>` evaluated every RULE_EVALUATION_INTERVAL_S:
  slo:sli_error:ratio_rate<w>            error ratio over each alert window w (labels slo, journey, source,
                                         sli_kind, window)
  slo:current_burn_rate:ratio            error ratio over the shortest page window / error budget
  slo:objective:ratio, slo:error_budget:ratio, slo:time_period:seconds   metadata as constant series
  ALERTS: SLOErrorBudgetBurn{severity="page"|"ticket", slo, journey, source, sli_kind}
          multiwindow multi-burn-rate (windows scaled to the SLO period, slo/windows.py)
and one group `slo-<name>-period` evaluated every PERIOD_GROUP_INTERVAL_S (the period window is long
and only moves slowly):
  slo:sli_error:ratio_rate<period>, slo:period_burn_rate:ratio, slo:period_error_budget_remaining:ratio

The names and labels are a contract with the dashboards (docs/slo.md lists them).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from sample_shop import topology
from sample_shop.basics import prom_duration, write_text_atomic
from slo.errors import SloError
from slo.promql import ALERT_NAME, RULE_PREFIX, error_ratio, number, sli_error_record
from slo.spec import SLO, load_slos
from slo.windows import BurnRateWindow, burn_rate_windows, distinct_windows

RULES_FILE_NAME = "slo-rules.yml"
PERIOD_GROUP_INTERVAL_S = 10


def slo_labels(slo: SLO) -> dict[str, str]:
    labels = {"slo": slo.name, "source": slo.source, "sli_kind": slo.kind}
    if slo.journey:
        labels["journey"] = slo.journey
    return labels


def alert_windows(
    slo: SLO, scrape_interval_s: float = topology.SCRAPE_INTERVAL_S
) -> tuple[BurnRateWindow, ...]:
    return burn_rate_windows(slo.period_s, slo.error_budget, scrape_interval_s)


def _alert_expr(slo: SLO, windows: Sequence[BurnRateWindow]) -> str:
    sel = f'{{slo="{slo.name}"}}'
    conditions = []
    for w in windows:
        threshold = number(w.threshold(slo.error_budget))
        long_ = f"max without (window) ({sli_error_record(w.long_s)}{sel} > {threshold})"
        short = f"max without (window) ({sli_error_record(w.short_s)}{sel} > {threshold})"
        conditions.append(f"({long_} and {short})")
    return "\n  or\n".join(conditions)


def _constant(record: str, value: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"record": record, "expr": f"vector({value})", "labels": labels}


def rule_groups(slo: SLO, scrape_interval_s: float = topology.SCRAPE_INTERVAL_S) -> list[dict[str, Any]]:
    """The rule groups of one SLO as Prometheus rule-file dicts."""
    labels = slo_labels(slo)
    windows = alert_windows(slo, scrape_interval_s)
    budget = slo.error_budget
    records: list[dict[str, Any]] = [
        {
            "record": sli_error_record(w),
            "expr": error_ratio(slo, w),
            "labels": {**labels, "window": prom_duration(w)},
        }
        for w in distinct_windows(windows)
    ]
    shortest_page = min(w.short_s for w in windows if w.severity == "page")
    sel = f'{{slo="{slo.name}"}}'
    records += [
        {
            "record": f"{RULE_PREFIX}:current_burn_rate:ratio",
            "expr": f"max without (window) ({sli_error_record(shortest_page)}{sel}) / {number(budget)}",
            "labels": labels,
        },
        _constant(f"{RULE_PREFIX}:objective:ratio", number(slo.target), labels),
        _constant(f"{RULE_PREFIX}:error_budget:ratio", number(budget), labels),
        _constant(f"{RULE_PREFIX}:time_period:seconds", str(slo.period_s), labels),
    ]
    alerts = []
    for severity in ("page", "ticket"):
        sev_windows = [w for w in windows if w.severity == severity]
        desc = "; ".join(
            f"{prom_duration(w.long_s)} and {prom_duration(w.short_s)} windows above {number(w.factor)}x"
            for w in sev_windows
        )
        alerts.append(
            {
                "alert": ALERT_NAME,
                "expr": _alert_expr(slo, sev_windows),
                "labels": {**labels, "severity": severity},
                "annotations": {
                    "summary": f"{slo.display_name}: error budget burning too fast ({severity})",
                    "description": (
                        f"Objective {number(slo.target * 100)}% over {prom_duration(slo.period_s)}; "
                        f"condition: {desc}."
                    ),
                },
            }
        )
    period_record = sli_error_record(slo.period_s)
    period_group = [
        {
            "record": period_record,
            "expr": error_ratio(slo, slo.period_s),
            "labels": {**labels, "window": prom_duration(slo.period_s)},
        },
        {
            "record": f"{RULE_PREFIX}:period_burn_rate:ratio",
            "expr": f"max without (window) ({period_record}{sel}) / {number(budget)}",
            "labels": labels,
        },
        {
            "record": f"{RULE_PREFIX}:period_error_budget_remaining:ratio",
            "expr": f"1 - {RULE_PREFIX}:period_burn_rate:ratio{sel}",
            "labels": labels,
        },
    ]
    return [
        {
            "name": f"slo-{slo.name}",
            "interval": prom_duration(topology.RULE_EVALUATION_INTERVAL_S),
            "rules": records + alerts,
        },
        {
            "name": f"slo-{slo.name}-period",
            "interval": prom_duration(PERIOD_GROUP_INTERVAL_S),
            "rules": period_group,
        },
    ]


def render_rules(slos: Iterable[SLO], scrape_interval_s: float = topology.SCRAPE_INTERVAL_S) -> str:
    groups = [g for slo in slos for g in rule_groups(slo, scrape_interval_s)]
    header = (
        "# Generated by slo/rules.py from the OpenSLO files in slo/specs/ - do not edit;"
        " run `testbed slo rules`.\n"
    )
    body = yaml.dump(
        {"groups": groups}, Dumper=_NoAliasDumper, sort_keys=False, width=10_000, allow_unicode=True
    )
    return header + body


class _NoAliasDumper(yaml.SafeDumper):
    """Writes shared label dicts out in full: anchors and aliases would make the file hard to read."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_prometheus_rules(
    rules_dir: Path,
    slo_files: Sequence[Path] | None = None,
    scrape_interval_s: float = topology.SCRAPE_INTERVAL_S,
) -> list[Path]:
    """Generate the SLO rules into `rules_dir` (created if needed) and return the files written.

    Loads slo/specs/*.yaml unless `slo_files` is given; raises slo.spec.SpecError (file, field, line)
    on an invalid SLO file, before anything is written. The write is atomic, so a Prometheus reloading
    at that moment never reads half a file."""
    slos = load_slos(slo_files)
    text = render_rules(slos, scrape_interval_s)
    rules_dir = Path(rules_dir)
    path = rules_dir / RULES_FILE_NAME
    write_text_atomic(path, text)
    return [path]


class PromtoolError(SloError, RuntimeError):
    """promtool is missing or rejected the rules."""


def promtool_path() -> str:
    found = shutil.which("promtool")
    if not found:
        raise PromtoolError(
            "promtool is not on PATH; install Prometheus (`make setup` or apt-get install prometheus)"
        )
    return found


def check_rules(paths: Sequence[Path], timeout_s: float = 60.0) -> str:
    """`promtool check rules FILES`; returns its output, raises PromtoolError with it on failure."""
    proc = subprocess.run(
        [promtool_path(), "check", "rules", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise PromtoolError(f"promtool check rules failed:\n{output}")
    return output
