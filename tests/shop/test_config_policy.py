"""The env contract loader and the outbound-client policy: defaults, overrides, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sample_shop import topology
from sample_shop.kit.config import DEFAULT_TRACE_SAMPLE_RATIO, ConfigError, load_service_config
from sample_shop.kit.policy import PROFILE_DEFAULTS, PolicyStore, policy_from_env, validate_policy_override

BASE = {"SHOP_ADMIN_TOKEN": "t", "SHOP_JWT_SECRET": "s"}


def test_defaults_follow_the_env_contract(tmp_path: Path) -> None:
    config = load_service_config("orders", {**BASE, "SHOP_STATE_DIR": str(tmp_path)})
    offset = topology.port_offset()
    assert config.port == topology.app_port("orders", 0, offset)
    assert config.admin_port == config.port + topology.ADMIN_PORT_OFFSET
    assert config.host == config.admin_host == "127.0.0.1"
    assert config.database_url == f"sqlite:///{tmp_path}/data/orders.db"
    assert set(config.upstreams) == set(topology.SERVICES["orders"].depends_on)
    assert config.upstreams["payment"] == (f"http://127.0.0.1:{topology.app_port('payment', 0, offset)}",)
    assert config.telemetry and config.trace_sample_ratio == DEFAULT_TRACE_SAMPLE_RATIO
    assert config.client_policy == PROFILE_DEFAULTS["resilient"]
    assert config.traces_file == tmp_path / "traces" / "orders-0.jsonl"


def test_replica_ports_upstreams_and_token_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("from-file\n")
    env = {
        "SHOP_JWT_SECRET": "s",
        "SHOP_ADMIN_TOKEN_FILE": str(token),
        "SHOP_REPLICA": "2",
        "SHOP_UPSTREAM_CATALOG": "http://127.0.0.1:9001, http://127.0.0.1:9002/",
    }
    config = load_service_config("cart", env)
    assert config.replica == 2 and config.port == topology.app_port("cart", 2, topology.port_offset())
    assert config.admin_token == "from-file"
    assert config.upstreams["catalog"] == ("http://127.0.0.1:9001", "http://127.0.0.1:9002")
    assert load_service_config("payment", {**BASE}).database_url is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SHOP_JWT_SECRET": "s"}, "SHOP_ADMIN_TOKEN or SHOP_ADMIN_TOKEN_FILE must be set"),
        ({"SHOP_ADMIN_TOKEN": "t"}, "SHOP_JWT_SECRET is required"),
        ({**BASE, "SHOP_REPLICA": "9"}, "SHOP_REPLICA='9': must be an integer between 0 and 4"),
        ({**BASE, "SHOP_PORT": "http"}, "SHOP_PORT='http': must be an integer"),
        ({**BASE, "SHOP_TELEMETRY": "maybe"}, "SHOP_TELEMETRY='maybe': must be on or off"),
        (
            {**BASE, "SHOP_TRACE_SAMPLE_RATIO": "2"},
            "SHOP_TRACE_SAMPLE_RATIO='2': must be a number between 0 and 1",
        ),
        ({**BASE, "SHOP_RESILIENCE": "yolo"}, "SHOP_RESILIENCE='yolo': must be one of resilient, naive"),
        (
            {**BASE, "SHOP_CLIENT_TIMEOUT_S": "-1"},
            "SHOP_CLIENT_TIMEOUT_S='-1': must be a number between 0.01",
        ),
        ({**BASE, "SHOP_CLIENT_RETRY_STATUSES": "503,abc"}, "SHOP_CLIENT_RETRY_STATUSES='503,abc'"),
        (
            {**BASE, "SHOP_UPSTREAM_CATALOG": "catalog:8082"},
            "SHOP_UPSTREAM_CATALOG: 'catalog:8082' is not a base URL",
        ),
        ({**BASE, "DATABASE_URL": "mysql://x"}, "DATABASE_URL='mysql://x'"),
        ({**BASE, "SHOP_ADMIN_TOKEN_FILE": "/nonexistent/token", "SHOP_ADMIN_TOKEN": ""}, "cannot read it"),
        ({**BASE, "SHOP_SERVICE": "users"}, "SHOP_SERVICE='users' but this is the 'cart' module"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_service_config("cart", env)
    assert message in str(info.value)


def test_postgres_url_uses_psycopg3() -> None:
    config = load_service_config("users", {**BASE, "DATABASE_URL": "postgresql://shop@db/users"})
    assert config.database_url == "postgresql+psycopg://shop@db/users"


def test_profiles_and_env_knobs() -> None:
    naive = policy_from_env({"SHOP_RESILIENCE": "naive"})
    assert not naive.breaker and naive.retry_unsafe and naive.backoff_base_s == 0 and naive.timeout_s >= 10
    tuned = policy_from_env(
        {"SHOP_CLIENT_BREAKER": "off", "SHOP_CLIENT_RETRIES": "0", "SHOP_CLIENT_RETRY_STATUSES": "503, 502"}
    )
    assert tuned.profile == "resilient" and not tuned.breaker and tuned.retries == 0
    assert tuned.retry_statuses == (502, 503)


def test_policy_override_validation_and_ttl() -> None:
    policy, ttl, errors = validate_policy_override(
        {"profile": "naive", "overrides": {"timeout_s": 2}, "ttl_s": 30}
    )
    assert (
        errors == []
        and policy is not None
        and policy.profile == "naive"
        and policy.timeout_s == 2
        and ttl == 30
    )
    _, _, errors = validate_policy_override(
        {"profile": "x", "overrides": {"bogus": 1, "retries": 99}, "ttl_s": 0}
    )
    fields = {e["field"] for e in errors}
    assert fields == {"profile", "overrides.bogus", "overrides.retries", "ttl_s"}

    now = [100.0]
    store = PolicyStore(PROFILE_DEFAULTS["resilient"], clock=lambda: now[0])
    version = store.version
    store.set_override(policy, ttl)
    assert store.current().profile == "naive" and store.version > version
    now[0] += 30
    assert store.current().profile == "resilient"  # expired by itself
    assert store.describe()["override"] is False
