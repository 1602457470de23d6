"""Where things live: the state folder's paths and the ports of a stack with a given offset. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sample_shop import topology
from sample_shop.topology import SERVICE_NAMES, StackDescriptor


@dataclass(frozen=True)
class StateLayout:
    root: Path

    @property
    def stack_file(self) -> Path:
        return self.root / StackDescriptor.FILE_NAME

    @property
    def token_file(self) -> Path:
        return self.root / "token"

    @property
    def supervisor_pid(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def startup_file(self) -> Path:
        """Progress of `up`, written by the supervisor (starting / ready / failed)."""
        return self.root / "startup.json"

    @property
    def up_lock(self) -> Path:
        """flock(2)-held by the `testbed up` that is starting the stack (released when it returns or dies)."""
        return self.root / "up.lock"

    @property
    def options_file(self) -> Path:
        """The UpOptions the running stack was started with."""
        return self.root / "options.json"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def traces_dir(self) -> Path:
        return self.root / "traces"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def prometheus_dir(self) -> Path:
        return self.root / "prometheus"

    @property
    def prometheus_config(self) -> Path:
        return self.prometheus_dir / "prometheus.yml"

    @property
    def rules_dir(self) -> Path:
        return self.prometheus_dir / "rules"

    @property
    def prometheus_data(self) -> Path:
        return self.prometheus_dir / "data"

    @property
    def alerts_file(self) -> Path:
        """Every notification the webhook receiver got from Alertmanager, one JSON line each."""
        return self.root / "alerts" / "notifications.jsonl"

    def extra_dir(self, name: str) -> Path:
        return self.root / name

    def replica_log(self, service: str, replica: int) -> Path:
        return self.logs_dir / f"{service}-{replica}.log"

    def process_log(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def make_dirs(self) -> None:
        """The state folder 0700: it holds the token, the databases (e-mails, password hashes) and logs."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root.chmod(0o700)
        for path in (self.logs_dir, self.traces_dir, self.data_dir, self.rules_dir, self.prometheus_data):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)


@dataclass(frozen=True)
class PortPlan:
    """Every port a local stack uses, with the offset applied."""

    offset: int

    def app(self, service: str, replica: int) -> int:
        return topology.app_port(service, replica, self.offset)

    def admin(self, service: str, replica: int) -> int:
        return topology.admin_port(service, replica, self.offset)

    @property
    def control(self) -> int:
        return topology.CONTROL_PORT + self.offset

    @property
    def prometheus(self) -> int:
        return topology.PROMETHEUS_PORT + self.offset

    @property
    def load_metrics(self) -> int:
        return topology.LOAD_METRICS_PORT + self.offset

    @property
    def jaeger_ui(self) -> int:
        return topology.JAEGER_UI_PORT + self.offset

    @property
    def jaeger_otlp_http(self) -> int:
        return topology.JAEGER_OTLP_HTTP_PORT + self.offset

    @property
    def loki(self) -> int:
        return topology.LOKI_PORT + self.offset

    @property
    def grafana(self) -> int:
        return topology.GRAFANA_PORT + self.offset

    @property
    def node_exporter(self) -> int:
        return topology.NODE_EXPORTER_PORT + self.offset

    @property
    def alertmanager(self) -> int:
        return topology.ALERTMANAGER_PORT + self.offset

    @property
    def alert_webhook(self) -> int:
        return topology.ALERT_WEBHOOK_PORT + self.offset

    @property
    def smtp(self) -> int:
        return topology.SMTP_PORT + self.offset

    def stack_ports(self, replicas: dict[str, int], extras: tuple[str, ...] = ()) -> dict[int, str]:
        """Port -> what listens there, for every listener of a stack (used to check before and after)."""
        ports: dict[int, str] = {}
        for service in SERVICE_NAMES:
            for r in range(replicas.get(service, 1)):
                ports[self.app(service, r)] = f"{service} replica {r}"
                ports[self.admin(service, r)] = f"{service} replica {r} admin API"
        ports[self.control] = "control API (supervisor)"
        ports[self.smtp] = "SMTP server (order e-mails)"
        ports[self.prometheus] = "Prometheus"
        if "jaeger" in extras:
            ports[self.jaeger_ui] = "Jaeger UI"
            ports[self.jaeger_otlp_http] = "Jaeger OTLP/HTTP"
        if "loki" in extras:
            ports[self.loki] = "Loki"
        if "grafana" in extras:
            ports[self.grafana] = "Grafana"
        if "node-exporter" in extras:
            ports[self.node_exporter] = "node_exporter"
        if "alertmanager" in extras:
            ports[self.alertmanager] = "Alertmanager"
            ports[self.alert_webhook] = "alert webhook receiver"
        return ports


def loopback_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"
