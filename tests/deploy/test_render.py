"""Every overlay renders with the real `kubectl kustomize`, every object validates against the
Kubernetes schema of the cluster version kind-config.yaml pins, and every reference inside the
rendered manifests resolves (ConfigMaps, Secrets, ServiceAccounts, selectors)."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_support import OVERLAYS, REPO, kind_objects, render
from k8s_walk import containers, ident, of_kind, pod_labels, pod_spec, selects, workloads


def pinned_kubernetes_version() -> str:
    """The Kubernetes version of the kind node image, e.g. "1.33.0" for kindest/node:v1.33.1@sha256:..."""
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    images = {node["image"] for node in config["nodes"]}
    assert len(images) == 1, f"kind-config.yaml: every node must use the same image, got {images}"
    match = re.fullmatch(r"kindest/node:v(\d+)\.(\d+)\.\d+@sha256:[0-9a-f]{64}", images.pop())
    assert match, "kind-config.yaml: node image must be kindest/node:vX.Y.Z pinned by @sha256 digest"
    return f"{match.group(1)}.{match.group(2)}.0"


def test_every_overlay_is_checked() -> None:
    assert {"kind", "kind-load"} <= set(OVERLAYS), f"overlays found: {OVERLAYS}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_to_named_objects(overlay: str) -> None:
    objects = render(overlay)
    assert objects, f"overlay {overlay} rendered nothing"
    seen: set[str] = set()
    for obj in objects:
        assert obj.get("apiVersion") and obj.get("kind") and obj.get("metadata", {}).get("name"), obj
        assert ident(obj) not in seen, f"{overlay}: {ident(obj)} rendered twice"
        seen.add(ident(obj))
        if obj["kind"] != "Namespace" and not obj["kind"].startswith("Cluster"):
            assert obj["metadata"].get("namespace"), f"{overlay}: {ident(obj)} has no namespace"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_objects_validate_against_pinned_kubernetes_schema(overlay: str) -> None:
    version = pinned_kubernetes_version()
    problems = []
    for obj in render(overlay):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{ident(obj)}: {exc.message} at {'/'.join(map(str, exc.path))}")
    assert not problems, f"{overlay}: invalid for Kubernetes {version}:\n" + "\n".join(problems)


def test_schema_validation_rejects_a_broken_object() -> None:
    """The validator in use is strict: an unknown field in a pod spec is an error."""
    deployment = dict(of_kind(kind_objects(), "Deployment")[0])
    deployment["spec"] = {**deployment["spec"], "replica": 2}  # typo of `replicas`
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, pinned_kubernetes_version(), strict=True)


def _referenced(workload: dict[str, Any]) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret a pod template uses."""
    refs: set[tuple[str, str]] = set()
    spec = pod_spec(workload)
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            refs.add(("ConfigMap", volume["configMap"]["name"]))
        if "secret" in volume:
            refs.add(("Secret", volume["secret"]["secretName"]))
    for container in containers(workload):
        for env in container.get("env", []):
            source = env.get("valueFrom", {})
            if "secretKeyRef" in source:
                refs.add(("Secret", source["secretKeyRef"]["name"]))
            if "configMapKeyRef" in source:
                refs.add(("ConfigMap", source["configMapKeyRef"]["name"]))
    return refs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_reference_resolves(overlay: str) -> None:
    objects = render("kind") + (render(overlay) if overlay != "kind" else [])
    present = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}
    for workload in workloads(render(overlay)):
        ns = workload["metadata"]["namespace"]
        for kind, name in _referenced(workload):
            assert (kind, ns, name) in present, f"{ident(workload)} uses {kind} {ns}/{name}, not rendered"
        for container in containers(workload):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secret = present[("Secret", ns, ref["name"])]
                    keys = set(secret.get("data", {})) | set(secret.get("stringData", {}))
                    assert ref["key"] in keys, (
                        f"{ident(workload)}: Secret {ref['name']} has no key {ref['key']}"
                    )
        account = pod_spec(workload).get("serviceAccountName")
        if account:
            assert ("ServiceAccount", ns, account) in present, (
                f"{ident(workload)}: no ServiceAccount {account}"
            )


def test_services_pdbs_and_policies_select_pods() -> None:
    pods = [(w["metadata"]["namespace"], pod_labels(w), w) for w in workloads(kind_objects())]
    for service in of_kind(kind_objects(), "Service"):
        ns, selector = service["metadata"]["namespace"], service["spec"]["selector"]
        matched = [w for n, labels, w in pods if n == ns and selects(selector, labels)]
        assert matched, f"{ident(service)} selects no pod"
        port_names = {p.get("name") for w in matched for c in containers(w) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"{ident(service)}: targetPort {port['targetPort']}"
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for obj in of_kind(kind_objects(), kind):
            selector = obj["spec"].get("selector", obj["spec"].get("podSelector", {}))["matchLabels"]
            ns = obj["metadata"]["namespace"]
            assert any(n == ns and selects(selector, labels) for n, labels, _ in pods), f"{ident(obj)}"


def test_rbac_binds_existing_roles_and_accounts() -> None:
    present = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in kind_objects()}
    for binding in of_kind(kind_objects(), "RoleBinding"):
        ns = binding["metadata"]["namespace"]
        assert ("Role", ns, binding["roleRef"]["name"]) in present, ident(binding)
        for subject in binding["subjects"]:
            assert ("ServiceAccount", subject.get("namespace", ns), subject["name"]) in present, ident(
                binding
            )
    for role in of_kind(kind_objects(), "Role"):
        for rule in role["rules"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, f"{ident(role)} may write: {rule}"
    assert not of_kind(kind_objects(), "ClusterRole"), "cluster-wide permissions are not needed"


def test_generated_secrets_are_git_ignored() -> None:
    """deploy/generated holds the tokens and passwords: git must never pick them up."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    path = "deploy/generated/shop/secrets/admin-token"
    proc = subprocess.run([git, "check-ignore", "--quiet", path], cwd=REPO, check=False)
    assert proc.returncode == 0, f"{path} is not git-ignored (deploy/.gitignore)"


def test_makefile_kind_targets_use_these_files() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "--config kind-config.yaml" in makefile
    assert "-m deploy.assemble" in makefile, "`make deploy` must assemble deploy/generated first"
    for overlay in re.findall(r"apply(?: --server-side)? -k (deploy/overlays/[a-z-]+)", makefile):
        assert (REPO / overlay / "kustomization.yaml").is_file(), (
            f"Makefile applies {overlay}, which does not exist"
        )
    assert set(re.findall(r"apply(?: --server-side)? -k deploy/overlays/([a-z-]+)", makefile)) == set(
        OVERLAYS
    )
