"""The experiment catalog, statically: every file passes Chaos Toolkit's own validation (the function behind
`chaos validate`, and the real CLI for one local and one kind-only file), and follows the catalog's rules -
a header saying what it teaches and which outcome to expect, overridable phase durations, a hypothesis, the
chaosshop control with phases that name real activities, rollbacks that remove faults and stop the load,
faults that the fault vocabulary accepts, and kind-only files that drive chaostoolkit-kubernetes."""

from __future__ import annotations

import inspect
import re
import subprocess
from importlib import import_module
from typing import Any

import pytest
from chaoslib.experiment import ensure_experiment_is_valid
from chaoslib.loader import load_experiment

from chaos.helpers import CHAOS, EXPERIMENTS, REPO, CatalogEntry, catalog
from sample_shop.faultd.processes import validate_function_fault
from sample_shop.kit.faultspec import validate_fault_spec
from sample_shop.topology import NOTIFICATIONS_FUNCTION

ENTRIES = catalog()
IDS = [e.id for e in ENTRIES]
PHASES = ["warmup", "baseline", "fault", "recovery"]
CONFIG_KEYS = {"state_dir", "warmup_s", "baseline_s", "fault_s", "recovery_s", "window_s", "users", "profile"}


def _substituted(value: Any, configuration: dict[str, Any]) -> Any:
    if isinstance(value, str):
        match = re.fullmatch(r"\$\{(\w+)\}", value)
        return configuration[match.group(1)] if match else value
    if isinstance(value, dict):
        return {k: _substituted(v, configuration) for k, v in value.items()}
    return value


def _activities(entry: CatalogEntry) -> list[dict[str, Any]]:
    data = entry.data
    return [*data["steady-state-hypothesis"]["probes"], *data["method"], *data.get("rollbacks", [])]


def test_the_catalog_is_complete() -> None:
    local = [e for e in ENTRIES if e.target == "local"]
    kind = [e for e in ENTRIES if e.target == "kind"]
    assert len(local) >= 12, [e.id for e in local]
    assert kind, "kind-only experiments"
    assert {e.expected for e in local} == {"completed", "deviated"}
    makefile = (REPO / "Makefile").read_text()
    default = re.search(r"^EXP \?= (\S+)", makefile, re.MULTILINE)
    assert default and default.group(1) in IDS, "make experiment's default must be in the catalog"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_chaos_toolkit_validates_it(entry: CatalogEntry) -> None:
    ensure_experiment_is_valid(load_experiment(str(entry.path)))


@pytest.mark.parametrize("name", ["payment-latency-breaker", "kind-partition-orders"])
def test_chaos_validate_cli_accepts_it(name: str) -> None:
    done = subprocess.run(
        [CHAOS, "--no-version-check", "--no-log-file", "validate", str(EXPERIMENTS / f"{name}.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "experiment syntax and semantic look valid" in done.stderr


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_it_follows_the_catalog_rules(entry: CatalogEntry) -> None:
    data = entry.data
    assert entry.header.startswith(f"# {entry.id}"), "the header starts with the experiment's name"
    assert "# Teaches: " in entry.header
    assert entry.expected in ("completed", "deviated")
    assert set(data["configuration"]) >= CONFIG_KEYS, "durations, users and profile are overridable"
    assert data["runtime"]["rollbacks"]["strategy"] == "always"
    assert [c["provider"]["module"] for c in data["controls"]] == ["chaosshop.control"]
    extension = entry.extension()
    assert extension["id"] == entry.id
    method_names = [a["name"] for a in data["method"]]
    assert list(extension["phases"]) == PHASES
    starts = [method_names.index(extension["phases"][p]) for p in PHASES]
    assert starts == sorted(starts), "phases start in order at method activities"
    assert data["steady-state-hypothesis"]["probes"], "a steady-state hypothesis"
    assert any(p["provider"]["func"] == "slo_sli" for p in data["steady-state-hypothesis"]["probes"]) or (
        entry.id == "retry-storm"
    ), "tied to the SLOs"
    funcs = [a["provider"]["func"] for a in data["method"]]
    assert funcs.index("start_load") < method_names.index(extension["phases"]["fault"])
    rollbacks = {a["provider"]["func"] for a in data["rollbacks"]}
    assert {"clear_faults", "reset_client_policy", "stop_load"} <= rollbacks


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_every_activity_exists_with_its_arguments(entry: CatalogEntry) -> None:
    """Chaos Toolkit checks this too; here also for chaostoolkit-kubernetes, with a clearer message."""
    for activity in _activities(entry):
        provider = activity["provider"]
        func = getattr(import_module(provider["module"]), provider["func"])
        params = inspect.signature(func).parameters
        unknown = set(provider.get("arguments", {})) - set(params)
        assert not unknown, f"{activity['name']}: {provider['func']} takes no {unknown}"


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.target == "local"], ids=lambda e: e.id)
def test_its_faults_are_valid_fault_specs(entry: CatalogEntry) -> None:
    configuration = entry.data["configuration"]
    injected = [a for a in entry.data["method"] if a["provider"]["func"] == "inject_fault"]
    for activity in injected:
        args = _substituted(activity["provider"]["arguments"], configuration)
        validate_fault_spec({"kind": args["kind"], "params": args.get("params", {})}, args["service"])
    kills = [a for a in entry.data["method"] if a["provider"]["func"] == "kill_instance"]
    # the asynchronous path's faults: of the notifications function, or a poison order (bad data)
    functions = [a for a in entry.data["method"] if a["provider"]["func"] == "inject_function_fault"]
    for activity in functions:
        args = _substituted(activity["provider"]["arguments"], configuration)
        validate_function_fault(args.get("function", NOTIFICATIONS_FUNCTION), args)
    poison = [a for a in entry.data["method"] if a["provider"]["func"] == "place_poison_order"]
    assert injected or kills or functions or poison, "a local experiment injects a fault"


def test_kind_only_experiments_use_one_chaostoolkit_kubernetes_action_each() -> None:
    actions = []
    for entry in (e for e in ENTRIES if e.target == "kind"):
        used = {
            f"{a['provider']['module']}.{a['provider']['func']}"
            for a in entry.data["method"]
            if a["provider"]["module"].startswith("chaosk8s.")
        }
        assert used, entry.id
        names = [p["name"] for p in entry.data["steady-state-hypothesis"]["probes"]]
        assert {"stack-is-kind", "kubernetes-context-is-kind"} <= set(names), entry.id
        actions.append(next(iter(sorted(used))))
    assert len(set(actions)) == len(actions), "one kind-only experiment per chaostoolkit-kubernetes action"


def test_docs_list_every_kind_and_experiment() -> None:
    from sample_shop.kit.faultspec import KINDS

    text = (REPO / "docs" / "faults.md").read_text()
    missing = [k for k in KINDS if f"| `{k}` |" not in text] + [i for i in IDS if f"| `{i}`" not in text]
    assert not missing, f"docs/faults.md does not list {missing}"
