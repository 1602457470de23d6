"""`testbed experiment run` end to end on the session stack: a real `chaos run` under real Locust load against
the real shop, a real Prometheus, the SLO gate, report.html rendered by real headless Chromium.

One short run of the default experiment (payment-errors, phases of a few seconds) is shared by the checks
of this module; while it runs, a second experiment is started and must be refused. Separate tests interrupt
a run with Ctrl-C (rollback) and start a stack that cannot start (reported with the service and the
reason)."""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageStat

from load.control import current_load
from load.results import read_requests
from sample_shop import topology
from sample_shop.basics import parse_iso
from sample_shop.topology import StackDescriptor
from slo.spec import SLO, load_slos
from testbed.experiment import queries
from testbed.experiment.lock import ExperimentLock
from testbed.runfolder import RunPaths, read_series_frame, spans_of_request

pytestmark = [pytest.mark.stack, pytest.mark.slow]

TESTBED = str(Path(sys.executable).with_name("testbed"))
EXPERIMENT = "payment-errors"
PHASES = {"warmup": 3, "baseline": 8, "fault": 10, "recovery": 6}
RUN_TIMEOUT_S = 150.0
FAULT_SHADE = (251, 224, 224)  # plots.PHASE_COLORS["fault"] (#f4a6a6) at alpha 0.35 on white


@dataclass
class Finished:
    run: RunPaths
    runs_dir: Path
    exit_code: int
    summary: dict[str, Any]
    stderr: str
    second_exit: int
    second_output: dict[str, Any]
    runs_during_refusal: list[str]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "160", **extra}


def _phase_args(phases: dict[str, float]) -> list[str]:
    return [arg for name, seconds in phases.items() for arg in (f"--{name}", f"{seconds}s")]


def _wait_healthy(stack_target: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not stack_target.status().healthy:
        assert time.monotonic() < deadline, "the session stack did not become healthy"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def finished(stack: StackDescriptor, stack_target: Any, tmp_path_factory: pytest.TempPathFactory) -> Finished:
    _wait_healthy(stack_target)
    runs_dir = tmp_path_factory.mktemp("runs")
    env = _env(TESTBED_RUNS_DIR=str(runs_dir))
    command = [TESTBED, "experiment", "run", EXPERIMENT, *_phase_args(PHASES), "--json"]
    main = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = ExperimentLock(Path(stack.state_dir))
        deadline = time.monotonic() + 60
        while (holder := lock.holder()) is None or holder.pid != main.pid:
            assert main.poll() is None, f"the experiment ended early: {main.communicate()}"
            assert time.monotonic() < deadline, "the experiment never took the lock"
            time.sleep(0.2)
        second = subprocess.run(
            [TESTBED, "experiment", "run", "payment-latency-breaker", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        runs_during_refusal = sorted(p.name for p in runs_dir.iterdir())
        stdout, stderr = main.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if main.poll() is None:  # never leave a run behind: Ctrl-C rolls it back
            main.send_signal(signal.SIGINT)
            main.wait(timeout=120)
    assert stdout.strip(), f"no JSON summary; stderr:\n{stderr}"
    summary = json.loads(stdout)
    return Finished(
        RunPaths(Path(summary["run_dir"])),
        runs_dir,
        main.returncode,
        summary,
        stderr,
        second.returncode,
        json.loads(second.stdout),
        runs_during_refusal,
    )


def test_the_exit_status_is_the_gates(finished: Finished) -> None:
    report = json.loads(finished.run.slo_report_json.read_text())
    run = json.loads(finished.run.run_json.read_text())
    assert run["status"] in ("completed", "deviated"), run["message"]
    assert finished.exit_code == report["exit_code"] == run["exit_code"] == finished.summary["exit_code"]
    assert finished.summary["verdict"] == report["status"] == run["verdict"]
    assert run["collection"]["errors"] == []


def test_every_artifact_exists_and_latest_points_at_the_run(finished: Finished) -> None:
    run = finished.run
    for path in (
        run.run_json,
        run.phases_json,
        run.journal_json,
        run.chaos_log,
        run.chaos_vars,
        run.series_parquet,
        run.queries_json,
        run.spans_jsonl,
        run.logs_jsonl,
        run.slo_report_json,
        run.slo_summary_md,
        run.slo_dir / "junit.xml",
        run.report_html,
        run.load_dir / "summary.json",
        run.load_dir / "requests.parquet",
        run.load_dir / "stats.csv",
    ):
        assert path.is_file() and path.stat().st_size > 0, f"{path} is missing or empty"
    assert (finished.runs_dir / "latest").resolve() == run.root
    assert re.fullmatch(rf"\d{{8}}T\d{{6}}Z-{EXPERIMENT}", run.id)
    assert "\x1b[" not in run.chaos_log.read_text()  # plain text


def test_the_second_experiment_was_refused_while_the_first_ran(finished: Finished) -> None:
    assert finished.second_exit == 2
    out = finished.second_output
    assert out["status"] == "refused" and out["kind"] == "busy"
    assert f"another experiment is running on this stack: {EXPERIMENT}" in out["error"]
    assert "Wait for it to finish" in out["error"]
    assert finished.runs_during_refusal == [finished.run.id]  # the refused one created nothing


def test_journal_phases_match_phases_json_and_the_data(finished: Finished) -> None:
    journal = json.loads(finished.run.journal_json.read_text())
    ext = next(e for e in journal["extensions"] if e["name"] == "chaosshop")
    phases = json.loads(finished.run.phases_json.read_text())
    assert [(p["name"], p["start"], p["end"]) for p in ext["phases"]] == [
        (p["name"], p["start"], p["end"]) for p in phases
    ]
    assert [p["name"] for p in phases] == list(PHASES)
    for p in phases:
        seconds = parse_iso(p["end"]) - parse_iso(p["start"])
        assert PHASES[p["name"]] - 0.1 < seconds < PHASES[p["name"]] + 3, p
    # the phase gauge the control set, as Prometheus scraped it
    frame = read_series_frame(finished.run)
    gauge = frame[frame["query"] == queries.name("phase", "")]
    for p in phases:
        start, end = parse_iso(p["start"]), parse_iso(p["end"])
        mine = gauge[gauge["labels"].map(lambda labels, name=p["name"]: json.loads(labels)["phase"] == name)]
        inside = mine[(mine["t"] > start + 0.3) & (mine["t"] < end - 0.3)]  # a scrape every second
        assert len(inside) >= 1 and (inside["value"] == 1).all(), p["name"]
        after = mine[(mine["t"] > end + 0.3) & (mine["t"] < end + 3.0)]
        assert (after["value"] == 0).all(), p["name"]
    # the fault was injected at the start of the fault phase, and payment reported it active only then
    fault = next(p for p in phases if p["name"] == "fault")
    f_start, f_end = parse_iso(fault["start"]), parse_iso(fault["end"])
    injected = [f for f in ext["faults_injected"] if f["service"] == "payment"]
    assert injected and f_start <= parse_iso(injected[0]["created_at"]) <= f_start + 3
    active = frame[
        (frame["query"] == queries.name("faults_active", "")) & frame["labels"].str.contains('"payment"')
    ]
    assert len(active) > 0
    assert active["t"].min() >= f_start - 0.5 and active["t"].max() <= f_end + 2.0
    assert active["t"].max() - active["t"].min() >= PHASES["fault"] - 3


def _counted(series: list[tuple[np.ndarray, np.ndarray]], data_start: float, t: float) -> float:
    """Events up to t, counted as docs/slo.md says (resets, new series, carried last values), written
    independently of slo/maths.py."""
    total = 0.0
    for ts, vs in series:
        upto = vs[ts <= t + 1e-9]
        if len(upto) == 0:
            continue
        count = upto[0] if ts[0] > data_start + 1e-9 else 0.0  # a series born in the data counts its first
        for before, now in itertools.pairwise(upto):
            count += now - before if now >= before else now  # a drop is a reset
        total += count
    return total


def _series(frame: pd.DataFrame, slo: SLO, part: str) -> list[tuple[np.ndarray, np.ndarray]]:
    selector = slo.total if part == "total" else slo.part
    name = selector.promql() if part == "total" or not slo.part_within_total else slo.total.promql()
    extra = [m for m in selector.matchers if m not in slo.total.matchers] if part != "total" else []
    out = []
    for labels, group in frame[frame["query"] == name].groupby("labels"):
        parsed = json.loads(labels)
        if all(m.matches(parsed.get(m.label, "")) for m in extra):
            group = group.sort_values("t")
            out.append((group["t"].to_numpy(), group["value"].to_numpy()))
    return out


def test_the_slo_report_recomputes_from_the_parquet_data(finished: Finished) -> None:
    frame = read_series_frame(finished.run)
    report = json.loads(finished.run.slo_report_json.read_text())
    slos = {s.name: s for s in load_slos()}
    data_start = float(frame["t"].min())

    def snap(t: float) -> float:  # window boundaries resolve to the 1 s grid from the data's start
        step = topology.SCRAPE_INTERVAL_S
        return data_start + np.floor((t - data_start) / step + 1e-9) * step

    checked = 0
    for result in report["slos"]:
        slo = slos[result["name"]]
        good_series, total_series = _series(frame, slo, "good"), _series(frame, slo, "total")
        for w in result["windows"]:
            a, b = snap(w["start"]), snap(w["end"])
            total = _counted(total_series, data_start, b) - _counted(total_series, data_start, a)
            part = _counted(good_series, data_start, b) - _counted(good_series, data_start, a)
            good = part if slo.good is not None else total - part
            assert (w["total"], w["good"]) == (pytest.approx(total), pytest.approx(good)), (
                slo.name,
                w["window"],
            )
            if total > 0:
                sli = good / total
                assert w["sli"] == pytest.approx(sli)
                budget = (1 - sli) / (1 - slo.target) * (w["end"] - w["start"]) / slo.period_s
                assert w["budget_consumed"] == pytest.approx(budget, abs=1e-9)
            checked += 1
    assert checked >= len(slos) * 3


def test_client_counts_in_prometheus_agree_with_the_load_generators_own_record(finished: Finished) -> None:
    """Two independent records of the same requests: the exporter's counters scraped by Prometheus and one
    row per request in requests.parquet. They differ only by where a window's edge cuts (~1 s)."""
    report = json.loads(finished.run.slo_report_json.read_text())
    requests = read_requests(finished.run.load_dir)
    started = (requests["timestamp"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    routes = {j: {path for _, path in r} for j, r in topology.JOURNEY_ROUTES.items()}
    for result in report["slos"]:
        if result["source"] != "client" or result["kind"] != "availability":
            continue
        for w in result["windows"]:
            mine = requests[
                requests["name"].isin(routes[result["journey"]])
                & (started >= w["start"])
                & (started < w["end"])
            ]
            rate = len(mine) / (w["end"] - w["start"])
            assert abs(w["total"] - len(mine)) <= 3 + 2.5 * rate, (result["name"], w["window"], len(mine))


def test_traces_and_logs_hold_the_run_window(finished: Finished) -> None:
    window = json.loads(finished.run.run_json.read_text())["collection"]["window"]
    start, end = parse_iso(window["start"]), parse_iso(window["end"])
    spans = [
        s
        for line in finished.run.spans_jsonl.read_text().splitlines()
        for s in spans_of_request(json.loads(line))
    ]
    assert len(spans) > 20
    assert all(start * 1e9 - 1e6 <= s.start_ns < end * 1e9 + 1e6 for s in spans)
    assert {"gateway", "orders", "payment"} <= {s.service for s in spans}
    fault = next(p for p in json.loads(finished.run.phases_json.read_text()) if p["name"] == "fault")
    charges_in_fault = [
        s for s in spans if s.service == "payment" and parse_iso(fault["start"]) * 1e9 <= s.start_ns
    ]
    assert charges_in_fault, "no payment span during the fault"
    logs = [json.loads(line) for line in finished.run.logs_jsonl.read_text().splitlines()]
    assert len(logs) > 10
    assert all(start - 0.01 <= parse_iso(e["timestamp"]) < end + 0.01 for e in logs)
    assert {"gateway", "payment"} <= {e.get("service") for e in logs}


def test_everything_was_rolled_back(
    finished: Finished, stack: StackDescriptor, control: httpx.Client
) -> None:
    assert control.get("/faults").json()["faults"] == []
    assert current_load(Path(stack.state_dir)) is None
    run = json.loads(finished.run.run_json.read_text())
    assert "control_error" not in run["cleanup"] and "load_error" not in run["cleanup"]
    assert ExperimentLock(Path(stack.state_dir)).holder() is None


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is not installed: run `make setup` (scripts/install-system-deps.sh installs it)"
    return found


def _screenshot(html: Path, png: Path, profile: Path) -> Image.Image:
    subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            "--window-size=1280,4000",
            html.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return Image.open(png).convert("RGB")


def test_the_report_renders_in_headless_chromium_with_its_plots(finished: Finished, tmp_path: Path) -> None:
    html = finished.run.report_html.read_text()
    assert "<script" not in html and 'src="http' not in html  # nothing to fetch: renders offline
    figures = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(figures) >= 5
    for encoded in figures:
        image = Image.open(io.BytesIO(base64.b64decode(encoded))).convert("L")
        assert image.size[0] > 600 and ImageStat.Stat(image).stddev[0] > 10, "a blank figure"
    shot = _screenshot(finished.run.report_html, tmp_path / "report.png", tmp_path / "chromium")
    assert shot.size == (1280, 4000)
    assert max(ImageStat.Stat(shot).stddev) > 20, "the screenshot is blank"
    pixels = np.asarray(shot).reshape(-1, 3).astype(int)
    assert (pixels.sum(axis=1) < 600).mean() > 0.05, "the page is nearly all white"
    shade = np.abs(pixels - np.array(FAULT_SHADE)).sum(axis=1) < 40
    assert shade.sum() > 2000, "no fault shading visible: the plots did not render"
    for section in ("Steady-state hypothesis", "SLOs:", "Over time", "Baseline vs fault", "Slowest traces"):
        assert section in html


def test_testbed_report_rerenders_from_the_folder_alone(finished: Finished, tmp_path: Path) -> None:
    copy = tmp_path / finished.run.id
    shutil.copytree(finished.run.root, copy)
    (copy / "report.html").unlink()
    nowhere = _env(TESTBED_STATE_DIR=str(tmp_path / "no-stack"), TESTBED_PORT_OFFSET="29000")
    result = subprocess.run(
        [TESTBED, "report", str(copy)], env=nowhere, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert f"report: {copy / 'report.html'}" in result.stdout
    original = finished.run.report_html.read_text()
    again = (copy / "report.html").read_text()
    for needle in re.findall(r"<h2>[^<]+</h2>", original):
        assert needle in again
    bad = subprocess.run(
        [TESTBED, "report", str(tmp_path / "nope")], env=nowhere, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "no such run folder" in bad.stderr


# --------------------------------------------------------------------------------------------------
# Ctrl-C and a stack that cannot start
# --------------------------------------------------------------------------------------------------


def test_ctrl_c_rolls_back_and_still_writes_the_run(
    finished: Finished, stack: StackDescriptor, control: httpx.Client, tmp_path: Path
) -> None:
    env = _env(TESTBED_RUNS_DIR=str(tmp_path))
    phases = {"warmup": 2, "baseline": 3, "fault": 60, "recovery": 3}
    proc = subprocess.Popen(
        [TESTBED, "experiment", "run", EXPERIMENT, *_phase_args(phases), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not [f for f in control.get("/faults").json()["faults"] if f["service"] == "payment"]:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the fault never became active"
            time.sleep(0.3)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C at the terminal sends
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert control.get("/faults").json()["faults"] == []
    assert current_load(Path(stack.state_dir)) is None
    summary = json.loads(stdout)
    run = json.loads(Path(summary["run_dir"], "run.json").read_text())
    assert run["status"] == "interrupted" and run["chaos"]["journal_status"] == "interrupted"
    journal = json.loads(Path(summary["run_dir"], "journal.json").read_text())
    assert [r["activity"]["name"] for r in journal["rollbacks"]][:1] == ["clear-all-faults"]
    assert Path(summary["run_dir"], "report.html").is_file()


def test_the_hard_timeout_interrupts_and_rolls_back(
    finished: Finished, stack: StackDescriptor, control: httpx.Client, tmp_path: Path
) -> None:
    phases = {"warmup": 2, "baseline": 3, "fault": 60, "recovery": 3}
    result = subprocess.run(
        [TESTBED, "experiment", "run", EXPERIMENT, *_phase_args(phases), "--timeout", "14s", "--json"],
        env=_env(TESTBED_RUNS_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 2, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "timeout"
    assert summary["message"].startswith("cannot judge: the experiment exceeded its hard timeout")
    run = json.loads(Path(summary["run_dir"], "run.json").read_text())
    assert run["chaos"]["journal_status"] == "interrupted"
    assert control.get("/faults").json()["faults"] == []
    assert current_load(Path(stack.state_dir)) is None
    assert Path(summary["run_dir"], "report.html").is_file()


def test_a_stack_that_cannot_start_is_reported_with_the_service_and_the_reason(
    spare_port_offset: int, tmp_path: Path
) -> None:
    """Another program holds the port of catalog's replica: the runtime refuses to start the stack and the
    experiment says which service and why, starts nothing and creates no run folder."""
    port = topology.app_port("catalog", 0, spare_port_offset)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        env = _env(
            TESTBED_STATE_DIR=str(tmp_path / "state"),
            TESTBED_PORT_OFFSET=str(spare_port_offset),
            TESTBED_RUNS_DIR=str(tmp_path / "runs"),
        )
        result = subprocess.run(
            [TESTBED, "experiment", "run", EXPERIMENT], env=env, capture_output=True, text=True, timeout=180
        )
        as_json = subprocess.run(
            [TESTBED, "experiment", "run", EXPERIMENT, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        squatter.close()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: the stack could not start:" in result.stderr
    assert f"port {port} (catalog replica 0) is already in use by pid {os.getpid()}" in result.stderr
    assert "how to fix:" in result.stderr and "TESTBED_PORT_OFFSET" in result.stderr
    out = json.loads(as_json.stdout)
    assert as_json.returncode == 2 and out["kind"] == "stack" and "catalog replica 0" in out["error"]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    status = subprocess.run(
        [TESTBED, "status", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert json.loads(status.stdout)["running"] is False  # nothing left behind
