"""Which SLOs a run folder is judged on: all of them when its stack's Prometheus scraped the load
generator; only the server-side ones on a kind stack (run.json's stack: `client_metrics_scraped: false`),
with the left-out ones named, with the reason, in report.json, summary.md, junit.xml and run.json's notes.
The experiment runner and `testbed slo check --run` go through the same gate, so they agree.

The run folder is what the collector writes on kind: the gateway's counters (from the deterministic
model of slo/synthetic.py, healthy throughout) and no load generator series, because the in-cluster
Prometheus never scraped it. Real gate, real SLO files; no Prometheus needed.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from slo.gate import check_run, measurable
from slo.spec import load_slos
from slo.synthetic import Scenario, _families
from testbed.cli import app
from testbed.experiment.runner import judge_run

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PHASES = (("warmup", 0, 20), ("baseline", 20, 80), ("fault", 80, 140), ("recovery", 140, 200))

UNGATED = ["order-email-latency"]  # testbed/gate: "false" (slo/specs/notifications.yaml)


def _record_stack(run: Path, target: str, scraped: bool) -> None:
    """run.json as the runner writes it at the start of a run: which stack, whose Prometheus."""
    stack = {"target": target, "prometheus_url": "http://127.0.0.1:9090", "client_metrics_scraped": scraped}
    (run / "run.json").write_text(json.dumps({"id": run.name, "stack": stack}))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def kind_run(tmp_path: Path) -> Path:
    """A run folder with the gateway's series only (what the in-cluster Prometheus has)."""
    run = tmp_path / "20260101T000000Z-kind-terminate-catalog-pod"
    (run / "metrics").mkdir(parents=True)
    (run / "phases.json").write_text(
        json.dumps([{"name": n, "start": _iso(START + a), "end": _iso(START + b)} for n, a, b in PHASES])
    )
    # 5 requests a second per route: enough events in each 60 s phase to decide a 99 % objective
    scenario = Scenario(start=START, duration_s=200, requests_per_step=5)
    series = [
        (name, labels, values)
        for _family, items in _families(scenario)
        for name, labels, values in items
        if not name.startswith("load_")  # not scraped on kind
    ]
    frames = []
    selectors = {sel.promql(): sel for slo in load_slos() for sel in slo.queried_selectors}
    for query, selector in selectors.items():
        for name, labels, values in series:
            if name != selector.metric:
                continue
            if all(m.matches(labels.get(m.label, "")) for m in selector.matchers):
                frames.append(
                    pd.DataFrame(
                        {
                            "timestamp": pd.to_datetime(scenario.times, unit="s", utc=True),
                            "query": query,
                            "labels": json.dumps(labels, sort_keys=True),
                            "value": values.astype("float64"),
                        }
                    )
                )
    assert frames, "the synthetic gateway series match no SLO selector"
    pd.concat(frames, ignore_index=True).to_parquet(run / "metrics" / "series.parquet")
    return run


def test_the_local_stack_judges_every_slo() -> None:
    slos = load_slos()
    judged, not_judged = measurable(slos, client_metrics_scraped=True, where="local")
    # every SLO but the order e-mails' (testbed/gate: "false": many experiments make no order in a phase)
    assert judged == [s for s in slos if s.gated] and sorted(not_judged) == UNGATED
    assert 'testbed/gate: "false"' in not_judged[UNGATED[0]]
    assert len(judged) == 16 and {s.source for s in judged} == {"client", "server"}


def test_a_stack_without_client_metrics_drops_the_client_slos_and_says_why() -> None:
    slos = load_slos()
    judged, not_judged = measurable(slos, client_metrics_scraped=False, where="the kind stack's Prometheus")
    assert [s.name for s in judged] == [s.name for s in slos if s.source == "server" and s.gated]
    client = sorted(s.name for s in slos if s.source == "client")
    assert sorted(not_judged) == sorted(client + UNGATED)
    assert len(judged) == 8 and len(not_judged) == 9
    reason = not_judged[client[0]]
    assert "client_metrics_scraped: false" in reason and "load generator" in reason
    assert "the kind stack's Prometheus" in reason


def test_kind_run_all_slos_would_be_no_data_the_selection_is_judged_and_reported(kind_run: Path) -> None:
    # the problem: a folder that does not say its Prometheus lacked the client metrics is judged on every
    # SLO, and the client SLOs have no data (fail closed)
    everything, _ = check_run(kind_run)
    assert everything.status == "nodata" and everything.exit_code == 2
    assert {s.name for s in everything.slos if s.status == "nodata"} == {
        s.name for s in load_slos() if s.source == "client"
    }
    # run.json says the kind stack did not scrape the load generator: server-side SLOs judged, client listed
    _record_stack(kind_run, "kind", scraped=False)
    gate, error, notes = judge_run(kind_run)
    assert error == "" and gate is not None
    assert gate.status == "met" and gate.exit_code == 0
    assert all(s.source == "server" for s in gate.slos) and len(gate.slos) == 8
    client = sorted(s.name for s in load_slos() if s.source == "client")
    report = json.loads((kind_run / "slo" / "report.json").read_text())
    assert sorted(e["name"] for e in report["not_judged"]) == sorted(client + UNGATED)
    left_out = [e for e in report["not_judged"] if e["name"] in client]
    assert all("client_metrics_scraped: false" in e["reason"] for e in left_out)
    assert all("the kind stack's Prometheus (http://127.0.0.1:9090)" in e["reason"] for e in left_out)
    summary = (kind_run / "slo" / "summary.md").read_text()
    assert "Not judged:" in summary and all(f"- {name}: source client" in summary for name in client)
    headline = summary.splitlines()[2]  # the headline sentence says it too, grouped by reason
    assert "8 not judged" in headline and "1 not judged (order-email-latency)" in headline
    junit = ET.parse(kind_run / "slo" / "junit.xml").getroot()
    assert junit.get("skipped") == "9" and junit.get("tests") == "17"
    skipped = [c.get("name") for c in junit.iter("testcase") if c.find("skipped") is not None]
    assert sorted(skipped) == sorted(client + UNGATED)
    assert len(notes) == 1 and all(name in notes[0] for name in client)
    assert "client_metrics_scraped: false" in notes[0]


def test_slo_check_on_a_kind_run_folder_agrees_with_the_runner(kind_run: Path) -> None:
    _record_stack(kind_run, "kind", scraped=False)
    result = CliRunner().invoke(app, ["slo", "check", "--run", str(kind_run), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["status"] == "met" and len(report["slos"]) == 8
    assert sorted(e["name"] for e in report["not_judged"]) == sorted(
        [s.name for s in load_slos() if s.source == "client"] + UNGATED
    )


def test_a_run_on_a_stack_that_scraped_the_load_generator_is_judged_on_everything(kind_run: Path) -> None:
    _record_stack(kind_run, "local", scraped=True)
    gate, error, notes = judge_run(kind_run)
    assert gate is not None and gate.status == "nodata" and error == ""
    assert len(notes) == 1 and UNGATED[0] in notes[0]  # only the SLO no run's gate judges
    not_judged = json.loads((kind_run / "slo" / "report.json").read_text())["not_judged"]
    assert [e["name"] for e in not_judged] == UNGATED


def test_a_broken_run_json_cannot_be_judged_and_says_where(kind_run: Path) -> None:
    (kind_run / "run.json").write_text('{"stack": {\n  "target": }')
    gate, error, _ = judge_run(kind_run)
    assert gate is None and "run.json:2: not valid JSON" in error


def _check(run: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["slo", "check", "--run", str(run)])
    return result.exit_code, result.output


def test_a_run_without_phases_json_cannot_be_judged(kind_run: Path) -> None:
    """Without its phases the gate would judge the whole collected span, which reaches a staleness
    lookback before the run into whatever else ran on the stack: no verdict on other runs' data."""
    _record_stack(kind_run, "kind", scraped=False)
    (kind_run / "phases.json").unlink()
    code, output = _check(kind_run)
    assert code == 2, output
    assert "phases.json" in output and "cannot judge" in output
    gate, error, _ = judge_run(kind_run)
    assert gate is None and "phases.json" in error


def test_a_run_that_never_reached_its_fault_cannot_be_judged(kind_run: Path) -> None:
    _record_stack(kind_run, "kind", scraped=False)
    (kind_run / "phases.json").write_text(
        json.dumps(
            [
                {"name": n, "start": _iso(START + a), "end": _iso(START + b)}
                for n, a, b in PHASES
                if n != "fault"
            ]
        )
    )
    code, output = _check(kind_run)
    assert code == 2, output
    assert "no fault phase" in output


@pytest.mark.parametrize("content", ["[1, 2]", '"a string"', "null"])
def test_a_run_json_that_is_not_an_object_is_refused_by_gate_and_report_alike(
    kind_run: Path, content: str
) -> None:
    (kind_run / "run.json").write_text(content)
    code, output = _check(kind_run)
    assert code == 2, output
    assert "run.json: must be a JSON object" in output
    report = CliRunner().invoke(app, ["report", str(kind_run)])
    assert report.exit_code == 2 and "run.json: must be a JSON object" in report.output
