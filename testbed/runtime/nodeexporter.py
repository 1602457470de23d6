"""node_exporter beside the local stack: the host's CPU, load, memory and pressure, scraped by the local
Prometheus so that a run's report (and the verdicts' noise guard) can tell a slow service from a busy host.

Only the collectors the testbed reads run (`--collector.disable-defaults`): the default set costs about
three times the CPU per scrape at the 1 s interval. Everything but `find_node_exporter` is pure."""

from __future__ import annotations

import shutil

from testbed.runtime.extras import ExtraPlan, go_daemon_env
from testbed.runtime.layout import PortPlan, loopback_url

NAME = "node-exporter"
# Debian's package names its binary prometheus-node-exporter; the upstream tarball calls it node_exporter.
BINARIES: tuple[str, ...] = ("prometheus-node-exporter", "node_exporter")
COLLECTORS: tuple[str, ...] = ("cpu", "loadavg", "meminfo", "pressure")


def find_node_exporter(path: str | None = None) -> str | None:
    for binary in BINARIES:
        location = shutil.which(binary, path=path)
        if location:
            return location
    return None


def node_exporter_plan(binary: str, ports: PortPlan) -> ExtraPlan:
    command = [
        binary,
        f"--web.listen-address=127.0.0.1:{ports.node_exporter}",
        "--collector.disable-defaults",
        *(f"--collector.{name}" for name in COLLECTORS),
        "--log.format=json",
    ]
    # /metrics, not /: a 200 there means the collectors answer, which is what the scrape needs
    return ExtraPlan(
        NAME, command, ports.node_exporter, loopback_url(ports.node_exporter), "/metrics", go_daemon_env()
    )


ABSENT_NOTE = (
    "node_exporter: not installed - the host's CPU is not measured (reports show no host saturation); "
    "`make setup` installs it, `testbed doctor` checks"
)
