"""Which SLOs the experiment runner judges: all of them on a stack whose Prometheus scrapes the load
generator; only the server-side ones on a kind stack (stack.json `client_metrics_scraped: false`), with
the left-out ones named, with the reason, in report.json, summary.md, junit.xml and run.json's notes.

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

from sample_shop.topology import StackDescriptor
from slo.gate import check_run
from slo.spec import load_slos
from slo.synthetic import Scenario, _families
from testbed.experiment.runner import judge_run, slo_selection

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PHASES = (("warmup", 0, 20), ("baseline", 20, 80), ("fault", 80, 140), ("recovery", 140, 200))


def _stack(target: str, scraped: bool) -> StackDescriptor:
    return StackDescriptor(
        target,  # type: ignore[arg-type]
        "http://127.0.0.1:8080",
        "http://127.0.0.1:9090",
        "http://127.0.0.1:18000",
        "/token",
        client_metrics_scraped=scraped,
    )


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
    scenario = Scenario(start=START, duration_s=200)
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
    judged, not_judged = slo_selection(_stack("local", True), slos)
    assert judged == slos and not_judged == {}
    assert len(slos) == 16 and {s.source for s in slos} == {"client", "server"}


def test_a_stack_without_client_metrics_drops_the_client_slos_and_says_why() -> None:
    slos = load_slos()
    judged, not_judged = slo_selection(_stack("kind", False), slos)
    assert [s.name for s in judged] == [s.name for s in slos if s.source == "server"]
    assert sorted(not_judged) == sorted(s.name for s in slos if s.source == "client")
    assert len(judged) == len(not_judged) == 8
    reason = next(iter(set(not_judged.values())))
    assert "client_metrics_scraped: false" in reason and "load generator" in reason


def test_kind_run_all_slos_would_be_no_data_the_selection_is_judged_and_reported(kind_run: Path) -> None:
    # the problem: judging every SLO on a kind run cannot pass (the client SLOs have no data)
    everything, _ = check_run(kind_run)
    assert everything.status == "nodata" and everything.exit_code == 2
    assert {s.name for s in everything.slos if s.status == "nodata"} == {
        s.name for s in load_slos() if s.source == "client"
    }
    # the runner's selection: the server-side SLOs are judged, the client ones are listed as not judged
    gate, error, notes = judge_run(kind_run, _stack("kind", False))
    assert error == "" and gate is not None
    assert gate.status == "met" and gate.exit_code == 0
    assert all(s.source == "server" for s in gate.slos) and len(gate.slos) == 8
    client = sorted(s.name for s in load_slos() if s.source == "client")
    report = json.loads((kind_run / "slo" / "report.json").read_text())
    assert sorted(e["name"] for e in report["not_judged"]) == client
    assert all("client_metrics_scraped: false" in e["reason"] for e in report["not_judged"])
    summary = (kind_run / "slo" / "summary.md").read_text()
    assert "Not judged:" in summary and all(f"- {name}: source client" in summary for name in client)
    assert "8 not judged" in summary.splitlines()[2]  # the headline sentence says it too
    junit = ET.parse(kind_run / "slo" / "junit.xml").getroot()
    assert junit.get("skipped") == "8" and junit.get("tests") == "16"
    skipped = [c.get("name") for c in junit.iter("testcase") if c.find("skipped") is not None]
    assert sorted(skipped) == client
    assert len(notes) == 1 and all(name in notes[0] for name in client)
    assert "client_metrics_scraped: false" in notes[0]


def test_judge_run_on_a_local_stack_judges_everything(kind_run: Path) -> None:
    gate, error, notes = judge_run(kind_run, _stack("local", True))
    assert gate is not None and gate.status == "nodata" and notes == [] and error == ""
    assert json.loads((kind_run / "slo" / "report.json").read_text())["not_judged"] == []
