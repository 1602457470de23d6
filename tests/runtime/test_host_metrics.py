"""node_exporter beside the stack: its generated command and scrape job, then for real on the session stack
(the real node_exporter scraped by the real Prometheus, the host CPU query the report and the verdicts'
noise guard read)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sample_shop.topology import NODE_JOB, StackDescriptor
from slo import promql
from testbed.runtime import nodeexporter
from testbed.runtime.layout import PortPlan, StateLayout
from testbed.runtime.observers import plan_observers
from testbed.runtime.prometheus import ScrapeTarget, prometheus_config, render_config
from tests.conftest import wait_until


def test_node_exporter_listens_on_loopback_with_the_offset_and_only_the_needed_collectors() -> None:
    plan = nodeexporter.node_exporter_plan("/usr/bin/prometheus-node-exporter", PortPlan(4000))
    assert "--web.listen-address=127.0.0.1:13100" in plan.command
    assert "--collector.disable-defaults" in plan.command
    collectors = {a for a in plan.command if a.startswith("--collector.")} - {"--collector.disable-defaults"}
    assert collectors == {f"--collector.{c}" for c in nodeexporter.COLLECTORS}
    assert plan.url == "http://127.0.0.1:13100"


def test_a_missing_node_exporter_is_a_note_not_a_silent_gap(tmp_path: Path) -> None:
    observers = plan_observers(StateLayout(tmp_path), PortPlan(0), path=str(tmp_path))
    assert nodeexporter.NAME not in observers.names
    assert any("node_exporter: not installed" in n and "testbed doctor" in n for n in observers.notes)


def test_prometheus_scrapes_node_exporter_as_job_node(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    targets = [ScrapeTarget("gateway", 0, 8080)]
    config = prometheus_config(targets, 9646, 18000, rules, node_exporter_port=9100)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs[NODE_JOB]["static_configs"] == [{"targets": ["127.0.0.1:9100"]}]
    without = prometheus_config([ScrapeTarget("gateway", 0, 8080)], 9646, 18000, rules)
    assert NODE_JOB not in {job["job_name"] for job in without["scrape_configs"]}
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run `make setup`"
    path = tmp_path / "prometheus.yml"
    path.write_text(render_config(config))
    check = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.stack
def test_the_session_stack_measures_the_host(stack: StackDescriptor, prom: Any) -> None:
    assert stack.node_exporter_url, "node_exporter is installed here (make setup), so the stack must run it"

    def scraped() -> bool:
        return [float(s["value"][1]) for s in prom.query(f'up{{job="{NODE_JOB}"}}')] == [1.0]

    wait_until(scraped, timeout=20, interval=0.5, message="Prometheus to scrape node_exporter")

    def busy() -> list[dict[str, Any]]:
        return prom.query(promql.host_cpu_busy())

    wait_until(lambda: len(busy()) == 1, timeout=20, interval=0.5, message="a host CPU busy share")
    value = float(busy()[0]["value"][1])
    assert 0.0 <= value <= 1.0
    waiting = prom.query(promql.host_cpu_waiting())
    assert len(waiting) == 1 and float(waiting[0]["value"][1]) >= 0.0


def test_the_report_summarises_host_cpu_per_phase() -> None:
    import pandas as pd

    from testbed.report.data import HOST_CPU_BUSY_QUERY, HOST_CPU_WAITING_QUERY, phase_host_cpu
    from testbed.runfolder import Phase

    phases = [Phase("baseline", 100.0, 110.0), Phase("fault", 110.0, 120.0)]
    rows = [(HOST_CPU_BUSY_QUERY, 100.0 + i, 0.2 if i < 10 else 0.9) for i in range(20)]
    rows += [(HOST_CPU_WAITING_QUERY, 100.0 + i, 0.0 if i < 10 else 0.5) for i in range(20)]
    frame = pd.DataFrame(rows, columns=["query", "t", "value"]).assign(labels="{}")
    host = phase_host_cpu(frame, phases)
    assert host["baseline"] == {"busy_mean": pytest.approx(0.2), "busy_max": 0.2, "waiting_mean": 0.0}
    assert host["fault"]["busy_max"] == 0.9 and host["fault"]["waiting_mean"] == pytest.approx(0.5)
    # no node_exporter in the run: no figures, and the report says the host was not measured
    assert phase_host_cpu(frame[frame["query"] == "other"], phases) == {}
