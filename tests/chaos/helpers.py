"""Helpers of the chaos tests: the catalog's files and their headers, a real `chaos run` against the session
stack with short phases, and the cleanup that leaves the stack without faults, policy overrides or load."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from load.control import current_load, stop_load
from sample_shop.topology import StackDescriptor

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"
CHAOS = str(Path(sys.executable).with_name("chaos"))
# Short phases: enough traffic for the SLIs on 2 cores, small enough for the suite's budget.
QUICK = {"warmup_s": 2, "baseline_s": 2, "fault_s": 7, "recovery_s": 3, "window_s": 5, "spawn_rate": 50}
RUN_TIMEOUT_S = 240


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    path: Path
    data: dict[str, Any]
    header: str

    @property
    def target(self) -> str:
        return str(self.extension().get("target", "local"))

    @property
    def expected(self) -> str:
        """`completed` or `deviated`, from the header's "Expected outcome:" line."""
        match = re.search(r"^# Expected outcome: (completed|deviated)\b", self.header, re.MULTILINE)
        assert match, f"{self.path}: the header needs 'Expected outcome: completed|deviated'"
        return match.group(1)

    def extension(self) -> dict[str, Any]:
        return next(e for e in self.data.get("extensions", []) if e.get("name") == "chaosshop")


def catalog() -> list[CatalogEntry]:
    entries = []
    for path in sorted(EXPERIMENTS.glob("*.yaml")):
        text = path.read_text()
        header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
        entries.append(CatalogEntry(path.stem, path, yaml.safe_load(text), header))
    return entries


def local_ids() -> list[str]:
    return [e.id for e in catalog() if e.target == "local"]


@dataclass
class ChaosRun:
    journal: dict[str, Any]
    returncode: int
    log: str
    wall_s: float

    @property
    def status(self) -> str:
        return str(self.journal["status"])

    @property
    def verdict(self) -> str:
        """completed, deviated, failed, aborted or interrupted (what `chaos run` reports at its end)."""
        return "deviated" if self.journal.get("deviated") else self.status

    def after(self, probe: str) -> Any:
        probes = (self.journal["steady_states"].get("after") or {}).get("probes", [])
        return next(p["output"] for p in probes if p["activity"]["name"] == probe)

    def extension(self) -> dict[str, Any]:
        return next(e for e in self.journal.get("extensions", []) if e.get("name") == "chaosshop")

    def explain(self) -> str:
        """What to print when an assertion on this run fails."""
        hyp = self.journal["steady_states"]
        lines = [f"status {self.status}, deviated {self.journal.get('deviated')}, exit {self.returncode}"]
        for when in ("before", "after"):
            for p in (hyp.get(when) or {}).get("probes", []):
                lines.append(f"  {when} {p['activity']['name']}: {p['status']} {p.get('output')}")
        for r in self.journal.get("run", []) + self.journal.get("rollbacks", []):
            if r.get("status") != "succeeded":
                lines.append(
                    f"  {r['activity']['name']}: {r.get('status')} {(r.get('exception') or [''])[-1]}"
                )
        return "\n".join(lines) + "\n--- chaos log tail ---\n" + self.log[-3000:]


def chaos_command(experiment: Path, journal: Path, var_file: Path) -> list[str]:
    return [
        CHAOS, "--no-version-check", "--no-log-file", "run",
        "--journal-path", str(journal), "--var-file", str(var_file), str(experiment),
    ]  # fmt: skip


def write_vars(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"configuration": values}))
    return path


def run_chaos(experiment_id: str, workdir: Path, **overrides: Any) -> ChaosRun:
    """A real `chaos run` of experiments/<id>.yaml against the session stack with short phases."""
    var_file = write_vars(workdir / f"{experiment_id}-vars.yaml", {**QUICK, **overrides})
    journal = workdir / f"{experiment_id}-journal.json"
    started = time.monotonic()
    done = subprocess.run(
        chaos_command(EXPERIMENTS / f"{experiment_id}.yaml", journal, var_file),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=os.environ,
    )
    assert journal.exists(), f"chaos run wrote no journal (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return ChaosRun(json.loads(journal.read_text()), done.returncode, done.stderr, time.monotonic() - started)


def active_faults(control: httpx.Client) -> dict[str, Any]:
    listing = control.get("/faults").json()
    return {k: listing[k] for k in ("faults", "pending", "desired", "policies")}


def leave_clean(stack: StackDescriptor, control: httpx.Client) -> None:
    """Clear faults and policy overrides, stop a load left behind."""
    control.delete("/faults")
    control.delete("/policy")
    if current_load(stack.state_dir) is not None:
        stop_load(state_dir=stack.state_dir)


def stop_process(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGKILL) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
