"""Where the replicas are: a small interface with two implementations.

- `ProcessTableDiscovery` (local): the supervisor's process table, handed to the fault controller when the
  supervisor mounts the control API (`ProcessControl` in faultd/processes.py: the testbed imports the
  shop's types, never the other way round).
- `KubernetesDiscovery` (kind): the pods of the shop services in the controller's namespace, listed through
  the API server with the pod's service-account token (plain HTTPS with httpx, so the image needs no
  Kubernetes client library). Each pod's admin port is its container port named `admin`.

A `Replica.incarnation` changes whenever the process behind a replica changes (a restart, a new pod), so
the controller knows when to push the desired faults again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from sample_shop.faultd.processes import ProcessControl
from sample_shop.topology import ADMIN_PORT_OFFSET, SERVICES

SERVICE_LABEL = "app.kubernetes.io/name"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class Replica:
    service: str
    replica: int
    admin_url: str
    incarnation: str  # changes when the process behind the replica changes
    running: bool  # a process that can answer (not stopped, not restarting)
    state: str = "running"  # as the discovery sees it: running, paused, backoff, Pending, ...
    paused_until: float | None = None  # local: a pause fault, until this time

    @property
    def key(self) -> tuple[str, int]:
        return (self.service, self.replica)


class DiscoveryError(RuntimeError):
    """The replicas cannot be listed (API server unreachable, no permission)."""


class Discovery(Protocol):
    name: str

    async def replicas(self) -> list[Replica]: ...


class ProcessTableDiscovery:
    """The local supervisor's process table."""

    name = "local"

    def __init__(self, processes: ProcessControl) -> None:
        self.processes = processes

    async def replicas(self) -> list[Replica]:
        out = []
        for p in self.processes.replicas():
            out.append(
                Replica(
                    service=p.service,
                    replica=p.replica,
                    admin_url=p.admin_url,
                    incarnation=f"{p.pid}:{p.started_at}",
                    running=p.pid is not None and p.state in ("starting", "running"),
                    state=p.state,
                    paused_until=p.paused_until,
                )
            )
        return out


@dataclass(frozen=True)
class KubernetesSettings:
    api_url: str
    namespace: str
    selector: str
    token: str | None
    ca_file: str | None  # None: plain HTTP (a test's fake API server) or the system trust store

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> KubernetesSettings:
        """In-cluster settings, with FAULTD_KUBERNETES_API / FAULTD_NAMESPACE / FAULTD_POD_SELECTOR
        overrides. Raises ValueError naming the missing variable."""
        env = dict(os.environ if env is None else env)
        api = env.get("FAULTD_KUBERNETES_API")
        if not api:
            host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise ValueError(
                    "FAULTD_DISCOVERY=kubernetes needs the API server: run in a pod (KUBERNETES_SERVICE_HOST "
                    "is set there) or set FAULTD_KUBERNETES_API=https://host:port"
                )
            api = f"https://{host}:{port}"
        namespace = env.get("FAULTD_NAMESPACE")
        if not namespace:
            ns_file = SERVICE_ACCOUNT_DIR / "namespace"
            if not ns_file.exists():
                raise ValueError("set FAULTD_NAMESPACE to the namespace of the shop's pods")
            namespace = ns_file.read_text().strip()
        token_file = SERVICE_ACCOUNT_DIR / "token"
        ca_file = SERVICE_ACCOUNT_DIR / "ca.crt"
        return cls(
            api_url=api.rstrip("/"),
            namespace=namespace,
            selector=env.get("FAULTD_POD_SELECTOR", "app.kubernetes.io/component=shop-service"),
            token=token_file.read_text().strip() if token_file.exists() else None,
            ca_file=str(ca_file) if api.startswith("https") and ca_file.exists() else None,
        )


def replicas_from_pods(pods: list[dict[str, Any]]) -> list[Replica]:
    """Pure: a PodList's items -> replicas. Replica indices follow the pods' creation order per service
    (ties by name), so `?replica=0` is the oldest pod. Pods being deleted or without an IP are not running."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        service = (pod.get("metadata", {}).get("labels") or {}).get(SERVICE_LABEL)
        if service in SERVICES:
            by_service.setdefault(service, []).append(pod)
    out: list[Replica] = []
    for service, items in sorted(by_service.items()):
        items.sort(key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"].get("name", "")))
        for index, pod in enumerate(items):
            meta, status = pod["metadata"], pod.get("status", {})
            ip = status.get("podIP")
            admin = _admin_port(pod) or SERVICES[service].port + ADMIN_PORT_OFFSET
            restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses", []) or [])
            running = bool(ip) and status.get("phase") == "Running" and not meta.get("deletionTimestamp")
            out.append(
                Replica(
                    service=service,
                    replica=index,
                    admin_url=f"http://{ip}:{admin}" if ip else "",
                    incarnation=f"{meta.get('uid', meta.get('name'))}:{restarts}",
                    running=running,
                    state=status.get("phase", "Unknown"),
                )
            )
    return out


def _admin_port(pod: dict[str, Any]) -> int | None:
    for container in pod.get("spec", {}).get("containers", []):
        for port in container.get("ports", []) or []:
            if port.get("name") == "admin":
                return int(port["containerPort"])
    return None


class KubernetesDiscovery:
    name = "kubernetes"

    def __init__(self, settings: KubernetesSettings, timeout_s: float = 5.0) -> None:
        self.settings = settings
        headers = {"Accept": "application/json"}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        self._http = httpx.AsyncClient(
            base_url=settings.api_url,
            headers=headers,
            verify=settings.ca_file if settings.ca_file else True,
            timeout=timeout_s,
        )

    async def replicas(self) -> list[Replica]:
        path = f"/api/v1/namespaces/{self.settings.namespace}/pods"
        try:
            response = await self._http.get(path, params={"labelSelector": self.settings.selector})
        except httpx.HTTPError as exc:
            raise DiscoveryError(f"cannot list pods at {self.settings.api_url}{path}: {exc}") from exc
        if response.status_code != 200:
            raise DiscoveryError(
                f"listing pods in {self.settings.namespace} answered {response.status_code}: "
                f"{response.text[:200]} (the faultd Role must allow list on pods)"
            )
        return replicas_from_pods(response.json().get("items", []))

    async def close(self) -> None:
        await self._http.aclose()
