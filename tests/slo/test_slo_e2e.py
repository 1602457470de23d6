"""End to end on the REAL local shop (the suite's session stack): Locust load through the gateway, a real
Prometheus scraping it and evaluating the generated SLO rules, a real fault injected through the payment
replica's admin API. The gate passes on the healthy phases, fails naming the checkout SLOs when payment
is down, and reads the time to detect from the burn-rate alerts Prometheus fired."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from load.control import start_load, stop_load
from sample_shop.topology import StackDescriptor
from testbed.cli import app

# The buying mix, 16 users and a 60 s baseline: enough checkouts and logins to decide every 99 % objective
# (198 clean events each, docs/slo.md; 12 users gave ~3.1 logins/s, 188 in the baseline: too few).
WARMUP_S, BASELINE_S, FAULT_S, RECOVERY_S = 20, 60, 25, 25
PAYMENT_DOWN = {"kind": "error", "params": {"status": 503, "probability": 1.0}, "ttl_s": FAULT_S + 15}
runner = CliRunner()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Experiment:
    prometheus_url: str
    phases_file: Path
    start: float
    end: float


def _payment_admin(stack: StackDescriptor) -> list[httpx.Client]:
    headers = {"Authorization": f"Bearer {stack.token()}"}
    replicas = stack.replicas_of("payment")
    assert replicas and all(r.admin_url for r in replicas)
    return [httpx.Client(base_url=str(r.admin_url), headers=headers, timeout=10) for r in replicas]


@pytest.fixture(scope="module")
def experiment(stack: StackDescriptor, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Experiment]:
    """Warm-up, baseline, payment down, recovery - under steady load. Load and fault always cleaned up."""
    tmp = tmp_path_factory.mktemp("slo-e2e")
    total_s = WARMUP_S + BASELINE_S + FAULT_S + RECOVERY_S
    admins = _payment_admin(stack)
    handle = start_load(
        "steady", out_dir=tmp / "load", users=16, duration=f"{total_s + 30}s", think_time_factor=0.3,
        mix="buying", state_dir=stack.state_dir,
    )  # fmt: skip
    phases = []
    try:
        t0 = time.time()
        time.sleep(WARMUP_S)
        phases.append(("warmup", t0, time.time()))
        t = time.time()
        time.sleep(BASELINE_S)
        phases.append(("baseline", t, time.time()))
        t = time.time()
        for admin in admins:
            admin.post("/faults", json=PAYMENT_DOWN).raise_for_status()
        try:
            time.sleep(FAULT_S)
        finally:
            for admin in admins:
                admin.delete("/faults").raise_for_status()
        phases.append(("fault", t, time.time()))
        t = time.time()
        time.sleep(RECOVERY_S)
        phases.append(("recovery", t, time.time()))
    finally:
        stop_load(handle, state_dir=stack.state_dir)
        for admin in admins:
            admin.delete("/faults")
            admin.close()
    time.sleep(3)  # the last scrape and rule evaluation of the window
    phases_file = tmp / "phases.json"
    phases_file.write_text(json.dumps([{"name": n, "start": iso(a), "end": iso(b)} for n, a, b in phases]))
    yield Experiment(stack.prometheus_url, phases_file, phases[0][1], phases[-1][2])


def gate(exp: Experiment, *extra: str) -> tuple[int, dict]:
    result = runner.invoke(
        app,
        ["slo", "check", "--from", str(exp.start), "--to", str(exp.end), "--phases", str(exp.phases_file),
         "--prometheus", exp.prometheus_url, "--json", *extra],
    )  # fmt: skip
    assert result.stdout, result.output
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.slow
def test_gate_passes_while_the_shop_is_healthy(experiment: Experiment) -> None:
    """The baseline (after the warm-up: cold caches, sign-ups) meets every objective, each one decided
    by the sequential rule with its interval above the objective's lower edge."""
    code, report = gate(experiment, "--phase", "baseline")
    problems = {
        s["name"]: (s["status"], s["windows"][1]["reason"]) for s in report["slos"] if s["status"] != "met"
    }
    assert not problems
    assert code == 0
    for s in report["slos"]:
        baseline = s["windows"][1]
        assert baseline["window"] == "baseline" and baseline["decided_after_s"] <= BASELINE_S + 1
        assert baseline["sli_low"] < baseline["sli"] <= baseline["sli_high"] <= 1.0


@pytest.mark.slow
def test_payment_down_fails_the_gate_naming_checkout(experiment: Experiment) -> None:
    code, report = gate(
        experiment, "--recovery-window", "15s", "--out", str(experiment.phases_file.parent / "gate")
    )
    assert code == 1
    status = {s["name"]: s for s in report["slos"]}
    for name in ("checkout-availability-gateway", "checkout-availability-client"):
        assert status[name]["status"] == "breached", status[name]
        fault = next(w for w in status[name]["windows"] if w["window"] == "fault")
        assert fault["status"] == "breached"
        # the page alert (6 s and 4 s windows at 14.4x) fires within seconds of the fault
        assert status[name]["time_to_detect_s"] is not None and status[name]["time_to_detect_s"] < 20
        assert (
            status[name]["time_to_recover_s"] is not None and status[name]["time_to_recover_s"] < RECOVERY_S
        )

    # the culprit stands out: no other SLO lost as much in the fault phase (other journeys may suffer
    # collateral damage - a busy shop on 2 cores - and the gate rightly reports it, but far less)
    def fault_sli(s: dict) -> float:
        window = next(w for w in s["windows"] if w["window"] == "fault")
        return 1.0 if window["sli"] is None else window["sli"]

    worst_other = min(
        fault_sli(s) for name, s in status.items() if not name.startswith("checkout-availability")
    )
    assert fault_sli(status["checkout-availability-gateway"]) < 0.5 < worst_other


@pytest.mark.slow
def test_the_burn_rate_page_was_delivered_by_alertmanager(
    experiment: Experiment, stack: StackDescriptor
) -> None:
    """Prometheus sent the page alert to the real Alertmanager, which delivered it to the testbed's webhook
    receiver: time to page = detection + group_wait (1 s) + delivery, so a few seconds after detection."""
    from slo.pages import first_pages, read_notifications

    assert stack.alerts_file, "Alertmanager is installed here (make setup), so the stack runs it"
    fault = next(p for p in json.loads(experiment.phases_file.read_text()) if p["name"] == "fault")
    fault_start = datetime.fromisoformat(fault["start"].replace("Z", "+00:00")).timestamp()
    pages = first_pages(read_notifications(Path(stack.alerts_file)), fault_start, experiment.end + 5)
    for name in ("checkout-availability-gateway", "checkout-availability-client"):
        assert name in pages, f"no page delivered for {name}: {sorted(pages)}"
        assert 0 <= pages[name] < 30
