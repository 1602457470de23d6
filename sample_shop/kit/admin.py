"""The per-replica admin (fault) API of docs/architecture.md, served on the replica's second socket.

Raw ASGI (it runs in every replica: no framework on that socket), with the control plane's wire rules from
kit/control.py: `Authorization: Bearer <token>` on every request (401 when missing or malformed, 403 when
wrong), bodies validated with the pure fault spec and policy validators, and a refusal answered
`{"errors": [{"field", "message"}]}` that changes nothing. The routes are the table `AdminApp.routes`:

    GET /faults                  {"faults": [Fault]}
    PUT /faults                  {"faults": [Fault]}   replace the full set (what the controller pushes)
    POST /faults                 FaultSpec -> 201 Fault
    DELETE /faults               clear all;  DELETE /faults/{id}: one (404 when unknown)
    GET|PUT|DELETE /policy       outbound-client policy override {"profile", "overrides", "ttl_s"}
    DELETE /breakers             close every circuit breaker and forget replica ejections
    GET /status                  service, replica, breakers, faults
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sample_shop.kit.asgi import send_json
from sample_shop.kit.control import BEARER_CHALLENGE, ControlError, check_bearer, parse_json_body
from sample_shop.kit.faults import FaultRegistry
from sample_shop.kit.faultspec import Fault, FaultSpecError, FieldError, validate_fault, validate_fault_spec
from sample_shop.kit.policy import PolicyStore, validate_policy_override

MAX_BODY_BYTES = 256 * 1024
TOKEN_HINT = "the stack's token file, <state>/token"
Scope = dict[str, Any]
Answer = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class AdminRequest:
    """What a route handler gets: the `{id}` of /faults/{id} (else ""), the JSON body of a PUT/POST, and the
    registry clock's now."""

    path_id: str
    body: Any
    now: float


Handler = Callable[[AdminRequest], Answer]


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
        self._token = token
        self.faults = faults
        self.policies = policies
        self.status = status
        self.reset_breakers = reset_breakers
        # path -> method -> handler; "/faults/{id}" matches any /faults/<id>
        self.routes: dict[str, dict[str, Handler]] = {
            "/faults": {
                "GET": lambda r: (200, self._faults_body(r.now)),
                "POST": self._post_fault,
                "PUT": self._put_faults,
                "DELETE": self._clear_faults,
            },
            "/faults/{id}": {"GET": self._get_fault, "DELETE": self._remove_fault},
            "/policy": {"GET": self._get_policy, "PUT": self._put_policy, "DELETE": self._clear_policy},
            "/breakers": {"DELETE": self._reset_breakers},
            "/status": {"GET": self._status},
        }

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        try:
            status, body = await self._handle(scope, receive)
        except ControlError as refusal:
            challenge = _ascii(BEARER_CHALLENGE) if refusal.status == 401 else []
            await send_json(send, refusal.status, refusal.to_dict(), challenge)
            return
        await send_json(send, status, body)

    async def _handle(self, scope: Scope, receive: Any) -> Answer:
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        refusal = check_bearer(header, self._token, TOKEN_HINT)
        if refusal is not None:
            raise refusal
        path = scope["path"].rstrip("/") or "/"
        route, path_id = path, ""
        if path.startswith("/faults/"):
            route, path_id = "/faults/{id}", path[len("/faults/") :]
        methods = self.routes.get(route)
        if methods is None:
            valid = ", ".join(self.routes)
            raise ControlError(404, "path", f"unknown admin path {path!r}; valid: {valid}")
        handler = methods.get(scope["method"])
        if handler is None:
            raise ControlError(405, "method", f"allowed: {', '.join(methods)}")
        body = None
        if scope["method"] in ("POST", "PUT"):
            body = parse_json_body(await _read_body(receive), MAX_BODY_BYTES, '{"faults": []}')
        self.faults.expire_due()
        return handler(AdminRequest(path_id, body, self.faults.clock()))

    # ---- handlers --------------------------------------------------------------------------------

    def _clear_faults(self, request: AdminRequest) -> Answer:
        cleared = self.faults.clear()
        return 200, {"cleared": [f.id for f in cleared], **self._faults_body(request.now)}

    def _get_fault(self, request: AdminRequest) -> Answer:
        fault = self.faults.get(request.path_id)
        if fault is None:
            raise ControlError(404, "id", f"no active fault {request.path_id!r}")
        return 200, fault.to_dict(request.now)

    def _remove_fault(self, request: AdminRequest) -> Answer:
        fault = self.faults.remove(request.path_id)
        if fault is None:
            raise ControlError(404, "id", f"no active fault {request.path_id!r}")
        return 200, {"removed": fault.to_dict(request.now)}

    def _get_policy(self, _request: AdminRequest) -> Answer:
        return 200, self.policies.describe()

    def _put_policy(self, request: AdminRequest) -> Answer:
        policy, ttl_s, errors = validate_policy_override(request.body)
        if policy is None:
            return 422, {"errors": errors}
        self.policies.set_override(policy, ttl_s)
        return 200, self.policies.describe()

    def _clear_policy(self, _request: AdminRequest) -> Answer:
        self.policies.clear()
        return 200, self.policies.describe()

    def _reset_breakers(self, _request: AdminRequest) -> Answer:
        if self.reset_breakers is not None:
            self.reset_breakers()
        return 200, {
            "service": self.service,
            "replica": self.replica,
            **(self.status() if self.status else {}),
        }

    def _status(self, request: AdminRequest) -> Answer:
        return 200, {
            "service": self.service,
            "replica": self.replica,
            **(self.status() if self.status else {}),
            **self._faults_body(request.now),
        }

    def _faults_body(self, now: float) -> dict[str, Any]:
        return {
            "service": self.service,
            "replica": self.replica,
            "faults": [f.to_dict(now) for f in self.faults.active()],
        }

    def _post_fault(self, request: AdminRequest) -> Answer:
        try:
            spec = validate_fault_spec(request.body, self.service)
        except FaultSpecError as exc:
            return 422, exc.to_dict()
        fault = self.faults.add(spec)
        return 201, fault.to_dict(request.now)

    def _put_faults(self, request: AdminRequest) -> Answer:
        data, now = request.body, request.now
        if not isinstance(data, dict) or not isinstance(data.get("faults"), list):
            raise ControlError(422, "faults", 'required: {"faults": [fault, ...]} (an empty list clears)')
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
            return 422, FaultSpecError(errors).to_dict()
        self.faults.replace(faults)
        return 200, self._faults_body(now)


async def _read_body(receive: Any) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ControlError(400, "body", "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:  # stop reading: parse_json_body refuses it by its size
            chunks.append(chunk)
            break
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _ascii(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in headers.items()]
