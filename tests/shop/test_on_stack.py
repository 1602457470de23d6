"""The shop inside the stack `testbed up` starts (the suite's session stack: real supervisor, real
Prometheus): the journey leaves one trace id across services in trace files and logs, the request counters
reach Prometheus, and a bounded schemathesis run (stateful included) against the gateway finds no 5xx and no
answer its OpenAPI document does not describe."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from sample_shop import topology
from sample_shop.topology import StackDescriptor
from shop.helpers import CARD, services_logging, spans_of_trace

pytestmark = pytest.mark.stack
EXTRA_GATEWAY_ROUTES = {
    ("GET", "/"),
    ("GET", "/admin"),
    # profile, cancel and the admin API (sample_shop/gateway/manage_api.py)
    ("PATCH", "/api/me"),
    ("POST", "/api/me/password"),
    ("POST", "/api/orders/{order_id}/cancel"),
    ("GET", "/api/admin/products"),
    ("POST", "/api/admin/products"),
    ("PATCH", "/api/admin/products/{product_id}"),
    ("GET", "/api/admin/orders"),
    ("GET", "/api/admin/orders/{order_id}"),
    ("POST", "/api/admin/orders/{order_id}/status"),
    ("POST", "/api/admin/orders/{order_id}/cancel"),
    ("GET", "/api/admin/analytics"),
    ("POST", "/api/auth/register"),
    ("GET", "/api/me"),
    ("DELETE", "/api/cart"),
    ("GET", "/api/orders"),
    ("GET", "/api/orders/{order_id}"),
    ("GET", "/api/recommendations"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
}


def login(gateway: str) -> httpx.Client:
    client = httpx.Client(base_url=gateway, timeout=15)
    email = f"stack-{uuid.uuid4().hex[:10]}@example.com"
    assert (
        client.post(
            "/api/auth/register", json={"email": email, "password": "password-1", "name": "S"}
        ).status_code
        == 201
    )
    token = client.post("/api/auth/login", json={"email": email, "password": "password-1"}).json()[
        "access_token"
    ]
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def test_gateway_api_is_exactly_the_documented_routes(stack_ready: StackDescriptor) -> None:
    schema = httpx.get(stack_ready.gateway_url + "/openapi.json", timeout=10).json()
    routes = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
    journeys = {route for group in topology.JOURNEY_ROUTES.values() for route in group}
    assert routes == journeys | EXTRA_GATEWAY_ROUTES


def test_checkout_on_the_stack_traces_logs_and_counters(
    stack_ready: StackDescriptor, prom, wait_until
) -> None:
    client = login(stack_ready.gateway_url)
    try:
        assert client.post("/api/cart/items", json={"product_id": 21, "quantity": 1}).status_code == 200
        trace_id = uuid.uuid4().hex
        response = client.post(
            "/api/checkout",
            json={"card": CARD},
            headers={"Idempotency-Key": uuid.uuid4().hex, "traceparent": f"00-{trace_id}-{'2' * 16}-01"},
        )
        assert response.status_code == 201, response.text
    finally:
        client.close()
    state = Path(stack_ready.state_dir)
    traces_dir = Path(stack_ready.traces_dir) if stack_ready.traces_dir else state / "traces"
    want = {"gateway", "orders", "payment", "catalog"}
    assert want <= {s["service"] for s in spans_of_trace(traces_dir, trace_id, want)}
    logs_dir = Path(stack_ready.logs_dir) if stack_ready.logs_dir else state / "logs"
    wait_until(
        lambda: want <= services_logging(logs_dir, trace_id),
        timeout=10,
        message="the checkout's trace id in the logs of gateway, orders, payment and catalog",
    )

    # The latency histogram carries the sampled trace's id as an exemplar, and Prometheus keeps it
    # (OpenMetrics scrape + exemplar storage): the link from a point on a latency panel to this trace.
    def exemplar_trace_ids() -> set[str]:
        now = time.time()
        answer = prom.http.get(
            "/api/v1/query_exemplars",
            params={
                "query": 'shop_http_request_duration_seconds_bucket{service="gateway",route="/api/checkout"}',
                "start": now - 300,
                "end": now + 1,
            },
        ).json()
        return {e["labels"].get("trace_id") for s in answer["data"] for e in s["exemplars"]}

    wait_until(lambda: trace_id in exemplar_trace_ids(), timeout=20, message="the checkout's exemplar")
    # Each target is scraped at its own moment within the interval: wait for both counters, not one.
    for service, route in (("gateway", "/api/checkout"), ("payment", "/charges")):
        query = f'sum(shop_http_requests_total{{service="{service}",route="{route}"}})'
        wait_until(
            lambda query=query: sum(prom.values(query, "").values()) >= 1,
            timeout=20,
            message=f"{service}'s {route} counter in Prometheus",
        )


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    stack_ready: StackDescriptor, tmp_path: Path
) -> None:
    client = login(stack_ready.gateway_url)
    token = client.headers["Authorization"]
    client.close()
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        stack_ready.gateway_url + "/openapi.json",
        # any 5xx, and any answer the OpenAPI document does not describe (status, content type, body)
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        "--phases",
        "examples,fuzzing,stateful",  # stateful: links between operations (register -> login -> ...)
        "--max-examples",
        "5",
        "--seed",
        "7",
        "--max-time",
        "60",  # bounded: it used all of 90 s, a tenth of CI's margin on a slow host (seeded, so repeatable)
        "--request-timeout",
        "10",
        "--header",
        f"Authorization:{token}",
        "--workers",
        "1",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "passed" in done.stdout
