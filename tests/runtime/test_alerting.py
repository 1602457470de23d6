"""Alertmanager beside the stack and the webhook receiver: the generated config (checked by the real
amtool), the receiver as a real process, time to page from recorded notifications, and on the session
stack a real alert through the real Alertmanager into the receiver's file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sample_shop.topology import StackDescriptor
from slo.pages import first_pages, read_notifications
from slo.promql import ALERT_NAME
from testbed.experiment.telemetry import collect_alerts
from testbed.runtime import alertmanager
from testbed.runtime.alertsink import record_line
from testbed.runtime.layout import PortPlan, StateLayout
from testbed.runtime.ports import port_is_free
from testbed.runtime.prometheus import ScrapeTarget, prometheus_config
from tests.conftest import wait_until


def _page(slo: str, status: str = "firing", severity: str = "page") -> dict[str, Any]:
    labels = {"alertname": ALERT_NAME, "slo": slo, "severity": severity}
    return {"status": status, "alerts": [{"status": status, "labels": labels}]}


def test_alertmanager_is_loopback_only_with_state_in_the_state_folder(tmp_path: Path) -> None:
    layout, ports = StateLayout(tmp_path), PortPlan(4000)
    webhook, am = alertmanager.alertmanager_plans("/usr/bin/prometheus-alertmanager", layout, ports)
    assert f"--web.listen-address=127.0.0.1:{ports.alertmanager}" in am.command
    assert "--cluster.listen-address=" in am.command  # no gossip listener on every interface
    assert f"--storage.path={tmp_path / 'alertmanager' / 'data'}" in am.command
    assert webhook.command[:3] == [sys.executable, "-m", "testbed.runtime.alertsink"]
    assert str(ports.alert_webhook) in webhook.command and str(layout.alerts_file) in webhook.command


def test_amtool_accepts_the_generated_config(tmp_path: Path) -> None:
    amtool = shutil.which("amtool")
    assert amtool, "amtool is missing: `make setup` installs prometheus-alertmanager"
    token = tmp_path / "token"
    token.write_text("secret\n")
    path = tmp_path / "alertmanager.yml"
    path.write_text(alertmanager.render_config(alertmanager.alertmanager_config(13097, str(token))))
    check = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    route = alertmanager.alertmanager_config(13097)["route"]
    assert route["group_wait"] == "1s" and route["receiver"] == "testbed"


def test_prometheus_sends_alerts_to_alertmanager_only_when_it_runs(tmp_path: Path) -> None:
    targets = [ScrapeTarget("gateway", 0, 8080)]
    with_am = prometheus_config(targets, 9646, 18000, tmp_path, alertmanager_port=9093)
    assert with_am["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": ["127.0.0.1:9093"]}]}]
    assert "alerting" not in prometheus_config(targets, 9646, 18000, tmp_path)


def test_time_to_page_counts_the_first_page_after_the_fault_started() -> None:
    records = [
        {"received_unix": 95.0, "notification": _page("early")},  # before the fault: not this fault's page
        {"received_unix": 112.0, "notification": _page("checkout", severity="ticket")},
        {"received_unix": 118.5, "notification": _page("checkout")},
        {"received_unix": 125.0, "notification": _page("checkout")},
        {"received_unix": 130.0, "notification": _page("browse", status="resolved")},
    ]
    assert first_pages(records, 100.0, float("inf")) == {"checkout": 18.5}


def test_a_bad_alerts_file_names_file_and_line(tmp_path: Path) -> None:
    from slo.pages import NotificationsError

    path = tmp_path / "alerts.jsonl"
    path.write_text(record_line(_page("x"), 1.0) + "\n{not json\n")
    with pytest.raises(NotificationsError, match=r"alerts.jsonl:2: not JSON"):
        read_notifications(path)


def test_the_run_keeps_the_notifications_of_its_window(tmp_path: Path) -> None:
    state = tmp_path / "notifications.jsonl"
    state.write_text(record_line(_page("old"), 10.0) + "\n")
    marks = {str(state): state.stat().st_size}
    with state.open("a") as f:
        f.write(record_line(_page("a"), 20.0) + "\n" + record_line(_page("b"), 99.0) + "\n")
    out = tmp_path / "run" / "alerts.jsonl"
    assert collect_alerts(state, marks, 15.0, 50.0, out) == 1
    assert [json.loads(line)["notification"]["alerts"][0]["labels"]["slo"] for line in out.open()] == ["a"]
    assert collect_alerts(tmp_path / "missing.jsonl", {}, 0, 1, out) == 0 and out.read_text() == ""


def test_the_receiver_records_notifications_and_demands_the_token(tmp_path: Path) -> None:
    port = 4000 + 13_500 + os.getpid() % 400
    assert port_is_free(port)
    token, out = tmp_path / "token", tmp_path / "alerts" / "n.jsonl"
    token.write_text("s3cret\n")
    command = [sys.executable, "-m", "testbed.runtime.alertsink", "--port", str(port), "--out", str(out)]
    proc = subprocess.Popen([*command, "--token-file", str(token)])
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: not port_is_free(port), timeout=15, interval=0.1, message="the receiver to listen")
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.post(f"{url}/alerts", json=_page("x")).status_code == 401
        assert not out.exists()
        before = time.time()
        ok = httpx.post(f"{url}/alerts", json=_page("x"), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        (record,) = read_notifications(out)
        assert record["notification"] == _page("x") and record["received_unix"] >= before
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.stack
def test_an_alert_reaches_the_receiver_through_the_real_alertmanager(stack: StackDescriptor) -> None:
    assert stack.alertmanager_url and stack.alerts_file, "Alertmanager is installed here (make setup)"
    alerts_file = Path(stack.alerts_file)
    name = f"TestbedDeliveryProbe{os.getpid()}"
    labels = {"alertname": name, "severity": "page", "slo": "delivery-probe"}
    response = httpx.post(f"{stack.alertmanager_url}/api/v2/alerts", json=[{"labels": labels}], timeout=10)
    assert response.status_code == 200, response.text

    def delivered() -> bool:
        if not alerts_file.is_file():
            return False
        return any(
            a["labels"].get("alertname") == name
            for r in read_notifications(alerts_file)
            for a in r["notification"]["alerts"]
        )

    # group_wait 1 s, then one HTTP POST: well within 15 s even on a busy machine
    wait_until(delivered, timeout=15, interval=0.3, message="Alertmanager to deliver the probe alert")
    # Prometheus discovers its Alertmanager on its own schedule after start: wait for it, then compare
    wanted = [f"{stack.alertmanager_url}/api/v2/alerts"]

    def active() -> list[str]:
        am = httpx.get(f"{stack.prometheus_url}/api/v1/alertmanagers", timeout=10).json()["data"]
        return [a["url"] for a in am["activeAlertmanagers"]]

    wait_until(lambda: active() == wanted, timeout=20, interval=0.5, message="Prometheus to see Alertmanager")
    assert active() == wanted
