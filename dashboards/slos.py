"""SLOs: SLI over the period and now, error budget remaining, burn rate per alert window, alert state.

Reads only the series that slo/rules.py records (docs/slo.md lists them; tests/dashboards checks every
name and label used here against the rules it generates), so a panel is as cheap as a lookup."""

from __future__ import annotations

from dashboards import promql as q
from dashboards.common import NO_SLO_RULES, TAG
from dashboards.grafana import (
    Fields,
    Json,
    Panel,
    Row,
    Threshold,
    ValueMapping,
    dashboard,
    dashboard_links,
    override_by_regex,
    prom,
    query_variable,
    stat,
    state_timeline,
    table,
    timeseries,
)

UID = "shop-slos"

# Recorded by slo/rules.py (the contract of docs/slo.md).
SLO_LABELS = ("slo", "journey", "source", "sli_kind")
SLI_ERROR_RECORDS = "slo:sli_error:ratio_rate.+"  # one record per window: ratio_rate4s, ..., ratio_rate1h
OBJECTIVE = "slo:objective:ratio"
ERROR_BUDGET = "slo:error_budget:ratio"
CURRENT_BURN = "slo:current_burn_rate:ratio"
PERIOD_BURN = "slo:period_burn_rate:ratio"
BUDGET_REMAINING = "slo:period_error_budget_remaining:ratio"
ALERT = "SLOErrorBudgetBurn"
ALERT_LABELS = (*SLO_LABELS, "alertname", "alertstate", "severity")

SLO = q.regex("$slo")
ALERT_MAPPINGS = (
    ValueMapping(0, "ok", "green"),
    ValueMapping(1, "ticket", "orange"),
    ValueMapping(2, "page", "red"),
)
BUDGET_THRESHOLDS = (Threshold(None, "red"), Threshold(0, "orange"), Threshold(0.5, "green"))
BURN_THRESHOLDS = (Threshold(None, "green"), Threshold(1, "orange"), Threshold(6, "red"))


def record(name: str, **matchers: str | q.Match) -> str:
    return q.raw_sel(name, SLO_LABELS, slo=SLO, **matchers)


def sli_errors() -> str:
    return q.raw_sel("", ("__name__", *SLO_LABELS, "window"), __name__=q.regex(SLI_ERROR_RECORDS), slo=SLO)


def alerts(severity: str) -> str:
    return q.raw_sel("ALERTS", ALERT_LABELS, alertname=ALERT, alertstate="firing", severity=severity, slo=SLO)


def alert_state() -> str:
    """Per SLO: 2 while a page alert fires, 1 while only a ticket alert fires, 0 otherwise (every SLO
    has a value, so the panel shows "ok" rows rather than nothing when all is well)."""
    firing = f"2 * {alerts('page')} or {alerts('ticket')}"
    return f"max by (slo) ({firing}) or max by (slo) (0 * {record(OBJECTIVE)})"


def period_sli() -> str:
    # period burn rate = period error ratio / budget, so the SLI is 1 - burn * budget
    return f"1 - ({record(PERIOD_BURN)} * {record(ERROR_BUDGET)})"


def current_sli() -> str:
    return f"1 - ({record(CURRENT_BURN)} * {record(ERROR_BUDGET)})"


def burn_per_window() -> str:
    return f"{sli_errors()} / ignoring (window) group_left {record(ERROR_BUDGET)}"


def _status() -> list[Panel | Row]:
    firing = f"count({q.raw_sel('ALERTS', ALERT_LABELS, alertname=ALERT, alertstate='firing', slo=SLO)})"
    return [
        Row("Now"),
        stat(
            "Burn-rate alerts firing",
            f"{ALERT} alerts firing now (multiwindow, multi-burn-rate; slo/rules.py). 0 is healthy.",
            [prom(q.or_zero(firing), "firing")],
            Fields(
                unit="short",
                thresholds=(Threshold(None, "green"), Threshold(1, "red")),
                no_value=NO_SLO_RULES,
            ),
        ),
        stat(
            "SLOs with budget left",
            "SLOs whose error budget over the SLO period is not exhausted, out of all selected SLOs.",
            [
                prom(q.or_zero(f"count({record(BUDGET_REMAINING)} > 0)"), "with budget"),
                prom(f"count({record(OBJECTIVE)})", "SLOs"),
            ],
            Fields(unit="short", no_value=NO_SLO_RULES),
            w=6,
        ),
        table(
            "SLO status",
            "Per SLO: objective, SLI over the period and over the shortest alert window, error budget "
            "remaining, burn rate now, and the alert state.",
            [
                prom(f"max by (slo) ({record(OBJECTIVE)})", instant=True, table=True),
                prom(f"max by (slo) ({period_sli()})", instant=True, table=True),
                prom(f"max by (slo) ({current_sli()})", instant=True, table=True),
                prom(f"max by (slo) ({record(BUDGET_REMAINING)})", instant=True, table=True),
                prom(f"max by (slo) ({record(CURRENT_BURN)})", instant=True, table=True),
                prom(alert_state(), instant=True, table=True),
            ],
            Fields(unit="short", decimals=4, no_value=NO_SLO_RULES),
            {
                "Value #A": "objective",
                "Value #B": "SLI (period)",
                "Value #C": "SLI (now)",
                "Value #D": "budget left",
                "Value #E": "burn rate now",
                "Value #F": "alert (0 ok, 1 ticket, 2 page)",
            },
            w=14,
            h=10,
        ),
    ]


def _budget() -> list[Panel | Row]:
    dashed = {"custom.lineStyle": {"fill": "dash", "dash": [10, 10]}, "custom.lineWidth": 1}
    return [
        Row("SLI and error budget"),
        timeseries(
            "SLI over the SLO period",
            "Share of good events over the SLO's whole (rolling) period, with its objective dashed. "
            "Below the objective means the budget is spent.",
            [
                prom(period_sli(), "{{slo}}"),
                prom(record(OBJECTIVE), "{{slo}} objective"),
            ],
            Fields(
                unit="percentunit",
                decimals=3,
                max=1,
                no_value=NO_SLO_RULES,
                overrides=[override_by_regex(".* objective$", dashed)],
            ),
        ),
        timeseries(
            "Error budget remaining over the period",
            "1 - period burn rate: 1 is untouched, 0 spent exactly, negative overspent.",
            [prom(record(BUDGET_REMAINING), "{{slo}}")],
            Fields(unit="percentunit", thresholds=BUDGET_THRESHOLDS, no_value=NO_SLO_RULES),
        ),
        timeseries(
            "SLI now (shortest alert window)",
            "Share of good events over the shortest page window: what the SLI is doing right now.",
            [prom(current_sli(), "{{slo}}")],
            Fields(unit="percentunit", decimals=3, max=1, no_value=NO_SLO_RULES),
        ),
        timeseries(
            "Burn rate now",
            "Error ratio over the shortest page window divided by the error budget: 1 spends the budget "
            "exactly over the period, above 1 faster.",
            [prom(record(CURRENT_BURN), "{{slo}}")],
            Fields(unit="short", thresholds=BURN_THRESHOLDS, no_value=NO_SLO_RULES),
        ),
    ]


def _windows() -> list[Panel | Row]:
    burn = timeseries(
        "Burn rate per alert window: $slo",
        "Burn rate over every window the alert rules use (long and short windows, scaled to the SLO "
        "period) and over the period itself. The page and ticket alerts fire when a long window and its "
        "short window both exceed their factor.",
        [prom(burn_per_window(), "{{window}}")],
        Fields(unit="short", thresholds=BURN_THRESHOLDS, no_value=NO_SLO_RULES),
        w=6,
        legend_table=False,
    )
    burn.repeat = "slo"
    return [
        Row("Alerts and burn rate per window"),
        state_timeline(
            "Burn-rate alert state per SLO",
            f"{ALERT} per SLO: ok, ticket (slow burn) or page (fast burn).",
            [prom(alert_state(), "{{slo}}")],
            Fields(unit="short", mappings=ALERT_MAPPINGS, color_mode="thresholds", no_value=NO_SLO_RULES),
            w=24,
            h=10,
        ),
        burn,
    ]


def build() -> Json:
    return dashboard(
        uid=UID,
        title="Shop SLOs",
        description="The journey SLOs of slo/specs: SLI, error budget, burn rates and alerts, from the "
        "recording rules slo/rules.py generates.",
        tags=[TAG, "slo"],
        items=[*_status(), *_budget(), *_windows()],
        variables=[
            query_variable(
                "journey",
                "Journey",
                f"label_values({q.raw_sel(OBJECTIVE)}, journey)",
                description="User journeys with SLOs",
            ),
            query_variable(
                "slo",
                "SLO",
                f"label_values({q.raw_sel(OBJECTIVE, journey=q.regex('$journey'))}, slo)",
                description="SLOs of the selected journeys",
            ),
        ],
        links=dashboard_links(TAG),
    )
