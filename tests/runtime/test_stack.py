"""The session stack (real services, real Prometheus; `prom` is conftest's PromClient): readiness,
status, kill/restart, pause/resume,
replicas, phases and the control API's errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from sample_shop.topology import (
    EXPERIMENT_PHASE,
    PROCESS_RESTARTS,
    SERVICE_NAMES,
    SHOP_JOB,
    TESTBED_JOB,
    StackDescriptor,
)
from testbed.runtime.local import LocalTarget

pytestmark = pytest.mark.stack
TESTBED = [sys.executable, "-m", "testbed.cli"]


def _testbed(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TESTBED, *args], capture_output=True, text=True, timeout=timeout, env=os.environ)


def _shop_up(prom: Any) -> dict[tuple[str, str], float]:
    return {
        (s["metric"]["service"], s["metric"]["replica"]): float(s["value"][1])
        for s in prom.query(f'up{{job="{SHOP_JOB}"}}')
    }


def _process(control: httpx.Client, service: str, replica: int) -> dict[str, Any]:
    listing = control.get("/processes").json()["processes"]
    return next(p for p in listing if p["service"] == service and p["replica"] == replica)


def test_every_replica_is_ready_and_scraped(
    stack: StackDescriptor, prom: Any, suite_replicas: dict[str, int]
) -> None:
    expected = {(s, str(r)) for s, n in suite_replicas.items() for r in range(n)}
    assert {(r.service, str(r.replica)) for r in stack.replicas} == expected
    for replica in stack.replicas:
        assert httpx.get(f"{replica.url}/readyz", timeout=5).status_code == 200, replica
    assert _shop_up(prom) == dict.fromkeys(expected, 1.0)
    assert [float(s["value"][1]) for s in prom.query(f'up{{job="{TESTBED_JOB}"}}')] == [1.0]
    token_mode = os.stat(stack.token_file).st_mode & 0o777
    assert token_mode == 0o600


@pytest.mark.usefixtures("stack_ready")
def test_status_json_lists_every_process(stack: StackDescriptor, suite_replicas: dict[str, int]) -> None:
    result = _testbed("status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads(result.stdout)
    assert status["running"] and status["healthy"]
    replicas = [p for p in status["processes"] if p["replica"] is not None]
    assert sorted({p["service"] for p in replicas}) == sorted(SERVICE_NAMES)
    assert len(replicas) == sum(suite_replicas.values())
    for p in replicas:
        assert p["health"] == "ready" and p["state"] == "running" and psutil.pid_exists(p["pid"])
        assert p["url"] == f"http://127.0.0.1:{p['port']}"
    assert {"prometheus", "supervisor"} <= {p["service"] for p in status["processes"]}


def test_up_again_says_already_up(stack: StackDescriptor) -> None:
    result = _testbed("up")
    assert result.returncode == 0, result.stderr
    assert "already up" in result.stdout
    conflicting = _testbed("up", "--replicas", "catalog=3")
    assert conflicting.returncode == 2  # a bad request (exit 2), not a stack that could not come up (1)
    assert "already up" in conflicting.stderr and "testbed down" in conflicting.stderr


@pytest.mark.usefixtures("stack_ready")
def test_a_killed_replica_is_restarted_and_scraped_again(
    stack: StackDescriptor, control: httpx.Client, prom: Any, wait_until: Callable[..., Any]
) -> None:
    before = _process(control, "payment", 0)
    killed_at = time.time()
    killed = control.post("/faults/payment", params={"replica": 0}, json={"kind": "kill"})
    assert killed.status_code == 201, killed.text
    assert (
        not psutil.pid_exists(before["pid"]) or psutil.Process(before["pid"]).status() == psutil.STATUS_ZOMBIE
    )
    after = wait_until(
        lambda: (p := _process(control, "payment", 0))["state"] == "running" and p,
        30,
        message="payment restarted",
    )
    assert after["pid"] != before["pid"] and after["restarts"] == before["restarts"] + 1
    # Prometheus scrapes the new process: its start time (prometheus_client's process collector) is after
    # the kill. Not "a failed scrape was stored": a forked replica is back within the 0.5 s backoff and
    # about a second of start-up, which need not span a scrape of the 1 s interval.
    new_start = (
        f'max_over_time(process_start_time_seconds{{job="{SHOP_JOB}",service="payment",replica="0"}}[30s])'
    )
    wait_until(
        lambda: any(float(s["value"][1]) >= killed_at - 1.0 for s in prom.query(new_start)),
        15,
        message="Prometheus to scrape the restarted payment process",
    )
    wait_until(
        lambda: _shop_up(prom).get(("payment", "0")) == 1.0, 15, message="Prometheus to see payment up"
    )
    restarts = prom.values(f'{PROCESS_RESTARTS.name}{{service="payment"}}', "replica")
    wait_until(
        lambda: prom.values(f'{PROCESS_RESTARTS.name}{{service="payment"}}', "replica").get("0", 0) >= 1,
        10,
        message=f"the restart counter in Prometheus (now {restarts})",
    )


@pytest.mark.usefixtures("stack_ready")
def test_pause_is_resumed_automatically(
    stack: StackDescriptor, control: httpx.Client, prom: Any, wait_until: Callable[..., Any]
) -> None:
    replica = stack.replicas_of("recommendations")[0]
    response = control.post(
        "/faults/recommendations", params={"replica": 0}, json={"kind": "pause", "ttl_s": 3}
    )
    assert response.status_code == 201, response.text
    paused_at = time.monotonic()
    pid = response.json()["replicas"][0]["pid"]
    assert psutil.Process(pid).status() == psutil.STATUS_STOPPED
    with pytest.raises(httpx.TimeoutException):
        httpx.get(f"{replica.url}/healthz", timeout=0.5)
    assert control.get("/faults").json()["faults"][0]["kind"] == "pause"
    wait_until(
        lambda: _shop_up(prom).get(("recommendations", "0")) == 0.0,
        5,
        message="scrape of a paused replica fails",
    )
    wait_until(
        lambda: httpx.get(f"{replica.url}/healthz", timeout=0.5).status_code == 200, 10, message="resume"
    )
    assert time.monotonic() - paused_at >= 2.5
    assert _process(control, "recommendations", 0)["pid"] == pid  # resumed, not restarted
    assert control.get("/faults").json()["faults"] == []
    wait_until(lambda: _shop_up(prom).get(("recommendations", "0")) == 1.0, 10, message="scraped again")


@pytest.mark.usefixtures("stack_ready")
def test_killing_one_of_two_catalog_replicas_leaves_catalog_served(
    stack: StackDescriptor, stack_target: LocalTarget, control: httpx.Client, wait_until: Callable[..., Any]
) -> None:
    assert len(stack.replicas_of("catalog")) == 2
    with httpx.Client(base_url=stack.gateway_url, timeout=5) as shop:
        assert shop.get("/api/products").status_code == 200
        stack_target.kill("catalog", 1)
        statuses = [shop.get("/api/products").status_code for _ in range(20)]
        assert _process(control, "catalog", 1)["state"] in (
            "backoff",
            "starting",
        )  # still down while we asked
        assert statuses == [200] * 20
    wait_until(
        lambda: _process(control, "catalog", 1)["state"] == "running", 30, message="catalog-1 restarted"
    )


def test_phases_are_exported(
    stack: StackDescriptor, control: httpx.Client, prom: Any, wait_until: Callable[..., Any]
) -> None:
    started = control.post("/phases", json={"experiment": "suite-check", "phase": "fault", "state": "start"})
    assert started.status_code == 200, started.text
    query = f'{EXPERIMENT_PHASE.name}{{experiment="suite-check"}}'
    wait_until(
        lambda: prom.values(query, "phase").get("fault") == 1.0, 10, message="phase start in Prometheus"
    )
    control.post("/phases", json={"experiment": "suite-check", "phase": "fault", "state": "end"})
    wait_until(lambda: prom.values(query, "phase").get("fault") == 0.0, 10, message="phase end in Prometheus")


def test_phases_are_validated_once_and_never_truncated(stack: StackDescriptor, control: httpx.Client) -> None:
    """The one POST /phases (sample_shop/faultd/api.py, the same on kind): a pydantic model. A name longer
    than 200 characters is refused with 422 naming the field, not cut to 200 and recorded; the board keeps
    nothing of a refused post."""
    long_name = "x" * 201
    refused = control.post("/phases", json={"experiment": long_name, "phase": "fault", "state": "start"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "body.experiment", refused.text
    assert "at most 200 characters" in refused.json()["errors"][0]["message"]
    assert ("x" * 200) not in control.get("/metrics").text
    wrong_state = control.post("/phases", json={"experiment": "x", "phase": "fault", "state": "later"})
    assert wrong_state.status_code == 422 and "unknown state 'later'" in wrong_state.text
    exact = control.post("/phases", json={"experiment": "y" * 200, "phase": "baseline", "state": "end"})
    assert exact.status_code == 200 and exact.json()["experiment"] == "y" * 200, exact.text


def test_supervisor_logs_the_shops_json_lines(stack: StackDescriptor) -> None:
    """One log format (kit/logs.py): the supervisor's lines carry the replicas' fields, lower-case levels."""
    assert stack.state_dir is not None
    lines = (Path(stack.state_dir) / "supervisor.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    ready = [e for e in entries if e["message"] == "stack ready"]
    assert ready, lines[-20:]
    assert {"timestamp", "level", "service", "replica", "logger", "message"} <= set(ready[-1])
    assert ready[-1]["service"] == "supervisor" and ready[-1]["level"] == "info"
    assert all(e["level"] == e["level"].lower() for e in entries)


def test_control_api_schema_needs_the_token(stack: StackDescriptor, control: httpx.Client) -> None:
    """/openapi.json maps every route of the control plane: only /healthz answers without the token."""
    anonymous = httpx.get(f"{stack.control_url}/openapi.json", timeout=5)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    wrong = httpx.get(f"{stack.control_url}/openapi.json", headers={"Authorization": "Bearer no"}, timeout=5)
    assert wrong.status_code == 403, wrong.text
    schema = control.get("/openapi.json")
    assert schema.status_code == 200
    assert {"/faults", "/policy", "/phases", "/metrics", "/processes"} <= set(schema.json()["paths"])


def test_control_api_rejects_bad_requests_clearly(stack: StackDescriptor, control: httpx.Client) -> None:
    for path in ("/processes", "/metrics", "/openapi.json"):  # /healthz is the one open route
        anonymous = httpx.get(f"{stack.control_url}{path}", timeout=5)
        assert anonymous.status_code == 401, path
        assert stack.token_file in anonymous.json()["errors"][0]["message"]
    assert httpx.get(f"{stack.control_url}/healthz", timeout=5).status_code == 200
    assert control.get("/openapi.json").json()["info"]["title"] == "testbed control API"
    cases = [
        ("/phases", {"experiment": "x", "phase": "lunch", "state": "start"}, 422, "unknown phase 'lunch'"),
        ("/phases", {"experiment": "x", "phase": "fault"}, 422, "Field required"),
        ("/faults/nope", {"kind": "kill"}, 404, "unknown service 'nope'"),
        ("/faults/catalog?replica=4", {"kind": "kill"}, 404, "catalog has no replica 4"),
        ("/faults/catalog", {"kind": "pause", "ttl_s": 0}, 422, "a pause needs ttl_s"),
    ]
    for path, body, status, message in cases:
        response = control.post(path, json=body)
        assert response.status_code == status, (path, response.text)
        assert message in json.dumps(response.json()["errors"]), response.text
