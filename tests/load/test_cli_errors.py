"""Bad input to `python -m load` and `testbed load`: a clear message naming the field and the valid values,
exit code 2 (3 when there is nothing to run against), never a traceback, and nothing started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from load.control import handle_path
from testbed.cli import app

ROOT = Path(__file__).resolve().parents[2]
TESTBED = "testbed"


def run(argv: list[str], state_dir: Path) -> subprocess.CompletedProcess[str]:
    """`python -m load ...` as a real process; `testbed load ...` in-process through Typer's runner (the
    same command object the console script calls, without a second of interpreter start per case)."""
    env = os.environ | {"TESTBED_STATE_DIR": str(state_dir), "COLUMNS": "200"}
    if argv[0] != "testbed":
        return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    result = CliRunner().invoke(app, argv[1:], env={"TESTBED_STATE_DIR": str(state_dir), "COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a crash is a test failure, with its traceback
    return subprocess.CompletedProcess(argv, result.exit_code, result.stdout, result.stderr)


CASES = [
    (["--profile", "bursty"], "profile", "valid profiles: steady, ramp, spike, step, soak, diurnal"),
    (["--profile", "steady", "--users", "0"], "users", "between 1 and 5000"),
    (["--profile", "steady", "--users", "lots"], "users", "expected an integer"),
    (["--profile", "spike", "--duration", "5 minutes"], "duration", "500ms, 90s, 5m, 1h30m"),
    (["--profile", "ramp", "--spawn-rate", "-1"], "spawn-rate", "greater than 0"),
    (["--profile", "steady", "--host", "http://192.168.7.7:8080"], "host", "not a loopback address"),
    (["--profile", "steady", "--host", "127.0.0.1:8080"], "host", "expected a base URL"),
    (["--profile", "steady", "--workers", "-1"], "workers", "outside 0..16"),
    (["--profile", "steady", "--workers", "two"], "workers", "not a whole number"),
]


@pytest.mark.parametrize(("args", "flag", "fragment"), CASES)
@pytest.mark.parametrize("entry", ["python -m load", "testbed load"])
def test_bad_input_exits_2_with_a_message_naming_the_flag(
    entry: str, args: list[str], flag: str, fragment: str, tmp_path: Path
) -> None:
    prefix = [sys.executable, "-m", "load"] if entry == "python -m load" else [TESTBED, "load"]
    result = run([*prefix, *args, "--out", str(tmp_path / "out")], tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"--{flag}" in result.stderr and fragment in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "out").exists()  # nothing was started
    assert not handle_path(tmp_path).exists()


@pytest.mark.parametrize("entry", ["python -m load", "testbed load"])
def test_no_stack_exits_3_and_says_how_to_start_one(entry: str, tmp_path: Path) -> None:
    prefix = [sys.executable, "-m", "load"] if entry == "python -m load" else [TESTBED, "load"]
    result = run([*prefix, "--profile", "steady"], tmp_path)
    assert result.returncode == 3, result.stderr
    assert "stack.json does not exist" in result.stderr and "testbed up" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_gateway_exits_3(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a loopback port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run([TESTBED, "load", "--profile", "steady", "--host", f"http://127.0.0.1:{port}"], tmp_path)
    assert result.returncode == 3
    assert "does not accept connections" in result.stderr and "testbed up" in result.stderr


def test_help_lists_every_profile_with_its_defaults(tmp_path: Path) -> None:
    result = run([TESTBED, "load", "--help"], tmp_path)
    assert result.returncode == 0
    for line in ("steady:", "ramp:", "spike:", "step:", "soak:", "diurnal:", "--json", "--duration"):
        assert line in result.stdout
    result = run([sys.executable, "-m", "load", "--help"], tmp_path)
    assert result.returncode == 0 and "diurnal" in result.stdout and "exit codes" in result.stdout


def test_exporter_port_in_use_exits_3_and_names_the_port(tmp_path: Path) -> None:
    """The gateway here is only a listening socket: the run must fail at the exporter, before any load."""
    import socket

    with socket.socket() as gateway, socket.socket() as busy:
        for s in (gateway, busy):
            s.bind(("127.0.0.1", 0))
            s.listen()
        port = busy.getsockname()[1]
        result = run(
            [sys.executable, "-m", "load", "--profile", "steady", "--duration", "3s",
             "--host", f"http://127.0.0.1:{gateway.getsockname()[1]}", "--metrics-port", str(port),
             "--out", str(tmp_path / "out")],
            tmp_path,
        )  # fmt: skip
    assert result.returncode == 3
    assert f"127.0.0.1:{port}: the port is in use" in result.stderr and "--metrics-port" in result.stderr
    assert "Traceback" not in result.stderr
