"""THE one configuration loader of the shop: every knob comes from the environment (the env contract of
docs/architecture.md) and is parsed here into frozen dataclasses. A bad value stops the service at start
with a message naming the variable, the value and what is valid - never a traceback deep in a request.

The generic `read_env_*` helpers take the environment as a mapping so the testbed can reuse them and tests
can pass a plain dict.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sample_shop import topology
from sample_shop.kit.policy import ClientPolicy, policy_from_env

T = TypeVar("T")
Env = Mapping[str, str]


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the variable and how to fix it."""


def _raw(env: Env, name: str) -> str | None:
    value = env.get(name)
    return None if value is None or value.strip() == "" else value.strip()


def read_env_str(env: Env, name: str, default: str | None = None, *, required_hint: str = "") -> str:
    value = _raw(env, name)
    if value is not None:
        return value
    if default is None:
        raise ConfigError(f"{name} is required but not set{'; ' + required_hint if required_hint else ''}")
    return default


def read_env_number(env: Env, name: str, default: T, parse: Callable[[str], T], lo: float, hi: float) -> T:
    value = _raw(env, name)
    if value is None:
        return default
    kind = "an integer" if parse is int else "a number"
    try:
        parsed = parse(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: must be {kind} between {lo:g} and {hi:g}") from None
    if not lo <= parsed <= hi:  # type: ignore[operator]
        raise ConfigError(f"{name}={value!r}: must be {kind} between {lo:g} and {hi:g}")
    return parsed


def read_env_int(env: Env, name: str, default: int, lo: int, hi: int) -> int:
    return read_env_number(env, name, default, int, lo, hi)


def read_env_float(env: Env, name: str, default: float, lo: float, hi: float) -> float:
    return read_env_number(env, name, default, float, lo, hi)


def read_env_choice(env: Env, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _raw(env, name)
    if value is None:
        return default
    if value.lower() not in choices:
        raise ConfigError(f"{name}={value!r}: must be one of {', '.join(choices)}")
    return value.lower()


def read_env_switch(env: Env, name: str, default: bool) -> bool:
    """on/off switches; true/false, yes/no and 1/0 are accepted too."""
    value = _raw(env, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("on", "true", "yes", "1"):
        return True
    if lowered in ("off", "false", "no", "0"):
        return False
    raise ConfigError(f"{name}={value!r}: must be on or off")


def read_env_urls(env: Env, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = _raw(env, name)
    if value is None:
        return default
    urls = tuple(u.strip().rstrip("/") for u in value.split(",") if u.strip())
    for url in urls:
        if not url.startswith(("http://", "https://")) or "://" not in url or len(url) <= len("http://"):
            raise ConfigError(
                f"{name}: {url!r} is not a base URL; expected a comma-separated list like "
                "http://127.0.0.1:8082,http://127.0.0.1:8092"
            )
    if not urls:
        raise ConfigError(f"{name} is set but lists no URL")
    return urls


ACCESS_LOG_MODES = ("errors", "all", "off")
# Head sampling of root spans. Measured on the mixed journeys: 1.0 costs ~15% throughput, 0.1-0.2 ~1-3%.
# A caller's sampled traceparent is always honoured, so a request sent with one is traced end to end.
DEFAULT_TRACE_SAMPLE_RATIO = 0.2
# Argon2id cost of new password hashes: the OWASP Password Storage Cheat Sheet's minimum (19 MiB, 2 passes,
# 1 lane). About 22 ms of CPU a hash here (bench/users.py); hashes at another cost are rehashed at login.
ARGON2_MEMORY_KIB = 19_456
ARGON2_TIME_COST = 2
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class ServiceConfig:
    service: str
    replica: int
    host: str
    port: int
    admin_host: str
    admin_port: int
    state_dir: Path
    upstreams: dict[str, tuple[str, ...]]  # dependency name -> base URLs of its replicas
    database_url: str | None  # None for services that own no data
    admin_token: str
    jwt_secret: str
    jwt_ttl_s: int
    telemetry: bool
    trace_sample_ratio: float
    otlp_endpoint: str | None
    trace_files: bool  # write OTLP-JSON lines to traces_file too (besides or instead of the OTLP endpoint)
    client_policy: ClientPolicy
    log_level: str
    access_log: str  # errors (5xx and slow requests) | all | off
    slow_request_s: float
    password_hash_memory_kib: int
    password_hash_time_cost: int

    @property
    def instance(self) -> str:
        return f"{self.service}-{self.replica}"

    @property
    def traces_file(self) -> Path:
        return self.state_dir / "traces" / f"{self.instance}.jsonl"


def read_admin_token(env: Env) -> str:
    """The bearer token of the admin and control APIs: SHOP_ADMIN_TOKEN, else SHOP_ADMIN_TOKEN_FILE's."""
    token = _raw(env, "SHOP_ADMIN_TOKEN")
    if token is not None:
        return token
    path = _raw(env, "SHOP_ADMIN_TOKEN_FILE")
    if path is None:
        raise ConfigError(
            "SHOP_ADMIN_TOKEN or SHOP_ADMIN_TOKEN_FILE must be set: the admin (fault) API never runs without "
            "a bearer token (`testbed up` writes one to <state>/token)"
        )
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"SHOP_ADMIN_TOKEN_FILE={path!r}: cannot read it ({exc.strerror})") from None
    if not token:
        raise ConfigError(f"SHOP_ADMIN_TOKEN_FILE={path!r}: the file is empty")
    return token


def load_service_config(service: str, env: Env | None = None) -> ServiceConfig:
    """Parse the env contract for one replica of `service`. Raises ConfigError naming the bad variable."""
    env = os.environ if env is None else env
    if service not in topology.SERVICES:
        raise ConfigError(f"unknown service {service!r}; known: {', '.join(topology.SERVICE_NAMES)}")
    named = read_env_str(env, "SHOP_SERVICE", service)
    if named != service:
        raise ConfigError(f"SHOP_SERVICE={named!r} but this is the {service!r} module")
    try:
        offset = topology.port_offset()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    replica = read_env_int(env, "SHOP_REPLICA", 0, 0, topology.MAX_REPLICAS - 1)
    spec = topology.SERVICES[service]
    port = read_env_int(env, "SHOP_PORT", topology.app_port(service, replica, offset), 1, 65535)
    admin_port = read_env_int(env, "SHOP_ADMIN_PORT", port + topology.ADMIN_PORT_OFFSET, 1, 65535)
    if admin_port == port:
        raise ConfigError(f"SHOP_ADMIN_PORT={admin_port} must differ from SHOP_PORT")
    state_dir = Path(read_env_str(env, "SHOP_STATE_DIR", ".testbed")).resolve()
    upstreams = {
        dep: read_env_urls(
            env, f"SHOP_UPSTREAM_{dep.upper()}", (f"http://127.0.0.1:{topology.app_port(dep, 0, offset)}",)
        )
        for dep in spec.depends_on
    }
    database_url = None
    if spec.owns_database:
        database_url = read_env_str(env, "DATABASE_URL", f"sqlite:///{state_dir / 'data' / service}.db")
        if not database_url.startswith(("sqlite", "postgresql")):
            raise ConfigError(
                f"DATABASE_URL={database_url!r}: only sqlite:///PATH and postgresql+psycopg://... work"
            )
        if database_url.startswith("postgresql://"):  # the psycopg 3 driver, not the absent psycopg2
            database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
    otlp = _raw(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
    try:
        client_policy = policy_from_env(env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return ServiceConfig(
        service=service,
        replica=replica,
        host=read_env_str(env, "SHOP_HOST", "127.0.0.1"),
        port=port,
        admin_host=read_env_str(env, "SHOP_ADMIN_HOST", "127.0.0.1"),
        admin_port=admin_port,
        state_dir=state_dir,
        upstreams=upstreams,
        database_url=database_url,
        admin_token=read_admin_token(env),
        jwt_secret=read_env_str(
            env, "SHOP_JWT_SECRET", required_hint="every service signs or verifies user tokens with it"
        ),
        jwt_ttl_s=read_env_int(env, "SHOP_JWT_TTL_S", 900, 10, 86_400),
        telemetry=read_env_switch(env, "SHOP_TELEMETRY", True),
        trace_sample_ratio=read_env_float(
            env, "SHOP_TRACE_SAMPLE_RATIO", DEFAULT_TRACE_SAMPLE_RATIO, 0.0, 1.0
        ),
        otlp_endpoint=otlp,
        # without an OTLP endpoint the file is the only place spans go, so it cannot be switched off
        trace_files=read_env_switch(env, "SHOP_TRACE_FILES", True) or not otlp,
        client_policy=client_policy,
        log_level=read_env_choice(env, "SHOP_LOG_LEVEL", "info", LOG_LEVELS),
        access_log=read_env_choice(env, "SHOP_ACCESS_LOG", "errors", ACCESS_LOG_MODES),
        slow_request_s=read_env_int(env, "SHOP_SLOW_REQUEST_MS", 1000, 1, 600_000) / 1000.0,
        password_hash_memory_kib=read_env_int(
            env, "SHOP_PASSWORD_HASH_MEMORY_KIB", ARGON2_MEMORY_KIB, 8, 4_194_304
        ),
        password_hash_time_cost=read_env_int(env, "SHOP_PASSWORD_HASH_TIME_COST", ARGON2_TIME_COST, 1, 100),
    )
