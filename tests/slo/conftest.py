"""Fixtures of the SLO tests: a REAL Prometheus started on a TSDB backfilled with `promtool tsdb
create-blocks-from openmetrics` from a deterministic shop-like history (slo/synthetic.py), on a free
loopback port, stopped and removed after the session even when tests fail."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from slo.synthetic import Condition, Incident, Scenario, phase_offsets, write_openmetrics

PHASES = (("warmup", 60), ("baseline", 180), ("fault", 180), ("recovery", 180))
FAULT_START, FAULT_END = 240, 420
CHECKOUT_FAULT = Condition(error_ratio=0.5, latency_s=1.5)  # payment errors 50 % and 1.5 s latency


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_binaries() -> None:
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed; run `make setup` (apt-get install prometheus)")


@contextlib.contextmanager
def prometheus_on(
    data_dir: Path, rule_files: Sequence[Path] = (), scrape_configs: list[dict] | None = None
) -> Iterator[str]:
    """Run a real Prometheus on `data_dir` (127.0.0.1, free port) until the block exits."""
    require_binaries()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": scrape_configs or [],
    }
    config_file = data_dir.parent / f"{data_dir.name}-prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (data_dir.parent / f"{data_dir.name}-prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config_file}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=3650d",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {proc.returncode}; see {log.name}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not become ready in 60 s; see {log.name}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def backfill(scenario: Scenario, workdir: Path) -> Path:
    """OpenMetrics -> TSDB blocks with promtool; returns the data folder."""
    require_binaries()
    om = workdir / "history.om"
    write_openmetrics(scenario, om)
    data = workdir / "tsdb"
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om), str(data)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    om.unlink()
    return data


@dataclass(frozen=True)
class History:
    url: str
    scenario: Scenario
    phases: list[tuple[str, float, float]]  # name, absolute start, absolute end

    def phase(self, name: str) -> tuple[float, float]:
        return next((a, b) for n, a, b in self.phases if n == name)


@pytest.fixture(scope="session")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    """10 minutes of shop history, 3 hours ago: healthy except checkout during the fault phase."""
    start = float(int(time.time()) - 3 * 3600)
    scenario = Scenario(
        start=start,
        duration_s=sum(d for _, d in PHASES),
        buckets=(0.5, 1.0),
        incidents=(Incident("checkout", FAULT_START, FAULT_END, CHECKOUT_FAULT),),
    )
    workdir = tmp_path_factory.mktemp("slo-history")
    data = backfill(scenario, workdir)
    phases = [(n, start + a, start + b) for n, a, b in phase_offsets(PHASES)]
    with prometheus_on(data) as url:
        yield History(url, scenario, phases)
