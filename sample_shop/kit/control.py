"""The wire rules of the shop's control plane, written once for the two APIs that speak them: the per-replica
admin API (`kit/admin.py`) and the stack's control API (`sample_shop/faultd/api.py`).

- Every request carries `Authorization: Bearer <token>` (constant-time compare): 401 when it is missing or
  malformed, 403 when the token is wrong.
- Every refusal is `{"errors": [{"field": ..., "message": ...}, ...]}` (`ControlError.to_dict`).
- A body is one JSON value of bounded size.

Pure functions and one exception: no web framework here, so the raw-ASGI admin API stays light.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from typing import Any

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}  # sent with every 401


def errors_body(pairs: Iterable[tuple[str, str]]) -> dict[str, list[dict[str, str]]]:
    """The error envelope: `{"errors": [{"field", "message"}, ...]}`."""
    return {"errors": [{"field": field, "message": message} for field, message in pairs]}


class ControlError(Exception):
    """A request the control plane refuses; `status` is the HTTP status, `field` what is wrong (the first of
    `errors`)."""

    def __init__(self, status: int, field: str, message: str, more: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message
        self.errors = [(field, message), *more]

    def to_dict(self) -> dict[str, list[dict[str, str]]]:
        return errors_body(self.errors)


def check_bearer(header: str | bytes | None, token: str, where: str) -> ControlError | None:
    """None when `header` (the Authorization header's value) carries `token`; else the refusal to send.
    `where` tells the caller where the token is (a file path, or a Kubernetes Secret)."""
    if header is None or not header.strip():
        return ControlError(401, "authorization", f"missing: send 'Authorization: Bearer <token>' ({where})")
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    scheme, _, given = text.strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return ControlError(401, "authorization", "malformed: expected 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(given.strip().encode("latin-1", "replace"), token.encode()):
        return ControlError(403, "authorization", f"wrong token: send the one in {where}")
    return None


def parse_json_body(raw: bytes, max_bytes: int, example: str) -> Any:
    """The request body as JSON; ControlError (413 too large, 422 empty or not JSON) otherwise. `example`
    shows in the message for an empty body."""
    if len(raw) > max_bytes:
        raise ControlError(413, "body", f"larger than {max_bytes} bytes")
    if not raw.strip():
        raise ControlError(422, "body", f"empty: send a JSON object such as {example}")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ControlError(422, "body", f"invalid JSON: {exc}") from None
