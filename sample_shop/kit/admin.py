"""The per-replica admin (fault) API of docs/architecture.md, served on the replica's second socket.

Every request needs `Authorization: Bearer <token>` (constant-time compare): 401 when missing or
malformed, 403 when wrong. Bodies are validated with the pure fault spec and policy validators; a bad body
answers 422 `{"errors": [{"field", "message"}]}` and changes nothing.

    GET /faults                  {"faults": [Fault]}
    PUT /faults                  {"faults": [Fault]}   replace the full set (what the controller pushes)
    POST /faults                 FaultSpec -> 201 Fault
    DELETE /faults               clear all;  DELETE /faults/{id}: one (404 when unknown)
    GET|PUT|DELETE /policy       outbound-client policy override {"profile", "overrides", "ttl_s"}
    DELETE /breakers             close every circuit breaker and forget replica ejections
    GET /status                  service, replica, breakers, faults
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from sample_shop.kit.asgi import send_json
from sample_shop.kit.faults import FaultRegistry
from sample_shop.kit.faultspec import Fault, FaultSpecError, FieldError, validate_fault, validate_fault_spec
from sample_shop.kit.policy import PolicyStore, validate_policy_override

MAX_BODY_BYTES = 256 * 1024
Scope = dict[str, Any]
Handler = Callable[[Any], Awaitable[tuple[int, dict[str, Any]]]]


def _errors(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"errors": [{"field": f, "message": m} for f, m in pairs]}


class AdminApp:
    def __init__(
        self,
        service: str,
        replica: int,
        token: str,
        faults: FaultRegistry,
        policies: PolicyStore,
        status: Callable[[], dict[str, Any]] | None = None,
        reset_breakers: Callable[[], None] | None = None,
    ) -> None:
        self.service = service
        self.replica = replica
        self._token = token.encode()
        self.faults = faults
        self.policies = policies
        self.status = status
        self.reset_breakers = reset_breakers

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        status, body, headers = await self._handle(scope, receive)
        await send_json(send, status, body, headers)

    def _authorized(self, scope: Scope) -> tuple[int, dict[str, Any]] | None:
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if header is None:
            return 401, _errors(
                (
                    "authorization",
                    "missing: send `Authorization: Bearer <token>` (the stack's token file, <state>/token)",
                )
            )
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return 401, _errors(("authorization", "malformed: expected `Bearer <token>`"))
        if not hmac.compare_digest(token.strip(), self._token):
            return 403, _errors(("authorization", "wrong token"))
        return None

    async def _read_json(self, receive: Any) -> tuple[Any, dict[str, Any] | None]:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, _errors(("body", "client disconnected"))
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None, _errors(("body", f"larger than {MAX_BODY_BYTES} bytes"))
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        if not raw.strip():
            return None, _errors(("body", "empty: a JSON object is required"))
        try:
            return json.loads(raw), None
        except ValueError as exc:
            return None, _errors(("body", f"invalid JSON: {exc}"))

    async def _handle(
        self, scope: Scope, receive: Any
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        denied = self._authorized(scope)
        if denied is not None:
            return denied[0], denied[1], [(b"www-authenticate", b"Bearer")]
        method, path = scope["method"], scope["path"].rstrip("/") or "/"
        self.faults.expire_due()
        now = self.faults.clock()
        if path == "/faults":
            if method == "GET":
                return 200, self._faults_body(now), []
            if method == "DELETE":
                cleared = self.faults.clear()
                return 200, {"cleared": [f.id for f in cleared], **self._faults_body(now)}, []
            if method in ("POST", "PUT"):
                data, error = await self._read_json(receive)
                if error is not None:
                    return 422, error, []
                if method == "POST":
                    return self._post_fault(data, now)
                return self._put_faults(data, now)
            return 405, _errors(("method", "allowed: GET, POST, PUT, DELETE")), []
        if path.startswith("/faults/"):
            fault_id = path[len("/faults/") :]
            if method == "GET":
                fault = self.faults.get(fault_id)
                if fault is None:
                    return 404, _errors(("id", f"no active fault {fault_id!r}")), []
                return 200, fault.to_dict(now), []
            if method == "DELETE":
                fault = self.faults.remove(fault_id)
                if fault is None:
                    return 404, _errors(("id", f"no active fault {fault_id!r}")), []
                return 200, {"removed": fault.to_dict(now)}, []
            return 405, _errors(("method", "allowed: GET, DELETE")), []
        if path == "/policy":
            if method == "GET":
                return 200, self.policies.describe(), []
            if method == "DELETE":
                self.policies.clear()
                return 200, self.policies.describe(), []
            if method == "PUT":
                data, error = await self._read_json(receive)
                if error is not None:
                    return 422, error, []
                policy, ttl_s, errors = validate_policy_override(data)
                if policy is None:
                    return 422, {"errors": errors}, []
                self.policies.set_override(policy, ttl_s)
                return 200, self.policies.describe(), []
            return 405, _errors(("method", "allowed: GET, PUT, DELETE")), []
        if path == "/breakers" and method == "DELETE":
            if self.reset_breakers is not None:
                self.reset_breakers()
            return (
                200,
                {"service": self.service, "replica": self.replica, **(self.status() if self.status else {})},
                [],
            )
        if path == "/status" and method == "GET":
            return (
                200,
                {
                    "service": self.service,
                    "replica": self.replica,
                    **(self.status() if self.status else {}),
                    **self._faults_body(now),
                },
                [],
            )
        return (
            404,
            _errors(
                (
                    "path",
                    "unknown admin path "
                    + repr(path)
                    + "; valid: /faults, /faults/{id}, /policy, /breakers, /status",
                )
            ),
            [],
        )

    def _faults_body(self, now: float) -> dict[str, Any]:
        return {
            "service": self.service,
            "replica": self.replica,
            "faults": [f.to_dict(now) for f in self.faults.active()],
        }

    def _post_fault(self, data: Any, now: float) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        try:
            spec = validate_fault_spec(data, self.service)
        except FaultSpecError as exc:
            return 422, exc.to_dict(), []
        fault = self.faults.add(spec)
        return 201, fault.to_dict(now), []

    def _put_faults(self, data: Any, now: float) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        if not isinstance(data, dict) or not isinstance(data.get("faults"), list):
            return 422, _errors(("faults", 'required: {"faults": [fault, ...]} (an empty list clears)')), []
        faults: list[Fault] = []
        errors: list[FieldError] = []
        for index, item in enumerate(data["faults"]):
            try:
                faults.append(validate_fault(item, self.service, now))
            except FaultSpecError as exc:
                errors.extend(FieldError(f"faults[{index}].{e.field}", e.message) for e in exc.errors)
        ids = [f.id for f in faults]
        if len(set(ids)) != len(ids):
            errors.append(FieldError("faults", "fault ids must be unique"))
        if errors:
            return 422, FaultSpecError(errors).to_dict(), []
        self.faults.replace(faults)
        return 200, self._faults_body(now), []
