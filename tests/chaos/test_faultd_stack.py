"""The fault controller and `testbed fault` against the session stack (real replicas, real supervisor):
fan-out to both catalog replicas, re-application to a restarted replica, the effect at the gateway, client
policy overrides, clear errors that inject nothing, and the standalone controller of the kind Deployment
with Kubernetes discovery."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_kube_api import FakeKubeApi

from chaos.helpers import active_faults, stop_process
from sample_shop.topology import StackDescriptor

pytestmark = pytest.mark.stack
TESTBED = [sys.executable, "-m", "testbed.cli"]


def _admin_faults(stack: StackDescriptor, service: str, replica: int) -> list[dict[str, Any]]:
    endpoint = next(r for r in stack.replicas_of(service) if r.replica == replica)
    response = httpx.get(
        f"{endpoint.admin_url}/faults", headers={"Authorization": f"Bearer {stack.token()}"}, timeout=5
    )
    response.raise_for_status()
    return list(response.json()["faults"])


def _testbed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TESTBED, *args], capture_output=True, text=True, timeout=120, env=os.environ)


def test_a_fault_reaches_both_catalog_replicas_and_is_cleared_from_both(
    clean_stack: StackDescriptor, control: httpx.Client
) -> None:
    assert len(clean_stack.replicas_of("catalog")) == 2
    answer = control.post("/faults/catalog", json={"kind": "latency", "params": {"ms": 50}, "ttl_s": 30})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    fault_id = body["fault"]["id"]
    assert [(r["replica"], r["applied"]) for r in body["replicas"]] == [(0, True), (1, True)]
    for replica in (0, 1):
        assert [f["id"] for f in _admin_faults(clean_stack, "catalog", replica)] == [fault_id]
    listed = control.get("/faults").json()["faults"]
    assert sorted((f["service"], f["replica"], f["id"]) for f in listed) == [
        ("catalog", 0, fault_id),
        ("catalog", 1, fault_id),
    ]
    cleared = control.delete("/faults/catalog").json()
    assert [f["id"] for f in cleared["cleared"]] == [fault_id] and cleared["unconfirmed"] == []
    assert _admin_faults(clean_stack, "catalog", 0) == _admin_faults(clean_stack, "catalog", 1) == []


def test_one_replica_only(clean_stack: StackDescriptor, control: httpx.Client) -> None:
    answer = control.post("/faults/catalog", params={"replica": 1}, json={"kind": "error", "ttl_s": 30})
    assert answer.status_code == 201, answer.text
    assert _admin_faults(clean_stack, "catalog", 0) == []
    assert [f["kind"] for f in _admin_faults(clean_stack, "catalog", 1)] == ["error"]


def test_a_restarted_replica_gets_its_faults_back(
    clean_stack: StackDescriptor, control: httpx.Client, wait_until: Callable[..., Any]
) -> None:
    fault_id = control.post(
        "/faults/catalog", json={"kind": "latency", "params": {"ms": 20}, "ttl_s": 120}
    ).json()["fault"]["id"]
    restarted = control.post("/faults/catalog", params={"replica": 1}, json={"kind": "restart"})
    assert restarted.status_code == 201, restarted.text
    new_pid = restarted.json()["replicas"][0]["pid"]

    def carries_it() -> bool:
        processes = control.get("/processes").json()["processes"]
        me = next(p for p in processes if p["service"] == "catalog" and p["replica"] == 1)
        return (
            me["pid"] == new_pid
            and me["state"] == "running"
            and [f["id"] for f in _admin_faults(clean_stack, "catalog", 1)] == [fault_id]
        )

    wait_until(carries_it, 60, interval=0.2, message="the restarted catalog-1 to carry the fault again")
    assert [f["id"] for f in _admin_faults(clean_stack, "catalog", 0)] == [fault_id]


def test_a_latency_fault_is_felt_at_the_gateway_and_gone_after_clear(
    clean_stack: StackDescriptor, control: httpx.Client
) -> None:
    with httpx.Client(base_url=clean_stack.gateway_url, timeout=10) as shop:
        shop.get("/api/products")  # warm connections
        control.post("/faults/gateway", json={"kind": "latency", "params": {"ms": 600}, "ttl_s": 30})
        started = time.monotonic()
        assert shop.get("/api/products").status_code == 200
        assert time.monotonic() - started >= 0.6
        control.delete("/faults/gateway")
        started = time.monotonic()
        assert shop.get("/api/products").status_code == 200
        assert time.monotonic() - started < 0.6


def test_a_client_policy_override_reaches_every_replica_and_is_reset(
    clean_stack: StackDescriptor, control: httpx.Client
) -> None:
    answer = control.put(
        "/policy/orders", json={"profile": "naive", "overrides": {"retries": 1}, "ttl_s": 60}
    )
    assert answer.status_code == 200, answer.text
    orders = clean_stack.replicas_of("orders")[0]
    headers = {"Authorization": f"Bearer {clean_stack.token()}"}
    policy = httpx.get(f"{orders.admin_url}/policy", headers=headers, timeout=5).json()
    assert policy["override"] and policy["policy"]["profile"] == "naive" and policy["policy"]["retries"] == 1
    assert control.get("/policy").json()["policies"][0]["service"] == "orders"
    assert control.delete("/policy/orders").json()["reset"] == ["orders"]
    assert not httpx.get(f"{orders.admin_url}/policy", headers=headers, timeout=5).json()["override"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["paymnt", "latency", "--param", "ms=100"], "unknown service 'paymnt'; valid: gateway"),
        (["payment", "lag"], "unknown fault kind 'lag'; valid: latency, error"),
        (["payment", "latency", "--param", "ms=999999"], "params.ms: must be an integer between 1 and 60000"),
        (["payment", "latency", "--param", "ms=10", "--param", "foo=1"], "params.foo: unknown parameter"),
        (["payment", "latency"], "params.ms: required"),
        (["payment", "error", "--ttl", "7200"], "ttl_s: must be a number of seconds between 1 and 3600"),
        (["payment", "outbound-error", "--param", "peer=catalog"], "calls no other service"),
        (["catalog", "latency", "-p", "ms=5", "--replica", "3"], "catalog has no replica 3"),
        (["recommendations", "pause"], "a pause needs --ttl"),
    ],
)
def test_cli_refuses_bad_faults_and_injects_nothing(
    clean_stack: StackDescriptor, control: httpx.Client, args: list[str], message: str
) -> None:
    done = _testbed("fault", "inject", *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr
    assert active_faults(control) == {"faults": [], "pending": [], "desired": [], "policies": []}


def test_cli_inject_list_clear(clean_stack: StackDescriptor, control: httpx.Client) -> None:
    injected = _testbed(
        "fault", "inject", "payment", "latency", "-p", "ms=150", "-p", "jitter_ms=20", "--ttl", "30"
    )
    assert injected.returncode == 0, injected.stderr
    assert "injected latency into payment" in " ".join(injected.stdout.split())
    listed = _testbed("fault", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    faults = json.loads(listed.stdout)["faults"]
    assert [(f["service"], f["kind"], f["params"]["ms"], f["params"]["jitter_ms"]) for f in faults] == [
        ("payment", "latency", 150, 20)
    ]
    cleared = _testbed("fault", "clear", "payment")
    assert cleared.returncode == 0 and "cleared 1 fault(s)" in cleared.stdout, cleared.stdout + cleared.stderr
    assert control.get("/faults").json()["faults"] == []


def test_control_api_errors_are_clear(clean_stack: StackDescriptor, control: httpx.Client) -> None:
    assert (
        httpx.post(f"{clean_stack.control_url}/faults/payment", json={"kind": "error"}, timeout=5).status_code
        == 401
    )
    cases = [
        ("/faults/payment", b"{nope", 422, "invalid JSON"),
        ("/faults/payment", b"", 422, "empty"),
        ("/faults/payment?replica=9", b'{"kind": "error"}', 422, "must be an integer between 0 and 4"),
        ("/faults/payment?replica=2", b'{"kind": "error"}', 404, "payment has no replica 2"),
        ("/faults/payment", b'{"kind": "error", "params": {"status": 200}}', 422, "between 400 and 599"),
        ("/faults/catalog", b'{"kind": "pause", "ttl_s": 0}', 422, "a pause needs ttl_s"),
    ]
    for path, body, status, message in cases:
        response = control.post(path, content=body)
        assert response.status_code == status, (path, response.text)
        assert message in json.dumps(response.json()["errors"]), response.text
    assert control.delete("/faults/payment/abc").status_code == 404
    assert control.put("/policy/payment", json={"profile": "naive", "ttl_s": 10}).status_code == 422
    assert active_faults(control) == {"faults": [], "pending": [], "desired": [], "policies": []}


# ---- the standalone controller (kind) ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pods(stack: StackDescriptor, restarts: int = 0) -> list[dict[str, Any]]:
    pods = []
    for r in stack.replicas_of("catalog"):
        assert r.admin_url is not None
        admin_port = int(r.admin_url.rsplit(":", 1)[1])
        pods.append(
            {
                "metadata": {
                    "name": f"catalog-{r.replica}",
                    "uid": f"uid-{r.replica}",
                    "creationTimestamp": f"2026-01-01T00:00:0{r.replica}Z",
                    "labels": {
                        "app.kubernetes.io/name": "catalog",
                        "app.kubernetes.io/component": "shop-service",
                    },
                },
                "spec": {"containers": [{"ports": [{"name": "admin", "containerPort": admin_port}]}]},
                "status": {
                    "phase": "Running",
                    "podIP": "127.0.0.1",
                    "containerStatuses": [{"restartCount": restarts}],
                },
            }
        )
    return pods


@pytest.fixture
def standalone_faultd(
    clean_stack: StackDescriptor, tmp_path: Path
) -> Iterator[tuple[httpx.Client, FakeKubeApi]]:
    """A fake Kubernetes API server (tests/fake_kube_api.py; none can run here) lists the session stack's
    real catalog replicas as pods of namespace shop. The controller's stdout goes to tmp_path/faultd.log."""
    with FakeKubeApi({"shop": _pods(clean_stack)}) as api:
        port = _free_port()
        env = {
            **os.environ,
            "FAULTD_HOST": "127.0.0.1",
            "FAULTD_PORT": str(port),
            "FAULTD_DISCOVERY": "kubernetes",
            "FAULTD_KUBERNETES_API": api.url,
            "FAULTD_NAMESPACE": "shop",
            "SHOP_ADMIN_TOKEN_FILE": clean_stack.token_file,
        }
        stdout = (tmp_path / "faultd.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "sample_shop.faultd"], env=env, stdout=stdout, stderr=subprocess.PIPE
        )
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {clean_stack.token()}"},
            timeout=10,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "the standalone fault controller did not start"
                time.sleep(0.2)
            yield client, api
        finally:
            try:
                client.delete("/faults")
            finally:
                client.close()
                stop_process(proc, signal.SIGTERM)
                stdout.close()


def test_standalone_controller_finds_pods_through_kubernetes_and_reapplies_to_a_new_container(
    clean_stack: StackDescriptor,
    standalone_faultd: tuple[httpx.Client, FakeKubeApi],
    wait_until: Callable[..., Any],
) -> None:
    """The kind Deployment's entry point (`python -m sample_shop.faultd`, FAULTD_DISCOVERY=kubernetes), with a
    fake Kubernetes API server (none can run here) listing the session stack's two real catalog replicas as
    pods: a fault reaches both, a container restart (restartCount + 1, its faults gone) gets it back."""
    client, api = standalone_faultd
    answer = client.post("/faults/catalog", json={"kind": "latency", "params": {"ms": 30}, "ttl_s": 60})
    assert answer.status_code == 201, answer.text
    fault_id = answer.json()["fault"]["id"]
    assert [f["id"] for f in _admin_faults(clean_stack, "catalog", 0)] == [fault_id]
    assert [f["id"] for f in _admin_faults(clean_stack, "catalog", 1)] == [fault_id]
    assert any("labelSelector=app.kubernetes.io" in p for p in api.paths())
    # a new container in pod catalog-1: it starts without faults, and the API server reports a restart
    headers = {"Authorization": f"Bearer {clean_stack.token()}"}
    endpoint = next(r for r in clean_stack.replicas_of("catalog") if r.replica == 1)
    httpx.delete(f"{endpoint.admin_url}/faults", headers=headers, timeout=5).raise_for_status()
    api.pods["shop"] = _pods(clean_stack, restarts=1)
    wait_until(
        lambda: [f["id"] for f in _admin_faults(clean_stack, "catalog", 1)] == [fault_id],
        10,
        message="the standalone controller to re-apply the fault to the new container",
    )
    assert client.post("/faults/catalog", json={"kind": "kill"}).status_code == 501
    phase = client.post("/phases", json={"experiment": "kind-check", "phase": "fault", "state": "start"})
    assert phase.status_code == 200, phase.text
    assert (
        'testbed_experiment_phase{experiment="kind-check",phase="fault"} 1.0' in client.get("/metrics").text
    )
    assert httpx.get(f"{client.base_url}/faults", timeout=5).status_code == 401
    assert [f["id"] for f in client.delete("/faults").json()["cleared"]] == [fault_id]
    assert _admin_faults(clean_stack, "catalog", 0) == _admin_faults(clean_stack, "catalog", 1) == []


def test_standalone_controller_answers_only_healthz_without_the_token(
    standalone_faultd: tuple[httpx.Client, FakeKubeApi],
) -> None:
    client, _ = standalone_faultd
    for path in ("/openapi.json", "/faults", "/metrics"):
        anonymous = httpx.get(f"{client.base_url}{path}", timeout=5)
        assert anonymous.status_code == 401, path
    assert httpx.get(f"{client.base_url}/healthz", timeout=5).status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "fault controller"


def test_standalone_controller_logs_the_shops_json_lines(
    standalone_faultd: tuple[httpx.Client, FakeKubeApi], tmp_path: Path, wait_until: Callable[..., Any]
) -> None:
    """One log format (kit/logs.py) for the replicas, the supervisor and faultd: on kind Loki gets JSON."""
    client, _ = standalone_faultd
    answer = client.post("/faults/catalog", json={"kind": "latency", "params": {"ms": 5}, "ttl_s": 30})
    assert answer.status_code == 201, answer.text

    def injected() -> dict[str, Any] | None:
        for line in (tmp_path / "faultd.log").read_text().splitlines():
            entry = json.loads(line)  # every line is JSON
            if entry.get("event") == "fault_injected":
                return entry
        return None

    wait_until(lambda: injected() is not None, 10, message="the 'fault injected' log line")
    entry = injected()
    assert entry is not None
    assert (entry["level"], entry["service"], entry["message"]) == ("warning", "faultd", "fault injected")
    assert {"timestamp", "replica", "logger"} <= set(entry)
