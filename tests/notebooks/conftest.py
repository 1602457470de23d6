"""The notebooks' input: one real run folder per test session, produced by a short real experiment
(`testbed experiment run`: real processes, real Prometheus, real Locust and `chaos run`) against the
session stack. No __init__.py here: a package named `notebooks` would shadow the real one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sample_shop.topology import StackDescriptor
from testbed.runtime.local import LocalTarget

REPO = Path(__file__).resolve().parents[2]
TESTBED = Path(sys.executable).parent / "testbed"
# The circuit-breaker experiment: the circuit breaker turns payment's 2 s latency into fast checkout failures,
# so the fault shows in checkout errors, logs, SLOs and traces. Short phases keep the session lean.
EXPERIMENT = "payment-latency-breaker"
PHASES = ("--warmup", "3s", "--baseline", "12s", "--fault", "12s", "--recovery", "8s")
EXPERIMENT_TIMEOUT_S = 300
HEALTHY_WAIT_S = 60.0


@pytest.fixture(scope="session")
def real_run(
    stack: StackDescriptor, stack_target: LocalTarget, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """runs/<id>/ of a real experiment on the session stack (exit 1, the SLOs breached, is its finding)."""
    # earlier tests may have killed or paused replicas: start from a healthy stack
    deadline = time.monotonic() + HEALTHY_WAIT_S
    while not stack_target.status().healthy:
        if time.monotonic() > deadline:
            pytest.fail(
                f"the session stack is not healthy after {HEALTHY_WAIT_S:g} s: {stack_target.status()}"
            )
        time.sleep(0.5)
    runs_dir = tmp_path_factory.mktemp("notebook-runs")
    command = [str(TESTBED), "experiment", "run", EXPERIMENT, *PHASES, "--runs-dir", str(runs_dir), "--json"]
    try:
        done = subprocess.run(
            command,
            cwd=REPO,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=EXPERIMENT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`{' '.join(command)}` took over {EXPERIMENT_TIMEOUT_S} s: {exc.stderr}")
    latest = runs_dir / "latest"
    if done.returncode not in (0, 1) or not latest.is_dir():
        pytest.fail(
            f"`{' '.join(command)}` exited {done.returncode} without a judged run folder:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return latest.resolve()
