"""The kind target (`testbed/runtime/kind.py`) driving the REAL kubectl binary against a FAKE Kubernetes API
server (tests/fake_kube_api.py): no Kubernetes API server, Docker or kind can run on this machine, so the
cluster is a small http.server on 127.0.0.1 serving discovery, pods and Deployments of namespaces `shop`
and `shop-observability`, and pod deletion. The kubeconfig is generated per test; its current context is
a decoy pointing at a closed port, so every kubectl call must pass `--context kind-chaos-shop` to succeed.

The host ports of kind-config.yaml (8080 gateway, 18000 control API, 9090 Prometheus) are served by
stand-ins on free high ports, moved there with KIND_HOST_PORT_OFFSET (documented in docs/kind.md as a
test-only setting).

What this does not show: that a real API server answers the same (kubectl's own requests and its JSON
are real; the objects the fake returns are shaped after Kubernetes 1.33's), and that a real cluster's
NodePorts are reachable on those host ports.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fake_kube_api import FakeKubeApi

from sample_shop.topology import SERVICE_NAMES, SERVICES, StackDescriptor
from testbed.runtime import get_target
from testbed.runtime.base import InputError, RuntimeFailure, StartupProgress, Target, UpOptions
from testbed.runtime.kind import (
    CLIENT_SLO_NOTE,
    DOWN_MESSAGE,
    HOST_PORT_OFFSET_ENV,
    KindTarget,
    deployed_replicas,
)

CONTEXT = "kind-chaos-shop"
GATEWAY, CONTROL, PROMETHEUS = 8080, 18000, 9090
# the Deployments of shop-observability (deploy/components/observability) and their pods' ports
OBSERVABILITY_PODS = (
    ("prometheus", 9090),
    ("alertmanager", 9093),
    ("alert-webhook", 9097),
    ("grafana", 3000),
    ("jaeger", 16686),
    ("loki", 3100),
)


# ---- the fake cluster's objects ----------------------------------------------------------------------


def _pod(
    name: str,
    service: str,
    namespace: str,
    *,
    component: str = "shop-service",
    ip: str = "10.244.1.1",
    ready: bool = True,
    phase: str = "Running",
    waiting: str = "",
    terminating: bool = False,
    restarts: int = 0,
    port: int | None = None,
) -> dict[str, Any]:
    state: dict[str, Any] = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/name": service, "app.kubernetes.io/component": component},
    }
    if terminating:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "ports": [{"containerPort": port}] if port else []}]},
        "status": {
            "phase": phase,
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "app", "restartCount": restarts, "state": state}],
        },
    }


def _deployment(
    name: str, replicas: int, *, ready: int | None = None, available: bool = True
) -> dict[str, Any]:
    ready = replicas if ready is None else ready
    return {
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name}},
        "spec": {"replicas": replicas},
        "status": {
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas,
            "availableReplicas": ready,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if available else "False",
                    "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                }
            ],
        },
    }


def healthy_cluster() -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """(pods, deployments) of a cluster after `make deploy`: two pods per shop service, listed in an order
    that is not their name order, plus the notifications function and its mail server, faultd, PostgreSQL,
    the observability stack and a finished load Job."""
    shop: list[dict[str, Any]] = []
    for n, service in enumerate(SERVICE_NAMES):
        # "-zz..." before "-aa...": the replica index must come from the sorted names, not the listing order
        for r, suffix in enumerate(("7d4b9c-zzq1x", "7d4b9c-aab2c")):
            shop.append(_pod(f"{service}-{suffix}", service, "shop", ip=f"10.244.{n}.{10 + r}"))
    shop += [
        _pod("faultd-6c8d5-k2p9x", "faultd", "shop", component="fault-controller", port=18000),
        _pod("postgres-0", "postgres", "shop", component="database", port=5432),
        _pod("notifications-6b9f4-q8w2e", "notifications", "shop", component="function"),
        _pod("mailserver-58c7d-m4n5p", "mailserver", "shop", component="mail-server", port=2525),
        _pod(
            "load-generator-x7t2q",
            "load-generator",
            "shop",
            component="load-generator",
            ready=False,
            phase="Succeeded",
        ),
    ]
    observability = [
        _pod(f"{name}-5f6b7-abcde", name, "shop-observability", component="observability", port=port)
        for name, port in OBSERVABILITY_PODS
    ]
    deployments = {
        "shop": [
            *(_deployment(s, 2) for s in SERVICE_NAMES),
            _deployment("notifications", 1),
            _deployment("mailserver", 1),
            _deployment("faultd", 1),
        ],
        "shop-observability": [_deployment(n, 1) for n, _ in OBSERVABILITY_PODS],
    }
    return {"shop": shop, "shop-observability": observability}, deployments


# ---- stand-ins for the host ports ---------------------------------------------------------------------


@dataclass
class HostPorts:
    """The gateway's /readyz, Prometheus' /-/ready and the control API, at port + offset."""

    offset: int
    answers: dict[str, int] = field(default_factory=lambda: {"/readyz": 200, "/-/ready": 200})
    servers: list[ThreadingHTTPServer] = field(default_factory=list)

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code = outer.answers.get(self.path, 404)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        for port in (GATEWAY, CONTROL, PROMETHEUS):
            server = ThreadingHTTPServer(("127.0.0.1", port + self.offset), Handler)
            self.servers.append(server)
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def _free_offset() -> HostPorts:
    """An offset whose three host ports are free (below the ephemeral range, clear of the suite's stacks)."""
    for _ in range(50):
        offset = random.randrange(10_500, 14_000)
        ports = HostPorts(offset)
        try:
            ports.start()
        except OSError:
            ports.stop()
            continue
        return ports
    raise RuntimeError("no free offset for the host-port stand-ins")


# ---- fixtures ---------------------------------------------------------------------------------------


@dataclass
class Kind:
    api: FakeKubeApi
    ports: HostPorts
    state: Path
    token: Path

    def target(self) -> KindTarget:
        return KindTarget(self.state, token_file=self.token)


@pytest.fixture
def kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kind]:
    pods, deployments = healthy_cluster()
    token = tmp_path / "deploy" / "generated" / "shop" / "secrets" / "admin-token"
    token.parent.mkdir(parents=True)
    token.write_text("secret\n")
    with FakeKubeApi(pods, deployments) as api:
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path / "kubeconfig")))
        monkeypatch.setenv("KUBECACHEDIR", str(tmp_path / "kube-cache"))
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
        monkeypatch.delenv("KIND_CLUSTER", raising=False)
        ports = _free_offset()
        monkeypatch.setenv(HOST_PORT_OFFSET_ENV, str(ports.offset))
        try:
            yield Kind(api, ports, tmp_path / "state", token)
        finally:
            ports.stop()


# ---- up ---------------------------------------------------------------------------------------------


def test_deploy_runs_two_replicas_and_the_registry_finds_the_kind_target(tmp_path: Path) -> None:
    assert deployed_replicas() == 2  # read from deploy/components/high-availability
    target: Target = get_target("kind", tmp_path)
    assert isinstance(target, KindTarget) and isinstance(target, Target)
    token = Path(__file__).resolve().parents[2] / "deploy/generated/shop/secrets/admin-token"
    assert target.token_file == token and target.token_file.is_absolute()


def test_up_refuses_what_the_cluster_cannot_honour(kind: Kind) -> None:
    target = kind.target()
    with pytest.raises(InputError) as replicas:
        target.up(UpOptions(replicas={**dict.fromkeys(SERVICE_NAMES, 1), "payment": 3}))
    message = str(replicas.value)
    assert "payment=3" in message and "deploy/components/high-availability" in message
    assert "runs 2 replicas" in message
    with pytest.raises(InputError, match="SHOP_RESILIENCE"):
        target.up(UpOptions(resilience="naive"))
    with pytest.raises(InputError, match="SHOP_TELEMETRY"):
        target.up(UpOptions(telemetry="off"))
    assert kind.api.requests == []  # refused before touching the cluster
    assert not (kind.state / "stack.json").exists()


def test_up_reports_what_it_waits_for_and_times_out_with_the_hint(kind: Kind) -> None:
    shop = kind.api.deployments["shop"]
    shop[[d["metadata"]["name"] for d in shop].index("catalog")] = _deployment(
        "catalog", 2, ready=1, available=False
    )
    pods = kind.api.pods["shop"]
    stuck = [p["metadata"]["name"] for p in pods].index("catalog-7d4b9c-zzq1x")
    pods[stuck] = _pod("catalog-7d4b9c-zzq1x", "catalog", "shop", ready=False, waiting="ImagePullBackOff")
    kind.ports.answers["/readyz"] = 503
    seen: list[StartupProgress] = []
    with pytest.raises(RuntimeFailure) as failure:
        kind.target().up(UpOptions(timeout_s=1.0), progress=seen.append)
    message, hint = failure.value.message, failure.value.hint
    assert "not ready after 1 s" in message
    assert "shop/catalog: not Available (MinimumReplicasUnavailable), 1/2 ready" in message
    assert "catalog-7d4b9c-zzq1x: ImagePullBackOff" in message
    assert f"gateway http://127.0.0.1:{GATEWAY + kind.ports.offset}/readyz: answers 503" in message
    assert "make images" in hint and "make deploy" in hint and f"--context {CONTEXT}" in hint
    starting = [p for p in seen if p.state == "starting"]
    assert starting and any(w.startswith("shop/catalog") for w in starting[0].waiting)
    assert "shop/users" in starting[0].ready and "shop-observability/prometheus" in starting[0].ready
    assert seen[-1].state == "failed" and seen[-1].failure is not None
    assert not (kind.state / "stack.json").exists()


def test_up_writes_the_documented_stack_json(kind: Kind) -> None:
    # a pod on its way out (a replacement is running already) is not a replica
    kind.api.pods["shop"].append(_pod("catalog-0ld-pod", "catalog", "shop", terminating=True))
    seen: list[StartupProgress] = []
    descriptor = kind.target().up(UpOptions(), progress=seen.append)
    on_disk = json.loads((kind.state / "stack.json").read_text())
    assert StackDescriptor.from_dict(on_disk) == descriptor
    n = kind.ports.offset
    expected = {
        "target": "kind",
        "gateway_url": f"http://127.0.0.1:{8080 + n}",
        "control_url": f"http://127.0.0.1:{18000 + n}",
        "prometheus_url": f"http://127.0.0.1:{9090 + n}",
        "jaeger_url": f"http://127.0.0.1:{16686 + n}",
        "loki_url": f"http://127.0.0.1:{3100 + n}",
        "grafana_url": f"http://127.0.0.1:{3000 + n}",
        "token_file": str(kind.token.resolve()),
        "kubernetes_context": CONTEXT,
        "kubernetes_namespace": "shop",
        "client_metrics_scraped": False,
        "state_dir": str(kind.state.resolve()),
        "traces_dir": None,
        "logs_dir": None,
    }
    assert {k: on_disk[k] for k in expected} == expected
    assert Path(on_disk["token_file"]).is_absolute()
    replicas = {(r["service"], r["replica"]): r for r in on_disk["replicas"]}
    assert sorted(replicas) == sorted((s, r) for s in SERVICE_NAMES for r in (0, 1))
    catalog = SERVICE_NAMES.index("catalog")
    # replica 0 is the first of the service's pods by name ("-aab2c", listed second, IP .11)
    assert replicas[("catalog", 0)] == {
        "service": "catalog",
        "replica": 0,
        "url": f"http://10.244.{catalog}.11:{SERVICES['catalog'].port}",
        "admin_url": None,
        "pid": None,
    }
    assert replicas[("catalog", 1)]["url"] == f"http://10.244.{catalog}.10:8082"
    assert all(r["admin_url"] is None for r in on_disk["replicas"])
    assert seen[-1].state == "ready" and not seen[-1].waiting
    # every kubectl request carried the context: the decoy current context would have failed otherwise
    assert any(p.startswith("/apis/apps/v1/namespaces/shop/deployments") for p in kind.api.paths())
    assert kind.target().descriptor() == descriptor


def test_up_notes_and_idempotence(kind: Kind) -> None:
    target = kind.target()
    first = target.up(UpOptions())
    assert CLIENT_SLO_NOTE in target.startup_notes() and DOWN_MESSAGE in target.startup_notes()
    assert target.up(UpOptions()) == first  # again: re-checked, same description


def test_up_when_a_deployment_is_missing_names_make_deploy(kind: Kind) -> None:
    kind.api.deployments["shop-observability"] = [
        d for d in kind.api.deployments["shop-observability"] if d["metadata"]["name"] != "grafana"
    ]
    with pytest.raises(RuntimeFailure) as failure:
        kind.target().up(UpOptions(timeout_s=5))
    assert "namespace shop-observability" in failure.value.message and "grafana" in failure.value.message
    assert "make images deploy" in failure.value.hint


def test_up_refuses_a_scaled_down_service(kind: Kind) -> None:
    shop = kind.api.deployments["shop"]
    shop[[d["metadata"]["name"] for d in shop].index("recommendations")] = _deployment("recommendations", 0)
    kind.api.pods["shop"] = [
        p
        for p in kind.api.pods["shop"]
        if p["metadata"]["labels"]["app.kubernetes.io/name"] != "recommendations"
    ]
    with pytest.raises(RuntimeFailure) as failure:
        kind.target().up(UpOptions(timeout_s=0.5))
    assert "shop/recommendations: runs 0 replicas, deploy/ runs 2" in failure.value.message


def test_missing_context_names_make_cluster(kind: Kind, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIND_CLUSTER", "elsewhere")
    target = kind.target()
    with pytest.raises(RuntimeFailure) as failure:
        target.up(UpOptions())
    assert "'kind-elsewhere'" in failure.value.message and CONTEXT in failure.value.message
    assert "make cluster" in failure.value.hint and "KIND_CLUSTER" in failure.value.hint
    status = target.status()
    assert not status.running and "kind-elsewhere" in status.message and "make cluster" in status.message
    monkeypatch.setenv("KUBERNETES_CONTEXT", CONTEXT)  # the override wins over KIND_CLUSTER
    assert KindTarget(kind.state, token_file=kind.token).up(UpOptions()).kubernetes_context == CONTEXT


def test_an_api_server_that_does_not_answer_is_said_at_once(
    kind: Kind, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_CONTEXT", "decoy")  # exists in the kubeconfig, nothing listens
    with pytest.raises(RuntimeFailure) as failure:
        kind.target().up(UpOptions(timeout_s=30))
    assert "the connection to the server 127.0.0.1:1 was refused" in failure.value.message.lower()
    assert "memcache" not in failure.value.message  # kubectl's klog lines are left out
    assert "is the kind cluster running" in failure.value.hint and "make cluster" in failure.value.hint


def test_descriptor_and_down(kind: Kind) -> None:
    target = kind.target()
    with pytest.raises(RuntimeFailure) as missing:
        target.descriptor()
    assert (
        "testbed up --target kind" in missing.value.hint
        and "make experiment TARGET=kind" in missing.value.hint
    )
    target.up(UpOptions())
    assert target.down() == []
    assert not (kind.state / "stack.json").exists()
    assert kind.api.deleted == []  # nothing in the cluster was touched
    assert target.down() == []  # idempotent
    # a local stack's descriptor in the same folder is not the kind target's to forget or overwrite
    StackDescriptor("local", "http://g", "http://p", "http://c", "/t").write(kind.state)
    with pytest.raises(RuntimeFailure, match="describes a local stack"):
        target.down()
    with pytest.raises(RuntimeFailure, match="describes a local stack"):
        target.up(UpOptions())
    assert json.loads((kind.state / "stack.json").read_text())["target"] == "local"


# ---- status ---------------------------------------------------------------------------------------------


def test_status_lists_every_pod_of_both_namespaces(kind: Kind) -> None:
    name = kind.api.pods["shop"][2]["metadata"]["name"]
    kind.api.pods["shop"][2] = _pod(
        name, SERVICE_NAMES[1], "shop", ready=False, waiting="CrashLoopBackOff", restarts=4
    )
    status = kind.target().status()
    assert status.running and status.target == "kind" and CONTEXT in status.message
    pods = kind.api.pods["shop"] + kind.api.pods["shop-observability"]
    assert len(status.processes) == len(pods)
    by_key = {(p.service, p.replica): p for p in status.processes}
    n = kind.ports.offset
    gateway = by_key[("gateway", 0)]
    assert (gateway.pid, gateway.port, gateway.state) == (None, 8080, "Running")
    assert gateway.url == f"http://127.0.0.1:{8080 + n}"
    assert gateway.healthy and gateway.health == "ready"
    assert by_key[("prometheus", 0)].url == f"http://127.0.0.1:{9090 + n}"
    assert by_key[("grafana", 0)].url == f"http://127.0.0.1:{3000 + n}"
    assert by_key[("jaeger", 0)].url == f"http://127.0.0.1:{16686 + n}"
    assert by_key[("faultd", 0)].url == f"http://127.0.0.1:{18000 + n}"
    assert by_key[("postgres", 0)].port == 5432 and by_key[("postgres", 0)].url is None
    broken = next(p for p in status.processes if p.restarts == 4)
    assert (broken.service, broken.healthy, broken.health) == (SERVICE_NAMES[1], False, "CrashLoopBackOff")
    job = next(p for p in status.processes if p.service == "load-generator")
    assert (job.state, job.replica, job.healthy, job.health) == ("Succeeded", None, True, "completed")
    assert {p.replica for p in status.processes if p.service == "catalog"} == {0, 1}
    assert not status.healthy  # one pod is not ready


def test_status_without_a_deployment(kind: Kind) -> None:
    kind.api.pods.clear()
    status = kind.target().status()
    assert not status.running and "make images deploy" in status.message


# ---- process faults ---------------------------------------------------------------------------------------


def test_kill_deletes_the_right_pod_at_once_and_restart_gracefully(kind: Kind) -> None:
    target = kind.target()
    result = target.kill("catalog", 1)
    assert kind.api.deleted == [{"namespace": "shop", "name": "catalog-7d4b9c-zzq1x", "grace_period_s": 0}]
    assert result["replicas"][0]["pod"] == "catalog-7d4b9c-zzq1x" and result["kind"] == "kill"
    target.restart("payment", 0)
    assert kind.api.deleted[1]["name"] == "payment-7d4b9c-aab2c"
    assert kind.api.deleted[1]["grace_period_s"] is None  # the pod's own terminationGracePeriodSeconds
    assert {m for m, _ in kind.api.requests} == {"GET", "DELETE"}
    with pytest.raises(RuntimeFailure, match=r"catalog has no replica 1 on kind \(replicas: 0"):
        target.kill("catalog", 1)  # one catalog pod is left in the fake (no Deployment replaces it here)
    with pytest.raises(RuntimeFailure, match="unknown service 'catalgo'"):
        target.kill("catalgo", 0)
    with pytest.raises(RuntimeFailure) as pause:
        target.pause("catalog", 0, 10)
    assert "SIGSTOP" in pause.value.message and "Chaos Mesh" in pause.value.hint
    assert len(kind.api.deleted) == 2


# ---- the CLI ----------------------------------------------------------------------------------------------


def _testbed(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "testbed.cli", *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.slow  # the real CLI in subprocesses, several times
def test_cli_target_kind(kind: Kind) -> None:
    env = {**os.environ, "TESTBED_STATE_DIR": str(kind.state)}
    refused = _testbed("up", "--target", "kind", "--replicas", "catalog=2", env=env)
    assert refused.returncode == 2 and "deploy/components/high-availability" in refused.stderr
    unknown = _testbed("status", "--target", "nomad", env=env)
    assert unknown.returncode == 2 and "unknown target 'nomad'" in unknown.stderr
    status = _testbed("status", "--target", "kind", "--json", env=env)
    assert status.returncode == 0, status.stderr
    listed = json.loads(status.stdout)
    assert listed["target"] == "kind" and listed["healthy"]
    assert len(listed["processes"]) == len(kind.api.pods["shop"]) + len(kind.api.pods["shop-observability"])
    kind.target().up(UpOptions())
    down = _testbed("down", "--target", "kind", env=env)
    assert down.returncode == 0 and "make cluster-down" in down.stderr
    assert not (kind.state / "stack.json").exists() and kind.api.deleted == []
