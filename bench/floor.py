"""The shop against its framework floor, in the same run: the maximum sustainable throughput of a bare
FastAPI -> aiohttp -> FastAPI chain (bench/_chain_app.py: the shop's frameworks and server settings, none
of its kit) and the ratio shop / chain; and the CPU one external request costs, per process, in the shop
and in the chain.

The chain's front makes 3 sequential calls per request (4 server hops, 3 outbound calls), a little more
than the shop's mixed journeys average (3.6 server hops, 2.6 outbound calls per external request,
docs/runtime.md), so the ratio errs in the shop's favour by no more than that. Both are loaded by Locust
(FastHttpUser, closed loop, think time 0) on this machine; absolute numbers move with the machine's other
load, the ratio much less (measured minutes apart in one run)."""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

from bench.harness import BenchContext, Figure, benchmark
from bench.load import P99_LIMIT_MS, LevelResult, max_sustainable, shop_results
from load.control import start_load, wait_load
from load.results import read_requests, read_summary
from testbed.runtime.local import LocalTarget

ROOT = Path(__file__).resolve().parent.parent
CHAIN_CALLS = 3
CHAIN_LEVELS = (4, 8, 16, 24, 32, 48, 64, 96)
SMOKE_CHAIN_LEVELS = (2,)
RATIO_TARGET = 0.5
CPU_USERS = 8  # closed loop, below the knee: the CPU of a request, not of a queue


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def bare_chain(workdir: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """The chain's two processes, up and answering; yields (front URL, {name: pid}); stopped at the end."""
    back_port, front_port = _free_port(), _free_port()
    log = (workdir / "chain.log").open("ab")
    argv = [sys.executable, "-m", "bench._chain_app"]
    back = subprocess.Popen([*argv, "back", "--port", str(back_port)], cwd=ROOT, stdout=log, stderr=log)
    front = subprocess.Popen(
        [*argv, "front", "--port", str(front_port), "--upstream", f"http://127.0.0.1:{back_port}",
         "--calls", str(CHAIN_CALLS)],
        cwd=ROOT, stdout=log, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{front_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/page", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or front.poll() is not None or back.poll() is not None:
                raise RuntimeError(f"the bare chain did not answer within 30 s; see {workdir / 'chain.log'}")
            time.sleep(0.2)
        yield url, {"chain front": front.pid, "chain back": back.pid}
    finally:
        for proc in (front, back):
            proc.terminate()
        for proc in (front, back):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def chain_level(url: str, users: int, duration_s: float, out: Path) -> LevelResult:
    """One closed-loop Locust run of `users` against the chain's front (Locust's own CSV, whole run)."""
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / "chain"
    subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "_chain_locustfile.py"), "--headless",
         "-u", str(users), "-r", str(users), "-t", f"{duration_s:g}s", "--host", url, "--csv", str(prefix),
         "--only-summary", "--loglevel", "WARNING"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(out / "locust.err").open("wb"), timeout=duration_s + 60,
        check=False,
    )  # fmt: skip
    rows = list(csv.DictReader((out / "chain_stats.csv").open()))
    total = next((r for r in rows if r["Name"] == "Aggregated"), None)
    if total is None or not int(total["Request Count"]):
        raise RuntimeError(f"the chain's load run made no request; see {out / 'locust.err'}")
    return LevelResult(
        users=users,
        rps=float(total["Requests/s"]),
        p99_ms=float(total["99%"]),
        failures=int(total["Failure Count"]),
        requests=int(total["Request Count"]),
    )


def cpu_seconds(pids: Mapping[str, int | list[int]]) -> dict[str, float]:
    """User + system CPU seconds so far of each named process (or processes, summed)."""
    out: dict[str, float] = {}
    for name, value in pids.items():
        for pid in value if isinstance(value, list) else [value]:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            out[name] = out.get(name, 0.0) + times.user + times.system
    return out


def stack_pids(target: LocalTarget) -> dict[str, list[int]]:
    pids: dict[str, list[int]] = {}
    for p in target.status().processes:
        if p.pid is not None:
            pids.setdefault(p.service, []).append(p.pid)
    return pids


def per_request_ms(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """Pure: CPU milliseconds per request of each process between two cpu_seconds readings."""
    if requests <= 0:
        raise ValueError("no requests: no CPU per request")
    return {name: (after[name] - before.get(name, 0.0)) * 1000 / requests for name in after}


@benchmark("load.bare_chain", repeat=1, order=43)
def bare_chain_throughput(ctx: BenchContext) -> list[Figure]:
    """Max sustainable throughput of the bare FastAPI -> aiohttp -> FastAPI chain (p99 < 250 ms, 0 failed;
    users stepped 4, 8, 16, ...), its CPU per request, and the shop's max throughput from this run
    (load.max_throughput) divided by it."""
    ctx.close()  # the shop's stack would compete for the two cores
    duration = ctx.duration(full_s=12.0, smoke_s=3.0)
    levels_to_try = SMOKE_CHAIN_LEVELS if ctx.smoke else CHAIN_LEVELS
    workdir = ctx.workdir / f"chain-{ctx.repeat_index}"
    workdir.mkdir(parents=True, exist_ok=True)
    levels: list[LevelResult] = []
    with bare_chain(workdir) as (url, pids):
        before = cpu_seconds(pids)
        cpu_level = chain_level(url, CPU_USERS if not ctx.smoke else 2, duration, workdir / "cpu")
        cpu_ms = per_request_ms(before, cpu_seconds(pids), cpu_level.requests)
        for users in levels_to_try:
            level = chain_level(url, users, duration, workdir / f"users-{users}")
            levels.append(level)
            if not level.sustainable:
                break
    best = max_sustainable(levels)
    steps = "; ".join(level.describe() for level in levels)
    chain_rps = best.rps if best else 0.0
    figures = [
        Figure(
            "bare chain: max sustainable throughput",
            chain_rps,
            "req/s",
            note=f"p99 < {P99_LIMIT_MS:.0f} ms and 0 failed; {CHAIN_CALLS} outbound calls per request. "
            f"Steps: {steps}",
        ),
        Figure("bare chain: CPU per request, both processes", sum(cpu_ms.values()), "ms"),
    ]
    figures += [Figure(f"bare chain: CPU per request: {name}", v, "ms") for name, v in sorted(cpu_ms.items())]
    shop = shop_results.get("max_rps")
    if shop is not None and chain_rps > 0:
        figures.append(
            Figure(
                "shop / bare chain, max sustainable throughput",
                shop / chain_rps,
                "ratio",
                RATIO_TARGET,
                better="higher",
                note=f"shop {shop:.0f} req/s (load.max_throughput, this run) / chain {chain_rps:.0f} req/s",
            )
        )
    return figures


@benchmark("load.cpu_per_request", repeat=1, order=44)
def shop_cpu_per_request(ctx: BenchContext) -> list[Figure]:
    """CPU milliseconds one external request costs in each process of the shop (every replica of a
    service summed, Prometheus, the supervisor, the load generator), under 8 closed-loop users of the
    mixed journeys: process CPU time over the run divided by the requests made."""
    stack = ctx.shared_stack()
    target = LocalTarget(Path(stack.state_dir), ctx.port_offset)
    duration = ctx.duration(full_s=20.0, smoke_s=3.0)
    users = 2 if ctx.smoke else CPU_USERS
    out = ctx.workdir / f"cpu-per-request-{ctx.repeat_index}"
    pids: dict[str, int | list[int]] = dict(stack_pids(target))
    before = cpu_seconds(pids)
    handle = start_load(
        "steady", users=users, duration=duration, spawn_rate=users, think_time_factor=0, out_dir=out,
        state_dir=stack.state_dir,
    )  # fmt: skip
    wait_load(handle, state_dir=stack.state_dir)
    requests = len(read_requests(out))
    cpu_ms = per_request_ms(before, cpu_seconds(pids), requests)
    summary = read_summary(out)  # the load process has exited; its own CPU is in its summary
    if summary["load_generator_cpu"]["mean"] is not None:
        cpu_ms["load generator"] = summary["load_generator_cpu"]["mean"] * summary["wall_s"] * 1000 / requests
    services = {n: v for n, v in cpu_ms.items() if n in _shop_services()}
    figures = [
        Figure(
            "shop: CPU per external request, all services",
            sum(services.values()),
            "ms",
            note=f"{requests} requests by {users} closed-loop users in {duration:.0f} s",
        )
    ]
    figures += [Figure(f"shop: CPU per request: {name}", v, "ms") for name, v in sorted(cpu_ms.items())]
    return figures


def _shop_services() -> set[str]:
    from sample_shop import topology

    return set(topology.SERVICES)
