"""The chaosshop health and traffic probes against the real session stack (real services, real Prometheus)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from chaosshop import runstate
from chaosshop.probes import client_retry_ratio, error_ratio, latency_quantile, stack_healthy

from sample_shop.topology import HTTP_REQUESTS, ReplicaEndpoint, StackDescriptor
from slo.prom import Prometheus

PRODUCTS = f'{HTTP_REQUESTS.name}{{service="gateway",route="/api/products"}}'
QUIET_S = 5  # no gateway request to /api/products in this long: earlier tests' traffic has ended


def _descriptor_copy(stack: StackDescriptor, folder: Path, replicas: list[ReplicaEndpoint]) -> Path:
    (folder / StackDescriptor.FILE_NAME).write_text(dataclasses.replace(stack, replicas=replicas).to_json())
    return folder


def test_stack_healthy_counts_scraped_replicas_per_service(
    clean_stack: StackDescriptor, tmp_path: Path
) -> None:
    assert stack_healthy({"state_dir": clean_stack.state_dir}) is True
    catalog = clean_stack.replicas_of("catalog")
    assert len(catalog) == 2  # the suite runs two catalog replicas

    # kind names a replica by its pod, not an index: the probe counts per service, so it still holds
    renamed = [dataclasses.replace(r, replica=r.replica + 7) for r in clean_stack.replicas]
    assert stack_healthy({"state_dir": str(_descriptor_copy(clean_stack, tmp_path, renamed))}) is True

    # a declared third catalog replica that Prometheus does not scrape: not healthy
    (tmp_path / "more").mkdir()
    more = [*clean_stack.replicas, dataclasses.replace(catalog[0], replica=2)]
    assert stack_healthy({"state_dir": str(_descriptor_copy(clean_stack, tmp_path / "more", more))}) is False


def test_traffic_probes_judge_real_requests_through_real_prometheus(
    clean_stack: StackDescriptor, wait_until: Callable[..., Any]
) -> None:
    """error_ratio, latency_quantile and client_retry_ratio build their queries with slo/promql.py; here
    the real Prometheus of the session stack answers them over requests just sent through the gateway
    (/api/products calls the catalog, so there are outbound calls to count too).

    The window must hold this test's requests only: an earlier test's load (an orphaned one stops by
    itself, seconds later) or its last in-flight requests could still add a 5xx, so the test first waits
    until the gateway has been quiet, as Prometheus sees it."""

    def by_code() -> dict[str, float]:
        """Requests to /api/products per status class over the last QUIET_S seconds, from Prometheus."""
        with Prometheus(clean_stack.prometheus_url, timeout_s=10.0) as prom:
            rows = prom.instant(f"sum by (status_class) (increase({PRODUCTS}[{QUIET_S}s]))")
        return {str(labels.get("status_class")): value for labels, value in rows}

    wait_until(
        lambda: sum(by_code().values()) == 0,
        timeout=60,
        interval=1.0,
        message=f"no other request to the gateway's /api/products for {QUIET_S} s",
    )
    run = runstate.reset("probe-test")
    run.load_started_at = time.time() - 1.0  # "this experiment's load" is the requests sent next
    conf = {"state_dir": clean_stack.state_dir}
    window = {"window_s": 30, "min_events": 20}

    def answered() -> bool:
        """Send a few more requests; true once Prometheus has counted 20 in the window (a series born in
        the window counts from its second scrape on, so one burst is not enough)."""
        with httpx.Client(base_url=clean_stack.gateway_url, timeout=10.0, trust_env=False) as client:
            for _ in range(5):
                assert client.get("/api/products").status_code == 200
        try:
            return bool(error_ratio(route="/api/products", **window, configuration=conf)["judged"])
        except RuntimeError:  # no data yet
            return False

    wait_until(answered, timeout=60, interval=0.5, message="Prometheus to count 20 requests in the window")
    errors = error_ratio(route="/api/products", **window, configuration=conf)
    assert errors["judged"] is True and errors["value"] == 0.0, (errors, by_code())
    latency = latency_quantile(0.95, route="/api/products", **window, configuration=conf)
    assert latency["judged"] is True and 0.0 < latency["value"] < 10.0, latency
    retries = client_retry_ratio(
        service="gateway", peer="catalog", window_s=30, min_events=1, configuration=conf
    )
    # a loaded machine may retry a slow call: the ratio is small, never absent
    assert retries["judged"] is True and 0.0 <= retries["value"] < 1.0 and retries["events"] >= 20, retries

    # no load of this experiment yet: nothing judged, but the queries still run against Prometheus
    runstate.reset("probe-test")
    assert error_ratio(**window, configuration=conf)["judged"] is False
