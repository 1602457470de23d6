"""The kind target: the stack as the kind cluster of `make cluster images deploy` runs it.

This target never creates a cluster, builds an image or applies a manifest: `up` checks that the cluster
is there and deployed, waits until it is ready, and describes it in `<state>/stack.json`
(docs/architecture.md, "On kind"). Everything goes through the real `kubectl` binary (`--context`,
`--request-timeout`, `-o json`), so it uses the user's kubeconfig exactly as `make deploy` does.

- cluster: env `KIND_CLUSTER` (default `chaos-shop`); context `kind-<cluster>`, or env `KUBERNETES_CONTEXT`;
- host ports: those `kind-config.yaml` maps on 127.0.0.1 (the topology's defaults; `TESTBED_PORT_OFFSET`
  does not apply). `KIND_HOST_PORT_OFFSET=N` adds N to each of them: it exists for the tests, which serve
  stand-ins of the gateway, the control API and Prometheus on free ports; a real kind cluster never needs it;
- replicas: what `deploy/components/high-availability` sets; `up` cannot change them;
- process faults: `kill` deletes the pod with grace period 0 (as chaostoolkit-kubernetes' `terminate_pods`
  does; its Deployment replaces it), `restart` deletes it gracefully; `pause` has no equivalent here.

Verified only against a fake Kubernetes API server (tests/runtime/test_kind_target.py): no cluster can run
on the machine this is developed on.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from sample_shop import topology
from sample_shop.topology import SERVICE_NAMES, ReplicaEndpoint, StackDescriptor, default_state_dir
from testbed.runtime.base import (
    InputError,
    ProcessInfo,
    ProgressCallback,
    RuntimeFailure,
    StackStatus,
    StartupProgress,
    UpOptions,
    UpRequest,
)
from testbed.runtime.layout import StateLayout

CLUSTER_ENV = "KIND_CLUSTER"
DEFAULT_CLUSTER = "chaos-shop"
CONTEXT_ENV = "KUBERNETES_CONTEXT"
HOST_PORT_OFFSET_ENV = "KIND_HOST_PORT_OFFSET"

SHOP_NAMESPACE = "shop"
OBSERVABILITY_NAMESPACE = "shop-observability"
NAMESPACES = (SHOP_NAMESPACE, OBSERVABILITY_NAMESPACE)
NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
SHOP_COMPONENT = "shop-service"

# The Deployments `make deploy` creates (deploy/base, deploy/components/observability). The notifications
# function's replicas belong to its HorizontalPodAutoscaler, so only its availability is checked.
MAIL_SERVER = "mailserver"
EXPECTED_DEPLOYMENTS: dict[str, tuple[str, ...]] = {
    SHOP_NAMESPACE: (*SERVICE_NAMES, topology.NOTIFICATIONS_FUNCTION, MAIL_SERVER, "faultd"),
    OBSERVABILITY_NAMESPACE: ("prometheus", "alertmanager", "alert-webhook", "grafana", "jaeger", "loki"),
}

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"
TOKEN_FILE = DEPLOY_DIR / "generated" / "shop" / "secrets" / "admin-token"
HIGH_AVAILABILITY = DEPLOY_DIR / "components" / "high-availability" / "kustomization.yaml"

KUBECTL_TIMEOUT_S = 10  # --request-timeout of every call; the subprocess gets 5 s more
POLL_S = 0.5
PROBE_TIMEOUT_S = 2.0

# Host ports of kind-config.yaml (docs/architecture.md "On kind"), before KIND_HOST_PORT_OFFSET.
HOST_PORTS: dict[str, int] = {
    "gateway": topology.SERVICES["gateway"].port,
    "control": topology.CONTROL_PORT,
    "prometheus": topology.PROMETHEUS_PORT,
    "grafana": topology.GRAFANA_PORT,
    "jaeger": topology.JAEGER_UI_PORT,
    "loki": topology.LOKI_PORT,
}
# The app.kubernetes.io/name of the pods behind each host port.
HOST_PORT_OF_POD = {
    "gateway": "gateway",
    "faultd": "control",
    "prometheus": "prometheus",
    "grafana": "grafana",
    "jaeger": "jaeger",
    "loki": "loki",
}

HINT_CLUSTER = (
    "create the cluster with `make cluster`, then `make images deploy` (docs/kind.md); for a cluster of "
    f"another name set {CLUSTER_ENV}=<name> (context kind-<name>) or {CONTEXT_ENV}"
)
HINT_DEPLOY = "`make images deploy` builds the image and deploys the shop and the observability stack"
DOWN_MESSAGE = (
    "the kind cluster keeps running: `testbed down --target kind` only forgets stack.json; "
    "`make cluster-down` deletes the cluster (docs/kind.md)"
)
CLIENT_SLO_NOTE = (
    "client-side SLOs are not judged on kind: the in-cluster Prometheus does not scrape a load generator "
    "running on the host (stack.json client_metrics_scraped: false)"
)


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------


def kube_context() -> str:
    """KUBERNETES_CONTEXT, else kind-<KIND_CLUSTER or chaos-shop>."""
    explicit = os.environ.get(CONTEXT_ENV, "").strip()
    if explicit:
        return explicit
    cluster = os.environ.get(CLUSTER_ENV, "").strip() or DEFAULT_CLUSTER
    return f"kind-{cluster}"


def host_port_offset() -> int:
    raw = os.environ.get(HOST_PORT_OFFSET_ENV, "0").strip() or "0"
    try:
        offset = int(raw)
    except ValueError:
        offset = -1
    if not 0 <= offset <= 30_000:
        raise RuntimeFailure(
            f"{HOST_PORT_OFFSET_ENV} must be a whole number from 0 to 30000, got {raw!r}",
            hint=f"unset {HOST_PORT_OFFSET_ENV}: it exists for the tests; "
            "kind-config.yaml maps the default ports",
        )
    return offset


def host_url(name: str, offset: int) -> str:
    return f"http://127.0.0.1:{HOST_PORTS[name] + offset}"


def deployed_replicas(kustomization: Path = HIGH_AVAILABILITY) -> int:
    """The replicas per shop service that deploy/components/high-availability sets (its /spec/replicas
    patch of the Deployments labelled app.kubernetes.io/component=shop-service)."""
    try:
        data = yaml.safe_load(kustomization.read_text())
        for patch in data.get("patches") or []:
            selector = (patch.get("target") or {}).get("labelSelector", "")
            if f"{COMPONENT_LABEL}={SHOP_COMPONENT}" not in selector:
                continue
            for op in yaml.safe_load(patch.get("patch") or "[]") or []:
                if op.get("path") == "/spec/replicas" and op.get("op") in ("replace", "add"):
                    value = op.get("value")
                    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                        return value
    except (OSError, yaml.YAMLError, AttributeError, TypeError) as exc:
        raise RuntimeFailure(f"cannot read the replicas of {kustomization}: {exc}") from None
    raise RuntimeFailure(
        f"{kustomization} has no /spec/replicas patch for the shop services",
        hint="restore deploy/components/high-availability from git",
    )


def check_options(options: UpOptions, deployed: int) -> None:
    """Refuse what the cluster cannot honour. A service's replicas may be `deployed` or 1 (the UpOptions
    default for a service nobody named, which is what the experiment runner passes for it)."""
    other = {s: n for s, n in options.replicas.items() if n not in (1, deployed)}
    unknown = sorted(set(options.replicas) - set(SERVICE_NAMES))
    if unknown:
        raise InputError(
            f"replicas: unknown service(s) {', '.join(unknown)}; services: {', '.join(SERVICE_NAMES)}"
        )
    if other:
        asked = ",".join(f"{s}={n}" for s, n in other.items())
        raise InputError(
            f"replicas {asked}: the kind cluster runs {deployed} replicas of every shop service; on kind "
            "replicas come from deploy/components/high-availability (edit its /spec/replicas patch and run "
            "`make deploy`), not from --replicas or an experiment's requires.replicas"
        )
    if options.resilience != "resilient":
        raise InputError(
            f"resilience {options.resilience}: the kind manifests run the default profile (resilient); to "
            "change it on kind add `{name: SHOP_RESILIENCE, value: naive}` to the env of "
            "deploy/base/shop/common.yaml and run `make deploy`, or override one service's client policy "
            "for a while with `PUT /policy/{service}` on the control API (the fault controller)"
        )
    if options.telemetry != "on":
        raise InputError(
            f"telemetry {options.telemetry}: the kind manifests run with telemetry on; to change it on kind "
            'add `{name: SHOP_TELEMETRY, value: "off"}` to the env of deploy/base/shop/common.yaml and run '
            "`make deploy`"
        )
    if not options.extras:
        raise InputError(
            "no extras: on kind Jaeger, Loki and Grafana always run (deploy/components/observability); "
            "leave out --no-extras"
        )


# --------------------------------------------------------------------------------------------------
# kubectl
# --------------------------------------------------------------------------------------------------


KLOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d")  # kubectl's internal log lines (memcache.go ...)


def _tail(text: str, lines: int = 2) -> str:
    """kubectl's own message (its last lines without the klog noise before it)."""
    all_lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    plain = [line for line in all_lines if not KLOG_LINE.match(line)] or all_lines
    return " | ".join(plain[-lines:])


UNREACHABLE_SIGNS = ("refused", "unable to connect", "no such host", "timeout", "deadline exceeded")


class Kubectl:
    """The real kubectl binary, always with `--context` and a request timeout."""

    def __init__(self, context: str, binary: str) -> None:
        self.context = context
        self.binary = binary

    @classmethod
    def find(cls, context: str) -> Kubectl:
        binary = shutil.which("kubectl")
        if binary is None:
            raise RuntimeFailure(
                "kubectl is not installed (no `kubectl` on PATH)",
                hint="install kubectl >= 1.32 (https://kubernetes.io/docs/tasks/tools/, docs/kind.md), "
                "then `make cluster images deploy`",
            )
        return cls(context, binary)

    def _run(self, args: list[str], *, with_context: bool = True) -> str:
        command = [self.binary]
        if with_context:
            command += ["--context", self.context, f"--request-timeout={KUBECTL_TIMEOUT_S}s"]
        command += args
        shown = "kubectl " + " ".join(command[1:])
        try:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=KUBECTL_TIMEOUT_S + 5,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeFailure(
                f"`{shown}` did not answer within {KUBECTL_TIMEOUT_S + 5} s",
                hint="is the kind cluster running? `kind get clusters`; " + HINT_CLUSTER,
            ) from None
        except OSError as exc:
            raise RuntimeFailure(f"`{shown}` could not run: {exc}", hint="reinstall kubectl") from None
        if done.returncode != 0:
            error = _tail(done.stderr) or f"exit code {done.returncode}"
            unreachable = any(sign in error.lower() for sign in UNREACHABLE_SIGNS)
            raise RuntimeFailure(
                f"`{shown}` failed: {error}",
                hint=(
                    f"the API server of context {self.context} does not answer: is the kind cluster running "
                    "(Docker started, `kind get clusters`)? " + HINT_CLUSTER
                    if unreachable
                    else f"check the context {self.context} with `kubectl --context {self.context} get nodes`"
                ),
            )
        return done.stdout

    def contexts(self) -> list[str]:
        return [
            c.strip() for c in self._run(["config", "get-contexts", "-o", "name"], with_context=False).split()
        ]

    def require_context(self) -> None:
        contexts = self.contexts()
        if self.context not in contexts:
            raise RuntimeFailure(
                f"kubectl has no context {self.context!r} (contexts: {', '.join(contexts) or 'none'}): "
                "the kind cluster does not exist",
                hint=HINT_CLUSTER,
            )

    def get(self, namespace: str, kinds: str) -> list[dict[str, Any]]:
        """`kubectl -n NS get KINDS -o json` -> its items."""
        out = self._run(["--namespace", namespace, "get", kinds, "--output", "json"])
        try:
            items = json.loads(out).get("items", [])
        except (ValueError, AttributeError):
            raise RuntimeFailure(
                f"kubectl get {kinds} -n {namespace} printed no JSON list: {out[:200]!r}"
            ) from None
        return [i for i in items if isinstance(i, dict)]

    def delete_pod(self, namespace: str, name: str, *, immediately: bool) -> None:
        args = ["--namespace", namespace, "delete", "pod", name, "--wait=false"]
        if immediately:
            # kubectl turns --grace-period=0 into 1 unless --force is given; with --force it sends
            # gracePeriodSeconds 0, as chaostoolkit-kubernetes' terminate_pods(grace_period=0) does.
            args += ["--grace-period=0", "--force"]
        self._run(args)


# --------------------------------------------------------------------------------------------------
# Pods and Deployments (pure)
# --------------------------------------------------------------------------------------------------


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def pod_live(pod: dict[str, Any]) -> bool:
    """Not being deleted and not finished: a pod that serves or will serve."""
    terminating = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    phase = (pod.get("status") or {}).get("phase")
    return not terminating and phase not in ("Succeeded", "Failed")


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_service(pod: dict[str, Any]) -> str:
    return _labels(pod).get(NAME_LABEL) or _name(pod)


def pod_waiting_reason(pod: dict[str, Any]) -> str:
    """The first container's waiting or termination reason (ImagePullBackOff, CrashLoopBackOff, ...)."""
    status = pod.get("status") or {}
    for c in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        state = c.get("state") or {}
        for key in ("waiting", "terminated"):
            reason = (state.get(key) or {}).get("reason")
            if reason and reason != "Completed":
                return str(reason)
    return ""


def indexed_pods(pods: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """(service, replica) -> pod for the live pods: replica = the pod's index among its service's live
    pods sorted by name (pods have no index of their own on kind)."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        if pod_live(pod):
            by_service.setdefault(pod_service(pod), []).append(pod)
    return {
        (service, index): pod
        for service, group in by_service.items()
        for index, pod in enumerate(sorted(group, key=_name))
    }


def shop_pods(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in pods if _labels(p).get(COMPONENT_LABEL) == SHOP_COMPONENT]


def deployment_state(deployment: dict[str, Any]) -> tuple[bool, str]:
    """(Available and every replica ready, what it is waiting for)."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    available = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Available"), {"status": "Unknown"}
    )
    if available.get("status") != "True":
        reason = available.get("reason") or "no Available condition yet"
        return False, f"not Available ({reason}), {ready}/{wanted} ready"
    if ready < wanted or updated < wanted:
        return False, f"{ready}/{wanted} ready" + (
            f", {updated}/{wanted} updated" if updated < wanted else ""
        )
    return True, f"{ready}/{wanted} ready"


@dataclass
class Readiness:
    ready: list[str]
    waiting: list[str]
    shop_pods: list[dict[str, Any]]


# --------------------------------------------------------------------------------------------------
# The target
# --------------------------------------------------------------------------------------------------


class KindTarget:
    name = "kind"
    down_note: str | None = DOWN_MESSAGE  # `down` forgets stack.json; the cluster keeps running

    def __init__(self, state_dir: Path | None = None, *, token_file: Path | None = None) -> None:
        self.layout = StateLayout((state_dir or default_state_dir()).resolve())
        self.context = kube_context()
        self.token_file = (token_file or TOKEN_FILE).resolve()
        self.notes: list[str] = []

    def _kubectl(self) -> Kubectl:
        kubectl = Kubectl.find(self.context)
        kubectl.require_context()
        return kubectl

    # ---- the state folder --------------------------------------------------------------------

    def _stored(self) -> StackDescriptor | None:
        try:
            return StackDescriptor.load(self.layout.root)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as exc:
            raise RuntimeFailure(
                f"{self.layout.stack_file} is not a stack descriptor: {exc}",
                hint="remove it, then `testbed up --target kind`",
            ) from None

    def _refuse_other_target(self, stored: StackDescriptor | None) -> None:
        if stored is not None and stored.target != "kind":
            raise RuntimeFailure(
                f"{self.layout.stack_file} describes a {stored.target} stack, not the kind cluster",
                hint="stop it with `testbed down` (target local), or give the kind stack its own state "
                "folder with TESTBED_STATE_DIR",
            )

    def is_up(self) -> bool:
        with contextlib.suppress(RuntimeFailure):
            stored = self._stored()
            return stored is not None and stored.target == "kind"
        return False

    def check_up_request(self, request: UpRequest) -> None:
        """The cluster's replicas and trace collector are the manifests' (deploy/), not `up` options."""
        if request.replicas is not None:
            raise InputError(
                f"--replicas: the {self.name} target cannot change replicas; on kind they come from "
                "deploy/components/high-availability (`make deploy`)"
            )
        if request.otlp_endpoint is not None:
            raise InputError(
                f"--otlp-endpoint: the {self.name} target sends traces to its own collector (deploy/)"
            )

    def running_stack(self, request: UpRequest) -> StackDescriptor | None:
        """Always None: `up` re-checks the cluster and rewrites stack.json (it changes nothing there)."""
        return None

    def startup_notes(self) -> list[str]:
        return list(self.notes)

    def descriptor(self) -> StackDescriptor:
        stored = self._stored()
        if stored is None:
            raise RuntimeFailure(
                f"no kind stack is described in {self.layout.root} (no stack.json)",
                hint="`testbed up --target kind` (or `make experiment TARGET=kind`) checks the cluster of "
                "`make cluster images deploy` and writes it",
            )
        self._refuse_other_target(stored)
        return stored

    # ---- up ----------------------------------------------------------------------------------

    def up(self, options: UpOptions, progress: ProgressCallback | None = None) -> StackDescriptor:
        """Check the cluster, wait until it is ready, write stack.json. Creates and changes nothing in the
        cluster; safe to run again (it re-checks and rewrites stack.json)."""
        deployed = deployed_replicas()
        check_options(options, deployed)
        offset = host_port_offset()
        kubectl = self._kubectl()
        self._refuse_other_target(self._stored())
        if not self.token_file.is_file():
            raise RuntimeFailure(
                f"the control API's token {self.token_file} does not exist",
                hint="`make deploy` writes it (python -m deploy.assemble) and deploys with it; "
                "a cluster deployed from another checkout needs that checkout",
            )
        deadline = time.monotonic() + options.timeout_s
        last: tuple[list[str], list[str]] | None = None
        first = True
        while True:
            state = self._readiness(kubectl, deployed, offset, first)
            first = False
            if not state.waiting:
                break
            if progress and (state.ready, state.waiting) != last:
                progress(StartupProgress("starting", f"context {self.context}", state.ready, state.waiting))
                last = (state.ready, state.waiting)
            if time.monotonic() > deadline:
                failure = RuntimeFailure(
                    f"the kind stack (context {self.context}) is not ready after {options.timeout_s:g} s; "
                    f"waiting for: {'; '.join(state.waiting)}",
                    hint=f"`kubectl --context {self.context} -n shop get pods` shows why; pods in "
                    "ErrImageNeverPull/ImagePullBackOff need `make images`; `make deploy` re-applies the "
                    "manifests and waits for them; then run this again",
                )
                if progress:
                    progress(
                        StartupProgress(
                            "failed", failure.message, state.ready, state.waiting, failure=failure.to_dict()
                        )
                    )
                raise failure
            time.sleep(POLL_S)
        descriptor = self._describe(state.shop_pods, offset)
        self.layout.root.mkdir(parents=True, exist_ok=True)
        descriptor.write(self.layout.root)
        self.notes = [
            f"replicas: {deployed} per shop service, from deploy/components/high-availability",
            CLIENT_SLO_NOTE,
            DOWN_MESSAGE,
        ]
        if progress:
            progress(StartupProgress("ready", f"context {self.context}", state.ready, []))
        return descriptor

    def _readiness(self, kubectl: Kubectl, deployed: int, offset: int, first: bool) -> Readiness:
        ready: list[str] = []
        waiting: list[str] = []
        pods_of: dict[str, list[dict[str, Any]]] = {}
        for namespace, expected in EXPECTED_DEPLOYMENTS.items():
            try:
                items = kubectl.get(namespace, "deployments,pods")
            except RuntimeFailure as failure:
                if first:
                    raise  # the cluster is not there at all: say so at once
                waiting.append(f"the API server ({failure.message})")
                return Readiness(ready, waiting, [])
            deployments = {_name(i): i for i in items if i.get("kind") == "Deployment"}
            pods = [i for i in items if i.get("kind") == "Pod"]
            pods_of[namespace] = pods
            missing = [d for d in expected if d not in deployments]
            if missing:
                raise RuntimeFailure(
                    f"namespace {namespace} of context {self.context} has no Deployment "
                    f"{', '.join(missing)}: the testbed is not deployed there",
                    hint=HINT_DEPLOY,
                )
            for name, deployment in sorted(deployments.items()):
                item = f"{namespace}/{name}"
                ok, detail = deployment_state(deployment)
                wanted = int((deployment.get("spec") or {}).get("replicas", 1))
                if name in SERVICE_NAMES and wanted != deployed:
                    ok, detail = (
                        False,
                        f"runs {wanted} replicas, deploy/ runs {deployed} (scaled by hand or by an "
                        "experiment? `make deploy` restores it)",
                    )
                if ok:
                    ready.append(item)
                    continue
                reasons = sorted(
                    {
                        f"{_name(p)}: {reason}"
                        for p in pods
                        if pod_service(p) == name and (reason := pod_waiting_reason(p))
                    }
                )
                waiting.append(f"{item}: {detail}" + (f" ({', '.join(reasons)})" if reasons else ""))
        live = [p for p in shop_pods(pods_of[SHOP_NAMESPACE]) if pod_live(p)]
        for service in SERVICE_NAMES:
            group = [p for p in live if pod_service(p) == service]
            not_ready = [_name(p) for p in group if not pod_ready(p)]
            if len(group) != deployed or not_ready:
                waiting.append(
                    f"pods of {service}: {len(group) - len(not_ready)} ready of {len(group)}, "
                    f"{deployed} expected (a rollout or a replacement is under way)"
                )
        for label, ok, detail in self._probe_host_ports(offset):
            (ready if ok else waiting).append(label if ok else f"{label}: {detail}")
        return Readiness(ready, waiting, live)

    def _probe_host_ports(self, offset: int) -> list[tuple[str, bool, str]]:
        results: list[tuple[str, bool, str]] = []
        with httpx.Client(timeout=PROBE_TIMEOUT_S, trust_env=False) as client:
            for name, path in (("gateway", "/readyz"), ("prometheus", "/-/ready")):
                url = f"{host_url(name, offset)}{path}"
                try:
                    code = client.get(url).status_code
                    results.append((f"{name} {url}", code == 200, f"answers {code}"))
                except httpx.HTTPError as exc:
                    results.append((f"{name} {url}", False, f"unreachable ({type(exc).__name__})"))
        port = HOST_PORTS["control"] + offset
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT_S):
                results.append((f"control API 127.0.0.1:{port} (TCP)", True, ""))
        except OSError as exc:
            results.append(
                (f"control API 127.0.0.1:{port} (TCP)", False, f"unreachable ({exc.strerror or exc})")
            )
        return results

    def _describe(self, pods: list[dict[str, Any]], offset: int) -> StackDescriptor:
        replicas = [
            ReplicaEndpoint(
                service=service,
                replica=index,
                # the pod's own address: reachable inside the cluster only
                url=f"http://{(pod.get('status') or {}).get('podIP', '')}:{topology.SERVICES[service].port}",
                admin_url=None,  # admin APIs are reached only through the fault controller
            )
            for (service, index), pod in sorted(indexed_pods(pods).items())
            if service in topology.SERVICES
        ]
        return StackDescriptor(
            target="kind",
            gateway_url=host_url("gateway", offset),
            prometheus_url=host_url("prometheus", offset),
            control_url=host_url("control", offset),
            token_file=str(self.token_file),
            replicas=replicas,
            jaeger_url=host_url("jaeger", offset),
            loki_url=host_url("loki", offset),
            grafana_url=host_url("grafana", offset),
            state_dir=str(self.layout.root),
            kubernetes_context=self.context,
            kubernetes_namespace=SHOP_NAMESPACE,
            client_metrics_scraped=False,
        )

    # ---- down --------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Forget the stack (remove stack.json); the cluster keeps running (`make cluster-down` deletes it).
        Stops nothing, so it returns []."""
        self._refuse_other_target(self._stored())
        with contextlib.suppress(FileNotFoundError):
            self.layout.stack_file.unlink()
        return []

    # ---- status ------------------------------------------------------------------------------

    def status(self) -> StackStatus:
        root = str(self.layout.root)
        try:
            kubectl = self._kubectl()
            pods = {namespace: kubectl.get(namespace, "pods") for namespace in NAMESPACES}
        except RuntimeFailure as failure:
            return StackStatus(False, "kind", root, message=f"{failure.message} (how to fix: {failure.hint})")
        if not any(pods.values()):
            return StackStatus(
                False,
                "kind",
                root,
                message=f"no pod in namespaces {', '.join(NAMESPACES)} of context {self.context}: "
                + HINT_DEPLOY,
            )
        offset = host_port_offset()
        processes: list[ProcessInfo] = []
        for namespace in NAMESPACES:
            index = {_name(pod): replica for (_, replica), pod in indexed_pods(pods[namespace]).items()}
            for pod in sorted(pods[namespace], key=lambda p: (pod_service(p), _name(p))):
                processes.append(self._process(pod, index.get(_name(pod)), offset))
        described = "stack.json written" if self.is_up() else "no stack.json yet (`testbed up --target kind`)"
        return StackStatus(True, "kind", root, processes, message=f"context {self.context}; {described}")

    def _process(self, pod: dict[str, Any], replica: int | None, offset: int) -> ProcessInfo:
        service = pod_service(pod)
        status = pod.get("status") or {}
        phase = str(status.get("phase") or "Unknown")
        terminating = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
        if service in topology.SERVICES:
            port: int | None = topology.SERVICES[service].port
        else:
            ports = [
                p.get("containerPort")
                for c in (pod.get("spec") or {}).get("containers") or []
                for p in c.get("ports") or []
            ]
            port = int(ports[0]) if ports else None
        host = HOST_PORT_OF_POD.get(service)
        ready = pod_ready(pod)
        if phase == "Succeeded":
            health, healthy = "completed", True  # a finished Job's pod (the load generator)
        elif terminating:
            health, healthy = "terminating", False
        else:
            health, healthy = ("ready" if ready else (pod_waiting_reason(pod) or "not ready")), ready
        restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
        return ProcessInfo(
            service=service,
            replica=replica,
            pid=None,
            port=port,
            url=host_url(host, offset) if host else None,
            state="Terminating" if terminating else phase,
            health=health,
            healthy=healthy,
            restarts=restarts,
            log=f"kubectl --context {self.context} -n {(pod.get('metadata') or {}).get('namespace', '')} "
            f"logs {_name(pod)}",
        )

    # ---- process faults ----------------------------------------------------------------------

    def _pod(self, kubectl: Kubectl, service: str, replica: int) -> str:
        if service not in topology.SERVICES:
            raise RuntimeFailure(f"unknown service {service!r}; services: {', '.join(SERVICE_NAMES)}")
        pods = indexed_pods(
            [p for p in shop_pods(kubectl.get(SHOP_NAMESPACE, "pods")) if pod_service(p) == service]
        )
        pod = pods.get((service, replica))
        if pod is None:
            have = sorted(r for s, r in pods if s == service)
            raise RuntimeFailure(
                f"{service} has no replica {replica} on kind "
                f"(replicas: {', '.join(map(str, have)) or 'none'}; a replica is a pod's index among "
                "the service's pods sorted by name)",
                hint="`testbed status --target kind` lists them",
            )
        return _name(pod)

    def _delete(self, kind: str, service: str, replica: int, immediately: bool) -> dict[str, Any]:
        kubectl = self._kubectl()
        pod = self._pod(kubectl, service, replica)
        kubectl.delete_pod(SHOP_NAMESPACE, pod, immediately=immediately)
        return {
            "kind": kind,
            "service": service,
            "replicas": [
                {
                    "service": service,
                    "replica": replica,
                    "pod": pod,
                    "namespace": SHOP_NAMESPACE,
                    "grace_period_s": 0 if immediately else None,  # None: the pod's own grace period
                }
            ],
        }

    def kill(self, service: str, replica: int) -> dict[str, Any]:
        """Delete the pod at once (grace period 0); its Deployment starts a new one."""
        return self._delete("kill", service, replica, immediately=True)

    def restart(self, service: str, replica: int) -> dict[str, Any]:
        """Delete the pod gracefully (SIGTERM, its terminationGracePeriodSeconds); a new one replaces it."""
        return self._delete("restart", service, replica, immediately=False)

    def pause(self, service: str, replica: int, seconds: float) -> dict[str, Any]:
        raise RuntimeFailure(
            f"cannot pause {service} replica {replica} on kind: SIGSTOP has no kind equivalent here",
            hint="use the kind-only experiments (experiments/kind-*.yaml: terminate a pod, scale to zero, a "
            "network partition) or Chaos Mesh's pod-failure; `kill` and `restart` delete the pod",
        )
