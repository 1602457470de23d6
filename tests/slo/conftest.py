"""Fixtures of the SLO tests: a REAL Prometheus started on a TSDB backfilled with `promtool tsdb
create-blocks-from openmetrics` from a deterministic shop-like history (slo/synthetic.py), on a free
loopback port, stopped and removed after the session even when tests fail."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from slo.spec import load_slos
from slo.synthetic import (
    Condition,
    Incident,
    Scenario,
    backfill,
    free_port,
    phase_offsets,
    prometheus_on,
    slo_buckets,
)

__all__ = ["free_port"]

PHASES = (("warmup", 60), ("baseline", 180), ("fault", 180), ("recovery", 180))
FAULT_START, FAULT_END = 240, 420
CHECKOUT_FAULT = Condition(error_ratio=0.5, latency_s=2.0)  # payment errors 50 % and 2 s latency


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
        buckets=slo_buckets(load_slos()),
        incidents=(Incident("checkout", FAULT_START, FAULT_END, CHECKOUT_FAULT),),
    )
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed; run `make setup` (apt-get install prometheus)")
    workdir = tmp_path_factory.mktemp("slo-history")
    data = backfill(scenario, workdir)
    phases = [(n, start + a, start + b) for n, a, b in phase_offsets(PHASES)]
    with prometheus_on(data) as url:
        yield History(url, scenario, phases)
