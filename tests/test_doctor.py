"""`testbed doctor` and the declared system packages (scripts/system-packages.txt): parsing, judging, and
the real command on this machine (set up by `make setup`: everything present) and with a PATH that lacks
parts (exit 2, advice per part)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import sysdeps

DOCTOR = [sys.executable, "-m", "testbed.cli", "doctor"]


def test_the_list_declares_every_part_with_a_minimum_version() -> None:
    parts = {p.name: p for p in sysdeps.load_parts()}
    assert set(parts) == {"prometheus", "alertmanager", "node_exporter", "chromium", "docker", "debootstrap"}
    assert parts["prometheus"].minimum == (2, 40)
    assert parts["docker"].apt_package == "docker.io"
    assert parts["alertmanager"].binaries == (("prometheus-alertmanager", "alertmanager"), ("amtool",))


def test_a_malformed_line_is_named() -> None:
    with pytest.raises(sysdeps.PackagesFileError, match=r"list:2: minimum version 'new'"):
        sysdeps.parse_packages("# comment\nx pkg new x what for\n", "list")
    with pytest.raises(sysdeps.PackagesFileError, match=r"list:1: expected part"):
        sysdeps.parse_packages("x pkg 1.0\n", "list")


def test_judge_checks_every_binary_and_the_minimum() -> None:
    (part,) = sysdeps.parse_packages("am prometheus-alertmanager 0.25 am|alertmanager,amtool pages\n")
    paths = {"alertmanager": "/x/alertmanager", "amtool": "/x/amtool"}
    ok = sysdeps.judge(part, paths.get, lambda _: "alertmanager, version 0.25.0 (branch: debian)", True)
    assert ok.present and ok.version == "0.25.0" and ok.binaries == paths
    old = sysdeps.judge(part, paths.get, lambda _: "version 0.24.1", True)
    assert not old.present and "older than the minimum 0.25" in old.problem
    assert "apt-get install -y --no-install-recommends prometheus-alertmanager" in old.advice
    gone = sysdeps.judge(part, {"am": "/x/am"}.get, lambda _: "0.25.0", False)
    assert not gone.present and gone.problem == "amtool not on PATH"
    assert "package manager" in gone.advice


def test_doctor_passes_on_a_machine_set_up_by_make_setup() -> None:
    done = subprocess.run([*DOCTOR, "--json"], capture_output=True, text=True, timeout=120)
    result = json.loads(done.stdout)
    assert done.returncode == 0, [p for p in result["parts"] if not p["present"]]
    assert result["ok"] and all(p["version"] for p in result["parts"])


def test_doctor_exits_2_with_advice_for_each_missing_part(tmp_path: Path) -> None:
    """PATH holds only the real Prometheus, Alertmanager and node_exporter binaries: Chromium, Docker
    and debootstrap are missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("prometheus", "promtool", "prometheus-alertmanager", "amtool", "prometheus-node-exporter"):
        real = shutil.which(name)
        assert real, f"{name} is missing: run `make setup`"
        (bin_dir / name).symlink_to(real)
    env = {**os.environ, "PATH": str(bin_dir)}
    done = subprocess.run(DOCTOR, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    for part in ("chromium", "docker", "debootstrap"):
        assert f"missing {part}:" in done.stdout
    assert "missing prometheus" not in done.stdout and "missing alertmanager" not in done.stdout
