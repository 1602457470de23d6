"""The fault vocabulary, defined once: kinds, their parameters, valid ranges and the TTL bound.

Pure: no I/O, no clocks except the `now` callers pass in. The admin API, the fault controller and the CLI
all validate with `validate_fault_spec`, so a wrong fault is refused with the same message everywhere,
before anything is injected. Errors name the field and what is valid.

Process kinds (`kill`, `pause`, `restart`) are known names here so callers can route them to process
control (the supervisor, or chaostoolkit-kubernetes); a replica's admin API refuses them.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from sample_shop.basics import parse_iso, utc_iso
from sample_shop.kit.control import errors_body
from sample_shop.topology import SERVICES

TTL_RANGE_S = (1, 3600)
DEFAULT_TTL_S = 60
MAX_LATENCY_MS = 60_000

Target = Literal["inbound", "outbound", "resource", "database", "process"]


@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: Literal["int", "float", "str", "choice", "peer", "route"]
    help: str
    default: Any = None
    required: bool = False
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind in ("int", "float"):
            word = "an integer" if self.kind == "int" else "a number"
            return f"{word} between {self.lo:g} and {self.hi:g}"
        if self.kind == "choice":
            return f"one of {', '.join(self.choices)}"
        if self.kind == "peer":
            return "a dependency of the service"
        if self.kind == "route":
            return "a route template starting with / (e.g. /api/checkout)"
        return "a string"


@dataclass(frozen=True)
class KindSpec:
    name: str
    target: Target
    help: str
    params: tuple[ParamSpec, ...] = ()

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)


PROBABILITY = ParamSpec("probability", "float", "share of requests affected", 1.0, lo=0.0, hi=1.0)
ROUTE = ParamSpec("route", "route", "only requests to this route template (default: every route)")
PEER = ParamSpec("peer", "peer", "the dependency whose calls are affected", required=True)
LATENCY_PARAMS = (
    ParamSpec(
        "ms",
        "int",
        "added latency in ms (mean for normal, minimum for pareto)",
        required=True,
        lo=1,
        hi=MAX_LATENCY_MS,
    ),
    ParamSpec(
        "distribution",
        "choice",
        "fixed (+/- uniform jitter), normal (stddev = jitter_ms) or pareto",
        "fixed",
        choices=("fixed", "normal", "pareto"),
    ),
    ParamSpec(
        "jitter_ms",
        "int",
        "uniform jitter (fixed) or standard deviation (normal) in ms",
        0,
        lo=0,
        hi=MAX_LATENCY_MS,
    ),
    ParamSpec("alpha", "float", "pareto shape: smaller means a heavier tail", 2.0, lo=1.05, hi=10.0),
    PROBABILITY,
)
STATUS = ParamSpec("status", "int", "HTTP status answered (4xx or 5xx)", 500, lo=400, hi=599)

KINDS: dict[str, KindSpec] = {
    k.name: k
    for k in (
        KindSpec("latency", "inbound", "delay requests before they are served", (*LATENCY_PARAMS, ROUTE)),
        KindSpec(
            "error", "inbound", "answer requests with an HTTP error status", (STATUS, PROBABILITY, ROUTE)
        ),
        KindSpec(
            "hang",
            "inbound",
            "never answer until the fault ends (the caller's timeout decides)",
            (PROBABILITY, ROUTE),
        ),
        KindSpec("outbound-latency", "outbound", "delay calls to one dependency", (PEER, *LATENCY_PARAMS)),
        KindSpec(
            "outbound-error",
            "outbound",
            "calls to one dependency get an HTTP error without being sent",
            (
                PEER,
                ParamSpec("status", "int", "HTTP status seen by the caller", 503, lo=400, hi=599),
                PROBABILITY,
            ),
        ),
        KindSpec(
            "outbound-refused",
            "outbound",
            "calls to one dependency fail with connection refused",
            (PEER, PROBABILITY),
        ),
        KindSpec(
            "outbound-reset",
            "outbound",
            "calls to one dependency fail with a connection reset",
            (PEER, PROBABILITY),
        ),
        KindSpec(
            "cpu",
            "resource",
            "burn CPU in the replica's process (competing with its requests)",
            (
                ParamSpec("threads", "int", "busy threads", 1, lo=1, hi=4),
                ParamSpec("duty", "float", "share of each 100 ms a thread spins", 1.0, lo=0.05, hi=1.0),
            ),
        ),
        KindSpec(
            "memory",
            "resource",
            "leak memory at a rate up to a cap; released when the fault ends",
            (
                ParamSpec("rate_mb_s", "float", "MiB leaked per second", 10.0, lo=0.1, hi=256.0),
                ParamSpec("cap_mb", "int", "stop leaking at this many MiB", 256, lo=1, hi=2048),
            ),
        ),
        KindSpec(
            "db-slow",
            "database",
            "delay every database statement",
            (
                ParamSpec("ms", "int", "delay per statement in ms", required=True, lo=1, hi=30_000),
                PROBABILITY,
            ),
        ),
        KindSpec("db-unavailable", "database", "database statements fail", (PROBABILITY,)),
        # Process faults: done by process control (supervisor / Kubernetes), not by the replica itself.
        KindSpec("kill", "process", "SIGKILL the process; it is restarted like a crashed pod"),
        KindSpec("pause", "process", "SIGSTOP the process for ttl_s seconds, then SIGCONT"),
        KindSpec("restart", "process", "stop the process gracefully and start it again"),
    )
}
PROCESS_KINDS: tuple[str, ...] = tuple(k for k, s in KINDS.items() if s.target == "process")
REPLICA_KINDS: tuple[str, ...] = tuple(k for k, s in KINDS.items() if s.target != "process")
INBOUND_KINDS: tuple[str, ...] = tuple(k for k, s in KINDS.items() if s.target == "inbound")
OUTBOUND_KINDS: tuple[str, ...] = tuple(k for k, s in KINDS.items() if s.target == "outbound")
DATABASE_KINDS: tuple[str, ...] = tuple(k for k, s in KINDS.items() if s.target == "database")


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class FaultSpecError(ValueError):
    """A fault spec is invalid; `errors` lists every wrong field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors

    def to_dict(self) -> dict[str, list[dict[str, str]]]:
        return errors_body((e.field, e.message) for e in self.errors)


@dataclass(frozen=True)
class FaultSpec:
    kind: str
    params: dict[str, Any]  # complete: defaults filled in
    ttl_s: float

    @property
    def target(self) -> Target:
        return KINDS[self.kind].target

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": dict(self.params), "ttl_s": self.ttl_s}


@dataclass(frozen=True)
class Fault:
    """An injected fault: a spec with an identity and an absolute expiry (epoch seconds)."""

    id: str
    spec: FaultSpec
    created_at: float
    expires_at: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def params(self) -> dict[str, Any]:
        return self.spec.params

    def remaining_s(self, now: float) -> float:
        return max(0.0, self.expires_at - now)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        data = {
            "id": self.id,
            **self.spec.to_dict(),
            "created_at": utc_iso(self.created_at),
            "expires_at": utc_iso(self.expires_at),
        }
        if now is not None:
            data["remaining_s"] = round(self.remaining_s(now), 3)
        return data


def parse_time(value: Any) -> float:
    """An absolute time as epoch seconds (number) or ISO-8601 text; raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("must be epoch seconds or an ISO-8601 UTC time")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_iso(value)
        except ValueError:
            raise ValueError("must be epoch seconds or an ISO-8601 UTC time") from None
    raise ValueError("must be epoch seconds or an ISO-8601 UTC time")


def new_fault_id() -> str:
    return uuid.uuid4().hex[:12]


def _coerce_number(spec: ParamSpec, value: Any) -> float | int:
    """Numbers may come as JSON numbers or as text (the CLI's --param k=v)."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, str):
        value = value.strip()
        number = float(value) if spec.kind == "float" or "." in value or "e" in value.lower() else int(value)
    elif isinstance(value, int | float):
        number = value
    else:
        raise ValueError
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError
    if spec.kind == "int":
        if isinstance(number, float) and not number.is_integer():
            raise ValueError
        return int(number)
    return float(number)


def _check_param(
    spec: ParamSpec, value: Any, service: str | None, path: str
) -> tuple[Any, FieldError | None]:
    if spec.kind in ("int", "float"):
        try:
            number = _coerce_number(spec, value)
        except (ValueError, TypeError):
            return None, FieldError(path, f"must be {spec.describe()}, got {value!r}")
        assert spec.lo is not None and spec.hi is not None
        if not spec.lo <= number <= spec.hi:
            return None, FieldError(path, f"must be {spec.describe()}, got {value!r}")
        return number, None
    if not isinstance(value, str) or not value.strip():
        return None, FieldError(path, f"must be {spec.describe()}, got {value!r}")
    value = value.strip()
    if spec.kind == "choice" and value not in spec.choices:
        return None, FieldError(path, f"must be {spec.describe()}, got {value!r}")
    if spec.kind == "route" and (not value.startswith("/") or len(value) > 200):
        return None, FieldError(path, f"must be {spec.describe()}, got {value!r}")
    if spec.kind == "peer":
        if service is not None:
            deps = SERVICES[service].depends_on
            if not deps:
                return None, FieldError(
                    path,
                    f"service {service!r} calls no other service, so it has no "
                    "outbound edge; services with dependencies: "
                    + ", ".join(s for s, d in SERVICES.items() if d.depends_on),
                )
            if value not in deps:
                return None, FieldError(
                    path, f"{value!r} is not a dependency of {service!r}; valid: {', '.join(deps)}"
                )
        elif value not in SERVICES:
            return None, FieldError(path, f"{value!r} is not a service; valid: {', '.join(SERVICES)}")
    return value, None


def validate_fault_spec(data: Any, service: str | None = None, *, allow_process: bool = False) -> FaultSpec:
    """Validate `{"kind", "params", "ttl_s"}` for `service` (None: checks that need the service are relaxed).

    Returns the spec with defaults filled in; raises FaultSpecError listing every wrong field.
    """
    if service is not None and service not in SERVICES:
        raise FaultSpecError(
            [FieldError("service", f"unknown service {service!r}; valid: {', '.join(SERVICES)}")]
        )
    if not isinstance(data, dict):
        raise FaultSpecError([FieldError("body", 'must be a JSON object {"kind", "params", "ttl_s"}')])
    errors: list[FieldError] = []
    for key in sorted(set(data) - {"kind", "params", "ttl_s"}):
        errors.append(FieldError(key, "unknown field; valid: kind, params, ttl_s"))
    kind = data.get("kind")
    kind_spec = KINDS.get(kind) if isinstance(kind, str) else None
    if kind_spec is None:
        errors.append(FieldError("kind", f"unknown fault kind {kind!r}; valid: {', '.join(KINDS)}"))
    elif kind_spec.target == "process" and not allow_process:
        errors.append(
            FieldError(
                "kind",
                f"{kind!r} is a process fault: inject it through the control API "
                "(process control), not a replica's admin API",
            )
        )
    ttl_raw = data.get("ttl_s", DEFAULT_TTL_S)
    ttl: float = 0
    lo, hi = TTL_RANGE_S
    try:
        ttl = _coerce_number(ParamSpec("ttl_s", "float", ""), ttl_raw)
        if not lo <= ttl <= hi:
            raise ValueError
    except (ValueError, TypeError):
        errors.append(
            FieldError("ttl_s", f"must be a number of seconds between {lo} and {hi}, got {ttl_raw!r}")
        )
    params_raw = data.get("params", {})
    if params_raw is None:
        params_raw = {}
    if not isinstance(params_raw, dict):
        errors.append(FieldError("params", "must be an object of name: value"))
        params_raw = {}
    params: dict[str, Any] = {}
    if kind_spec is not None:
        names = [p.name for p in kind_spec.params]
        for key in sorted(set(params_raw) - set(names)):
            valid = ", ".join(names) if names else "none"
            errors.append(
                FieldError(f"params.{key}", f"unknown parameter for {kind_spec.name!r}; valid: {valid}")
            )
        for spec in kind_spec.params:
            if spec.name not in params_raw or params_raw[spec.name] is None:
                if spec.required:
                    errors.append(
                        FieldError(f"params.{spec.name}", f"required: {spec.help}; {spec.describe()}")
                    )
                elif spec.default is not None:
                    params[spec.name] = spec.default
                continue
            value, error = _check_param(spec, params_raw[spec.name], service, f"params.{spec.name}")
            if error is not None:
                errors.append(error)
            else:
                params[spec.name] = value
    if errors:
        raise FaultSpecError(errors)
    assert kind_spec is not None
    return FaultSpec(kind=kind_spec.name, params=params, ttl_s=float(ttl))


def validate_fault(data: Any, service: str | None, now: float) -> Fault:
    """Validate a complete fault as pushed by the controller (`PUT /faults`): a spec plus optional `id` and
    `expires_at`. The expiry must lie in the future and no further than the TTL bound."""
    if not isinstance(data, dict):
        raise FaultSpecError([FieldError("body", "must be a JSON object")])
    errors: list[FieldError] = []
    fault_id = data.get("id") or new_fault_id()
    if (
        not isinstance(fault_id, str)
        or not 1 <= len(fault_id) <= 64
        or not fault_id.replace("-", "").isalnum()
    ):
        errors.append(FieldError("id", "must be 1..64 letters, digits or dashes"))
    spec_part = {k: v for k, v in data.items() if k not in ("id", "expires_at", "created_at", "remaining_s")}
    spec: FaultSpec | None = None
    try:
        spec = validate_fault_spec(spec_part, service)
    except FaultSpecError as exc:
        errors.extend(exc.errors)
    expires_at = now + (spec.ttl_s if spec else 0)
    if data.get("expires_at") is not None:
        try:
            expires_at = parse_time(data["expires_at"])
        except ValueError as exc:
            errors.append(FieldError("expires_at", str(exc)))
        else:
            if not now < expires_at <= now + TTL_RANGE_S[1]:
                errors.append(
                    FieldError(
                        "expires_at", f"must lie in the future and at most {TTL_RANGE_S[1]} s from now"
                    )
                )
    if errors:
        raise FaultSpecError(errors)
    assert spec is not None
    return Fault(id=fault_id, spec=spec, created_at=now, expires_at=expires_at)
