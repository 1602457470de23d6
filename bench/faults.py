"""Fault figures: how long after `inject_fault` returns a fault is felt at the gateway, and how long after
`clear_faults` returns it is gone (target <= 1 s each; issue 4).

The probe is the shopper's view: requests to the gateway (`GET /api/products?limit=1`, which calls catalog)
are started every 10 ms, concurrently, before, during and after each action. The fault is a latency on
catalog (every replica, through the fault controller and the replicas' admin APIs), so a request is
"affected" when it takes longer than the injected delay. Effect time = start of the first affected request
(injection) or of the first request from which all later ones are fast (removal), measured against the
action's return; a fault already in effect when the action returns counts as 0. The actions are the Chaos
Toolkit extension's own (chaosshop.actions), through the same control API as every experiment."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
from chaosshop.actions import clear_faults, inject_fault

from bench.harness import BenchContext, Figure, benchmark

DELAY_MS = 400
TARGET_S = 1.0
PROBE_INTERVAL_S = 0.01
PATH = "/api/products?limit=1"


@dataclass(frozen=True)
class Probe:
    started: float  # perf_counter
    seconds: float
    ok: bool


async def _probe_loop(client: httpx.AsyncClient, probes: list[Probe], stop: asyncio.Event) -> None:
    async def one() -> None:
        started = time.perf_counter()
        try:
            ok = (await client.get(PATH)).status_code == 200
        except httpx.HTTPError:
            ok = False
        probes.append(Probe(started, time.perf_counter() - started, ok))

    tasks: set[asyncio.Task[None]] = set()
    while not stop.is_set():
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        await asyncio.sleep(PROBE_INTERVAL_S)
    await asyncio.gather(*tasks)


def _effect_start(probes: list[Probe], after: float, threshold_s: float) -> float:
    """Start of the first probe begun after `after` that took longer than the threshold."""
    slow = [p.started for p in probes if p.started >= after and p.seconds >= threshold_s]
    if not slow:
        raise RuntimeError(
            f"no request after the injection took {threshold_s:g} s or more: the fault was not felt"
        )
    return min(slow)


def _effect_end(probes: list[Probe], after: float, threshold_s: float) -> float:
    """Start of the first probe begun after `after` from which every later probe was fast."""
    later = sorted((p for p in probes if p.started >= after), key=lambda p: p.started)
    if not later or later[-1].seconds >= threshold_s:
        raise RuntimeError(
            "requests were still slow at the end of the measurement: the fault did not go away"
        )
    last_slow = max((i for i, p in enumerate(later) if p.seconds >= threshold_s), default=-1)
    return later[last_slow + 1].started


async def _measure(gateway_url: str, configuration: dict[str, str], settle_s: float) -> dict[str, float]:
    probes: list[Probe] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10, limits=limits, trust_env=False) as client:
        await client.get(PATH)
        prober = asyncio.create_task(_probe_loop(client, probes, stop))
        try:
            await asyncio.sleep(settle_s)
            call = time.perf_counter()
            await loop.run_in_executor(
                None,
                lambda: inject_fault(
                    "catalog", "latency", {"ms": DELAY_MS}, ttl_s=60, configuration=configuration
                ),
            )
            injected = time.perf_counter()
            await asyncio.sleep(settle_s + DELAY_MS / 1000)
            clear_call = time.perf_counter()
            await loop.run_in_executor(None, lambda: clear_faults("catalog", configuration=configuration))
            cleared = time.perf_counter()
            await asyncio.sleep(settle_s + DELAY_MS / 1000)
        finally:
            stop.set()
            await prober
            await loop.run_in_executor(None, lambda: clear_faults(configuration=configuration))
    threshold = DELAY_MS / 1000
    before = [p for p in probes if p.started < call]
    if not before or max(p.seconds for p in before) >= threshold or not all(p.ok for p in probes):
        raise RuntimeError("requests were slow or failing before the injection: the measurement is void")
    felt = _effect_start(probes, call, threshold)
    gone = _effect_end(probes, clear_call, threshold)
    return {
        "inject_call": injected - call,
        "inject_effect": max(0.0, felt - injected),
        "inject_from_call": felt - call,
        "clear_call": cleared - clear_call,
        "clear_effect": max(0.0, gone - cleared),
        "clear_from_call": gone - clear_call,
        "probes": float(len(probes)),
    }


@benchmark("faults.latency", repeat=5, order=50)
def fault_effect_latency(ctx: BenchContext) -> list[Figure]:
    """Time from inject_fault / clear_faults returning to the fault felt / gone at the gateway."""
    stack = ctx.shared_stack()
    configuration = {"state_dir": stack.state_dir}
    m = asyncio.run(
        _measure(stack.gateway_url, configuration, settle_s=ctx.duration(full_s=1.0, smoke_s=0.3))
    )
    note = f"{DELAY_MS} ms latency on catalog, probed every {PROBE_INTERVAL_S * 1000:g} ms at the gateway"
    return [
        Figure(
            "injection: action returns -> effect at the gateway",
            m["inject_effect"],
            "s",
            TARGET_S,
            compare="faults",
            note=note,
        ),
        Figure(
            "removal: action returns -> effect gone at the gateway",
            m["clear_effect"],
            "s",
            TARGET_S,
            note=note,
        ),
        Figure("injection: action called -> effect at the gateway", m["inject_from_call"], "s", note=note),
        Figure("removal: action called -> effect gone at the gateway", m["clear_from_call"], "s", note=note),
        Figure("inject_fault action (validate, push to every replica)", m["inject_call"], "s"),
        Figure("clear_faults action (push the empty set to every replica)", m["clear_call"], "s"),
    ]
