"""The environment of each replica (docs/architecture.md, "the env contract"). Pure."""

from __future__ import annotations

from collections.abc import Mapping

from sample_shop.topology import SERVICE_NAMES
from testbed.runtime.base import UpOptions
from testbed.runtime.layout import PortPlan, StateLayout, loopback_url

# Inherited variables that would silently redirect a local replica's data: the runtime decides these.
_NOT_INHERITED_PREFIXES = ("OTEL_",)
_NOT_INHERITED = {"DATABASE_URL", "SHOP_ADMIN_TOKEN"}


def upstream_urls(service: str, replicas: Mapping[str, int], ports: PortPlan) -> str:
    return ",".join(loopback_url(ports.app(service, r)) for r in range(replicas.get(service, 1)))


def service_env(
    base: Mapping[str, str],
    service: str,
    replica: int,
    options: UpOptions,
    ports: PortPlan,
    layout: StateLayout,
    jwt_secret: str,
    otlp_endpoint: str | None,
    trace_files: bool = True,
) -> dict[str, str]:
    """Environment of `python -m sample_shop.<service>` replica `replica`. Users may still tune what the
    contract leaves to them (SHOP_CLIENT_*, SHOP_LOG_LEVEL, SHOP_TRACE_SAMPLE_RATIO, SHOP_JWT_TTL_S)."""
    env = {
        k: v for k, v in base.items() if k not in _NOT_INHERITED and not k.startswith(_NOT_INHERITED_PREFIXES)
    }
    env.update(
        {
            "SHOP_SERVICE": service,
            "SHOP_REPLICA": str(replica),
            "SHOP_HOST": "127.0.0.1",
            "SHOP_PORT": str(ports.app(service, replica)),
            "SHOP_ADMIN_HOST": "127.0.0.1",
            "SHOP_ADMIN_PORT": str(ports.admin(service, replica)),
            "SHOP_STATE_DIR": str(layout.root),
            "SHOP_ADMIN_TOKEN_FILE": str(layout.token_file),
            "SHOP_JWT_SECRET": jwt_secret,
            "SHOP_TELEMETRY": options.telemetry,
            "SHOP_RESILIENCE": options.resilience,
            "TESTBED_PORT_OFFSET": str(ports.offset),
            "PYTHONUNBUFFERED": "1",  # log lines reach the log file (and Loki) as they happen
        }
    )
    # every replica of every service: a dependency missing from topology.depends_on still resolves here
    for name in SERVICE_NAMES:
        env[f"SHOP_UPSTREAM_{name.upper()}"] = upstream_urls(name, options.replicas, ports)
    if otlp_endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
    # the trace files feed the run folders; with an OTLP endpoint they are kept unless asked otherwise
    env["SHOP_TRACE_FILES"] = "on" if trace_files or not otlp_endpoint else "off"
    return env
