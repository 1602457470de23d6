"""`python -m bench`: run the benchmarks and write RESULTS.md + results.json.

Exit status: 0 when every benchmark ran (targets met or not: the page says which), 1 when one failed to
run, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench.harness import discover, run
from bench.machine import machine_info
from bench.report import render_json, render_markdown

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_PORT_OFFSET = 100  # clear of a user's stack (0) and the test suite's (200)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure the testbed's figures on this machine and write bench/RESULTS.md and "
        "bench/results.json (a --smoke or --only run writes to bench/out/ instead).",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny durations, one repeat: keeps benchmarks working"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="repeats per benchmark (default: its own, often 3)"
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run only this benchmark (repeatable)"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--out", type=Path, default=None, help="folder for RESULTS.md and results.json")
    parser.add_argument(
        "--port-offset",
        type=int,
        default=int(os.environ.get("BENCH_PORT_OFFSET", DEFAULT_PORT_OFFSET)),
        help=f"port offset of the stacks the benchmarks start (default {DEFAULT_PORT_OFFSET}, "
        "or BENCH_PORT_OFFSET)",
    )
    args = parser.parse_args(argv)
    if args.repeat is not None and not 1 <= args.repeat <= 50:
        parser.error(f"--repeat must be from 1 to 50, got {args.repeat}")
    if not 0 <= args.port_offset <= 30_000:
        parser.error(f"--port-offset must be from 0 to 30000, got {args.port_offset}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    benchmarks = discover()
    if args.list:
        for name, bench in benchmarks.items():
            print(f"{name:<32} x{bench.repeat}  {(bench.description.splitlines() or [''])[0]}")
        return 0
    unknown = [name for name in args.only if name not in benchmarks]
    if unknown:
        print(
            f"error: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(benchmarks)}",
            file=sys.stderr,
        )
        return 2
    if args.only:
        benchmarks = {name: b for name, b in benchmarks.items() if name in args.only}
    # RESULTS.md holds one complete run: smoke and partial (--only) runs go to bench/out/ unless told so
    out = args.out or (BENCH_DIR / "out" if args.smoke or args.only else BENCH_DIR)
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        results = run(
            benchmarks,
            smoke=args.smoke,
            workdir=Path(workdir),
            port_offset=args.port_offset,
            repeat=args.repeat,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    (out / "RESULTS.md").write_text(render_markdown(machine, results, args.smoke))
    (out / "results.json").write_text(render_json(machine, results, args.smoke))
    for result in results:
        for f in result.figures:
            verdict = {None: "", True: "  met", False: "  NOT MET"}[f.met]
            print(f"{result.name:<24} {f.name:<40} {f.median:10.3g} {f.unit}{verdict}")
        if result.error:
            print(f"{result.name:<24} FAILED: {result.error.splitlines()[0]}")
    print(f"wrote {out / 'RESULTS.md'} and {out / 'results.json'}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
