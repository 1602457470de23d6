"""HTTP probes of a running stack: a replica's /readyz, Prometheus' view of its targets (`up`), and the
readiness verdict built from them (pure)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from sample_shop.topology import SHOP_JOB, TESTBED_JOB

ReplicaKey = tuple[str, int]


@dataclass(frozen=True)
class Probe:
    ok: bool
    detail: str  # "ready", "not ready (503)", "unreachable", "timeout"


async def probe_http(client: httpx.AsyncClient, url: str) -> Probe:
    try:
        response = await client.get(url)
    except httpx.TimeoutException:
        return Probe(False, "timeout")
    except httpx.HTTPError:
        return Probe(False, "unreachable")
    if response.status_code == 200:
        return Probe(True, "ready")
    return Probe(False, f"not ready ({response.status_code})")


async def prometheus_up(
    client: httpx.AsyncClient, prometheus_url: str, job: str
) -> dict[str, dict[str, str]]:
    """instance -> labels (with "__value__") of `up{job=...}` now; raises httpx.HTTPError when unreachable."""
    response = await client.get(f"{prometheus_url}/api/v1/query", params={"query": f'up{{job="{job}"}}'})
    response.raise_for_status()
    body = response.json()
    if body.get("status") != "success":
        raise httpx.HTTPError(f"Prometheus query failed: {body.get('error', body)}")
    found: dict[str, dict[str, str]] = {}
    for series in body["data"]["result"]:
        labels = dict(series["metric"])
        labels["__value__"] = series["value"][1]
        found[labels.get("instance", "")] = labels
    return found


def shop_targets_up(series: dict[str, dict[str, str]]) -> dict[ReplicaKey, bool]:
    """(service, replica) -> up == 1, from the `shop` job's `up` series."""
    result: dict[ReplicaKey, bool] = {}
    for labels in series.values():
        try:
            key = (labels["service"], int(labels["replica"]))
        except (KeyError, ValueError):
            continue
        result[key] = float(labels["__value__"]) == 1.0
    return result


def readiness(
    expected: list[ReplicaKey],
    readyz: dict[ReplicaKey, Probe],
    shop_up: dict[ReplicaKey, bool],
    testbed_up: bool,
    prometheus: Probe,
) -> tuple[list[str], list[str]]:
    """(what is ready, what is still awaited and why). Ready means every replica's /readyz is 200, and
    Prometheus reports up == 1 for every replica's target and for the supervisor's own target."""
    ready: list[str] = []
    waiting: list[str] = []
    for key in expected:
        name = f"{key[0]}-{key[1]}"
        probe = readyz.get(key, Probe(False, "not probed"))
        if not probe.ok:
            waiting.append(f"{name}: /readyz {probe.detail}")
        elif not prometheus.ok:
            waiting.append(f"{name}: Prometheus {prometheus.detail}")
        elif not shop_up.get(key, False):
            state = "not scraped yet" if key not in shop_up else "up == 0"
            waiting.append(f"{name}: Prometheus target {state}")
        else:
            ready.append(name)
    if not prometheus.ok:
        waiting.append(f"prometheus: {prometheus.detail}")
    elif not testbed_up:
        waiting.append(f"prometheus: job {TESTBED_JOB} (supervisor) not scraped yet")
    else:
        ready.append("prometheus")
    return ready, waiting


__all__ = ["SHOP_JOB", "Probe", "probe_http", "prometheus_up", "readiness", "shop_targets_up"]
