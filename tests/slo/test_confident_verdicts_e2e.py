"""End to end on the REAL local shop (the suite's session stack): the sequential rule reaches a confident
verdict on checkout availability both ways. Real Locust load with the `buying` mix (the default
experiment's: 12 users, think-time factor 0.2, ~5.8 checkouts a second on an idle machine), a real
Prometheus, the fault injected with the real CLI:

    testbed fault inject gateway error --param status=500 --param probability=0.04 --param route=/api/checkout

4 % of checkouts failing is a burn rate of 4 at the 99 % objective: `breached`, decided inside the phase,
on the gateway's and on the shoppers' side. The same load without the fault: `met`, decided inside the
phase. Decided means the first crossing of the rule's lines (not inconclusive), at alpha = beta = 0.05.

Each phase is read as the experiment runner reads it, continuously: the gate is asked every few seconds
and the phase ends once both checkout SLOs are decided (or at its longest, CLEAN_S / FAULT_S). The rule
is anytime-valid (slo/sequential.py), so stopping at the decision keeps its error rates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from load.control import start_load, stop_load
from sample_shop.topology import StackDescriptor
from testbed.cli import app

pytestmark = [pytest.mark.stack, pytest.mark.slow]

# Average events to a decision at 99 % (docs/slo.md): 198 clean to `met`, ~74 at burn 4 to `breached`.
# At 5.8 checkouts/s that is ~35 s and ~13 s; the longest phases leave room for a busy 2-core machine
# (half rate). A phase ends earlier, once both checkout SLOs are decided (checked every POLL_S).
WARMUP_S, CLEAN_S, FAULT_S = 15, 80, 60
POLL_S = 4.0
FAULT = [
    "fault", "inject", "gateway", "error", "--param", "status=500", "--param", "probability=0.04",
    "--param", "route=/api/checkout", "--ttl", str(FAULT_S + 20),
]  # fmt: skip
CHECKOUT = ("checkout-availability-gateway", "checkout-availability-client")
runner = CliRunner()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _testbed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "testbed.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ,
    )


@dataclass(frozen=True)
class Run:
    prometheus_url: str
    phases_file: Path
    start: float
    end: float


@pytest.fixture(scope="module")
def run(stack: StackDescriptor, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Warm-up, a clean phase, then 4 % of checkouts failed at the gateway. Load and fault always removed."""
    tmp = tmp_path_factory.mktemp("confident")
    handle = start_load(
        "steady", out_dir=tmp / "load", users=12, duration=f"{WARMUP_S + CLEAN_S + FAULT_S + 30}s",
        think_time_factor=0.2, mix="buying", state_dir=stack.state_dir,
    )  # fmt: skip
    phases = []
    try:
        t0 = time.time()
        time.sleep(WARMUP_S)
        phases.append(("warmup", t0, time.time()))
        phases.append(("baseline", *_until_decided(stack, tmp, phases, "baseline", CLEAN_S)))
        injected = _testbed(*FAULT)
        assert injected.returncode == 0, injected.stdout + injected.stderr
        try:
            phases.append(("fault", *_until_decided(stack, tmp, phases, "fault", FAULT_S)))
        finally:
            cleared = _testbed("fault", "clear", "gateway")
        assert cleared.returncode == 0, cleared.stdout + cleared.stderr
    finally:
        stop_load(handle, state_dir=stack.state_dir)
        _testbed("fault", "clear", "gateway")
    time.sleep(3)  # the last scrape of the window
    yield Run(stack.prometheus_url, _phases_file(tmp, phases), phases[0][1], phases[-1][2])


def _phases_file(tmp: Path, phases: list[tuple[str, float, float]]) -> Path:
    path = tmp / "phases.json"
    path.write_text(json.dumps([{"name": n, "start": iso(a), "end": iso(b)} for n, a, b in phases]))
    return path


def _until_decided(
    stack: StackDescriptor, tmp: Path, done: list[tuple[str, float, float]], name: str, longest_s: float
) -> tuple[float, float]:
    """Hold the phase until the gate has decided both checkout SLOs in it (met or breached), at most
    `longest_s`; its (start, end)."""
    start = time.time()
    while time.time() - start < longest_s:
        time.sleep(min(POLL_S, max(0.0, longest_s - (time.time() - start))))
        now = time.time()
        _, slos = gate(
            Run(stack.prometheus_url, _phases_file(tmp, [*done, (name, start, now)]), start, now), name
        )
        if all(window(slos[n], name)["status"] in ("met", "breached") for n in CHECKOUT):
            time.sleep(2)  # a scrape past the decision, so the judged window holds it
            break
    return start, time.time()


def gate(r: Run, phase: str) -> tuple[int, dict[str, dict[str, Any]]]:
    result = runner.invoke(
        app,
        ["slo", "check", "--from", str(r.start), "--to", str(r.end), "--phases", str(r.phases_file),
         "--prometheus", r.prometheus_url, "--phase", phase, "--json"],
    )  # fmt: skip
    assert result.stdout, result.output
    return result.exit_code, {s["name"]: s for s in json.loads(result.stdout)["slos"]}


def window(slo: dict[str, Any], name: str) -> dict[str, Any]:
    return next(w for w in slo["windows"] if w["window"] == name)


def test_four_percent_failed_checkouts_are_a_confident_breach(run: Run) -> None:
    code, slos = gate(run, "fault")
    assert code == 1
    for name in CHECKOUT:
        slo = slos[name]
        assert slo["rule"]["method"] == "sprt" and slo["rule"]["alpha"] == slo["rule"]["beta"] == 0.05
        fault = window(slo, "fault")
        assert (slo["status"], fault["status"]) == ("breached", "breached"), fault["reason"]
        assert fault["decided_after_s"] is not None and fault["decided_after_s"] <= FAULT_S + 1
        assert fault["events_needed"] == 0.0
        # the failures were really there, about 4 % of the checkouts (not a lucky streak of a few)
        bad_share = 1.0 - fault["sli"]
        assert 0.01 < bad_share < 0.12, (name, fault["good"], fault["total"])
        assert fault["sli_high"] < 1.0  # the interval excludes a perfect checkout


def test_the_same_load_without_the_fault_is_a_confident_met(run: Run) -> None:
    code, slos = gate(run, "baseline")
    for name in CHECKOUT:
        baseline = window(slos[name], "baseline")
        assert (slos[name]["status"], baseline["status"]) == ("met", "met"), baseline["reason"]
        assert baseline["decided_after_s"] is not None and baseline["decided_after_s"] <= CLEAN_S + 1
        assert baseline["total"] >= slos[name]["rule"]["clean_events_to_meet"]
    # nothing is breached in the clean phase (latency SLOs may be marked unreliable - exit 2 - when the
    # shared machine's CPU was saturated: slo/noise.py; that is not a verdict on the shop)
    breached = {n: window(s, "baseline")["reason"] for n, s in slos.items() if s["status"] == "breached"}
    assert code != 1 and not breached, breached
