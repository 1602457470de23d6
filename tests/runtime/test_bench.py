"""The benchmark harness: bookkeeping and report (pure), and a smoke run of every registered benchmark
(`python -m bench --smoke`: tiny durations, one repeat, written to a temporary folder, not RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.harness import BenchContext, Benchmark, Figure, run, summarize
from bench.reference import PROJECTS
from bench.report import render_json, render_markdown

REPO = Path(__file__).resolve().parents[2]


def test_figures_are_summarized_and_judged_on_the_median() -> None:
    runs = [
        [Figure("start", 4.0, "s", 5.0), Figure("rps", 90, "req/s", 100, better="higher")],
        [Figure("start", 6.0, "s", 5.0), Figure("rps", 120, "req/s", 100, better="higher")],
        [Figure("start", 4.5, "s", 5.0), Figure("rps", 110, "req/s", 100, better="higher")],
    ]
    start, rps = summarize("x", runs)
    assert (start.minimum, start.median, start.maximum, start.met) == (4.0, 4.5, 6.0, True)
    assert (rps.median, rps.met) == (110, True)
    assert summarize("x", [[Figure("idle", 1.0, "MB")]])[0].met is None
    with pytest.raises(ValueError, match="changed unit"):
        summarize("x", [[Figure("a", 1, "s")], [Figure("a", 1, "ms")]])


def test_a_failing_benchmark_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    calls: list[int] = []

    def broken(ctx: BenchContext) -> list[Figure]:
        raise RuntimeError("Prometheus unreachable")

    def fine(ctx: BenchContext) -> list[Figure]:
        calls.append(ctx.repeat_index)
        return [Figure("cold start to ready", 3.0 + ctx.repeat_index, "s", 5.0, compare="start")]

    benchmarks = {
        "a.broken": Benchmark("a.broken", broken, 3, 1, "always fails"),
        "b.fine": Benchmark("b.fine", fine, 3, 2, "works"),
    }
    results = run(benchmarks, smoke=False, workdir=tmp_path, port_offset=0)
    assert results[0].error and "Prometheus unreachable" in results[0].error and results[0].figures == []
    assert calls == [0, 1, 2] and results[1].figures[0].values == [3.0, 4.0, 5.0]
    machine = {"cpu": "test cpu", "cores": 2}
    page = render_markdown(machine, results, smoke=False)
    assert "| CPU | test cpu |" in page
    assert "| b.fine | cold start to ready | 4 | 3 | 5 | s | ≤ 5 | met | 3 |" in page
    assert "- **a.broken**: RuntimeError: Prometheus unreachable" in page
    assert "| start to ready | 4 s (cold start to ready) | ~90 s from prebuilt images |" in page
    assert all(project in page for project in PROJECTS)
    data = json.loads(render_json(machine, results, smoke=False))
    assert data["benchmarks"][1]["figures"][0]["median"] == 4.0
    assert data["benchmarks"][0]["error"].startswith("RuntimeError")


@pytest.mark.slow
@pytest.mark.stack
@pytest.mark.timeout(600)  # every area's benchmarks, each at its smoke size
def test_bench_smoke_run_writes_its_results(tmp_path: Path, spare_port_offset: int) -> None:
    out = tmp_path / "bench"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--out",
            str(out),
            "--port-offset",
            str(spare_port_offset),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    page = (out / "RESULTS.md").read_text()
    assert "Smoke run" in page and "## Machine" in page and "## Beside the comparable projects" in page
    data = json.loads((out / "results.json").read_text())
    assert data["smoke"] is True
    figures = {(b["name"], f["name"]): f for b in data["benchmarks"] for f in b["figures"]}
    cold = figures[("runtime.stack", "cold start to ready")]
    assert cold["target"] == 5.0 and cold["median"] > 0 and isinstance(cold["met"], bool)
    assert figures[("runtime.stack", "RSS at rest, every process")]["median"] > 50
    assert (
        not (REPO / "bench" / "RESULTS.md").exists()
        or "Smoke run" not in (REPO / "bench" / "RESULTS.md").read_text()
    )
