"""Load figures: the shop's maximum sustainable throughput under the mixed journeys, the cost of
telemetry (throughput with SHOP_TELEMETRY=on / off, measured in the same run), and the memory of every
process under the steady profile.

Every figure comes from real load runs (`load.control.start_load`, i.e. `python -m load` with Locust)
against real local stacks. The shoppers run as a closed loop (think time 0) for the throughput figures:
each simulated user sends its next request as soon as the previous one answered, so throughput grows
with users until the shop saturates and latency takes over."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.harness import BenchContext, Figure, benchmark
from bench.runtime import memory_by_process
from load.control import start_load, stop_load, wait_load
from load.results import read_requests
from sample_shop.topology import StackDescriptor
from testbed.runtime.base import UpOptions
from testbed.runtime.local import LocalTarget

if TYPE_CHECKING:
    import pandas as pd

P99_LIMIT_MS = 250.0  # the sustainability criterion (with zero failed requests)
TELEMETRY_RATIO_TARGET = 0.85
THROUGHPUT_TARGET_RPS = 300.0  # issue 16: mixed journeys on the 2-core machine
USER_LEVELS = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64)
SMOKE_USER_LEVELS = (2,)  # smoke: keeps the code path working, measures nothing worth reading
TELEMETRY_USERS = 12  # closed loop: past the knee on this 2-core machine, so throughput is the shop's limit
MB = 1_000_000
shop_results: dict[str, float] = {}  # this run's max throughput, for the ratio to the bare chain (floor.py)


@dataclass(frozen=True)
class LevelResult:
    """One closed-loop load level, measured after its warm-up."""

    users: int
    rps: float
    p99_ms: float
    failures: int  # over the whole run, warm-up included: a failure is never excused
    requests: int  # in the measurement window

    @property
    def sustainable(self) -> bool:
        return self.failures == 0 and self.requests > 0 and self.p99_ms < P99_LIMIT_MS

    def describe(self) -> str:
        return f"{self.users} users: {self.rps:.0f} rps, p99 {self.p99_ms:.0f} ms, {self.failures} failed"


def window_stats(requests: pd.DataFrame, users: int, warmup_s: float) -> LevelResult:
    """Throughput and p99 of the requests that started after the warm-up (sign-up, connection set-up
    and ramp excluded), up to the last request. Pure: a DataFrame of requests.parquet in, numbers out."""
    failures = int((~requests["ok"]).sum())
    if requests.empty:
        return LevelResult(users, 0.0, float("inf"), failures, 0)
    start = requests["timestamp"].min() + _seconds(warmup_s)
    end = requests["timestamp"].max()
    window = requests[(requests["timestamp"] >= start) & (requests["timestamp"] <= end)]
    span_s = (end - start).total_seconds()
    if window.empty or span_s <= 0:
        return LevelResult(users, 0.0, float("inf"), failures, 0)
    return LevelResult(
        users=users,
        rps=len(window) / span_s,
        p99_ms=float(window["response_time_ms"].quantile(0.99)),
        failures=failures,
        requests=len(window),
    )


def _seconds(value: float) -> pd.Timedelta:
    import pandas as pd

    return pd.Timedelta(seconds=value)


def max_sustainable(levels: list[LevelResult]) -> LevelResult | None:
    """The highest-throughput level that meets the criterion, among the levels before the first failing
    one (a level past a failure is not 'sustainable' even if it happens to pass)."""
    passing: list[LevelResult] = []
    for level in levels:
        if not level.sustainable:
            break
        passing.append(level)
    return max(passing, key=lambda lv: lv.rps, default=None)


def measure_level(stack: StackDescriptor, users: int, duration_s: float, out: Path) -> LevelResult:
    """One closed-loop steady run of `users` shoppers; all start at once."""
    handle = start_load(
        "steady",
        users=users,
        duration=duration_s,
        spawn_rate=users,
        think_time_factor=0,
        out_dir=out,
        state_dir=stack.state_dir,
    )
    wait_load(handle, state_dir=stack.state_dir)
    return window_stats(read_requests(out), users, warmup_s=max(2.0, duration_s * 0.25))


def step_until_unsustainable(
    stack: StackDescriptor, levels: tuple[int, ...], duration_s: float, out: Path
) -> list[LevelResult]:
    results: list[LevelResult] = []
    for users in levels:
        level = measure_level(stack, users, duration_s, out / f"users-{users}")
        results.append(level)
        if not level.sustainable:
            break
    return results


@benchmark("load.max_throughput", repeat=1, order=40)
def max_throughput(ctx: BenchContext) -> list[Figure]:
    """Maximum sustainable throughput of the mixed journeys (closed loop, telemetry on): step users up
    (1, 2, 4, 6, 8, 12, ...) until p99 >= 250 ms or a request fails; report the best passing level."""
    stack = ctx.shared_stack()
    duration = ctx.duration(full_s=20.0, smoke_s=3.0)
    levels = step_until_unsustainable(
        stack,
        SMOKE_USER_LEVELS if ctx.smoke else USER_LEVELS,
        duration,
        ctx.workdir / f"max-throughput-{ctx.repeat_index}",
    )
    best = max_sustainable(levels)
    steps = "; ".join(level.describe() for level in levels)
    if best is None:
        return [
            Figure(
                "max sustainable throughput",
                0.0,
                "req/s",
                THROUGHPUT_TARGET_RPS,
                better="higher",
                note=f"no level met the criterion: {steps}",
            )
        ]
    shop_results["max_rps"] = best.rps
    return [
        Figure(
            "max sustainable throughput",
            best.rps,
            "req/s",
            THROUGHPUT_TARGET_RPS,
            better="higher",
            compare="load",
            note=f"p99 < {P99_LIMIT_MS:.0f} ms and 0 failed; reached with {best.users} closed-loop users. "
            f"Steps: {steps}",
        ),
        Figure("p99 at max sustainable throughput", best.p99_ms, "ms", P99_LIMIT_MS),
        Figure("users at max sustainable throughput", float(best.users), "users"),
    ]


def _stack_with_telemetry(ctx: BenchContext, mode: str) -> tuple[LocalTarget, StackDescriptor]:
    target = LocalTarget(
        ctx.workdir / f"telemetry-{mode}-{ctx.repeat_index}", ctx.port_offset, exit_with_pid=os.getpid()
    )
    return target, target.up(UpOptions(extras=False, telemetry=mode, timeout_s=120))  # type: ignore[arg-type]


@benchmark("load.telemetry_cost", repeat=3, order=41)
def telemetry_cost(ctx: BenchContext) -> list[Figure]:
    """Cost of telemetry: saturated closed-loop throughput (12 users, mixed journeys) of a stack started
    with SHOP_TELEMETRY=on divided by the same with SHOP_TELEMETRY=off, measured back to back in this run
    (the order alternates between repeats so a drift of the machine does not favour one side)."""
    ctx.close()  # the shared stack's ports are needed; one stack at a time keeps the machine comparable
    duration = ctx.duration(full_s=25.0, smoke_s=3.0)
    users = 2 if ctx.smoke else TELEMETRY_USERS
    order = ("on", "off") if ctx.repeat_index % 2 == 0 else ("off", "on")
    measured: dict[str, LevelResult] = {}
    for mode in order:
        target, stack = _stack_with_telemetry(ctx, mode)
        try:
            measured[mode] = measure_level(
                stack, users, duration, ctx.workdir / f"telemetry-{mode}-{ctx.repeat_index}-load"
            )
        finally:
            target.down()
    on, off = measured["on"], measured["off"]
    failed = f"; failed requests: on {on.failures}, off {off.failures}" if on.failures or off.failures else ""
    return [
        Figure(
            "telemetry on / off throughput",
            on.rps / off.rps if off.rps else 0.0,
            "ratio",
            TELEMETRY_RATIO_TARGET,
            better="higher",
            note=f"{users} closed-loop users, {duration:.0f} s each{failed}",
        ),
        Figure("throughput, telemetry on", on.rps, "req/s"),
        Figure("throughput, telemetry off", off.rps, "req/s"),
        Figure("p99, telemetry on", on.p99_ms, "ms"),
        Figure("p99, telemetry off", off.p99_ms, "ms"),
    ]


@benchmark("load.steady_memory", repeat=1, order=42)
def steady_memory(ctx: BenchContext) -> list[Figure]:
    """Peak RSS of every process (each service replica, Prometheus, the supervisor, the load generator)
    while the steady profile runs (10 shoppers with their think time)."""
    stack = ctx.shared_stack()
    target = LocalTarget(Path(stack.state_dir), ctx.port_offset)
    duration = ctx.duration(full_s=60.0, smoke_s=3.0)
    handle = start_load(
        "steady",
        duration=duration,
        out_dir=ctx.workdir / f"steady-memory-{ctx.repeat_index}",
        state_dir=stack.state_dir,
    )
    peak: dict[str, float] = {}
    peak_pss: dict[str, float] = {}
    try:
        while time.time() < handle.started + duration:
            for name, (value, pss) in memory_by_process(
                target, per_replica=True, extra_pids={"load generator": handle.pid}
            ).items():
                peak[name] = max(peak.get(name, 0.0), value)
                peak_pss[name] = max(peak_pss.get(name, 0.0), pss)
            time.sleep(1.0)
    finally:
        summary = stop_load(handle, state_dir=stack.state_dir)
    failures = summary["failures"] if summary else None
    figures = [
        Figure(
            "peak RSS under steady load, every process",
            sum(peak.values()),
            "MB",
            note=f"sum of per-process peaks; {len(peak)} processes; {failures} failed requests",
        ),
        Figure(
            "peak PSS under steady load, every process",
            sum(peak_pss.values()),
            "MB",
            note="shared pages split between processes (the honest total)",
        ),
    ]
    figures += [
        Figure(f"peak RSS under steady load: {name}", value, "MB") for name, value in sorted(peak.items())
    ]
    return figures
