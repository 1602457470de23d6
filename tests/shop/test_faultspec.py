"""Fault spec validation: every kind, defaults, ranges, peers, TTL bounds, and messages naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from sample_shop.kit.faultspec import (
    DEFAULT_TTL_S,
    KINDS,
    PROCESS_KINDS,
    FaultSpecError,
    validate_fault,
    validate_fault_spec,
)


def errors_of(data: Any, service: str | None = "orders", **kw: Any) -> dict[str, str]:
    with pytest.raises(FaultSpecError) as info:
        validate_fault_spec(data, service, **kw)
    return {e.field: e.message for e in info.value.errors}


VALID = {
    "latency": {"ms": 200},
    "error": {},
    "hang": {},
    "outbound-latency": {"peer": "payment", "ms": 300, "distribution": "pareto"},
    "outbound-error": {"peer": "payment"},
    "outbound-refused": {"peer": "catalog"},
    "outbound-reset": {"peer": "cart", "probability": 0.5},
    "cpu": {"threads": 2, "duty": 0.5},
    "memory": {"rate_mb_s": 5, "cap_mb": 64},
    "db-slow": {"ms": 50},
    "db-unavailable": {},
}


@pytest.mark.parametrize("kind", sorted(VALID))
def test_every_replica_kind_validates_with_defaults(kind: str) -> None:
    spec = validate_fault_spec({"kind": kind, "params": VALID[kind], "ttl_s": 30}, "orders")
    assert spec.kind == kind and spec.ttl_s == 30
    for param in KINDS[kind].params:  # defaults are filled in, so the registry never guesses
        if param.default is not None:
            assert param.name in spec.params


def test_every_kind_is_covered_by_this_test() -> None:
    assert set(VALID) | set(PROCESS_KINDS) == set(KINDS)


def test_defaults_ttl_and_probability() -> None:
    spec = validate_fault_spec({"kind": "error"}, "payment")
    assert spec.ttl_s == DEFAULT_TTL_S
    assert spec.params == {"status": 500, "probability": 1.0}


def test_unknown_kind_lists_valid_kinds() -> None:
    errors = errors_of({"kind": "explode"})
    assert "unknown fault kind 'explode'" in errors["kind"] and "latency" in errors["kind"]


def test_out_of_range_values_name_field_and_range() -> None:
    errors = errors_of({"kind": "latency", "params": {"ms": 0, "probability": 1.5}, "ttl_s": 7200})
    assert errors["params.ms"] == "must be an integer between 1 and 60000, got 0"
    assert "between 0 and 1" in errors["params.probability"]
    assert "between 1 and 3600" in errors["ttl_s"]


def test_required_param_missing_and_unknown_param() -> None:
    errors = errors_of({"kind": "db-slow", "params": {"delay": 5}})
    assert errors["params.ms"].startswith("required")
    assert "unknown parameter" in errors["params.delay"] and "ms, probability" in errors["params.delay"]


def test_peer_must_be_a_real_dependency_of_the_service() -> None:
    errors = errors_of({"kind": "outbound-latency", "params": {"peer": "users", "ms": 10}}, "orders")
    assert "'users' is not a dependency of 'orders'" in errors["params.peer"]
    assert "cart, catalog, payment" in errors["params.peer"]
    errors = errors_of({"kind": "outbound-error", "params": {"peer": "catalog"}}, "payment")
    assert "calls no other service" in errors["params.peer"]
    errors = errors_of({"kind": "outbound-error", "params": {}}, "orders")
    assert errors["params.peer"].startswith("required")


def test_peer_without_service_must_be_a_service() -> None:
    assert (
        validate_fault_spec({"kind": "outbound-refused", "params": {"peer": "payment"}}).params["peer"]
        == "payment"
    )
    assert (
        "is not a service"
        in errors_of({"kind": "outbound-refused", "params": {"peer": "nope"}}, None)["params.peer"]
    )


def test_cli_style_text_numbers_are_accepted_but_not_garbage() -> None:
    spec = validate_fault_spec(
        {"kind": "latency", "params": {"ms": "250", "probability": "0.5"}, "ttl_s": "20"}
    )
    assert spec.params["ms"] == 250 and spec.params["probability"] == 0.5 and spec.ttl_s == 20
    assert "got 'fast'" in errors_of({"kind": "latency", "params": {"ms": "fast"}})["params.ms"]
    assert "integer" in errors_of({"kind": "latency", "params": {"ms": 2.5}})["params.ms"]
    assert "params.ms" in errors_of({"kind": "latency", "params": {"ms": True}})
    assert "ttl_s" in errors_of({"kind": "error", "ttl_s": float("nan")})


def test_choices_routes_and_body_shape() -> None:
    assert (
        "one of fixed, normal, pareto"
        in errors_of({"kind": "latency", "params": {"ms": 5, "distribution": "zipf"}})["params.distribution"]
    )
    assert (
        "route template" in errors_of({"kind": "error", "params": {"route": "api/checkout"}})["params.route"]
    )
    assert errors_of([1, 2]) == {"body": 'must be a JSON object {"kind", "params", "ttl_s"}'}
    assert "unknown field" in errors_of({"kind": "error", "ttl": 5})["ttl"]
    assert errors_of({"kind": "error", "params": [1]})["params"] == "must be an object of name: value"


def test_process_kinds_are_known_but_refused_by_replicas() -> None:
    assert set(PROCESS_KINDS) == {"kill", "pause", "restart"}
    assert "process fault" in errors_of({"kind": "kill"})["kind"]
    assert validate_fault_spec({"kind": "pause", "ttl_s": 5}, "orders", allow_process=True).kind == "pause"


def test_unknown_service_is_refused() -> None:
    assert "unknown service 'shop'" in errors_of({"kind": "error"}, "shop")["service"]


def test_validate_fault_with_expiry_from_controller() -> None:
    now = 1_000_000.0
    fault = validate_fault({"id": "abc-123", "kind": "error", "expires_at": now + 30}, "catalog", now)
    assert fault.id == "abc-123" and fault.expires_at == now + 30
    iso = validate_fault({"kind": "error", "expires_at": "1970-01-12T13:47:10Z"}, "catalog", now)
    assert iso.expires_at == 1_000_030.0
    with pytest.raises(FaultSpecError) as info:
        validate_fault({"id": "x y", "kind": "error", "expires_at": now - 1}, "catalog", now)
    assert {e.field for e in info.value.errors} == {"id", "expires_at"}
    with pytest.raises(FaultSpecError):
        validate_fault({"kind": "error", "expires_at": now + 7200}, "catalog", now)  # beyond the TTL bound
