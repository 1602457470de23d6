"""The notifications function on kind (deploy/base/notifications, issue 18 item 4): a Deployment of the
function that scales with orders' outbox backlog, its mail server, and the NetworkPolicies around them.

Static checks only: no Kubernetes API server runs on this machine (no Docker, no kind), so nothing here
applies a manifest or watches an HPA act. The manifests are rendered with the real `kubectl kustomize`
(deploy_support) and held against the code they must agree with: the variables the function really reads
(sample_shop.notifications.config, called on the rendered environment), the gauge orders really exports
(topology.NOTIFICATION_BACKLOG, rendered by a real prometheus_client registry), the local function runner's
scaling rule (testbed/runtime/functions.py), and the flows the function needs - to orders and to the mail
server, and nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import REPO, deploy_tree, kind_objects, kustomize
from k8s_walk import container_port, env_map, find, of_kind, pod_labels, pod_spec, selects, workloads

from sample_shop import topology
from sample_shop.kit.config import ConfigError
from sample_shop.notifications.config import load_notifier_config
from sample_shop.orders.outbox import STATES
from testbed.runtime.functions import EVENTS_PER_INSTANCE, RunnerSettings

NAME_LABEL = "app.kubernetes.io/name"
# Variables the manifest sets that the function does not read itself, each for a stated reason.
K8S_ONLY_ENV = {
    "POD_NAME": "downward API, feeds OTEL_RESOURCE_ATTRIBUTES",
    "POD_NAMESPACE": "downward API, feeds OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_RESOURCE_ATTRIBUTES": "read by the OpenTelemetry SDK: k8s.pod.name on every span",
}
POD_NAME = "notifications-6b9f4-q8w2e"


def deployment() -> dict[str, Any]:
    return find(kind_objects(), "Deployment", topology.NOTIFICATIONS_FUNCTION, "shop")


def container() -> dict[str, Any]:
    (only,) = pod_spec(deployment())["containers"]
    return only


def base_objects() -> list[dict[str, Any]]:
    """deploy/base alone: the shop without the observability component."""
    return kustomize(deploy_tree()[0] / "base")


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every name asked for: what the function really reads."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return self.values.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return key in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def rendered_env(token_file: Path) -> dict[str, str]:
    """The container's environment as the kubelet would build it (downward API for this pod name; the
    token file's path moved to a real file here)."""
    env: dict[str, str] = {}
    for name, entry in env_map(container()).items():
        if "value" in entry:
            env[name] = entry["value"]
        else:
            path = entry["valueFrom"]["fieldRef"]["fieldPath"]
            env[name] = {"metadata.name": POD_NAME, "metadata.namespace": "shop"}[path]
    env["SHOP_ADMIN_TOKEN_FILE"] = str(token_file)
    return env


def mounts() -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container()["volumeMounts"]}


def volume(name: str) -> dict[str, Any]:
    return next(v for v in pod_spec(deployment())["volumes"] if v["name"] == name)


def mount_of(path: Path) -> dict[str, Any]:
    """The volume mount a path lives on (the deepest mount path that contains it)."""
    best = max((m for m in mounts() if path == Path(m) or Path(m) in path.parents), key=len)
    return mounts()[best]


# --------------------------------------------------------------------------------------------------
# The Deployment and its environment
# --------------------------------------------------------------------------------------------------


def test_the_function_runs_as_a_long_lived_deployment_owned_by_its_autoscaler() -> None:
    spec = deployment()["spec"]
    assert "replicas" not in spec, "the HPA owns the replica count; an applied `replicas` would reset it"
    assert pod_labels(deployment())[NAME_LABEL] == topology.NOTIFICATIONS_FUNCTION
    assert pod_labels(deployment())["app.kubernetes.io/component"] == "function"  # not a shop-service
    assert container()["command"] == ["python", "-m", "sample_shop.notifications"]
    assert not container().get("ports"), "the function serves nothing: it only calls out"
    assert pod_spec(deployment())["automountServiceAccountToken"] is False
    shop_images = {c["image"] for w in workloads(kind_objects()) for c in pod_spec(w)["containers"]}
    assert container()["image"] in shop_images and container()["image"].startswith("chaos-shop:")


def test_the_environment_is_what_the_function_reads(tmp_path: Path) -> None:
    token = tmp_path / "admin-token"
    token.write_text("service-token\n")
    env = RecordingEnv(rendered_env(token))
    config = load_notifier_config(env)
    unread = set(env.values) - env.asked - set(K8S_ONLY_ENV)
    assert not unread, f"the manifest sets variables the function never reads: {sorted(unread)}"
    # ... and what it reads from them is the cluster's
    orders = find(kind_objects(), "Service", "orders", "shop")
    assert config.orders_urls == (f"http://orders:{orders['spec']['ports'][0]['port']}",)
    assert config.service_token == "service-token"
    mail = find(kind_objects(), "Service", "mailserver", "shop")
    assert (config.smtp_host, config.smtp_port) == ("mailserver", mail["spec"]["ports"][0]["port"])
    assert config.smtp_port == topology.SMTP_PORT
    assert config.idle_exit_s == 0, "a pod that exits when idle is only restarted by its Deployment"
    assert config.consumer == POD_NAME, "every pod is instance 0 with pid 1: the outbox knows it by name"
    assert config.telemetry and config.log_level == "info"


def test_the_service_token_comes_from_the_shops_secret() -> None:
    path = Path(env_map(container())["SHOP_ADMIN_TOKEN_FILE"]["value"])
    mount = mount_of(path)
    assert mount.get("readOnly") is True
    secret = volume(mount["name"])["secret"]
    assert secret["secretName"].startswith("shop-admin-token")  # with the generator's hash suffix
    assert [item["path"] for item in secret["items"]] == [str(path.relative_to(mount["mountPath"]))]
    orders = pod_spec(find(kind_objects(), "Deployment", "orders", "shop"))["volumes"]
    assert any(v.get("secret", {}).get("secretName") == secret["secretName"] for v in orders), (
        "orders must check the same token the function sends"
    )


def test_every_pod_shares_one_table_of_sent_ids(tmp_path: Path) -> None:
    """Exactly one e-mail per event, also when a pod dies between sending and acknowledging, needs every
    instance to see the same sent ids: data/notifications.db on one claim all the pods mount."""
    token = tmp_path / "token"
    token.write_text("t")
    config = load_notifier_config(rendered_env(token))
    mount = mount_of(config.dedup_db)
    assert not mount.get("readOnly")
    claim_name = volume(mount["name"])["persistentVolumeClaim"]["claimName"]
    claim = find(kind_objects(), "PersistentVolumeClaim", claim_name, "shop")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]  # one node: kind's local-path volumes
    # the rest of the state folder (heartbeat, trace files) is the pod's own, bounded
    assert config.heartbeat_file is not None
    state = mount_of(config.heartbeat_file)
    assert state["mountPath"] == str(config.state_dir) and "emptyDir" in volume(state["name"])


def test_the_probes_check_the_heartbeat_the_loop_writes(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    config = load_notifier_config(rendered_env(token))
    ages = {}
    for probe in ("readinessProbe", "livenessProbe"):
        command = container()[probe]["exec"]["command"]
        assert command[:3] == ["python", "-m", "sample_shop.notifications.heartbeat"], probe
        assert command[3] == str(config.heartbeat_file), f"{probe} checks another file than the loop touches"
        ages[probe] = float(command[4])
    # longer than one turn of the loop can take: a claim (5 s per orders call) + a delivery + an ack
    assert ages["readinessProbe"] >= 2 * 5.0 + config.smtp_timeout_s
    assert ages["livenessProbe"] > ages["readinessProbe"]
    grace = pod_spec(deployment())["terminationGracePeriodSeconds"]
    assert grace > config.smtp_timeout_s, "SIGTERM finishes the event in hand: a delivery must fit"


def test_the_mail_server_listens_in_its_pod_on_the_smtp_port() -> None:
    mail = find(kind_objects(), "Deployment", "mailserver", "shop")
    (server,) = pod_spec(mail)["containers"]
    command = server["command"]
    assert command[:3] == ["python", "-m", "sample_shop.notifications.mailserver"]
    assert "--in-pod" in command and "--host=0.0.0.0" in command
    assert f"--port={topology.SMTP_PORT}" in command
    assert container_port(server, "smtp") == topology.SMTP_PORT
    maildir = Path(next(a for a in command if a.startswith("--maildir=")).split("=", 1)[1])
    mount = next(m for m in server["volumeMounts"] if Path(m["mountPath"]) in maildir.parents)
    assert not mount.get("readOnly")
    assert mail["spec"].get("replicas", 1) == 1, "one Maildir"


def test_the_observability_component_sends_the_spans_to_jaeger() -> None:
    endpoint = env_map(container())["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"]
    jaeger = find(kind_objects(), "Service", "jaeger", "shop-observability")
    port = next(p["port"] for p in jaeger["spec"]["ports"] if p["name"] == "otlp-http")
    assert endpoint == f"http://jaeger.shop-observability.svc:{port}"
    orders_env = env_map(pod_spec(find(kind_objects(), "Deployment", "orders", "shop"))["containers"][0])
    assert orders_env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == endpoint, "one trace, one backend"
    base = find(base_objects(), "Deployment", topology.NOTIFICATIONS_FUNCTION, "shop")
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env_map(pod_spec(base)["containers"][0])


# --------------------------------------------------------------------------------------------------
# The autoscaler and its metric
# --------------------------------------------------------------------------------------------------


def hpa() -> dict[str, Any]:
    return find(kind_objects(), "HorizontalPodAutoscaler", topology.NOTIFICATIONS_FUNCTION, "shop")


def test_the_autoscaler_scales_like_the_local_function_runner() -> None:
    spec = hpa()["spec"]
    assert hpa()["apiVersion"] == "autoscaling/v2"
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": topology.NOTIFICATIONS_FUNCTION,
    }
    # the runner: ceil(undelivered / EVENTS_PER_INSTANCE) instances, at least 1 while events wait, at most
    # its concurrency limit (a stock HPA cannot go to zero: the runner's scale-to-zero has no equal here)
    assert spec["minReplicas"] == 1
    assert spec["maxReplicas"] == RunnerSettings().max_instances
    (metric,) = spec["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": str(EVENTS_PER_INSTANCE)}


def test_the_metric_is_the_backlog_gauge_orders_exports() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from sample_shop.kit.metrics import build_metric

    metric = hpa()["spec"]["metrics"][0]["external"]["metric"]
    assert metric["name"] == topology.NOTIFICATION_BACKLOG.name == "shop_notification_backlog"
    # the exposition orders serves (outbox.OutboxMetrics builds the gauge from this spec)
    registry = CollectorRegistry()
    gauge = build_metric(topology.NOTIFICATION_BACKLOG, registry)
    for state in ("pending", "leased", "parked"):
        gauge.labels("orders", state).set(1)
    exposition = generate_latest(registry).decode()
    assert f'{metric["name"]}{{service="orders",state="pending"}} 1.0' in exposition
    (expression,) = metric["selector"]["matchExpressions"]
    assert expression["key"] == "state" and "state" in topology.NOTIFICATION_BACKLOG.labels
    assert expression["operator"] == "In"
    undelivered = {
        "pending",
        "leased",
    }  # docs/shop.md: `undelivered` = pending + leased; parked waits for a person
    assert set(expression["values"]) == undelivered and undelivered <= set(STATES)
    source = (REPO / "sample_shop" / "orders" / "outbox.py").read_text()
    assert "build_metric(topology.NOTIFICATION_BACKLOG" in source


def test_the_adapter_serves_that_metric_from_the_testbeds_prometheus() -> None:
    values = yaml.safe_load((REPO / "deploy" / "prometheus-adapter" / "values.yaml").read_text())
    metric = hpa()["spec"]["metrics"][0]["external"]["metric"]["name"]
    (rule,) = values["rules"]["external"]
    assert rule["seriesQuery"] == f'{metric}{{service="orders"}}'
    assert rule["name"]["as"] == metric
    assert rule["resources"] == {"namespaced": False}  # job `shop` adds no namespace label
    # one value per state, the max over orders' replicas (they count the same table); the HPA adds them up
    assert rule["metricsQuery"] == "max by (state) (<<.Series>>{<<.LabelMatchers>>})"
    assert values["rules"]["default"] is False
    prometheus = find(kind_objects(), "Service", "prometheus", "shop-observability")
    assert values["prometheus"]["url"] == "http://prometheus.shop-observability.svc"
    assert values["prometheus"]["port"] == prometheus["spec"]["ports"][0]["port"]
    makefile = (REPO / "Makefile").read_text()
    assert "-f deploy/prometheus-adapter/values.yaml" in makefile


def test_the_manifests_stay_valid_without_the_adapter() -> None:
    """Nothing rendered needs a CRD: an HPA on an External metric is core autoscaling/v2 (KEDA's
    ScaledObject would not be)."""
    core_groups = {"v1", "apps/v1", "autoscaling/v2", "networking.k8s.io/v1", "policy/v1",
                   "rbac.authorization.k8s.io/v1", "batch/v1"}  # fmt: skip
    assert {o["apiVersion"] for o in kind_objects()} <= core_groups


# --------------------------------------------------------------------------------------------------
# Network policies: notifications -> orders, notifications -> mailserver, and nothing more
# --------------------------------------------------------------------------------------------------


def _policies(objects: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    return [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if p["metadata"]["namespace"] == "shop" and selects(p["spec"]["podSelector"]["matchLabels"], labels)
    ]


def _peer(peer: dict[str, Any]) -> str:
    namespace = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
    pods = peer.get("podSelector", {}).get("matchLabels", {})
    name = pods.get(NAME_LABEL) or pods.get("k8s-app")
    assert name and set(peer) <= {"podSelector", "namespaceSelector"}, f"unexpected peer {peer}"
    return f"{namespace or 'shop'}/{name}"


def egress_flows(objects: list[dict[str, Any]], labels: dict[str, str]) -> set[tuple[str, str, int]]:
    flows = set()
    for policy in _policies(objects, labels):
        assert "Egress" in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get("egress", []):
            assert rule.get("to") and rule.get("ports"), f"{policy['metadata']['name']}: an open egress rule"
            for peer in rule["to"]:
                for port in rule["ports"]:
                    flows.add((_peer(peer), port["protocol"], int(port["port"])))
    return flows


def ingress_rules(objects: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    policies = _policies(objects, labels)
    assert any("Ingress" in p["spec"]["policyTypes"] for p in policies), "ingress is not restricted"
    return [rule for p in policies for rule in p["spec"].get("ingress", [])]


NOTIFY = {NAME_LABEL: topology.NOTIFICATIONS_FUNCTION}
MAIL = {NAME_LABEL: "mailserver"}
DNS = {("kube-system/kube-dns", "UDP", 53), ("kube-system/kube-dns", "TCP", 53)}
ORDERS_PORT = topology.SERVICES["orders"].port


@pytest.mark.parametrize("where", ["base", "kind"])
def test_the_function_reaches_orders_and_the_mail_server_and_nothing_more(where: str) -> None:
    objects = base_objects() if where == "base" else kind_objects()
    labels = pod_labels(find(objects, "Deployment", topology.NOTIFICATIONS_FUNCTION, "shop"))
    expected = {("shop/orders", "TCP", ORDERS_PORT), ("shop/mailserver", "TCP", topology.SMTP_PORT)} | DNS
    if where == "kind":  # the observability component adds the spans' way to Jaeger, nothing else
        expected.add(("shop-observability/jaeger", "TCP", 4318))
    assert egress_flows(objects, labels) == expected
    assert ingress_rules(objects, labels) == [], "nothing connects to the function"


def test_the_flows_are_admitted_at_the_other_end() -> None:
    objects = kind_objects()
    notify = pod_labels(deployment())
    orders = pod_labels(find(objects, "Deployment", "orders", "shop"))
    admitted = [
        r
        for r in ingress_rules(objects, orders)
        if ORDERS_PORT in {int(p["port"]) for p in r.get("ports", [])}
        and (not r.get("from") or any(selects(f["podSelector"]["matchLabels"], notify) for f in r["from"]))
    ]
    assert admitted, "orders' policy does not admit the function to its application port"
    mail = pod_labels(find(objects, "Deployment", "mailserver", "shop"))
    (rule,) = ingress_rules(objects, mail)
    assert {int(p["port"]) for p in rule["ports"]} == {topology.SMTP_PORT}
    (source,) = rule["from"]
    senders = [
        w["metadata"]["name"]
        for w in workloads(objects)
        if w["metadata"]["namespace"] == "shop"
        and selects(source["podSelector"]["matchLabels"], pod_labels(w))
    ]
    assert senders == [topology.NOTIFICATIONS_FUNCTION], f"the mail server admits {senders}"
    assert egress_flows(objects, MAIL) == set(), "the mail server calls nobody"
    # the peers named in the function's egress exist (kube-dns is the cluster's own)
    for peer, _, port in egress_flows(objects, NOTIFY) - DNS:
        namespace, name = peer.split("/")
        target = find(objects, "Deployment", name, namespace)
        ports = {p["containerPort"] for c in pod_spec(target)["containers"] for p in c.get("ports", [])}
        assert port in ports, f"{peer} does not listen on {port}"


def test_a_broken_environment_is_refused_by_the_function(tmp_path: Path) -> None:
    """The rendered environment is checked by the real loader: a typo in a value fails it, by name."""
    token = tmp_path / "token"
    token.write_text("t")
    env = rendered_env(token)
    env["SHOP_SMTP_PORT"] = "smtp"
    with pytest.raises(ConfigError, match="SHOP_SMTP_PORT"):
        load_notifier_config(env)
