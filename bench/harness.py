"""The benchmark registry and runner. Pure bookkeeping plus the loop that calls each benchmark; the
benchmarks themselves live in bench/<area>.py and register with `@benchmark(...)`."""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import statistics
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sample_shop.topology import StackDescriptor

# Modules of bench/ that are the harness, not benchmarks.
INFRASTRUCTURE = {"harness", "report", "machine", "reference", "__main__"}


@dataclass(frozen=True)
class Figure:
    """One measured value. `target` with `better`: "lower" means met when value <= target, "higher" means
    met when value >= target. `compare` names a row of the reference table this figure fills."""

    name: str
    value: float
    unit: str
    target: float | None = None
    better: Literal["lower", "higher"] = "lower"
    compare: str | None = None
    note: str = ""

    def met(self, value: float | None = None) -> bool | None:
        if self.target is None:
            return None
        v = self.value if value is None else value
        return v <= self.target if self.better == "lower" else v >= self.target


@dataclass
class BenchContext:
    """What a benchmark gets: whether this is a smoke run (tiny durations), where it may write, which
    port offset its stacks use, and a shared stack started once per run (for throughput-like figures)."""

    smoke: bool
    workdir: Path
    port_offset: int
    repeat_index: int = 0
    _shared: Any = None  # (LocalTarget, StackDescriptor) once started

    def duration(self, full_s: float, smoke_s: float) -> float:
        return smoke_s if self.smoke else full_s

    def shared_stack(self) -> StackDescriptor:
        """A local stack on this run's port offset, started on first use and stopped when the run ends."""
        if self._shared is None:
            from testbed.runtime.base import UpOptions
            from testbed.runtime.local import LocalTarget

            target = LocalTarget(self.workdir / "shared-stack", self.port_offset, exit_with_pid=os.getpid())
            self._shared = (target, target.up(UpOptions(extras=False, timeout_s=120)))
        return self._shared[1]  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._shared is not None:
            self._shared[0].down()
            self._shared = None


BenchFunction = Callable[[BenchContext], list[Figure]]


@dataclass(frozen=True)
class Benchmark:
    name: str  # "<area>.<what>", e.g. "runtime.stack"
    func: BenchFunction
    repeat: int
    order: int
    description: str


REGISTRY: dict[str, Benchmark] = {}


def benchmark(
    name: str, *, repeat: int = 3, order: int = 100, description: str = ""
) -> Callable[[BenchFunction], BenchFunction]:
    """Register a benchmark. It is called `repeat` times (once in a smoke run) and returns its figures."""

    def register(func: BenchFunction) -> BenchFunction:
        if name in REGISTRY and REGISTRY[name].func is not func:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = Benchmark(name, func, repeat, order, description or (func.__doc__ or "").strip())
        return func

    return register


def discover() -> dict[str, Benchmark]:
    """Import every bench/<area>.py so that its benchmarks register."""
    package = importlib.import_module("bench")
    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in INFRASTRUCTURE and not module.name.startswith("_"):
            importlib.import_module(f"bench.{module.name}")
    return dict(sorted(REGISTRY.items(), key=lambda item: (item[1].order, item[0])))


@dataclass
class FigureSummary:
    benchmark: str
    name: str
    unit: str
    values: list[float]
    target: float | None
    better: str
    compare: str | None
    note: str

    @property
    def minimum(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def maximum(self) -> float:
        return max(self.values)

    @property
    def met(self) -> bool | None:
        """Judged on the median of the repeats."""
        if self.target is None:
            return None
        return self.median <= self.target if self.better == "lower" else self.median >= self.target

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "name": self.name,
            "unit": self.unit,
            "values": self.values,
            "min": self.minimum,
            "median": self.median,
            "max": self.maximum,
            "target": self.target,
            "better": self.better,
            "met": self.met,
            "compare": self.compare,
            "note": self.note,
        }


def summarize(benchmark_name: str, runs: list[list[Figure]]) -> list[FigureSummary]:
    """Figures of repeated runs -> one summary per figure name (in first-seen order)."""
    summaries: dict[str, FigureSummary] = {}
    for figures in runs:
        for f in figures:
            s = summaries.get(f.name)
            if s is None:
                summaries[f.name] = FigureSummary(
                    benchmark_name, f.name, f.unit, [f.value], f.target, f.better, f.compare, f.note
                )
            else:
                if s.unit != f.unit:
                    raise ValueError(
                        f"{benchmark_name}: figure {f.name!r} changed unit ({s.unit} -> {f.unit})"
                    )
                s.values.append(f.value)
    return list(summaries.values())


@dataclass
class BenchResult:
    name: str
    description: str
    repeats: int
    seconds: float
    figures: list[FigureSummary] = field(default_factory=list)
    error: str | None = None
    load_1m: float | None = None  # the machine's load average when the benchmark began


def run(
    benchmarks: dict[str, Benchmark],
    *,
    smoke: bool,
    workdir: Path,
    port_offset: int,
    repeat: int | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[BenchResult]:
    """Run each benchmark its number of times (1 in a smoke run) in this process, one after the other."""
    context = BenchContext(smoke, workdir, port_offset)
    results: list[BenchResult] = []
    try:
        for index, bench in enumerate(benchmarks.values(), start=1):
            times = 1 if smoke else (repeat or bench.repeat)
            load_1m = round(os.getloadavg()[0], 2)
            runs: list[list[Figure]] = []
            started = time.monotonic()
            error = None
            for attempt in range(times):
                progress(f"[{index}/{len(benchmarks)}] {bench.name}: run {attempt + 1}/{times}")
                context.repeat_index = attempt
                try:
                    figures = bench.func(context)
                except Exception as exc:  # one broken benchmark must not hide the others' figures
                    error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
                    progress(f"[{index}/{len(benchmarks)}] {bench.name}: FAILED: {exc}")
                    break
                if not figures:
                    error = "returned no figures"
                    break
                runs.append(figures)
            summaries = summarize(bench.name, runs) if runs and error is None else []
            results.append(
                BenchResult(
                    bench.name,
                    bench.description,
                    len(runs),
                    time.monotonic() - started,
                    summaries,
                    error,
                    load_1m,
                )
            )
    finally:
        context.close()
    return results


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    """`with timed() as elapsed: ...; seconds = elapsed()` (monotonic clock)."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())
