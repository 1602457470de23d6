"""RESULTS.md and results.json from a bench run. Pure: results in, text out."""

from __future__ import annotations

import json
from typing import Any

from bench.harness import BenchResult, FigureSummary
from bench.reference import PROJECTS, ROWS
from sample_shop.topology import SERVICE_NAMES

HEADER = """# Benchmark results

Written by `make bench` (`python -m bench`): every figure measured in one run, in one process, on the
machine below; each is the median of its repeats with the minimum and maximum beside it, and is judged
against its target on the median. Absolute times on a shared machine are noisy: compare ratios measured
in the same run. `make bench-smoke` (tiny durations, one repeat) only keeps the benchmarks working and
writes to bench/out/, never here.
"""


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _target(f: FigureSummary) -> str:
    if f.target is None:
        return "-"
    return f"{'≤' if f.better == 'lower' else '≥'} {_number(f.target)}"


def _met(f: FigureSummary) -> str:
    return {None: "-", True: "met", False: "**not met**"}[f.met]


def our_column(results: list[BenchResult]) -> dict[str, str]:
    """Reference-table row -> what we measured (figures with `compare`), plus what the topology says."""
    ours: dict[str, list[str]] = {"services": [f"{len(SERVICE_NAMES)} + Prometheus (no containers)"]}
    for result in results:
        for f in result.figures:
            if f.compare:
                ours.setdefault(f.compare, []).append(f"{_number(f.median)} {f.unit} ({f.name})")
    return {row: "; ".join(items) for row, items in ours.items()}


def render_markdown(machine: dict[str, Any], results: list[BenchResult], smoke: bool) -> str:
    lines = [HEADER]
    if smoke:
        lines.append("**Smoke run: tiny durations, one repeat. These figures mean nothing.**\n")
    lines += ["## Machine", "", "| | |", "|---|---|"]
    labels = {"cpu": "CPU", "cores": "cores", "ram_gib": "RAM (GiB)", "os": "OS", "kernel": "kernel",
              "python": "Python", "date": "date (UTC)", "commit": "commit",
              "load_1m": "load average (1 min) at start"}  # fmt: skip
    lines += [f"| {label} | {machine.get(key, '-')} |" for key, label in labels.items()]
    lines += [
        "",
        "## Figures",
        "",
        "| benchmark | figure | median | min | max | unit | target | met | repeats |",
        "|---|---|---:|---:|---:|---|---|---|---:|",
    ]
    for result in results:
        for f in result.figures:
            lines.append(
                f"| {result.name} | {f.name} | {_number(f.median)} | {_number(f.minimum)} "
                f"| {_number(f.maximum)} "
                f"| {f.unit} | {_target(f)} | {_met(f)} | {len(f.values)} |"
            )
    notes = [(r.name, f.name, f.note) for r in results for f in r.figures if f.note]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {b} / {name}: {note}" for b, name, note in notes]
    lines += [
        "",
        "## Runs",
        "",
        "| benchmark | repeats | seconds | load average at its start | what it measures |",
        "|---|---:|---:|---:|---|",
    ]
    for r in results:
        what = (r.description.splitlines() or [""])[0]
        load = "-" if r.load_1m is None else f"{r.load_1m:g}"
        lines.append(f"| {r.name} | {r.repeats} | {r.seconds:.0f} | {load} | {what} |")
    failed = [r for r in results if r.error]
    if failed:
        lines += ["", "## Benchmarks that failed", ""]
        for r in failed:
            first = (r.error or "").splitlines()[0]
            lines.append(f"- **{r.name}**: {first}")
    ours = our_column(results)
    lines += [
        "",
        "## Beside the comparable projects",
        "",
        "Their figures are from their documentation and users' reports (sources: bench/README.md); ours are "
        "the medians above.",
        "",
        "| | this testbed (measured here) | " + " | ".join(PROJECTS) + " |",
        "|---|---|" + "---|" * len(PROJECTS),
    ]
    for key, (label, theirs) in ROWS.items():
        lines.append(
            f"| {label} | {ours.get(key, '-')} | " + " | ".join(theirs.get(p, "-") for p in PROJECTS) + " |"
        )
    return "\n".join(lines) + "\n"


def render_json(machine: dict[str, Any], results: list[BenchResult], smoke: bool) -> str:
    return json.dumps(
        {
            "machine": machine,
            "smoke": smoke,
            "benchmarks": [
                {
                    "name": r.name,
                    "description": r.description,
                    "repeats": r.repeats,
                    "seconds": round(r.seconds, 2),
                    "load_1m": r.load_1m,
                    "error": r.error,
                    "figures": [f.to_dict() for f in r.figures],
                }
                for r in results
            ],
        },
        indent=2,
    )
