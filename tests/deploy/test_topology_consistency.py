"""The manifests say what sample_shop/topology.py and docs/architecture.md say: one Deployment and
Service per service with its ports, its upstreams, its database; only environment variables of the
documented env contract; host ports and NodePorts that agree with kind-config.yaml."""

from __future__ import annotations

import base64
import re
from typing import Any

import yaml
from deploy_support import REPO, kind_objects
from k8s_walk import container_port, env_map, find, of_kind, pod_spec, shop_deployments

from sample_shop.kit.config import load_service_config
from sample_shop.topology import (
    ADMIN_PORT_OFFSET,
    CONTROL_PORT,
    GRAFANA_PORT,
    JAEGER_OTLP_HTTP_PORT,
    JAEGER_UI_PORT,
    LOKI_PORT,
    PROMETHEUS_PORT,
    SERVICES,
)

# Variables the kind manifests set beyond the env contract table, each for a stated reason.
K8S_ONLY_ENV = {
    "POD_NAME": "downward API, feeds OTEL_RESOURCE_ATTRIBUTES",
    "POD_NAMESPACE": "downward API, feeds OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_RESOURCE_ATTRIBUTES": "standard OpenTelemetry SDK variable: k8s.pod.name on every span",
    "DB_PASSWORD": "from Secret shop-db, spliced into DATABASE_URL",
}


def documented_env() -> set[str]:
    """Names in the env contract table of docs/architecture.md (`SHOP_UPSTREAM_<NAME>` is a pattern)."""
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text.split("## How a service is started", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_<>*]+)`", line.split("|")[1]))
    return names


def is_documented(name: str, documented: set[str]) -> bool:
    for pattern in documented:
        regex = (
            re.escape(pattern).replace(re.escape("<NAME>"), "[A-Z]+").replace(re.escape("*"), "[A-Z0-9_]+")
        )
        if re.fullmatch(regex, name):
            return True
    return False


def test_env_contract_table_is_found() -> None:
    documented = documented_env()
    assert {"SHOP_HOST", "SHOP_PORT", "DATABASE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"} <= documented, documented


def test_one_deployment_and_service_per_topology_service() -> None:
    deployments = shop_deployments(kind_objects())
    assert set(deployments) == set(SERVICES)
    for name, spec in SERVICES.items():
        container = pod_spec(deployments[name])["containers"][0]
        assert container["command"] == ["python", "-m", f"sample_shop.{name}"], name
        assert container_port(container, "http") == spec.port, name
        assert container_port(container, "admin") == spec.port + ADMIN_PORT_OFFSET, name
        env = env_map(container)
        assert env["SHOP_PORT"]["value"] == str(spec.port)
        assert env["SHOP_ADMIN_PORT"]["value"] == str(spec.port + ADMIN_PORT_OFFSET)
        assert env["SHOP_HOST"]["value"] == "0.0.0.0"
        assert env["SHOP_ADMIN_TOKEN_FILE"]["value"].startswith("/var/run/secrets/shop/")
        service = find(kind_objects(), "Service", name, "shop")
        assert [p["port"] for p in service["spec"]["ports"]] == [spec.port], (
            f"{name}: Service exposes only the app port"
        )


def test_upstreams_point_at_the_dependencies_services() -> None:
    for name, deployment in shop_deployments(kind_objects()).items():
        env = env_map(pod_spec(deployment)["containers"][0])
        upstreams = {
            k.removeprefix("SHOP_UPSTREAM_").lower(): v["value"]
            for k, v in env.items()
            if k.startswith("SHOP_UPSTREAM_")
        }
        assert set(upstreams) == set(SERVICES[name].depends_on), name
        for dependency, url in upstreams.items():
            assert url == f"http://{dependency}:{SERVICES[dependency].port}", f"{name} -> {dependency}: {url}"
            find(kind_objects(), "Service", dependency, "shop")


def test_databases_only_for_services_that_own_data() -> None:
    postgres = find(kind_objects(), "StatefulSet", "postgres", "shop")
    pg_env = env_map(pod_spec(postgres)["containers"][0])
    owners = [s.name for s in SERVICES.values() if s.owns_database]
    assert pg_env["SHOP_DATABASES"]["value"].split() == owners
    service_port = find(kind_objects(), "Service", "postgres", "shop")["spec"]["ports"][0]["port"]
    for name, deployment in shop_deployments(kind_objects()).items():
        env = env_map(pod_spec(deployment)["containers"][0])
        if SERVICES[name].owns_database:
            assert env["DATABASE_URL"]["value"] == (
                f"postgresql+psycopg://{name}:$(DB_PASSWORD)@postgres:{service_port}/{name}"
            )
            assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == name
        else:
            assert "DATABASE_URL" not in env and "DB_PASSWORD" not in env, name


def test_only_documented_environment_variables() -> None:
    documented = documented_env()
    workloads = [*shop_deployments(kind_objects()).values()]
    for deployment in workloads:
        for container in pod_spec(deployment)["containers"]:
            for env in container["env"]:
                name = env["name"]
                assert is_documented(name, documented) or name in K8S_ONLY_ENV, (
                    f"{deployment['metadata']['name']}: {name} is not in docs/architecture.md's env contract"
                )


def test_dependent_variables_are_defined_before_use() -> None:
    """Kubernetes expands $(VAR) only from variables listed earlier in the same container."""
    for deployment in of_kind(kind_objects(), "Deployment"):
        for container in pod_spec(deployment)["containers"]:
            defined: set[str] = set()
            for env in container.get("env", []):
                for used in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", env.get("value", "")):
                    assert used in defined, (
                        f"{deployment['metadata']['name']}: {env['name']} uses $({used}) too early"
                    )
                defined.add(env["name"])


def test_spans_go_to_jaeger_otlp_http() -> None:
    jaeger = find(kind_objects(), "Service", "jaeger", "shop-observability")
    otlp = next(p["port"] for p in jaeger["spec"]["ports"] if p["name"] == "otlp-http")
    assert otlp == JAEGER_OTLP_HTTP_PORT
    for name, deployment in shop_deployments(kind_objects()).items():
        env = env_map(pod_spec(deployment)["containers"][0])
        assert (
            env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == f"http://jaeger.shop-observability.svc:{otlp}"
        ), name


def test_fault_controller_serves_the_control_port() -> None:
    faultd = find(kind_objects(), "Deployment", "faultd", "shop")
    container = pod_spec(faultd)["containers"][0]
    assert container["command"] == ["python", "-m", "sample_shop.faultd"]
    assert container_port(container, "control") == CONTROL_PORT
    assert env_map(container)["FAULTD_PORT"]["value"] == str(CONTROL_PORT)
    assert pod_spec(faultd)["automountServiceAccountToken"] is True, "it lists pods through the API server"


def test_host_ports_follow_topology_and_reach_node_ports() -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    roles = [n["role"] for n in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker"]
    mappings = config["nodes"][0]["extraPortMappings"]
    assert all("extraPortMappings" not in n for n in config["nodes"][1:]), (
        "port mappings on the control plane only"
    )
    for mapping in mappings:
        assert mapping["listenAddress"] == "127.0.0.1", f"{mapping}: host ports must be loopback only"
    by_host_port = {m["hostPort"]: m["containerPort"] for m in mappings}
    expected = {  # (namespace, Service) -> topology port, which is both host port and Service port
        ("shop", "gateway"): SERVICES["gateway"].port,
        ("shop", "faultd"): CONTROL_PORT,
        ("shop-observability", "prometheus"): PROMETHEUS_PORT,
        ("shop-observability", "grafana"): GRAFANA_PORT,
        ("shop-observability", "jaeger"): JAEGER_UI_PORT,
        ("shop-observability", "loki"): LOKI_PORT,
    }
    assert set(by_host_port) == set(expected.values())
    node_ports = {}
    for service in of_kind(kind_objects(), "Service"):
        for port in service["spec"]["ports"]:
            if "nodePort" in port:
                assert service["spec"]["type"] == "NodePort"
                node_ports[(service["metadata"]["namespace"], service["metadata"]["name"])] = port
    assert set(node_ports) == set(expected), "exactly these Services are exposed on the host"
    for key, topology_port in expected.items():
        assert node_ports[key]["port"] == topology_port, key
        assert by_host_port[topology_port] == node_ports[key]["nodePort"], f"{key}: host {topology_port}"


def _pod_env(deployment: dict[str, Any], objects: list[dict[str, Any]], token_file: str) -> dict[str, str]:
    """The environment Kubernetes would give the container: values, downward API, Secrets, $(VAR)."""
    pod_meta = {**deployment["spec"]["template"]["metadata"], "name": "pod-0", "namespace": "shop"}
    container = pod_spec(deployment)["containers"][0]
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            value = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env[m.group(1)], item["value"])
        elif "fieldRef" in item["valueFrom"]:
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            label = re.fullmatch(r"metadata\.labels\['([^']+)'\]", path)
            value = pod_meta["labels"][label.group(1)] if label else pod_meta[path.removeprefix("metadata.")]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            value = base64.b64decode(
                find(objects, "Secret", ref["name"], "shop")["data"][ref["key"]]
            ).decode()
        env[item["name"]] = value
    env["SHOP_ADMIN_TOKEN_FILE"] = token_file  # the mounted Secret, see test_admin_token_file_is_mounted
    return env


def test_manifest_env_passes_the_shops_own_config_loader(tmp_path: Any) -> None:
    """Each Deployment's environment, resolved as Kubernetes would, is accepted by sample_shop.kit.config."""
    token_secret = next(
        s for s in of_kind(kind_objects(), "Secret") if s["metadata"]["name"].startswith("shop-admin-token-")
    )
    token = base64.b64decode(token_secret["data"]["token"]).decode()
    token_file = tmp_path / "admin-token"
    token_file.write_text(token)
    for name, deployment in shop_deployments(kind_objects()).items():
        config = load_service_config(name, _pod_env(deployment, kind_objects(), str(token_file)))
        assert (config.host, config.port) == ("0.0.0.0", SERVICES[name].port)
        assert (config.admin_host, config.admin_port) == ("0.0.0.0", SERVICES[name].port + ADMIN_PORT_OFFSET)
        assert config.upstreams == {d: (f"http://{d}:{SERVICES[d].port}",) for d in SERVICES[name].depends_on}
        assert config.admin_token == token
        assert config.otlp_endpoint and config.otlp_endpoint.startswith("http://jaeger.")
        if SERVICES[name].owns_database:
            assert config.database_url and config.database_url.startswith("postgresql+psycopg://")
            assert "$(" not in config.database_url
        else:
            assert config.database_url is None


def test_admin_token_file_is_mounted() -> None:
    for name, deployment in [
        *shop_deployments(kind_objects()).items(),
        ("faultd", find(kind_objects(), "Deployment", "faultd", "shop")),
    ]:
        spec = pod_spec(deployment)
        container = spec["containers"][0]
        path = env_map(container)["SHOP_ADMIN_TOKEN_FILE"]["value"]
        folder, _, file_name = path.rpartition("/")
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == folder]
        (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
        assert volume["secret"]["secretName"].startswith("shop-admin-token-"), name
        assert {"key": "token", "path": file_name} in volume["secret"]["items"], name
