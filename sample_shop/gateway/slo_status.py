"""The SLO status of the admin console's analytics, from the SLO recording rules in Prometheus (slo/rules.py
writes `slo:objective:ratio`, `slo:period_burn_rate:ratio` and the `SLOErrorBudgetBurn` alert).

State per SLO: `burning` (its burn-rate alert fires), `met` / `breached` (the SLI over the SLO's period
against its target), `no_data` (no events in the period). Without an answer from Prometheus every state is
`unknown` - the console says so instead of showing an empty table.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import aiohttp

log = logging.getLogger("sample_shop.gateway")
OBJECTIVE = "slo:objective:ratio"
PERIOD_BURN = "slo:period_burn_rate:ratio"
FIRING = 'ALERTS{alertname="SLOErrorBudgetBurn", alertstate="firing"}'
QUERY_TIMEOUT_S = 2.0


def _by_slo(result: list[dict[str, Any]]) -> dict[str, float]:
    values = {}
    for series in result:
        name = series.get("metric", {}).get("slo")
        if name:
            values[name] = float(series["value"][1])
    return values


def slo_states(
    objectives: list[dict[str, Any]], burns: list[dict[str, Any]], firing: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """[{name, sli, target, state}] from the three instant-query results (pure)."""
    targets = _by_slo(objectives)
    burn = _by_slo(burns)
    alerting = set(_by_slo(firing))
    rows = []
    for name in sorted(targets):
        target = targets[name]
        rate = burn.get(name)
        sli = None if rate is None or math.isnan(rate) else max(0.0, 1.0 - rate * (1.0 - target))
        if name in alerting:
            state = "burning"
        elif sli is None:
            state = "no_data"
        else:
            state = "met" if sli >= target else "breached"
        rows.append(
            {"name": name, "sli": None if sli is None else round(sli, 6), "target": target, "state": state}
        )
    return rows


async def _query(session: aiohttp.ClientSession, base_url: str, promql: str) -> list[dict[str, Any]]:
    async with session.get(f"{base_url}/api/v1/query", params={"query": promql}) as response:
        body = await response.json(content_type=None)
    if response.status != 200 or body.get("status") != "success":
        raise ValueError(f"Prometheus answered HTTP {response.status}: {body.get('error', '')}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def fetch_slo_status(base_url: str) -> tuple[list[dict[str, Any]], str | None]:
    """(rows, problem): the SLO states, or ([], why) when Prometheus cannot be asked."""
    timeout = aiohttp.ClientTimeout(total=QUERY_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            objectives, burns, firing = await asyncio.gather(
                *(_query(session, base_url, q) for q in (OBJECTIVE, PERIOD_BURN, FIRING))
            )
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
        log.info("SLO status unavailable from %s: %s", base_url, exc)
        return [], f"Prometheus at {base_url} did not answer ({type(exc).__name__}: {exc})"
    return slo_states(objectives, burns, firing), None
