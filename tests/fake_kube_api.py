"""A small fake Kubernetes API server for tests, because no real one can run on this machine (no Docker, no
kind). It serves what the real `kubectl` and the fault controller's discovery ask for, from mutable lists:

- discovery: `/version`, `/api`, `/apis`, `/api/v1`, `/apis/apps/v1` (legacy discovery; kubectl falls back
  to it when the server does not answer the aggregated form);
- `GET /api/v1/namespaces/{ns}/pods[/{name}]` and `GET /apis/apps/v1/namespaces/{ns}/deployments[/{name}]`,
  with `labelSelector` (equality terms only, `a=b,c=d`);
- `DELETE /api/v1/namespaces/{ns}/pods/{name}`: removes the pod and records the DeleteOptions' grace
  period in `deleted`.

`requests` records every (method, path with query). `kubeconfig(path, context)` writes a kubeconfig whose
context points at this server. Tests that use it say so in their docstring.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SERVER_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.1",
    "platform": "linux/amd64",
}

CORE_RESOURCES = [
    {
        "name": "pods",
        "singularName": "pod",
        "namespaced": True,
        "kind": "Pod",
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        "shortNames": ["po"],
    },
    {
        "name": "namespaces",
        "singularName": "namespace",
        "namespaced": False,
        "kind": "Namespace",
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        "shortNames": ["ns"],
    },
]
APPS_RESOURCES = [
    {
        "name": "deployments",
        "singularName": "deployment",
        "namespaced": True,
        "kind": "Deployment",
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        "shortNames": ["deploy"],
    },
]


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.strip().lstrip("="):
            return False
    return True


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeKubeApi:
    """Use as a context manager; `url` is the server's base URL. Mutate `pods` / `deployments`
    (namespace -> list of objects) at any time."""

    def __init__(
        self,
        pods: dict[str, list[dict[str, Any]]] | None = None,
        deployments: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.pods: dict[str, list[dict[str, Any]]] = pods if pods is not None else {}
        self.deployments: dict[str, list[dict[str, Any]]] = deployments if deployments is not None else {}
        self.requests: list[tuple[str, str]] = []
        self.deleted: list[dict[str, Any]] = []  # {"namespace", "name", "grace_period_s"}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer._record("GET", self.path)
                code, body = outer._get(self.path)
                self._send(code, body)

            def do_DELETE(self) -> None:
                outer._record("DELETE", self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                code, body = outer._delete(self.path, raw)
                self._send(code, body)

            def _send(self, code: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeKubeApi:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _record(self, method: str, path: str) -> None:
        with self.lock:
            self.requests.append((method, path))

    def paths(self, method: str = "GET") -> list[str]:
        with self.lock:
            return [p for m, p in self.requests if m == method]

    # ---- routes ----------------------------------------------------------------------------------

    def _get(self, raw_path: str) -> tuple[int, dict[str, Any]]:
        split = urlsplit(raw_path)
        path = split.path.rstrip("/")
        query = parse_qs(split.query)
        if path == "/version":
            return 200, SERVER_VERSION
        if path == "/api":
            return 200, {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
            }
        if path == "/apis":
            group = {"groupVersion": "apps/v1", "version": "v1"}
            return 200, {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [{"name": "apps", "versions": [group], "preferredVersion": group}],
            }
        if path == "/api/v1":
            return 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": CORE_RESOURCES}
        if path == "/apis/apps/v1":
            return 200, {"kind": "APIResourceList", "groupVersion": "apps/v1", "resources": APPS_RESOURCES}
        parts = path.strip("/").split("/")
        selector = query.get("labelSelector", [""])[0]
        # /api/v1/namespaces/{ns}/pods[/{name}]
        if len(parts) in (5, 6) and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
            return self._list_or_get("v1", "Pod", self.pods, parts[3], parts[5:], selector)
        # /apis/apps/v1/namespaces/{ns}/deployments[/{name}]
        if (
            len(parts) in (6, 7)
            and parts[:4] == ["apis", "apps", "v1", "namespaces"]
            and parts[5] == "deployments"
        ):
            return self._list_or_get("apps/v1", "Deployment", self.deployments, parts[4], parts[6:], selector)
        return 404, _status(404, "NotFound", f"the server could not find the requested resource ({path})")

    def _list_or_get(
        self,
        api_version: str,
        kind: str,
        store: dict[str, list[dict[str, Any]]],
        namespace: str,
        name: list[str],
        selector: str,
    ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            items = [dict(o) for o in store.get(namespace, [])]
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        if name:
            found = next((o for o in items if o["metadata"]["name"] == name[0]), None)
            if found is None:
                return 404, _status(404, "NotFound", f'{kind.lower()}s "{name[0]}" not found')
            return 200, found
        chosen = [o for o in items if _matches(o["metadata"].get("labels") or {}, selector)]
        return 200, {
            "kind": f"{kind}List",
            "apiVersion": api_version,
            "metadata": {"resourceVersion": "1"},
            "items": chosen,
        }

    def _delete(self, raw_path: str, raw_body: bytes) -> tuple[int, dict[str, Any]]:
        split = urlsplit(raw_path)
        parts = split.path.strip("/").split("/")
        if not (len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods"):
            return 405, _status(405, "MethodNotAllowed", f"DELETE {split.path} is not served by this fake")
        namespace, name = parts[3], parts[5]
        try:
            options = json.loads(raw_body) if raw_body else {}
        except ValueError:
            options = {}
        grace = options.get("gracePeriodSeconds")
        if grace is None and "gracePeriodSeconds" in parse_qs(split.query):
            grace = int(parse_qs(split.query)["gracePeriodSeconds"][0])
        with self.lock:
            pods = self.pods.get(namespace, [])
            found = next((p for p in pods if p["metadata"]["name"] == name), None)
            if found is None:
                return 404, _status(404, "NotFound", f'pods "{name}" not found')
            pods.remove(found)
            self.deleted.append({"namespace": namespace, "name": name, "grace_period_s": grace})
        return 200, {"apiVersion": "v1", "kind": "Pod", **found}

    # ---- a kubeconfig pointing at this server ----------------------------------------------------

    def kubeconfig(self, path: Path, context: str = "kind-chaos-shop") -> Path:
        """Write a kubeconfig (JSON is valid YAML) whose context `context` points at this server. Its
        current context is a decoy, `decoy`, pointing at a closed port: a command that forgets
        `--context` fails instead of reaching this server."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": context, "cluster": {"server": self.url}},
                {"name": "decoy", "cluster": {"server": "http://127.0.0.1:1"}},
            ],
            "users": [{"name": "tester", "user": {"token": "fake-token-for-tests"}}],
            "contexts": [
                {"name": context, "context": {"cluster": context, "user": "tester"}},
                {"name": "decoy", "context": {"cluster": "decoy", "user": "tester"}},
            ],
            "current-context": "decoy",
        }
        path.write_text(json.dumps(config, indent=2))
        return path
