"""The load generator against the real local stack (the session `stack` fixture: real services, real
Prometheus) with real Locust processes: every profile runs without a failed request, the client metrics
reach Prometheus, the result files load into pandas with the documented columns, and background runs
leave no process behind - also when the process that started them is killed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil
import pytest

from load.control import LoadError, current_load, handle_path, is_running, start_load, stop_load
from load.profiles import PROFILE_NAMES, LoadConfigError, peak_users, resolve_params
from load.results import (
    EXCEPTIONS_CSV,
    FAILURES_CSV,
    REQUEST_COLUMNS,
    STATS_CSV,
    STATS_HISTORY_CSV,
    read_results,
)
from load.routes import ALL_ROUTES, CHECKOUT, JOURNEYS
from sample_shop.topology import JOURNEY_ROUTES, StackDescriptor

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
ALL_JOURNEYS = set(JOURNEYS)


@pytest.fixture
def healthy_gateway(stack: StackDescriptor, wait_until: Callable[..., Any]) -> StackDescriptor:
    """Other tests share the session stack: make sure it is ready (no replica down) before judging
    failures as journey or shop bugs."""
    wait_until(
        lambda: httpx.get(f"{stack.gateway_url}/readyz", timeout=2).status_code == 200,
        timeout=30,
        message="gateway /readyz to answer 200",
    )
    return stack


@pytest.fixture
def no_load_left(stack: StackDescriptor) -> Iterator[Path]:
    """Whatever a test does, no load process of this state folder survives it."""
    state = Path(stack.state_dir)
    try:
        yield state
    finally:
        handle = current_load(state)
        if handle is not None:
            with contextlib.suppress(LoadError):
                stop_load(handle, state_dir=state, timeout_s=10)
            pytest.fail(f"a load process was left running (pid {handle.pid})")


def run_cli(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m load` as its own process; it finds the stack through TESTBED_STATE_DIR."""
    return subprocess.run(
        [sys.executable, "-m", "load", *args, "--progress", "jsonl"],
        cwd=ROOT,
        env=os.environ | (env_extra or {}),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_profile_runs_without_a_failed_request(
    healthy_gateway: StackDescriptor, no_load_left: Path, tmp_path: Path
) -> None:
    """All six profiles at once (six real load processes, exporters off so they do not compete for the
    port): each follows its shape up to its peak and ends by itself, with no failed request."""
    args = ["--users", "5", "--duration", "6s", "--spawn-rate", "5", "--think-time-factor", "0.2"]
    procs = {
        profile: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "load",
                "--profile",
                profile,
                *args,
                "--out",
                str(tmp_path / profile),
                "--metrics-port",
                "0",
                "--progress",
                "jsonl",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for profile in PROFILE_NAMES
    }
    outputs = {}
    try:
        for profile, proc in procs.items():
            outputs[profile] = proc.communicate(timeout=90)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for profile, proc in procs.items():
        stdout, stderr = outputs[profile]
        res = read_results(tmp_path / profile)
        summary = res.summary
        assert proc.returncode == 0, (profile, summary["errors"], stderr[-2000:])
        assert summary["failures"] == 0 and summary["journey_errors"] == 0, profile
        assert summary["requests"] >= 10, profile
        assert summary["exit_reason"] == "completed", profile
        params = resolve_params(profile, 5, "6s", 5, 0.2)
        assert summary["params"] == params.to_dict()
        assert res.requests["users"].max() == peak_users(params), f"{profile} did not follow its shape"
        assert 5.5 <= summary["wall_s"] <= 6 + 10, profile  # stopped by its shape, not by the deadline
        finished = json.loads(stdout.strip().splitlines()[-1])  # --progress jsonl: the last line
        assert finished["event"] == "finished" and finished["summary"]["requests"] == summary["requests"]


def test_every_journey_passes_and_the_result_files_load_into_pandas(
    healthy_gateway: StackDescriptor, no_load_left: Path, tmp_path: Path
) -> None:
    """One busier steady run (no think time to speak of) so that every journey, checkout included, runs
    several times; then every result file is read the way users will read it."""
    out = tmp_path / "steady"
    result = run_cli(
        ["--profile", "steady", "--users", "6", "--duration", "8s", "--spawn-rate", "6",
         "--think-time-factor", "0.05", "--out", str(out), "--metrics-port", "0"]
    )  # fmt: skip
    res = read_results(out)
    assert result.returncode == 0, (res.summary["errors"], result.stderr[-2000:])
    df = res.requests
    assert tuple(df.columns) == REQUEST_COLUMNS
    assert str(df["timestamp"].dtype) == "datetime64[ms, UTC]"
    assert df["ok"].all() and df["exception"].isna().all()
    assert set(df["journey"]) == ALL_JOURNEYS, f"journeys never run: {ALL_JOURNEYS - set(df['journey'])}"
    assert (df.loc[df["name"] == CHECKOUT, "status_code"] == 201).sum() >= 2  # real orders were placed
    routes = {template for routes in JOURNEY_ROUTES.values() for _, template in routes}
    assert routes <= set(df["name"]), f"routes never called: {routes - set(df['name'])}"
    assert not df["name"].str.contains(r"/\d").any(), "a request was named by URL instead of route"
    # Locust's CSVs agree with the Parquet rows and the summary
    stats = pd.read_csv(out / STATS_CSV)
    total = stats.loc[stats["Name"] == "Aggregated"].iloc[0]
    assert total["Request Count"] == len(df) == res.summary["requests"]
    assert total["Failure Count"] == 0
    history = pd.read_csv(out / STATS_HISTORY_CSV)
    assert {"Timestamp", "User Count", "Requests/s", "Name"} <= set(history.columns)
    assert history.loc[history["Name"] == "Aggregated", "User Count"].max() == 6
    assert pd.read_csv(out / FAILURES_CSV).empty and pd.read_csv(out / EXCEPTIONS_CSV).empty
    assert res.summary["rps"] == pytest.approx(len(df) / res.summary["wall_s"], rel=0.01)
    assert res.summary["latency_ms"]["p99"] == pytest.approx(df["response_time_ms"].quantile(0.99), abs=0.01)


def test_two_workers_land_their_requests_in_one_requests_parquet(
    healthy_gateway: StackDescriptor, no_load_left: Path, tmp_path: Path
) -> None:
    """`--workers 2`: a real Locust master and two real worker processes. Both workers record requests,
    the master merges them into the one requests.parquet (same columns as a single-process run, the
    users column the total over both workers), Locust's aggregated stats count the same requests, and
    summary.json carries the load generator's CPU."""
    out = tmp_path / "two-workers"
    result = run_cli(
        ["--profile", "steady", "--users", "4", "--duration", "8s", "--spawn-rate", "4",
         "--think-time-factor", "0.05", "--out", str(out), "--metrics-port", "0", "--workers", "2"]
    )  # fmt: skip
    res = read_results(out)
    assert result.returncode == 0, (res.summary["errors"], result.stderr[-2000:])
    recorded = {
        int(line.split()[1].rstrip(":")): int(line.split()[2])
        for line in (out / "workers.log").read_text().splitlines()
        if line.startswith("worker ") and "requests recorded" in line
    }
    assert set(recorded) == {0, 1} and all(n > 0 for n in recorded.values()), recorded
    df = res.requests
    assert tuple(df.columns) == REQUEST_COLUMNS
    assert len(df) == sum(recorded.values()) == res.summary["requests"]
    assert df["timestamp"].is_monotonic_increasing and df["ok"].all()
    assert df["users"].max() == 4  # the master's total, not one worker's 2
    total = pd.read_csv(out / STATS_CSV).set_index("Name").loc["Aggregated"]
    assert total["Request Count"] == len(df)
    assert not list(out.glob(".requests-worker-*"))  # the parts are merged and gone
    assert res.summary["workers"] == 2
    cpu = res.summary["load_generator_cpu"]
    assert 0 < cpu["mean"] <= cpu["max"]


def test_the_buying_mix_starts_several_times_as_many_checkouts(
    healthy_gateway: StackDescriptor, no_load_left: Path, tmp_path: Path
) -> None:
    """The two journey mixes run side by side for the same time: `buying` gives the checkout journey a
    several-fold larger share of the requests than `browsing`, and neither fails a request."""
    shares = {}
    for mix in ("browsing", "buying"):
        out = tmp_path / mix
        result = run_cli(
            ["--profile", "steady", "--users", "4", "--duration", "8s", "--spawn-rate", "4",
             "--think-time-factor", "0.05", "--mix", mix, "--out", str(out), "--metrics-port", "0"]
        )  # fmt: skip
        res = read_results(out)
        assert result.returncode == 0, (res.summary["errors"], result.stderr[-2000:])
        assert res.summary["params"]["mix"] == mix
        df = res.requests
        shares[mix] = (df["name"] == CHECKOUT).mean()
    assert shares["buying"] >= 3 * shares["browsing"], shares


def test_client_metrics_reach_prometheus_during_the_run(
    healthy_gateway: StackDescriptor,
    no_load_left: Path,
    prom: Any,
    wait_until: Callable[..., Any],
    tmp_path: Path,
) -> None:
    stack = healthy_gateway
    handle = start_load("steady", users=3, duration="40s", think_time_factor=0.2, out_dir=tmp_path / "out")
    try:
        ok = wait_until(
            lambda: prom.query('sum by (name) (load_requests_total{job="load", outcome="ok"})'),
            timeout=20,
            message="load_requests_total in Prometheus",
        )
        names = {r["metric"]["name"] for r in ok}
        assert names <= {name for _, name in ALL_ROUTES}
        wait_until(
            lambda: [r for r in prom.query('load_users{job="load"}') if float(r["value"][1]) == 3],
            timeout=15,
            message="load_users == 3",
        )
        buckets = prom.query('count(load_request_duration_seconds_bucket{job="load"}) by (le)')
        assert len(buckets) >= 10  # the topology's buckets, not the client library's defaults
        # the shop saw the same traffic as synthetic (W3C baggage honoured end to end)
        assert prom.query('sum(shop_http_requests_total{service="gateway", synthetic="true"}) > 0')
        assert is_running(handle) and handle_path(stack.state_dir).exists()
    finally:
        summary = stop_load(handle)
    assert summary is not None and summary["exit_reason"] == "stopped" and summary["failures"] == 0


def test_background_start_and_stop_leave_no_process_and_free_the_port(
    healthy_gateway: StackDescriptor, no_load_left: Path, tmp_path: Path
) -> None:
    stack = healthy_gateway
    handle = start_load("spike", users=4, duration="60s", out_dir=tmp_path / "out")
    proc = psutil.Process(handle.pid)
    assert proc.is_running() and proc.cmdline()[1:3] == ["-m", "load"]
    with pytest.raises(LoadError, match="already active"):
        start_load("steady", out_dir=tmp_path / "second")
    with pytest.raises(LoadConfigError, match="valid profiles"):
        start_load("bursty", out_dir=tmp_path / "third")
    started = time.monotonic()
    summary = stop_load(state_dir=stack.state_dir)  # as a rollback in another process would: no handle
    assert time.monotonic() - started < 15
    assert summary is not None and summary["exit_reason"] == "stopped"
    assert not psutil.pid_exists(handle.pid)
    assert current_load(stack.state_dir) is None and not handle_path(stack.state_dir).exists()
    with socket.socket() as s:  # nothing listens on the exporter's port any more (TIME_WAIT is fine)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", stack.load_metrics_port))
    assert stop_load(state_dir=stack.state_dir) is None  # stopping twice is harmless


def test_a_killed_parent_takes_its_load_with_it(
    healthy_gateway: StackDescriptor, no_load_left: Path, tmp_path: Path
) -> None:
    """A `chaos run` killed with SIGKILL cannot stop its load: the load notices and stops by itself."""
    out = tmp_path / "out"
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from load.control import start_load
            handle = start_load("steady", users=2, duration="120s", out_dir={str(out)!r})
            print(handle.pid, flush=True)
            time.sleep(300)
        """)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = parent.stdout.readline() if parent.stdout else ""
        assert line.strip().isdigit(), "the parent did not start its load"
        child = psutil.Process(int(line))
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        child.wait(timeout=15)  # psutil: waits for a non-child too
        summary = json.loads((out / "summary.json").read_text())
        assert summary["exit_reason"] == "parent_gone"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout:
            parent.stdout.close()


def test_ctrl_c_on_testbed_load_stops_early_and_still_writes_the_results(
    healthy_gateway: StackDescriptor, no_load_left: Path, tmp_path: Path, wait_until: Callable[..., Any]
) -> None:
    out = tmp_path / "out"
    cli = subprocess.Popen(
        [str(Path(sys.executable).with_name("testbed")), "load", "--profile", "steady", "--users", "2",
         "--duration", "60s", "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: '"event": "progress"' in (out / "progress.jsonl").read_text(),
            timeout=30,
            message="the load to run",
        )
        cli.send_signal(signal.SIGINT)
        stdout, stderr = cli.communicate(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 130, stderr
    assert "Traceback" not in stderr and "stopping the load" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exit_reason"] == "stopped" and summary["wall_s"] < 30
    assert "total" in stdout and str(out) in stdout.replace("\n", "")  # the final table and where it went
