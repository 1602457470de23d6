"""Small pure helpers to walk rendered Kubernetes objects (pod templates, containers, references)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def ident(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def find(objects: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    for obj in objects:
        meta = obj.get("metadata", {})
        same_namespace = namespace is None or meta.get("namespace") == namespace
        if obj.get("kind") == kind and meta.get("name") == name and same_namespace:
            return obj
    raise AssertionError(f"no {kind} {namespace or '*'}/{name} in the rendered manifests")


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") in WORKLOAD_KINDS]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def containers(workload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


def env_map(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def container_port(container: dict[str, Any], name: str) -> int:
    for port in container.get("ports", []):
        if port.get("name") == name:
            return int(port["containerPort"])
    raise AssertionError(f"container {container['name']} has no port named {name!r}")


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def shop_deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The shop services' Deployments by service name."""
    return {
        o["metadata"]["name"]: o
        for o in of_kind(objects, "Deployment")
        if pod_labels(o).get("app.kubernetes.io/component") == "shop-service"
    }
