"""A `chaos run` that dies in the middle of a fault. SIGKILL runs nothing: the fault's TTL (enforced by each
replica) and the load's watch on its parent bring the shop back within the TTL. Ctrl-C (SIGINT) runs the
rollbacks at once: the fault is gone long before its TTL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chaosshop.settings import TTL_MARGIN_S

from chaos.helpers import EXPERIMENTS, QUICK, chaos_command, stop_process, write_vars
from load.control import current_load
from sample_shop.kit.policy import PROFILE_DEFAULTS
from sample_shop.topology import StackDescriptor

pytestmark = pytest.mark.stack

FAULT_GONE_S = 1.5  # each replica expires its faults by itself; the listing may lag one reconcile pass
HEAL_SLACK_S = 5.0  # a loaded 2-core machine: scheduling, the probe call itself


@pytest.fixture
def chaos_process(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `chaos run` in the background; whatever happens, the process is gone after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(experiment_id: str, **overrides: Any) -> subprocess.Popen[bytes]:
        var_file = write_vars(tmp_path / "vars.yaml", {**QUICK, **overrides})
        command = chaos_command(EXPERIMENTS / f"{experiment_id}.yaml", tmp_path / "journal.json", var_file)
        log = (tmp_path / "chaos.log").open("wb")
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            stop_process(proc)


def _catalog_fault(control: httpx.Client) -> dict[str, Any] | None:
    listing = control.get("/faults").json()
    return next((f for f in listing["desired"] if f["service"] == "catalog"), None)


def _wait_for_the_fault(
    proc: subprocess.Popen[bytes], control: httpx.Client, wait_until: Callable[..., Any]
) -> dict[str, Any]:
    def injected() -> dict[str, Any] | None:
        assert proc.poll() is None, "chaos run ended before the fault was injected"
        return _catalog_fault(control)

    fault: dict[str, Any] = wait_until(
        injected, 90, interval=0.2, message="the catalog outage to be injected"
    )
    return fault


def _browsing_works(stack: StackDescriptor) -> bool:
    return httpx.get(f"{stack.gateway_url}/api/products", timeout=5).status_code == 200


def test_sigkill_mid_fault_leaves_the_shop_healthy_within_the_ttl(
    clean_stack: StackDescriptor,
    control: httpx.Client,
    chaos_process: Callable[..., subprocess.Popen[bytes]],
    wait_until: Callable[..., Any],
) -> None:
    fault_s = 5
    proc = chaos_process("catalog-outage", fault_s=fault_s, recovery_s=30)
    fault = _wait_for_the_fault(proc, control, wait_until)
    assert fault["ttl_s"] == fault_s + TTL_MARGIN_S
    # The fault's own clock: it must be gone by its TTL, whatever became of the experiment.
    expires_at = time.monotonic() + fault["remaining_s"]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert not _browsing_works(clean_stack), "the outage outlives the killed experiment until its TTL"
    assert _catalog_fault(control) is not None
    wait_until(lambda: current_load(clean_stack.state_dir) is None, 30, message="the orphaned load to stop")
    wait_until(
        lambda: control.get("/faults").json()["faults"] == [],
        max(1.0, expires_at - time.monotonic()) + FAULT_GONE_S,
        interval=0.2,
        message="the fault to end by its TTL",
    )
    assert time.monotonic() <= expires_at + FAULT_GONE_S, "the fault outlived its TTL"
    # Browsing then comes back once the gateway's breaker towards catalog lets a probe through.
    breaker_open_s = PROFILE_DEFAULTS["resilient"].breaker_open_s
    wait_until(
        lambda: _browsing_works(clean_stack),
        breaker_open_s + HEAL_SLACK_S,
        interval=0.5,
        message="browsing to work again within the breaker's open time after the fault ended",
    )


def test_ctrl_c_runs_the_rollbacks(
    clean_stack: StackDescriptor,
    control: httpx.Client,
    chaos_process: Callable[..., subprocess.Popen[bytes]],
    wait_until: Callable[..., Any],
    tmp_path: Path,
) -> None:
    proc = chaos_process("catalog-outage", fault_s=60)  # TTL 75 s: only the rollbacks can end it early
    _wait_for_the_fault(proc, control, wait_until)
    interrupted_at = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=90) != 0
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["status"] == "interrupted"
    rollbacks = {r["activity"]["name"]: r["status"] for r in journal["rollbacks"]}
    assert rollbacks == {
        "clear-all-faults": "succeeded",
        "reset-client-policies": "succeeded",
        "stop-load": "succeeded",
    }, (tmp_path / "chaos.log").read_text()[-3000:]
    assert control.get("/faults").json()["desired"] == []
    assert current_load(clean_stack.state_dir) is None
    assert _browsing_works(clean_stack)
    assert time.monotonic() - interrupted_at < 45, "the rollbacks, not the TTL, ended the fault"
