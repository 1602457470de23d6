"""Runtime figures: cold start of the local stack to ready, stop time, and memory of every process at rest."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

import psutil

from bench.harness import BenchContext, Figure, benchmark, timed
from testbed.runtime.base import UpOptions
from testbed.runtime.local import LocalTarget

MB = 1_000_000
COLD_START_TARGET_S = 5.0
RSS_TARGET_MB = 400.0


def memory_by_process(
    target: LocalTarget,
    per_replica: bool = False,
    extra_pids: Mapping[str, int] | None = None,
    private: dict[str, float] | None = None,
) -> dict[str, tuple[float, float]]:
    """(RSS, PSS) in MB of every process of the stack, keyed '<service>' (replicas summed) or, with
    `per_replica`, '<service>-<replica>'; plus `extra_pids` (e.g. the load generator) under their names.
    `private`, when given, receives each one's USS (the pages no other process maps)."""
    pids: list[tuple[str, int]] = []
    for p in target.status().processes:
        if p.pid is not None:
            name = f"{p.service}-{p.replica}" if per_replica and p.replica is not None else p.service
            pids.append((name, p.pid))
    pids.extend((extra_pids or {}).items())
    totals: dict[str, tuple[float, float]] = {}
    for name, pid in pids:
        try:
            info = psutil.Process(pid).memory_full_info()
        except psutil.Error:
            continue
        rss, pss = totals.get(name, (0.0, 0.0))
        totals[name] = (rss + info.rss / MB, pss + getattr(info, "pss", info.rss) / MB)
        if private is not None:
            private[name] = private.get(name, 0.0) + info.uss / MB
    return totals


@benchmark("runtime.stack", repeat=3, order=10)
def stack_cold_start_and_memory(ctx: BenchContext) -> list[Figure]:
    """Cold start of the local stack (one replica each, no extras) until every replica is ready and scraped;
    memory of every process at rest; time to stop everything."""
    ctx.close()  # a cold start needs the machine quiet and the ports free
    target = LocalTarget(ctx.workdir / f"cold-{ctx.repeat_index}", ctx.port_offset, exit_with_pid=os.getpid())
    with timed() as elapsed:
        target.up(UpOptions(extras=False, timeout_s=60))
    cold_start = elapsed()
    progress = target.startup_progress()
    timings = progress.timings if progress is not None else {}
    try:
        time.sleep(ctx.duration(full_s=5.0, smoke_s=0.5))  # at rest: start-up work (imports, seeding) done
        memory = memory_by_process(target)
    finally:
        with timed() as stopping:
            target.down()
    rss_total = sum(rss for rss, _ in memory.values())
    pss_total = sum(pss for _, pss in memory.values())
    figures = [
        Figure("cold start to ready", cold_start, "s", COLD_START_TARGET_S, compare="start"),
        Figure("stop everything (down)", stopping(), "s"),
        Figure(
            "every replica's /readyz 200 (supervisor clock)",
            timings["replicas_ready"],
            "s",
            note="from the supervisor's start; the rest of the cold start is Prometheus' first scrape of "
            "every target, which Prometheus 2.x does not begin before a 5 s tick after its own start",
        ),
        Figure(
            "RSS at rest, every process",
            rss_total,
            "MB",
            RSS_TARGET_MB,
            compare="memory",
            note=f"{len(memory)} kinds of process: every service, Prometheus and the supervisor; RSS counts "
            "shared pages once per process",
        ),
        Figure("PSS at rest, every process", pss_total, "MB", note="shared pages split between processes"),
    ]
    figures += [Figure(f"RSS at rest: {name}", rss, "MB") for name, (rss, _) in sorted(memory.items())]
    figures += [Figure(f"PSS at rest: {name}", pss, "MB") for name, (_, pss) in sorted(memory.items())]
    return figures


def _at_rest(
    ctx: BenchContext, name: str, fork_server: bool, private: dict[str, float] | None = None
) -> tuple[float, dict[str, tuple[float, float]]]:
    """Cold start (s) and memory at rest of a stack started with the fork-server on or off (and each
    process's USS into `private`)."""
    from testbed.runtime.forkserver import ENV_SWITCH

    before = os.environ.get(ENV_SWITCH)
    os.environ[ENV_SWITCH] = "on" if fork_server else "off"  # the supervisor inherits the environment
    target = LocalTarget(ctx.workdir / name, ctx.port_offset, exit_with_pid=os.getpid())
    try:
        with timed() as elapsed:
            target.up(UpOptions(extras=False, timeout_s=60))
        time.sleep(ctx.duration(full_s=5.0, smoke_s=0.5))
        return elapsed(), memory_by_process(target, private=private)
    finally:
        target.down()
        if before is None:
            os.environ.pop(ENV_SWITCH, None)
        else:
            os.environ[ENV_SWITCH] = before


@benchmark("runtime.fork_server", repeat=2, order=11)
def fork_server_memory(ctx: BenchContext) -> list[Figure]:
    """Memory at rest and cold start with TESTBED_FORK_SERVER=on against off, started one after the other in
    this repeat (docs/runtime.md, "The fork-server"): the Python processes forked from one process that
    imported their libraries once, against each executed on its own."""
    ctx.close()
    start_off, off = _at_rest(ctx, f"fork-off-{ctx.repeat_index}", fork_server=False)
    private_on: dict[str, float] = {}
    start_on, on = _at_rest(ctx, f"fork-on-{ctx.repeat_index}", fork_server=True, private=private_on)
    python = ("gateway", "users", "catalog", "cart", "orders", "payment", "recommendations")

    def pss(memory: dict[str, tuple[float, float]], names: tuple[str, ...] | None = None) -> float:
        return sum(p for name, (_, p) in memory.items() if names is None or name in names)

    services_on = pss(on, (*python, "forkserver"))
    return (
        [
            Figure("PSS at rest, every process, fork-server on", pss(on), "MB", 300.0),
            Figure("PSS at rest, every process, fork-server off", pss(off), "MB"),
            Figure("PSS at rest, fork-server on / off", pss(on) / pss(off), "ratio"),
            Figure(
                "PSS at rest, the 7 services, fork-server on (server included)",
                services_on,
                "MB",
                note="the fork-server process itself counted with the services it forked",
            ),
            Figure("PSS at rest, the 7 services, fork-server off", pss(off, python), "MB"),
            Figure("RSS at rest, every process, fork-server on", sum(r for r, _ in on.values()), "MB"),
            Figure("RSS at rest, every process, fork-server off", sum(r for r, _ in off.values()), "MB"),
            Figure("cold start to ready, fork-server on", start_on, "s"),
            Figure("cold start to ready, fork-server off", start_off, "s"),
        ]
        + [Figure(f"PSS at rest, fork-server on: {name}", p, "MB") for name, (_, p) in sorted(on.items())]
        + [
            # a fork's own pages are the shared ones it wrote to (reference counts): docs/runtime.md, "Memory"
            Figure(f"USS at rest, fork-server on: {name}", uss, "MB")
            for name, uss in sorted(private_on.items())
        ]
    )
