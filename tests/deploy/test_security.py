"""Every rendered pod is locked down: probes, requests and limits, non-root, read-only root filesystem,
no privilege escalation, no capabilities, RuntimeDefault seccomp, pinned images; PodDisruptionBudgets
exactly where a Deployment has more than one replica; the admin (fault) ports open to the fault
controller alone."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
from deploy_support import OVERLAYS, REPO, all_objects, kind_objects, render
from k8s_walk import (
    container_port,
    containers,
    find,
    ident,
    of_kind,
    pod_labels,
    pod_spec,
    selects,
    shop_deployments,
    workloads,
)

from sample_shop.topology import ADMIN_PORT_OFFSET, SERVICES

# The one container allowed to run as root, and why: the container runtime writes /var/log/pods as
# root with mode 0640. It keeps no capability and mounts the host path read-only.
ROOT_ALLOWED = {("shop-observability", "promtail")}
HOSTPATH_ALLOWED = {("shop-observability", "promtail"): {"/var/log/pods"}}
# Jobs run to completion: no probes (a liveness restart would only repeat the load).
NO_PROBES_KINDS = {"Job"}
_VERSION_TAG = re.compile(r"^v?\d+(\.\d+){1,2}([.-][0-9A-Za-z.]+)?$")


def _key(workload: dict[str, Any]) -> tuple[str, str]:
    return workload["metadata"]["namespace"], workload["metadata"]["name"]


def test_probes_on_every_long_running_container() -> None:
    for workload in workloads(all_objects()):
        if workload["kind"] in NO_PROBES_KINDS:
            continue
        for container in pod_spec(workload)["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                assert probe in container, f"{ident(workload)} container {container['name']}: no {probe}"


def test_requests_and_limits_on_every_container() -> None:
    for workload in workloads(all_objects()):
        for container in containers(workload):
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in resources.get(section, {}), (
                        f"{ident(workload)} container {container['name']}: no {section}.{resource}"
                    )


def test_containers_are_locked_down() -> None:
    for workload in workloads(all_objects()):
        spec = pod_spec(workload)
        where = ident(workload)
        for host_feature in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(host_feature), f"{where}: {host_feature}"
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: seccomp"
        for container in containers(workload):
            sc = container.get("securityContext", {})
            name = f"{where} container {container['name']}"
            assert sc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation"
            assert sc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem"
            assert not sc.get("privileged"), f"{name}: privileged"
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: capabilities.drop"
            assert not sc.get("capabilities", {}).get("add"), f"{name}: capabilities.add"
            if _key(workload) in ROOT_ALLOWED:
                continue
            non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
            user = sc.get("runAsUser", pod_sc.get("runAsUser"))
            assert non_root is True, f"{name}: runAsNonRoot"
            assert isinstance(user, int) and user > 0, f"{name}: runAsUser must be a non-zero uid"


def test_only_allowed_host_paths() -> None:
    for workload in workloads(all_objects()):
        allowed = HOSTPATH_ALLOWED.get(_key(workload), set())
        for volume in pod_spec(workload).get("volumes", []):
            if "hostPath" in volume:
                assert volume["hostPath"]["path"] in allowed, f"{ident(workload)}: hostPath {volume}"
                mounts = [
                    m
                    for c in containers(workload)
                    for m in c.get("volumeMounts", [])
                    if m["name"] == volume["name"]
                ]
                assert all(m.get("readOnly") for m in mounts), f"{ident(workload)}: hostPath mounted writable"


def test_writable_paths_are_size_limited_empty_dirs() -> None:
    """With a read-only root filesystem state goes to emptyDirs, each bounded so a leak cannot fill a node."""
    for workload in workloads(all_objects()):
        for volume in pod_spec(workload).get("volumes", []):
            if "emptyDir" in volume:
                assert volume["emptyDir"].get("sizeLimit"), f"{ident(workload)}: emptyDir {volume['name']}"


def test_shop_state_dir_is_a_writable_volume() -> None:
    for name, deployment in shop_deployments(kind_objects()).items():
        container = pod_spec(deployment)["containers"][0]
        state_dir = next(e["value"] for e in container["env"] if e["name"] == "SHOP_STATE_DIR")
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert state_dir in mounts and not mounts[state_dir].get("readOnly"), f"{name}: SHOP_STATE_DIR"


def test_images_are_pinned() -> None:
    for workload in workloads(all_objects()):
        for container in containers(workload):
            image = container["image"]
            name, _, digest = image.partition("@")
            _repository, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "")
            where = f"{ident(workload)} container {container['name']}"
            assert tag, f"{where}: image {image} has no tag"
            assert tag != "latest" and _VERSION_TAG.match(tag), f"{where}: image {image} is not a version tag"
            assert container.get("imagePullPolicy") == "IfNotPresent", f"{where}: imagePullPolicy"
            if digest:
                assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{where}: digest {digest}"


def test_shop_image_tag_is_the_project_version() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    expected = f"chaos-shop:{version}"
    shop_images = {
        c["image"]
        for w in workloads(all_objects())
        for c in containers(w)
        if c["image"].startswith("chaos-shop")
    }
    assert shop_images == {expected}, f"shop pods must run {expected}, found {shop_images}"
    makefile = (REPO / "Makefile").read_text()
    assert f"-t {expected} -f deploy/Dockerfile" in makefile, "Makefile `images` must build the same tag"
    assert f"kind load docker-image {expected}" in makefile, "Makefile `images` must load the same tag"


def test_shop_namespace_enforces_restricted_pod_security() -> None:
    labels = find(kind_objects(), "Namespace", "shop")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_exactly_where_replicas_exceed_one(overlay: str) -> None:
    objects = render(overlay)
    budgets = of_kind(objects, "PodDisruptionBudget")
    for deployment in of_kind(objects, "Deployment"):
        ns = deployment["metadata"]["namespace"]
        covering = [
            b
            for b in budgets
            if b["metadata"]["namespace"] == ns
            and selects(b["spec"]["selector"]["matchLabels"], pod_labels(deployment))
        ]
        replicas = deployment["spec"].get("replicas", 1)
        if replicas > 1:
            assert len(covering) == 1, (
                f"{ident(deployment)}: {replicas} replicas need one PodDisruptionBudget"
            )
            assert covering[0]["spec"].get("minAvailable") == 1
        else:
            assert not covering, f"{ident(deployment)}: a budget on one replica would block node drains"


def test_every_shop_service_has_two_replicas_on_kind() -> None:
    deployments = shop_deployments(kind_objects())
    assert {n: d["spec"]["replicas"] for n, d in deployments.items()} == dict.fromkeys(SERVICES, 2)


def _policy_ports(rule: dict[str, Any]) -> set[int]:
    return {int(p["port"]) for p in rule.get("ports", [])}


def test_admin_ports_admit_only_the_fault_controller() -> None:
    policies = [p for p in of_kind(kind_objects(), "NetworkPolicy") if p["metadata"]["namespace"] == "shop"]
    deployments = shop_deployments(kind_objects())
    faultd_labels = pod_labels(find(kind_objects(), "Deployment", "faultd", "shop"))
    for name, deployment in deployments.items():
        container = pod_spec(deployment)["containers"][0]
        admin = container_port(container, "admin")
        app = container_port(container, "http")
        assert admin == SERVICES[name].port + ADMIN_PORT_OFFSET
        applying = [
            p for p in policies if selects(p["spec"]["podSelector"]["matchLabels"], pod_labels(deployment))
        ]
        assert applying, f"{name}: no NetworkPolicy selects its pods, every port would be open"
        admin_rules = [r for p in applying for r in p["spec"].get("ingress", []) if admin in _policy_ports(r)]
        assert admin_rules, (
            f"{name}: admin port {admin} not admitted at all (the controller could not reach it)"
        )
        for rule in admin_rules:
            sources = rule.get("from")
            assert sources, f"{name}: admin port {admin} open to every source"
            for source in sources:
                assert set(source) == {"podSelector"}, f"{name}: admin port source {source}"
                assert selects(source["podSelector"]["matchLabels"], faultd_labels), source
                others = [
                    w
                    for w in workloads(all_objects())
                    if w["metadata"]["namespace"] == "shop"
                    and w["metadata"]["name"] != "faultd"
                    and selects(source["podSelector"]["matchLabels"], pod_labels(w))
                ]
                assert not others, f"{name}: admin port also open to {[ident(o) for o in others]}"
        app_rules = [r for p in applying for r in p["spec"].get("ingress", []) if app in _policy_ports(r)]
        assert app_rules, f"{name}: application port {app} not admitted"


def test_database_admits_only_services_that_own_data() -> None:
    policy = find(kind_objects(), "NetworkPolicy", "postgres", "shop")
    (rule,) = policy["spec"]["ingress"]
    (source,) = rule["from"]
    clients = {
        name
        for name, d in shop_deployments(kind_objects()).items()
        if selects(source["podSelector"]["matchLabels"], pod_labels(d))
    }
    assert clients == {s.name for s in SERVICES.values() if s.owns_database}
    assert _policy_ports(rule) == {5432}


def test_no_secret_is_committed_in_manifests() -> None:
    """Secrets come only from deploy.assemble's generators, never from a file in the repository."""
    import yaml

    for path in sorted((REPO / "deploy").rglob("*.y*ml")):
        if "generated" in path.parts:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                assert doc.get("kind") != "Secret", f"{path}: a Secret is committed"
                assert "secretGenerator" not in doc or all(
                    "literals" not in g for g in doc["secretGenerator"]
                ), f"{path}: secret literals are committed"


def _cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _mebibytes(quantity: str) -> float:
    units = {"Mi": 1.0, "Gi": 1024.0}
    return float(quantity[:-2]) * units[quantity[-2:]]


def test_footprint_fits_a_laptop() -> None:
    """The comparable demos' most common complaint is their weight: the whole kind deployment, every
    replica and one Promtail per node counted, requests at most 2 CPUs and 3 GiB (docs/kind.md)."""
    nodes = 3
    cpu = memory = 0.0
    for workload in workloads(kind_objects()):
        count = nodes if workload["kind"] == "DaemonSet" else workload["spec"].get("replicas", 1)
        for container in containers(workload):
            requests = container["resources"]["requests"]
            cpu += count * _cpu(requests["cpu"])
            memory += count * _mebibytes(requests["memory"])
    assert cpu <= 2.0, f"CPU requests add up to {cpu:.2f}"
    assert memory <= 3 * 1024, f"memory requests add up to {memory:.0f} MiB"
