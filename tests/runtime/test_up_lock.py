"""Two `testbed up` at the same moment on one state folder (a stack of its own on the spare offset): before
the `up` lock each spawned a supervisor writing a new token to the same file and both failed with exit 1.
Now the second waits for the first and finds its stack (exit 0, the same token). `up` with other options
on a running stack is a bad request (exit 2), not "could not come up" (exit 1). Real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.stack


def _env(state: Path, offset: int) -> dict[str, str]:
    return {**os.environ, "TESTBED_STATE_DIR": str(state), "TESTBED_PORT_OFFSET": str(offset)}


def _up(state: Path, offset: int, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "testbed.cli", "up", "--no-extras", "--timeout", "120", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(state, offset),
    )


def test_two_ups_at_once_share_one_stack_and_other_options_are_exit_2(
    tmp_path: Path, spare_port_offset: int
) -> None:
    state = tmp_path / "state"
    first, second = _up(state, spare_port_offset), _up(state, spare_port_offset)
    try:
        out1, err1 = first.communicate(timeout=300)
        out2, err2 = second.communicate(timeout=300)
        assert first.returncode == 0, err1
        assert second.returncode == 0, err2
        stacks = [json.loads(out1)["stack"], json.loads(out2)["stack"]]
        assert stacks[0]["control_url"] == stacks[1]["control_url"]
        # one supervisor, and the token in the file is the one it checks
        token = (state / "token").read_text().strip()
        answer = httpx.get(
            f"{stacks[0]['control_url']}/processes", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert answer.status_code == 200
        supervisors = [p for p in answer.json()["processes"] if p["service"] == "supervisor"]
        assert len(supervisors) <= 1
        other = subprocess.run(
            [sys.executable, "-m", "testbed.cli", "up", "--replicas", "catalog=3"],
            capture_output=True,
            text=True,
            timeout=120,
            env=_env(state, spare_port_offset),
        )
        assert other.returncode == 2, other.stderr
        assert "other options" in other.stderr and "testbed down" in other.stderr
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait()
        subprocess.run(
            [sys.executable, "-m", "testbed.cli", "down"],
            capture_output=True,
            timeout=120,
            env=_env(state, spare_port_offset),
        )
