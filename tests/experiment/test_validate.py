"""Bad experiment input is caught at the door: every chaosshop action's arguments are checked against the
fault catalog (sample_shop/kit/faultspec.py) and the actions' own signatures when the experiment is
loaded, and again after `--var` substitution; duplicate keys, a missing extension id and a non-UTF-8 file
are refused too. Each gets exit 2 naming file, line and field, and nothing starts: no stack, no run
folder, no `runs/latest`. The real CLI in a subprocess, with an empty state folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.experiment.catalog import EXPERIMENTS_DIR

# every case runs the real CLI in a subprocess (about a second of imports each): out of `make test-fast`
pytestmark = pytest.mark.slow

SOURCE = (EXPERIMENTS_DIR / "payment-errors.yaml").read_text()
INJECT = (
    'arguments: {service: payment, kind: error, params: {status: 503, probability: "${error_probability}"}}'
)
assert INJECT in SOURCE


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _run(tmp_path: Path, text: str | bytes, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    path = tmp_path / "exp.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    env = {
        **os.environ,
        "TESTBED_STATE_DIR": str(tmp_path / "state"),
        "TESTBED_RUNS_DIR": str(tmp_path / "runs"),
        # no Prometheus on PATH: should the door ever let a bad file through, the stack cannot start
        # (and the message checks fail) instead of a stack coming up on some port
        "PATH": str(Path(sys.executable).parent),
    }
    result = subprocess.run(
        [sys.executable, "-m", "testbed.cli", "experiment", "run", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    return result, path


def _refused(tmp_path: Path, result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists(), "a run folder was created"
    assert not (tmp_path / "state" / "stack.json").exists(), "a stack was started"
    return " ".join(result.stderr.split())


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        (("kind: error", "kind: eror"), "kind", "unknown fault kind 'eror'"),
        (("service: payment, kind", "service: paymnt, kind"), "service", "unknown service 'paymnt'"),
        (("params: {status: 503,", "ttl_s: -5, params: {status: 503,"), "ttl_s", "got -5"),
        (('probability: "${error_probability}"', "probability: 5"), "params.probability", "got 5"),
        (("status: 503", "status: 200"), "params.status", "got 200"),
        (("func: inject_fault", "func: inject_fualt"), "func", "inject_fualt"),
    ],
)
def test_a_bad_fault_is_refused_at_load_time_naming_line_and_field(
    tmp_path: Path, change: tuple[str, str], field: str, says: str
) -> None:
    text = SOURCE.replace(*change)
    assert text != SOURCE
    result, path = _run(tmp_path, text)
    message = _refused(tmp_path, result)
    assert f"{path}:" in message and field in message and says in message, message
    line = _line_of(text, change[1])  # the line of the activity's provider field that is wrong
    if field == "func":
        assert f"{path}:{line}:" in message, message


@pytest.mark.parametrize(("value", "says"), [("abc", "'abc'"), ("7", "'7'")])
def test_a_bad_var_is_refused_after_substitution(tmp_path: Path, value: str, says: str) -> None:
    result, path = _run(tmp_path, SOURCE, "--var", f"error_probability={value}")
    message = _refused(tmp_path, result)
    line = _line_of(SOURCE, INJECT)
    assert f"{path}:{line}:" in message and "params.probability" in message and says in message, message
    assert "error_probability" in message, message


def test_an_unknown_argument_of_an_action_is_refused(tmp_path: Path) -> None:
    text = SOURCE.replace('arguments: {seconds: "${fault_s}"}', 'arguments: {secnds: "${fault_s}"}')
    result, path = _run(tmp_path, text)
    message = _refused(tmp_path, result)
    assert f"{path}:{_line_of(text, 'secnds')}:" in message and "secnds" in message, message


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    text = SOURCE.replace("  fault_s:", "  recovery_s: 5\n  fault_s:", 1)
    assert text != SOURCE
    result, _ = _run(tmp_path, text)
    message = _refused(tmp_path, result)
    assert "duplicate key" in message and "configuration.recovery_s" in message, message


def test_a_missing_extension_id_is_refused(tmp_path: Path) -> None:
    text = SOURCE.replace("    id: payment-errors\n", "")
    assert text != SOURCE
    result, path = _run(tmp_path, text)
    message = _refused(tmp_path, result)
    assert f"{path}:" in message and "extensions[0].id" in message, message


def test_a_non_utf8_file_is_refused_without_a_traceback(tmp_path: Path) -> None:
    result, path = _run(tmp_path, SOURCE.encode().replace(b"title: ", b"title: \xff\xfe ", 1))
    message = _refused(tmp_path, result)
    assert f"{path}:" in message and "UTF-8" in message, message


def test_every_catalog_experiment_passes_the_door() -> None:
    from testbed.experiment.catalog import Experiment, list_experiments

    assert all(isinstance(e, Experiment) for e in list_experiments())


def test_clearing_the_notifications_function_passes_and_a_misspelt_target_is_refused(tmp_path: Path) -> None:
    """clear_faults names a service or the notifications function (faultd clears either by name)."""
    from testbed.experiment.catalog import Experiment, load_experiment

    notifications = EXPERIMENTS_DIR / "notifications-down.yaml"
    text = notifications.read_text()
    assert "arguments: {service: notifications}" in text
    assert isinstance(load_experiment(notifications), Experiment)
    bad = text.replace("arguments: {service: notifications}", "arguments: {service: notifcations}")
    result, path = _run(tmp_path, bad)
    message = _refused(tmp_path, result)
    line = _line_of(bad, "notifcations")
    assert f"{path}:{line}:" in message and "unknown service 'notifcations'" in message, message
    assert "notifications" in message.split("valid:")[1], message
