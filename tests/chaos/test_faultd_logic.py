"""The fault controller's pure parts, without servers: the desired state and what each replica must carry,
the push body a replica's admin API accepts, pods -> replicas on kind, configuration errors, and the CLI's
parameter parsing and help text."""

from __future__ import annotations

from typing import Any

import pytest

from sample_shop.faultd.desired import DesiredState, faults_version, policy_version, push_body
from sample_shop.faultd.discovery import KubernetesSettings, replicas_from_pods
from sample_shop.kit.faultspec import KINDS, Fault, validate_fault, validate_fault_spec
from sample_shop.kit.policy import validate_policy_override
from testbed.commands.fault import describe_kinds, parse_params

NOW = 1_800_000_000.0


def _fault(
    fault_id: str, kind: str = "latency", params: dict[str, Any] | None = None, ttl: float = 30
) -> Fault:
    spec = validate_fault_spec({"kind": kind, "params": params or {"ms": 100}, "ttl_s": ttl}, "catalog")
    return Fault(fault_id, spec, NOW, NOW + ttl)


def test_a_replica_carries_the_service_wide_faults_and_its_own() -> None:
    state = DesiredState()
    state.add_fault("catalog", None, _fault("all"))
    state.add_fault("catalog", 1, _fault("one"))
    state.add_fault("payment", None, _fault("other"))
    assert [f.id for f in state.faults_for("catalog", 0, NOW)] == ["all"]
    assert [f.id for f in state.faults_for("catalog", 1, NOW)] == ["all", "one"]
    assert [f.id for f in state.faults_for("cart", 0, NOW)] == []


def test_expired_faults_are_forgotten_and_removal_is_by_service_or_id() -> None:
    state = DesiredState()
    state.add_fault("catalog", None, _fault("short", ttl=5))
    state.add_fault("catalog", None, _fault("long", ttl=60))
    state.add_fault("payment", None, _fault("pay", ttl=60))
    assert [f.fault.id for f in state.expire(NOW + 10)] == ["short"]
    assert [f.fault.id for f in state.remove_faults("catalog", "long")] == ["long"]
    assert [f.fault.id for f in state.remove_faults("catalog")] == []
    assert [f.fault.id for f in state.remove_faults()] == ["pay"]


def test_the_version_changes_with_the_set_and_expiry_only() -> None:
    a, b = _fault("a"), _fault("b")
    assert faults_version([a, b]) == faults_version([b, a])
    assert faults_version([a]) != faults_version([a, b])
    later = Fault("a", a.spec, a.created_at, a.expires_at + 1)
    assert faults_version([a]) != faults_version([later])
    assert faults_version([]) == faults_version([])


def test_the_push_body_is_what_a_replica_accepts() -> None:
    """The controller pushes full faults (id, absolute expiry); the replica validates them with the same
    vocabulary (kit.faultspec.validate_fault, used by its admin PUT /faults)."""
    faults = [_fault("a"), _fault("b", "error", {"status": 503, "probability": 0.5})]
    body = push_body(faults)
    accepted = [validate_fault(item, "catalog", NOW + 1) for item in body["faults"]]
    assert [(f.id, f.kind, f.expires_at, f.params) for f in accepted] == [
        (f.id, f.kind, f.expires_at, f.params) for f in faults
    ]


def test_a_policy_is_pushed_with_its_remaining_time() -> None:
    body = {"profile": "naive", "overrides": {"retries": 1}}
    policy, _, errors = validate_policy_override({**body, "ttl_s": 60})
    assert policy is not None and not errors
    state = DesiredState()
    state.set_policy("orders", body, policy, NOW + 60)
    desired = state.policy_for("orders", NOW + 20)
    assert desired is not None and desired.push_body(NOW + 20) == {**body, "ttl_s": 40.0}
    assert policy_version(desired) != policy_version(None)
    assert state.policy_for("orders", NOW + 61) is None
    state.expire(NOW + 61)
    assert state.policies == {}


def _pod(name: str, service: str, created: str, ip: str | None = "10.0.0.1", **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "creationTimestamp": created,
            "labels": {"app.kubernetes.io/name": service},
            **extra.get("meta", {}),
        },
        "spec": {
            "containers": [
                {
                    "ports": [
                        {"name": "http", "containerPort": 8082},
                        {"name": "admin", "containerPort": 18082},
                    ]
                }
            ]
        },
        "status": {
            "phase": extra.get("phase", "Running"),
            "podIP": ip,
            "containerStatuses": [{"restartCount": extra.get("restarts", 0)}],
        },
    }


def test_pods_become_replicas_in_creation_order() -> None:
    pods = [
        _pod("catalog-b", "catalog", "2026-01-01T00:00:02Z", "10.0.0.2"),
        _pod("catalog-a", "catalog", "2026-01-01T00:00:01Z", "10.0.0.1"),
        _pod("gone", "catalog", "2026-01-01T00:00:03Z", meta={"deletionTimestamp": "2026-01-01T00:01:00Z"}),
        _pod("new", "catalog", "2026-01-01T00:00:04Z", None, phase="Pending"),
        _pod("faultd", "faultd", "2026-01-01T00:00:00Z"),  # not a shop service
    ]
    replicas = replicas_from_pods(pods)
    assert [(r.service, r.replica, r.admin_url, r.running) for r in replicas] == [
        ("catalog", 0, "http://10.0.0.1:18082", True),
        ("catalog", 1, "http://10.0.0.2:18082", True),
        ("catalog", 2, "http://10.0.0.1:18082", False),
        ("catalog", 3, "", False),
    ]


def test_a_restarted_container_is_a_new_incarnation() -> None:
    before = replicas_from_pods([_pod("p", "payment", "t", restarts=0)])[0]
    after = replicas_from_pods([_pod("p", "payment", "t", restarts=1)])[0]
    assert before.incarnation != after.incarnation


def test_kubernetes_settings_say_what_is_missing(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="KUBERNETES_SERVICE_HOST"):
        KubernetesSettings.from_env({"FAULTD_NAMESPACE": "shop"})
    settings = KubernetesSettings.from_env(
        {"FAULTD_KUBERNETES_API": "http://127.0.0.1:1/", "FAULTD_NAMESPACE": "shop"}
    )
    assert (settings.api_url, settings.namespace, settings.ca_file) == ("http://127.0.0.1:1", "shop", None)
    assert settings.selector == "app.kubernetes.io/component=shop-service"


def test_cli_params_parse_and_refuse_clearly() -> None:
    assert parse_params(["ms=200", "distribution=normal"]) == {"ms": "200", "distribution": "normal"}
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        parse_params(["ms"])
    with pytest.raises(ValueError, match="given twice"):
        parse_params(["ms=1", "ms=2"])


def test_cli_help_lists_every_kind_and_parameter() -> None:
    text = describe_kinds()
    for spec in KINDS.values():
        assert f"{spec.name} ({spec.target})" in text
        for param in spec.params:
            assert f"--param {param.name}=" in text
