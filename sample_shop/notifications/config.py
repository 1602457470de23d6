"""The environment of one notifications instance (docs/shop.md, "The asynchronous path"). Every value is
checked here, so a bad one stops the instance at start with the variable's name in the message."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sample_shop import topology
from sample_shop.kit.config import (
    LOG_LEVELS,
    ConfigError,
    read_admin_token,
    read_env_choice,
    read_env_float,
    read_env_int,
    read_env_str,
    read_env_switch,
    read_env_urls,
)

FUNCTION = topology.NOTIFICATIONS_FUNCTION


@dataclass(frozen=True)
class NotifierConfig:
    instance: int  # the function runner's instance number (logs, traces, the consumer name)
    state_dir: Path
    orders_urls: tuple[str, ...]
    service_token: str
    smtp_host: str
    smtp_port: int
    sender: str
    lease_s: float  # how long a claimed event is ours; after that another instance gets it
    poll_s: float  # the wait between empty claims
    idle_exit_s: float  # exit after this long without events (0: only when told to stop)
    smtp_timeout_s: float
    ack_delay_s: float  # a pause between recording an e-mail as sent and acknowledging it (tests, faults)
    telemetry: bool
    trace_sample_ratio: float
    otlp_endpoint: str | None
    trace_files: bool
    log_level: str
    consumer_name: str | None = None  # SHOP_NOTIFY_CONSUMER (the pod's name on kind)
    heartbeat_file: Path | None = None  # touched on every turn of the loop (the kind liveness probe)

    @property
    def consumer(self) -> str:
        """How orders' outbox knows this instance (the claim's `consumer`, logs): the pod's name on kind,
        where every instance is instance 0 with pid 1."""
        return self.consumer_name or f"{FUNCTION}-{self.instance}-{os.getpid()}"

    @property
    def dedup_db(self) -> Path:
        return self.state_dir / "data" / f"{FUNCTION}.db"

    @property
    def traces_file(self) -> Path:
        return self.state_dir / "traces" / f"{FUNCTION}-{self.instance}.jsonl"


def load_notifier_config(env: Mapping[str, str] | None = None) -> NotifierConfig:
    env = os.environ if env is None else env
    offset = topology.port_offset()
    orders_default = (f"http://127.0.0.1:{topology.app_port('orders', 0, offset)}",)
    smtp_host = read_env_str(env, "SHOP_SMTP_HOST", "127.0.0.1")
    if not smtp_host.strip():
        raise ConfigError("SHOP_SMTP_HOST is empty: the SMTP server's host name or address")
    otlp = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    return NotifierConfig(
        instance=read_env_int(env, "SHOP_FUNCTION_INSTANCE", 0, 0, 999),
        state_dir=Path(read_env_str(env, "SHOP_STATE_DIR", ".testbed")).resolve(),
        orders_urls=read_env_urls(env, "SHOP_UPSTREAM_ORDERS", orders_default),
        service_token=read_admin_token(env),
        smtp_host=smtp_host,
        smtp_port=read_env_int(env, "SHOP_SMTP_PORT", topology.SMTP_PORT + offset, 1, 65535),
        sender=read_env_str(env, "SHOP_MAIL_FROM", "orders@shop.local"),
        lease_s=read_env_float(env, "SHOP_NOTIFY_LEASE_S", 30.0, 1.0, 300.0),
        poll_s=read_env_float(env, "SHOP_NOTIFY_POLL_S", 0.5, 0.05, 60.0),
        idle_exit_s=read_env_float(env, "SHOP_NOTIFY_IDLE_EXIT_S", 0.0, 0.0, 3600.0),
        smtp_timeout_s=read_env_float(env, "SHOP_SMTP_TIMEOUT_S", 10.0, 0.5, 300.0),
        ack_delay_s=read_env_float(env, "SHOP_NOTIFY_ACK_DELAY_S", 0.0, 0.0, 600.0),
        telemetry=read_env_switch(env, "SHOP_TELEMETRY", True),
        trace_sample_ratio=read_env_float(env, "SHOP_TRACE_SAMPLE_RATIO", 1.0, 0.0, 1.0),
        otlp_endpoint=otlp,
        trace_files=read_env_switch(env, "SHOP_TRACE_FILES", True) or not otlp,
        log_level=read_env_choice(env, "SHOP_LOG_LEVEL", "info", LOG_LEVELS),
        consumer_name=(env.get("SHOP_NOTIFY_CONSUMER") or "").strip() or None,
        heartbeat_file=Path(heartbeat) if (heartbeat := env.get("SHOP_NOTIFY_HEARTBEAT_FILE")) else None,
    )
