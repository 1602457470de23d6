"""Finding and checking experiments (the shipped catalog and broken files in a tmp folder), and the values
handed to `chaos run`."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.experiment.catalog import (
    EXPERIMENTS_DIR,
    Experiment,
    ExperimentFileError,
    list_experiments,
    load_experiment,
    resolve_experiment,
)
from testbed.experiment.chaos import chaos_command
from testbed.experiment.errors import ExperimentError
from testbed.experiment.runner import RunRequest, chaos_configuration
from testbed.experiment.schedule import plan_phases
from testbed.runfolder import RunPaths

DEFAULT = "payment-errors"  # the Makefile's EXP default
BREAKER = "payment-latency-breaker"


def test_every_catalog_experiment_has_what_the_orchestrator_needs() -> None:
    entries = list_experiments()
    assert entries, "experiments/ holds no experiment"
    broken = [str(e) for e in entries if not isinstance(e, Experiment)]
    assert broken == []
    for e in entries:
        assert isinstance(e, Experiment)
        assert e.name == e.path.stem  # the chaosshop id names the run folder and the Prometheus label
        assert {"baseline", "fault"} <= set(e.phase_activities)


def test_the_makefile_default_is_in_the_catalog() -> None:
    makefile = (EXPERIMENTS_DIR.parent / "Makefile").read_text()
    assert f"EXP ?= {DEFAULT}" in makefile
    assert resolve_experiment(DEFAULT).target == "local"


def test_an_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ExperimentFileError) as info:
        resolve_experiment("payment-latncy")
    message = str(info.value)
    assert "unknown experiment 'payment-latncy'" in message
    assert BREAKER in message and "catalog-outage" in message


GOOD = """\
title: t
configuration:
  warmup_s: 1
  baseline_s: 2
  fault_s: 3
  recovery_s: 4
controls:
  - name: chaosshop
    provider: {type: python, module: chaosshop.control}
extensions:
  - name: chaosshop
    id: mine
    phases: {baseline: hold-baseline, fault: inject}
method:
  - {type: action, name: hold-baseline, provider: {type: python, module: m, func: f}}
  - {type: action, name: inject, provider: {type: python, module: m, func: f}}
"""


def test_a_valid_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD)
    exp = resolve_experiment(str(path))
    assert (exp.name, exp.target, exp.total_s) == ("mine", "local", 10.0)
    assert exp.durations == {"warmup": 1.0, "baseline": 2.0, "fault": 3.0, "recovery": 4.0}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("  fault_s: 3\n", "  fault_s: soon\n"),
            ":5: configuration.fault_s: must be a number of seconds > 0",
        ),
        (("  recovery_s: 4\n", ""), ":2: configuration: needs recovery_s"),
        (
            ("fault: inject}", "fault: injekt}"),
            ":13: extensions[0].phases.fault: no method activity is named 'injekt'",
        ),
        (
            ("    provider: {type: python, module: chaosshop.control}\n", "    provider: {}\n"),
            ":7: controls: needs",
        ),
        (("title: t\n", ""), ":1: title: required by Chaos Toolkit"),
        (
            ("    id: mine\n", "    id: mine\n    target: moon\n"),
            "extensions[0].target: must be one of local, kind",
        ),
        (("  fault_s: 3\n", "  fault_s: [3\n"), "invalid YAML"),
    ],
)
def test_broken_files_are_refused_with_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ExperimentFileError) as info:
        load_experiment(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ExperimentFileError, match="no such experiment file"):
        resolve_experiment(str(tmp_path / "nope.yaml"))


def _config(**kwargs: object) -> dict[str, object]:
    exp = resolve_experiment(BREAKER)
    plan = plan_phases(exp.durations, {"fault": 10.0})
    request = RunRequest(experiment=BREAKER, **kwargs)  # type: ignore[arg-type]  # profile, users, variables
    return chaos_configuration(exp, plan, request, state_dir=Path("/s"), load_out=Path("/r/load"))


def test_configuration_carries_phases_overrides_state_and_load_folder() -> None:
    conf = _config(users=7, variables={"latency_ms": "1500"})
    assert conf["fault_s"] == 10.0 and conf["warmup_s"] == 15.0
    assert conf["users"] == 7 and conf["latency_ms"] == "1500"
    assert conf["state_dir"] == "/s" and conf["load_out"] == "/r/load"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"variables": {"nonsense": "1"}},
            "--var nonsense: the experiment payment-latency-breaker declares no",
        ),
        ({"variables": {"fault_s": "3"}}, "--var fault_s: set phase durations with --fault instead"),
        ({"profile": "bursty"}, "--profile: unknown profile 'bursty'"),
        ({"users": 0}, "--users:"),
    ],
)
def test_bad_overrides_are_refused_before_anything_starts(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ExperimentError) as info:
        _config(**kwargs)
    assert info.value.kind == "input"
    assert message in info.value.message


def test_chaos_command_plays_rollbacks_always_and_checks_continuously(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "run")
    command = chaos_command(Path("/x/e.yaml"), run, hypothesis_frequency_s=3, chaos="/venv/bin/chaos")
    assert command[:4] == ["/venv/bin/chaos", "--no-version-check", "--no-log-file", "run"]
    pairs = dict(zip(command[4:-1:2], command[5:-1:2], strict=True))
    assert pairs == {
        "--journal-path": str(run.journal_json),
        "--rollback-strategy": "always",
        "--hypothesis-strategy": "continuously",
        "--hypothesis-frequency": "3",
        "--var-file": str(run.chaos_vars),
    }
    assert command[-1] == "/x/e.yaml" and "--fail-fast" not in command
