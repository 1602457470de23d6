"""The observability stack on kind matches what the code exports: Prometheus scrapes the same jobs with
the same labels as the local stack's generated configuration (testbed/runtime/prometheus.py), selects
exactly the pods that serve those metrics, loads the generated SLO rules, and passes `promtool check
config`; Grafana is provisioned with the datasources of topology.DATASOURCE_UIDS and every dashboard of
dashboards/; Promtail pushes to the Loki Service; Prometheus sends its alerts to the Alertmanager Service,
whose config passes `amtool check-config` and routes the SLO rules' pages to the alert webhook, the
testbed's own receiver (testbed/runtime/alertsink.py, unchanged) that only Alertmanager may reach."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import REPO, all_objects, kind_objects, require_tool
from k8s_walk import container_port, containers, find, of_kind, pod_labels, pod_spec, selects, workloads

from sample_shop.basics import prom_duration
from sample_shop.topology import (
    DATASOURCE_UIDS,
    LOAD_METRICS_PORT,
    RULE_EVALUATION_INTERVAL_S,
    SCRAPE_INTERVAL_S,
    SERVICES,
)
from slo.promql import ALERT_NAME
from testbed.runtime import alertsink
from testbed.runtime.prometheus import RULE_FILE_GLOB, ScrapeTarget, prometheus_config

OBS = "shop-observability"


def configmap_file(objects: list[dict[str, Any]], prefix: str, key: str) -> str:
    """A file of a generated ConfigMap (name prefix, the hash suffix left out)."""
    for cm in of_kind(objects, "ConfigMap"):
        if cm["metadata"]["name"].startswith(prefix + "-") and key in cm.get("data", {}):
            return cm["data"][key]
    raise AssertionError(f"no ConfigMap {prefix}-* with key {key}")


def configmap(objects: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    matches = [
        cm
        for cm in of_kind(objects, "ConfigMap")
        if re.fullmatch(re.escape(prefix) + r"-[a-z0-9]{10}", cm["metadata"]["name"])
    ]
    assert len(matches) == 1, (
        f"expected one ConfigMap {prefix}-<hash>, got {[m['metadata']['name'] for m in matches]}"
    )
    return matches[0]


@pytest.fixture(scope="module")
def prometheus_yml() -> dict[str, Any]:
    return yaml.safe_load(configmap_file(kind_objects(), "prometheus-config", "prometheus.yml"))


def local_config() -> dict[str, Any]:
    return prometheus_config(
        [ScrapeTarget(name, 0, spec.port) for name, spec in SERVICES.items()],
        LOAD_METRICS_PORT,
        18000,
        Path("/rules"),
    )


def target_labels(job: dict[str, Any]) -> set[str]:
    """Labels a job puts on its targets: static labels locally, relabel target_labels on kind."""
    labels = {k for sc in job.get("static_configs", []) for k in sc.get("labels", {})}
    labels |= {
        r["target_label"]
        for r in job.get("relabel_configs", [])
        if r.get("action", "replace") == "replace" and not r["target_label"].startswith("__")
    }
    return labels


def test_same_jobs_intervals_and_labels_as_the_local_stack(prometheus_yml: dict[str, Any]) -> None:
    local = local_config()
    assert prometheus_yml["global"] == local["global"]
    assert prometheus_yml["global"]["scrape_interval"] == prom_duration(SCRAPE_INTERVAL_S)
    assert prometheus_yml["global"]["evaluation_interval"] == prom_duration(RULE_EVALUATION_INTERVAL_S)
    kind_jobs = {j["job_name"]: j for j in prometheus_yml["scrape_configs"]}
    local_jobs = {j["job_name"]: j for j in local["scrape_configs"]}
    assert set(kind_jobs) == set(local_jobs)
    for name, local_job in local_jobs.items():
        assert kind_jobs[name].get("honor_labels", False) == local_job.get("honor_labels", False), name
        assert target_labels(kind_jobs[name]) == target_labels(local_job), name
    assert all(
        f.endswith("/" + RULE_FILE_GLOB) or f.endswith("/*.yaml") for f in prometheus_yml["rule_files"]
    )


def _kept(job: dict[str, Any], labels: dict[str, str], port_name: str) -> bool:
    """Apply the job's keep rule to a pod's labels and container port name (the kubernetes_sd meta labels)."""
    meta = {
        f"__meta_kubernetes_pod_label_{k.replace('.', '_').replace('/', '_').replace('-', '_')}": v
        for k, v in labels.items()
    }
    meta["__meta_kubernetes_pod_container_port_name"] = port_name
    for rule in job["relabel_configs"]:
        if rule.get("action") == "keep":
            value = rule.get("separator", ";").join(meta.get(s, "") for s in rule["source_labels"])
            if not re.fullmatch(rule["regex"], value):
                return False
    return True


def test_each_job_selects_exactly_its_pods(prometheus_yml: dict[str, Any]) -> None:
    selected: dict[str, set[tuple[str, int]]] = {}
    for job in prometheus_yml["scrape_configs"]:
        (sd,) = job["kubernetes_sd_configs"]
        assert sd["role"] == "pod" and sd["namespaces"]["names"] == ["shop"], job["job_name"]
        selected[job["job_name"]] = {
            (w["metadata"]["name"], int(p["containerPort"]))
            for w in workloads(all_objects())
            if w["metadata"]["namespace"] == "shop"
            for c in containers(w)
            for p in c.get("ports", [])
            if _kept(job, pod_labels(w), p.get("name", ""))
        }
    assert selected["shop"] == {(name, spec.port) for name, spec in SERVICES.items()}
    assert selected["load"] == {("load-generator", LOAD_METRICS_PORT)}
    assert selected["testbed"] == {("faultd", 18000)}


def test_prometheus_can_discover_and_read_what_it_mounts() -> None:
    prometheus = find(kind_objects(), "Deployment", "prometheus", OBS)
    args = pod_spec(prometheus)["containers"][0]["args"]
    assert "--enable-feature=exemplar-storage" in args, "exemplars link latency panels to traces"
    binding = find(kind_objects(), "RoleBinding", "prometheus-discovery", "shop")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prometheus", "namespace": OBS}]
    mounts = {m["mountPath"] for m in pod_spec(prometheus)["containers"][0]["volumeMounts"]}
    assert {"/etc/prometheus/rules", "/etc/prometheus/secrets"} <= mounts


def test_promtool_accepts_the_rendered_config_and_rules(
    prometheus_yml: dict[str, Any], tmp_path: Path
) -> None:
    """`promtool check config` on the rendered prometheus.yml with the rendered rules and token.

    The Debian build of promtool here has no Kubernetes service discovery compiled in, so each
    kubernetes_sd_configs is swapped for an equivalent static target before the check; the SD blocks
    themselves are checked by test_each_job_selects_exactly_its_pods."""
    promtool = require_tool("promtool")
    rules = configmap(kind_objects(), "prometheus-slo-rules")["data"]
    assert rules, "no SLO rules in the ConfigMap"
    (tmp_path / "rules").mkdir()
    for name, text in rules.items():
        (tmp_path / "rules" / name).write_text(text)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "admin-token").write_text("token\n")
    config = json.loads(json.dumps(prometheus_yml).replace("/etc/prometheus/", f"{tmp_path}/"))
    for job in config["scrape_configs"]:
        job.pop("kubernetes_sd_configs")
        job["static_configs"] = [{"targets": ["127.0.0.1:1"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "SUCCESS" in output and re.search(r"\b[1-9]\d* rules found", output), output


def test_grafana_datasources_have_the_fixed_uids_and_cluster_urls() -> None:
    files = configmap(kind_objects(), "grafana-datasources")["data"]
    provisioned = [ds for text in files.values() for ds in yaml.safe_load(text)["datasources"]]
    assert {ds["uid"]: ds["type"] for ds in provisioned} == {
        uid: kind for kind, uid in DATASOURCE_UIDS.items()
    }
    for ds in provisioned:
        match = re.fullmatch(r"http://([a-z-]+)\.([a-z-]+)\.svc:(\d+)", ds["url"])
        assert match, f"{ds['uid']}: {ds['url']} is not an in-cluster Service URL"
        service = find(kind_objects(), "Service", match.group(1), match.group(2))
        assert int(match.group(3)) in {p["port"] for p in service["spec"]["ports"]}, ds["url"]


def test_grafana_mounts_dashboards_where_the_provider_reads() -> None:
    grafana = find(kind_objects(), "Deployment", "grafana", OBS)
    spec = pod_spec(grafana)
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in spec["containers"][0]["volumeMounts"]}
    providers = configmap(kind_objects(), "grafana-dashboard-providers")["data"]
    for text in providers.values():
        for provider in yaml.safe_load(text)["providers"]:
            path = provider["options"]["path"]
            assert path in mounts, f"provider {provider['name']} reads {path}, which is not mounted"
            assert (
                mounts[path]["configMap"]["name"]
                == configmap(kind_objects(), "grafana-dashboards")["metadata"]["name"]
            )
    home = next(
        e["value"]
        for e in spec["containers"][0]["env"]
        if e["name"] == "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    )
    folder, _, file_name = home.rpartition("/")
    assert (
        mounts[folder]["configMap"]["name"]
        == configmap(kind_objects(), "grafana-dashboards")["metadata"]["name"]
    )
    assert file_name in configmap(kind_objects(), "grafana-dashboards")["data"], (
        f"home dashboard {home} is not provisioned"
    )
    provisioning = {
        "/etc/grafana/provisioning/datasources": "grafana-datasources",
        "/etc/grafana/provisioning/dashboards": "grafana-dashboard-providers",
    }
    for path, prefix in provisioning.items():
        assert mounts[path]["configMap"]["name"] == configmap(kind_objects(), prefix)["metadata"]["name"]


def test_every_dashboard_is_provisioned_unchanged() -> None:
    provisioned = configmap(kind_objects(), "grafana-dashboards")["data"]
    on_disk = {p.name: p.read_text() for p in sorted((REPO / "dashboards").glob("*.json"))}
    assert on_disk, "dashboards/ has no JSON"
    assert provisioned == on_disk
    assert sum(len(t.encode()) for t in provisioned.values()) < 900 * 1024, "ConfigMaps are limited to 1 MiB"


def _datasource_uids(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = set()
        ds = node.get("datasource")
        # `$var` is a template variable; "-- Grafana --", "-- Mixed --", ... are Grafana's built-ins.
        if isinstance(ds, dict) and isinstance(ds.get("uid"), str) and not ds["uid"].startswith(("$", "-- ")):
            found.add(ds["uid"])
        for value in node.values():
            found |= _datasource_uids(value)
        return found
    if isinstance(node, list):
        return set().union(*map(_datasource_uids, node)) if node else set()
    return set()


def test_dashboards_use_only_provisioned_datasources() -> None:
    provisioned = {
        ds["uid"]
        for text in configmap(kind_objects(), "grafana-datasources")["data"].values()
        for ds in yaml.safe_load(text)["datasources"]
    }
    dashboards = configmap(kind_objects(), "grafana-dashboards")["data"]
    for name, text in dashboards.items():
        used = _datasource_uids(json.loads(text))
        assert used <= provisioned, (
            f"{name} uses datasources {sorted(used - provisioned)} that are not provisioned"
        )


def test_promtail_ships_shop_logs_to_the_loki_service() -> None:
    promtail = yaml.safe_load(configmap_file(kind_objects(), "promtail-config", "promtail.yaml"))
    (client,) = promtail["clients"]
    match = re.fullmatch(r"http://([a-z-]+)\.([a-z-]+)\.svc:(\d+)/loki/api/v1/push", client["url"])
    assert match, client["url"]
    loki = find(kind_objects(), "Service", match.group(1), match.group(2))
    assert int(match.group(3)) in {p["port"] for p in loki["spec"]["ports"]}
    (job,) = promtail["scrape_configs"]
    assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["shop"]
    loki_config = yaml.safe_load(configmap_file(kind_objects(), "loki-config", "loki.yaml"))
    assert loki_config["server"]["http_listen_port"] == int(match.group(3))
    assert loki_config["limits_config"]["allow_structured_metadata"] is True, (
        "promtail sends trace_id as metadata"
    )


# ---- alerting: Prometheus -> Alertmanager -> the alert webhook ------------------------------------------


def _service_backend(url_host: str, port: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Deployment, container) behind `<service>.<namespace>.svc:<port>`, through the Service's selector
    and target port (a port name resolved in the container)."""
    match = re.fullmatch(r"([a-z-]+)\.([a-z-]+)\.svc", url_host)
    assert match, f"{url_host} is not an in-cluster Service name"
    service = find(kind_objects(), "Service", match.group(1), match.group(2))
    (service_port,) = [p for p in service["spec"]["ports"] if p["port"] == port]
    backends = [
        w
        for w in of_kind(kind_objects(), "Deployment")
        if w["metadata"]["namespace"] == match.group(2)
        and selects(service["spec"]["selector"], pod_labels(w))
    ]
    assert len(backends) == 1, f"Service {url_host} selects {[b['metadata']['name'] for b in backends]}"
    (container,) = [
        c for c in containers(backends[0]) if service_port["targetPort"] in {p["name"] for p in c["ports"]}
    ]
    return backends[0], container


def _alertmanager_yml() -> dict[str, Any]:
    return yaml.safe_load(configmap_file(kind_objects(), "alertmanager-config", "alertmanager.yml"))


def test_prometheus_sends_its_alerts_to_the_alertmanager_service(prometheus_yml: dict[str, Any]) -> None:
    (alertmanagers,) = prometheus_yml["alerting"]["alertmanagers"]
    (static,) = alertmanagers["static_configs"]
    (target,) = static["targets"]
    host, _, port = target.rpartition(":")
    deployment, container = _service_backend(host, int(port))
    assert deployment["metadata"]["name"] == "alertmanager"
    listen = next(a for a in container["args"] if a.startswith("--web.listen-address="))
    assert listen.endswith(f":{container_port(container, 'http')}"), listen
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    config_arg = next(a for a in container["args"] if a.startswith("--config.file="))
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == config_arg.split("=", 1)[1]]
    config_map = configmap(kind_objects(), "alertmanager-config")
    assert volumes[mount["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
    assert mount["subPath"] in config_map["data"]


def test_alertmanager_config_is_valid_and_routes_pages_to_the_webhook(tmp_path: Path) -> None:
    """amtool (Debian's prometheus-alertmanager) checks the rendered config and routes the labels the
    generated SLO rules put on their alerts: pages to the webhook, tickets to the receiver that delivers
    nothing."""
    amtool = require_tool("amtool")
    config = tmp_path / "alertmanager.yml"
    config.write_text(configmap_file(kind_objects(), "alertmanager-config", "alertmanager.yml"))
    checked = subprocess.run(
        [amtool, "check-config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr
    rules = configmap(kind_objects(), "prometheus-slo-rules")["data"]
    alerts = [
        rule
        for text in rules.values()
        for group in yaml.safe_load(text)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    severities = {(a["alert"], a["labels"]["severity"]) for a in alerts}
    assert severities == {(ALERT_NAME, "page"), (ALERT_NAME, "ticket")}, severities
    receivers = {r["name"]: r for r in _alertmanager_yml()["receivers"]}
    one_of_each = {a["labels"]["severity"]: a for a in alerts}.values()
    for alert in one_of_each:
        labels = [f"{k}={v}" for k, v in {"alertname": alert["alert"], **alert["labels"]}.items()]
        routed = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert routed.returncode == 0, routed.stdout + routed.stderr
        (receiver,) = routed.stdout.split()
        if alert["labels"]["severity"] == "page":
            assert receivers[receiver].get("webhook_configs"), f"{labels}: routed to {receiver}"
        else:
            assert not receivers[receiver].get("webhook_configs"), f"a ticket is delivered by {receiver}"


def test_the_webhook_is_the_testbeds_receiver_listening_where_alertmanager_sends() -> None:
    page_receivers = [r for r in _alertmanager_yml()["receivers"] if r.get("webhook_configs")]
    (webhook,) = [w for r in page_receivers for w in r["webhook_configs"]]
    url = re.fullmatch(r"http://([a-z.-]+):(\d+)(/[a-z]+)", webhook["url"])
    assert url and url.group(3) == alertsink.WEBHOOK_PATH, webhook["url"]
    deployment, container = _service_backend(url.group(1), int(url.group(2)))
    command = container["command"]
    assert f"--port={container_port(container, 'http')}" in command and "--host=0.0.0.0" in command
    assert container["image"].startswith("chaos-shop:"), "runs from the shop image (it imports sample_shop)"
    # the receiver is the local stack's, unchanged, from the ConfigMap assemble generates
    script = Path(command[1])
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(script.parent)]
    receiver = configmap(kind_objects(), "alert-webhook-receiver")
    assert volumes[mount["name"]]["configMap"]["name"] == receiver["metadata"]["name"]
    source = REPO / "testbed" / "runtime" / "alertsink.py"
    assert receiver["data"][script.name] == source.read_text()
    # what it imports, the image has: the standard library and sample_shop
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module.split(".")[0]
            assert top in sys.stdlib_module_names | {"__future__", "sample_shop"}, node.module
        elif isinstance(node, ast.Import):
            assert all(a.name.split(".")[0] in sys.stdlib_module_names for a in node.names)
    # only Alertmanager may deliver to it
    (policy,) = [
        p
        for p in of_kind(kind_objects(), "NetworkPolicy")
        if selects(p["spec"]["podSelector"]["matchLabels"], pod_labels(deployment))
    ]
    (ingress,) = policy["spec"]["ingress"]
    (peer,) = ingress["from"]
    alertmanager = find(kind_objects(), "Deployment", "alertmanager", OBS)
    assert selects(peer["podSelector"]["matchLabels"], pod_labels(alertmanager))
    assert [p["port"] for p in ingress["ports"]] == [container_port(container, "http")]
