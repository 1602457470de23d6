"""Jaeger, Loki and Grafana wiring, with stand-in binaries.

Fakes, and why: the real Jaeger, Loki and Grafana binaries cannot be installed on this machine (none of the
package registries it reaches has them; docs/runtime.md). Each stand-in here is a small real HTTP server put
on PATH under the real binary's name; it reads the port from the configuration the supervisor generated for
the real thing (Jaeger's YAML, Loki's YAML, Grafana's GF_* environment), answers the readiness path, and
records its command line and every request it receives. So what is tested is the supervisor's side:
detection on PATH, generated configuration, start, readiness, the services' OTLP endpoint, log shipping to
Loki's push API, Grafana provisioning with the topology's datasource UIDs, and stopping them with the stack.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sample_shop import topology
from testbed.runtime.base import UpOptions
from testbed.runtime.local import LocalTarget
from testbed.runtime.ports import listening

pytestmark = pytest.mark.stack

FAKE = '''#!{python}
"""Stand-in for {name} (tests only): serves HTTP where the real one would and records what it gets."""
import json, os, sys, threading, yaml
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = "{name}"
RECORDS = os.environ["FAKE_RECORD_DIR"]


def option(prefix):
    return next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith(prefix))


def endpoints():
    if NAME == "jaeger":
        config = yaml.safe_load(open(option("--config=")))
        return [config["extensions"]["jaeger_query"]["http"]["endpoint"],
                config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]]
    if NAME == "loki":
        server = yaml.safe_load(open(option("-config.file=")))["server"]
        return [f"{{server['http_listen_address']}}:{{server['http_listen_port']}}"]
    return [f"{{os.environ['GF_SERVER_HTTP_ADDR']}}:{{os.environ['GF_SERVER_HTTP_PORT']}}"]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with open(os.path.join(RECORDS, NAME + "-posts.jsonl"), "a") as f:
            record = {{"path": self.path, "type": self.headers.get("content-type"), "size": len(body),
                      "text": body.decode("utf-8", "replace")[:200000]}}
            f.write(json.dumps(record) + "\\n")
        self.send_response(204 if NAME == "loki" else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


with open(os.path.join(RECORDS, NAME + ".json"), "w") as f:
    json.dump({{"argv": sys.argv, "env": {{k: v for k, v in os.environ.items() if k.startswith("GF_")}}}}, f)
servers = []
for endpoint in endpoints():
    host, port = endpoint.rsplit(":", 1)
    servers.append(ThreadingHTTPServer((host, int(port)), Handler))
for server in servers[1:]:
    threading.Thread(target=server.serve_forever, daemon=True).start()
servers[0].serve_forever()
'''


def _posts(records: Path, name: str) -> list[dict[str, object]]:
    path = records / f"{name}-posts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def fake_extras(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir, records = tmp_path / "bin", tmp_path / "records"
    bin_dir.mkdir()
    records.mkdir()
    for name in ("jaeger", "loki", "grafana"):
        script = bin_dir / name
        script.write_text(FAKE.format(python=sys.executable, name=name))
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_RECORD_DIR", str(records))
    # the kit samples 20% of root spans by default; the one request below must be traced
    monkeypatch.setenv("SHOP_TRACE_SAMPLE_RATIO", "1.0")
    return records


def test_extras_on_path_are_started_wired_and_stopped(
    fake_extras: Path, tmp_path: Path, spare_port_offset: int, wait_until: Callable[..., Any]
) -> None:
    target = LocalTarget(tmp_path / "state", spare_port_offset, exit_with_pid=os.getpid())
    off = spare_port_offset
    try:
        stack = target.up(UpOptions(timeout_s=90))
        assert stack.jaeger_url == f"http://127.0.0.1:{topology.JAEGER_UI_PORT + off}"
        assert stack.loki_url == f"http://127.0.0.1:{topology.LOKI_PORT + off}"
        assert stack.grafana_url == f"http://127.0.0.1:{topology.GRAFANA_PORT + off}"
        assert stack.traces_dir is None  # traces go to Jaeger, not to files

        # every replica exports its spans to Jaeger's OTLP/HTTP endpoint: a request to each with a sampled
        # traceparent (always honoured) arrives there as a span whose resource names the service. (Read
        # from what Jaeger receives, not from /proc/PID/environ: a forked replica's environment is set
        # in the process, after the fork, so /proc shows the supervisor's.)
        for replica in stack.replicas:
            traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
            httpx.get(f"{replica.url}/testbed-trace-check", headers={"traceparent": traceparent}, timeout=10)

        def exporting() -> set[str]:
            texts = [str(p["text"]) for p in _posts(fake_extras, "jaeger") if p["path"] == "/v1/traces"]
            return {
                r.service
                for r in stack.replicas
                if any(re.search(rf"service\.name.{{1,8}}{r.service}", t, re.DOTALL) for t in texts)
            }

        services = {r.service for r in stack.replicas}
        wait_until(
            lambda: exporting() == services, 30, message="a span from every service at Jaeger's OTLP port"
        )

        # Grafana: loopback, provisioned with the topology's datasource UIDs and the dashboards folder
        grafana = json.loads((fake_extras / "grafana.json").read_text())
        assert grafana["env"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"
        provisioning = Path(grafana["env"]["GF_PATHS_PROVISIONING"])
        sources = yaml.safe_load((provisioning / "datasources" / "testbed.yaml").read_text())["datasources"]
        assert sorted(s["uid"] for s in sources) == sorted(topology.DATASOURCE_UIDS.values())
        assert {s["url"] for s in sources if s["type"] == "prometheus"} == {stack.prometheus_url}

        # Loki receives the replicas' JSON log lines through its push API, labelled by service and replica
        def catalog_lines() -> list[str]:
            lines = []
            for post in _posts(fake_extras, "loki"):
                assert post["path"] == "/loki/api/v1/push"
                for stream in json.loads(str(post["text"]))["streams"]:
                    if stream["stream"] == {"job": topology.SHOP_JOB, "service": "catalog", "replica": "0"}:
                        lines += [value for _, value in stream["values"]]
            return lines

        httpx.get(f"{stack.gateway_url}/api/products", timeout=10)
        lines = wait_until(catalog_lines, 15, message="catalog log lines pushed to Loki")
        assert any(line.startswith("{") for line in lines)

        # the gateway's spans reach Jaeger over OTLP/HTTP
        traces = wait_until(
            lambda: [p for p in _posts(fake_extras, "jaeger") if p["path"] == "/v1/traces"],
            20,
            message="spans exported to Jaeger's OTLP endpoint",
        )
        assert traces[0]["size"] > 0

        status = target.status()
        extras = {p.service: p for p in status.processes if p.service in ("jaeger", "loki", "grafana")}
        assert set(extras) == {"jaeger", "loki", "grafana"} and all(p.healthy for p in extras.values())
    finally:
        target.down()
    extra_ports = {
        topology.JAEGER_UI_PORT + off: "jaeger",
        topology.JAEGER_OTLP_HTTP_PORT + off: "jaeger otlp",
        topology.LOKI_PORT + off: "loki",
        topology.GRAFANA_PORT + off: "grafana",
    }
    assert listening(extra_ports) == {}
