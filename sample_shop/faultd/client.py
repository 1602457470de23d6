"""The one client of the control API (faults, policy, phases), used by `testbed fault` and by the Chaos
Toolkit extension. It reads where the API is and its token from the stack descriptor, and turns every
failure into `ControlApiError` with a message that says what to do."""

from __future__ import annotations

from typing import Any

import httpx

from sample_shop.topology import StackDescriptor

DEFAULT_TIMEOUT_S = 15.0  # a clear pushes to every replica; a CPU-hogged one answers slowly


class ControlApiError(RuntimeError):
    """The control API refused a request (status >= 400) or could not be reached (status 0)."""

    def __init__(self, status: int, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or []


class ControlClient:
    def __init__(self, stack: StackDescriptor, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.stack = stack
        self.url = stack.control_url
        try:
            token = stack.token()
        except OSError as exc:
            raise ControlApiError(
                0,
                f"cannot read the stack's token {stack.token_file} ({exc.strerror}); is the stack still up? "
                "`testbed status` says",
            ) from None
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            trust_env=False,  # loopback or a kind NodePort: never through a proxy
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ControlApiError(
                0,
                f"the control API at {self.url} is unreachable ({type(exc).__name__}: {exc}); "
                "is the stack up? `testbed status` says, `testbed up` starts it",
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            errors = body.get("errors", []) if isinstance(body, dict) else []
            detail = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in errors) or response.text[:300]
            raise ControlApiError(response.status_code, f"{method} {path}: {detail}", errors)
        if not isinstance(body, dict):
            raise ControlApiError(response.status_code, f"{method} {path}: answer is not a JSON object")
        return body

    # ---- faults ----

    def inject(
        self,
        service: str,
        kind: str,
        params: dict[str, Any] | None = None,
        ttl_s: float | None = None,
        replica: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": kind, "params": params or {}}
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        query = {"replica": replica} if replica is not None else None
        return self._call("POST", f"/faults/{service}", json=body, params=query)

    def faults(self) -> dict[str, Any]:
        return self._call("GET", "/faults")

    def clear(self, service: str | None = None, fault_id: str | None = None) -> dict[str, Any]:
        path = "/faults" + (f"/{service}" if service else "") + (f"/{fault_id}" if fault_id else "")
        return self._call("DELETE", path)

    # ---- client policy ----

    def set_policy(
        self, service: str, profile: str, overrides: dict[str, Any] | None, ttl_s: float
    ) -> dict[str, Any]:
        body = {"profile": profile, "overrides": overrides or {}, "ttl_s": ttl_s}
        return self._call("PUT", f"/policy/{service}", json=body)

    def reset_policy(self, service: str | None = None) -> dict[str, Any]:
        return self._call("DELETE", "/policy" + (f"/{service}" if service else ""))

    def policies(self) -> dict[str, Any]:
        return self._call("GET", "/policy")

    # ---- phases and processes ----

    def phase(self, experiment: str, phase: str, state: str) -> dict[str, Any]:
        return self._call("POST", "/phases", json={"experiment": experiment, "phase": phase, "state": state})

    def processes(self) -> dict[str, Any]:
        return self._call("GET", "/processes")

    def functions(self) -> dict[str, Any]:
        """The stack's functions (local supervisor): instances, cold starts, backlog."""
        return self._call("GET", "/functions")
