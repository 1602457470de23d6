"""Generated configuration as pure functions: Prometheus (checked by the real promtool), the replicas'
environment, the extras' plans, the readiness verdict and the log shipper's batching."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from sample_shop import topology
from sample_shop.basics import prom_duration
from sample_shop.topology import DATASOURCE_UIDS, SERVICE_NAMES
from testbed.runtime.base import UpOptions
from testbed.runtime.envcontract import service_env
from testbed.runtime.extras import (
    find_extras,
    grafana_datasources,
    grafana_plan,
    jaeger_plan,
    loki_plan,
    plan_extras,
)
from testbed.runtime.layout import PortPlan, StateLayout
from testbed.runtime.logship import LogShipper, TailedFile, labels_for, push_body
from testbed.runtime.probes import Probe, readiness, shop_targets_up
from testbed.runtime.prometheus import ScrapeTarget, prometheus_command, prometheus_config, render_config

PORTS = PortPlan(200)


def _targets(replicas: dict[str, int]) -> list[ScrapeTarget]:
    return [ScrapeTarget(s, r, PORTS.app(s, r)) for s in SERVICE_NAMES for r in range(replicas.get(s, 1))]


def test_prometheus_config_has_one_labelled_target_per_replica(tmp_path: Path) -> None:
    config = prometheus_config(
        _targets({"catalog": 2}), PORTS.load_metrics, PORTS.control, tmp_path / "rules"
    )
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {topology.SHOP_JOB, topology.LOAD_JOB, topology.TESTBED_JOB}
    shop = jobs[topology.SHOP_JOB]["static_configs"]
    assert len(shop) == len(SERVICE_NAMES) + 1
    catalog = [c for c in shop if c["labels"]["service"] == "catalog"]
    assert [c["labels"]["replica"] for c in catalog] == ["0", "1"]
    assert catalog[1]["targets"] == [f"127.0.0.1:{topology.app_port('catalog', 1, 200)}"]
    assert jobs[topology.LOAD_JOB]["static_configs"][0]["targets"] == [
        f"127.0.0.1:{topology.LOAD_METRICS_PORT + 200}"
    ]
    assert jobs[topology.TESTBED_JOB]["static_configs"][0]["targets"] == [
        f"127.0.0.1:{topology.CONTROL_PORT + 200}"
    ]
    assert config["global"]["scrape_interval"] == prom_duration(topology.SCRAPE_INTERVAL_S)
    assert config["rule_files"] == [str(tmp_path / "rules" / "*.yml")]


def test_promtool_accepts_the_generated_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run `make setup`"
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "x.yml").write_text(
        "groups:\n- name: x\n  rules:\n  - record: x:up\n    expr: up\n"
    )
    (tmp_path / "token").write_text("secret\n")
    config = prometheus_config(
        _targets({}), PORTS.load_metrics, PORTS.control, tmp_path / "rules", tmp_path / "token"
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(render_config(config))
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rules found" in result.stdout + result.stderr


def test_durations_and_command() -> None:
    assert (prom_duration(1.0), prom_duration(0.5), prom_duration(2)) == ("1s", "500ms", "2s")
    with pytest.raises(ValueError):
        prom_duration(0)
    command = prometheus_command("/usr/bin/prometheus", Path("/s/p.yml"), Path("/s/data"), 9290)
    assert "--web.listen-address=127.0.0.1:9290" in command and "--web.enable-lifecycle" in command


def test_replica_environment_follows_the_contract(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)
    options = UpOptions(replicas={**dict.fromkeys(SERVICE_NAMES, 1), "catalog": 2}, resilience="naive")
    base = {
        "PATH": "/bin",
        "DATABASE_URL": "postgresql://elsewhere",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x",
    }
    env = service_env(base, "cart", 0, options, PORTS, layout, "jwt-secret", None)
    assert env["SHOP_SERVICE"] == "cart" and env["SHOP_REPLICA"] == "0"
    assert env["SHOP_PORT"] == str(topology.app_port("cart", 0, 200))
    assert env["SHOP_ADMIN_PORT"] == str(topology.admin_port("cart", 0, 200))
    assert env["SHOP_HOST"] == env["SHOP_ADMIN_HOST"] == "127.0.0.1"
    assert env["SHOP_UPSTREAM_CATALOG"] == (
        f"http://127.0.0.1:{topology.app_port('catalog', 0, 200)},"
        f"http://127.0.0.1:{topology.app_port('catalog', 1, 200)}"
    )
    assert all(f"SHOP_UPSTREAM_{s.upper()}" in env for s in SERVICE_NAMES)
    assert env["SHOP_RESILIENCE"] == "naive" and env["SHOP_TELEMETRY"] == "on"
    assert env["SHOP_ADMIN_TOKEN_FILE"] == str(tmp_path / "token") and env["SHOP_JWT_SECRET"] == "jwt-secret"
    assert env["SHOP_STATE_DIR"] == str(tmp_path) and env["PATH"] == "/bin"
    # a user's shell must not redirect a local replica's database or traces
    assert "DATABASE_URL" not in env and "OTEL_EXPORTER_OTLP_ENDPOINT" not in env
    with_jaeger = service_env(base, "cart", 0, options, PORTS, layout, "s", "http://127.0.0.1:4518")
    assert with_jaeger["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4518"


def _listen_addresses(text: str) -> list[str]:
    """Every host:port-looking value in a generated config."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and node.count(":") == 1 and node.split(":")[1].isdigit():
            found.append(node)

    walk(yaml.safe_load(text))
    return found


def test_extras_listen_on_loopback_with_the_offset(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)
    jaeger = jaeger_plan("/opt/bin/jaeger", layout, PORTS)
    (config_text,) = jaeger.files.values()
    addresses = _listen_addresses(config_text)
    assert f"127.0.0.1:{topology.JAEGER_OTLP_HTTP_PORT + 200}" in addresses
    assert f"127.0.0.1:{topology.JAEGER_UI_PORT + 200}" in addresses
    assert all(a.startswith("127.0.0.1:") for a in addresses)
    v1 = jaeger_plan("/opt/bin/jaeger-all-in-one", layout, PORTS)
    assert all("0.0.0.0" not in arg for arg in v1.command)
    assert f"--collector.otlp.http.host-port=127.0.0.1:{topology.JAEGER_OTLP_HTTP_PORT + 200}" in v1.command

    loki = loki_plan("/opt/bin/loki", layout, PORTS)
    server = yaml.safe_load(next(iter(loki.files.values())))["server"]
    assert (server["http_listen_address"], server["http_listen_port"]) == (
        "127.0.0.1",
        topology.LOKI_PORT + 200,
    )
    assert loki.ready_path == "/ready"


def test_grafana_is_provisioned_with_the_topology_datasource_uids(tmp_path: Path) -> None:
    sources = grafana_datasources(PORTS, {"loki", "jaeger", "grafana"})["datasources"]
    assert {s["type"]: s["uid"] for s in sources} == {
        "prometheus": DATASOURCE_UIDS["prometheus"],
        "loki": DATASOURCE_UIDS["loki"],
        "jaeger": DATASOURCE_UIDS["jaeger"],
    }
    only_prometheus = grafana_datasources(PORTS, {"grafana"})["datasources"]
    assert [s["uid"] for s in only_prometheus] == [DATASOURCE_UIDS["prometheus"]]
    dashboards = tmp_path / "dashboards"
    dashboards.mkdir()
    plan = grafana_plan("/usr/sbin/grafana-server", StateLayout(tmp_path), PORTS, {"grafana"}, dashboards)
    assert plan.env["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"
    assert plan.env["GF_SERVER_HTTP_PORT"] == str(topology.GRAFANA_PORT + 200)
    provider = next(text for path, text in plan.files.items() if path.parent.name == "dashboards")
    assert yaml.safe_load(provider)["providers"][0]["options"]["path"] == str(dashboards)


def test_find_extras_looks_on_the_given_path(tmp_path: Path) -> None:
    assert find_extras(str(tmp_path)) == {}
    for name in ("jaeger-all-in-one", "grafana-server"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    found = find_extras(str(tmp_path))
    assert found == {
        "jaeger": str(tmp_path / "jaeger-all-in-one"),
        "grafana": str(tmp_path / "grafana-server"),
    }
    assert [p.name for p in plan_extras(found, StateLayout(tmp_path), PORTS)] == ["jaeger", "grafana"]


def test_readiness_needs_readyz_and_a_scraped_target() -> None:
    expected = [("catalog", 0), ("catalog", 1)]
    ready_probe, down = Probe(True, "ready"), Probe(False, "unreachable")
    prometheus = Probe(True, "ready")
    ready, waiting = readiness(
        expected, {("catalog", 0): ready_probe, ("catalog", 1): down}, {}, True, prometheus
    )
    assert ready == ["prometheus"]
    assert waiting == ["catalog-0: Prometheus target not scraped yet", "catalog-1: /readyz unreachable"]
    shop_up = {("catalog", 0): True, ("catalog", 1): False}
    readyz = {k: ready_probe for k in expected}
    ready, waiting = readiness(expected, readyz, shop_up, False, prometheus)
    assert ready == ["catalog-0"]
    assert waiting == [
        "catalog-1: Prometheus target up == 0",
        "prometheus: job testbed (supervisor) not scraped yet",
    ]
    shop_up[("catalog", 1)] = True
    assert readiness(expected, readyz, shop_up, True, prometheus) == (
        ["catalog-0", "catalog-1", "prometheus"],
        [],
    )
    assert readiness(expected, readyz, shop_up, True, Probe(False, "timeout"))[0] == []


def test_shop_targets_up_reads_the_up_series() -> None:
    series = {
        "127.0.0.1:8282": {"service": "catalog", "replica": "0", "__value__": "1"},
        "127.0.0.1:8292": {"service": "catalog", "replica": "1", "__value__": "0"},
        "odd": {"__value__": "1"},
    }
    assert shop_targets_up(series) == {("catalog", 0): True, ("catalog", 1): False}


def test_log_shipper_sends_complete_lines_with_labels(tmp_path: Path) -> None:
    log = tmp_path / "catalog-1.log"
    log.write_text('{"message": "a"}\n{"message": "b"}\n{"message": "partial')
    tailed = TailedFile(log, labels_for(log.stem))
    assert tailed.labels == {"job": topology.SHOP_JOB, "service": "catalog", "replica": "1"}
    assert tailed.read_lines() == ['{"message": "a"}', '{"message": "b"}']
    with log.open("a") as f:
        f.write('"}\n')
    assert tailed.read_lines() == ['{"message": "partial"}']
    assert tailed.read_lines() == []
    body = push_body([(tailed, ["x", "y"])])
    (stream,) = body["streams"]
    assert stream["stream"] == tailed.labels
    first, second = (int(ts) for ts, _ in stream["values"])
    assert second > first  # Loki rejects out-of-order entries within a stream
    assert labels_for("prometheus") == {"job": topology.TESTBED_JOB, "component": "prometheus"}
    shipper = LogShipper(tmp_path, "http://127.0.0.1:1")
    shipper.start_at_current_end()
    assert shipper.files[log].read_lines() == []  # what was there before the stack started is not resent


def test_log_lines_are_pushed_again_when_loki_was_unreachable(tmp_path: Path) -> None:
    received: list[dict[str, object]] = []

    class Loki(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    (tmp_path / "payment-0.log").write_text('{"message": "one"}\n{"message": "two"}\n')
    server = ThreadingHTTPServer(("127.0.0.1", 0), Loki)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:

        async def scenario() -> tuple[int, int]:
            async with httpx.AsyncClient(timeout=2) as client:
                down = LogShipper(tmp_path, "http://127.0.0.1:1")  # nothing listens there
                first = await down.ship_once(client)
                down.loki_url = f"http://127.0.0.1:{server.server_port}"
                return first, await down.ship_once(client)

        assert asyncio.run(scenario()) == (0, 2)
    finally:
        server.shutdown()
    (stream,) = received[0]["streams"]  # type: ignore[misc]
    assert [line for _, line in stream["values"]] == ['{"message": "one"}', '{"message": "two"}']
