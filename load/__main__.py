"""`python -m load`: run one load profile against the shop in this process and write the result folder.

Exit codes: 0 run complete without a failed request; 1 requests failed, a journey raised, or no request
was made at all (no data is never a pass); 2 bad input; 3 cannot run (no stack, gateway unreachable,
exporter port taken)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from load.mixes import DEFAULT_MIX, MIXES
from load.profiles import MAX_WORKERS, PROFILES, LoadConfigError, resolve_params, resolve_workers
from load.results import default_out_dir
from load.target import check_reachable, resolve_target
from sample_shop.basics import format_duration

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_CANNOT_RUN = 0, 1, 2, 3


def profiles_help() -> str:
    width = max(map(len, PROFILES))
    lines = [
        f"  {s.name:<{width}}  {s.description} (default {s.default_users} users, "
        f"{format_duration(s.default_duration_s)})"
        for s in PROFILES.values()
    ]
    mix_width = max(map(len, MIXES))
    mixes = [f"  {m.name:<{mix_width}}  {m.description}" for m in MIXES.values()]
    return "profiles:\n" + "\n".join(lines) + "\n\njourney mixes (--mix):\n" + "\n".join(mixes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m load",
        description="Run a load profile (Locust, weighted shop journeys) against the shop's gateway and "
        "write stats CSVs, requests.parquet and summary.json into an output folder.",
        epilog=profiles_help() + "\n\nexit codes: 0 no failed request, 1 failures or no requests, "
        "2 bad input, 3 cannot run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--profile", required=True, help="load shape: " + ", ".join(PROFILES))
    parser.add_argument("--users", help="peak simulated users (default: per profile)")
    parser.add_argument("--duration", help="run time such as 60s, 5m, 1h30m (default: per profile)")
    parser.add_argument("--spawn-rate", help="users started per second while ramping (default: users/5)")
    parser.add_argument(
        "--think-time-factor",
        help="scale the shoppers' 1-4 s think time (default 1; 0 = no pauses, for benchmarks)",
    )
    parser.add_argument("--mix", help=f"journey mix: {', '.join(MIXES)} (default {DEFAULT_MIX}; see below)")
    parser.add_argument(
        "--workers",
        help=f"run the users in N local worker processes under a Locust master (0..{MAX_WORKERS}; "
        "default 0 = in this process); the result files are the same",
    )
    parser.add_argument("--out", type=Path, help="result folder (default load-results/<UTC time>-<profile>)")
    parser.add_argument("--host", help="gateway base URL (default: gateway_url of the running stack)")
    parser.add_argument(
        "--state-dir", type=Path, help="state folder of the stack (default $TESTBED_STATE_DIR)"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="port of the client-metrics exporter on 127.0.0.1 (default: the stack's; 0 = off)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address the exporter binds (default 127.0.0.1; 0.0.0.0 inside a pod so Prometheus can scrape)",
    )
    parser.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow a gateway that is not on 127.0.0.1 (a kind cluster you own)",
    )
    parser.add_argument(
        "--progress", choices=("text", "jsonl", "none"), default="text", help="progress on stdout"
    )
    parser.add_argument(
        "--parent-pid", type=int, help="stop (and write the results) as soon as this parent process is gone"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        params = resolve_params(
            args.profile, args.users, args.duration, args.spawn_rate, args.think_time_factor, args.mix
        )
        workers = resolve_workers(args.workers)
        target = resolve_target(
            args.host,
            state_dir=args.state_dir,
            metrics_port=args.metrics_port,
            allow_non_loopback=args.allow_non_loopback,
        )
    except LoadConfigError as exc:
        flag = "--" + exc.field.replace("_", "-")
        print(f"python -m load: error: {flag}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, ValueError) as exc:
        print(f"python -m load: error: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    if args.parent_pid is not None and os.getppid() != args.parent_pid:
        print(f"python -m load: error: parent process {args.parent_pid} is already gone", file=sys.stderr)
        return EXIT_CANNOT_RUN
    try:
        check_reachable(target.host)
    except ConnectionError as exc:
        print(f"python -m load: error: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN

    # Imported only now: Locust monkey-patches the standard library with gevent on import.
    from load.runner import RunConfig, run

    out_dir = (args.out or default_out_dir(params.profile)).resolve()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"python -m load: error: --out: cannot create {out_dir}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    return run(
        RunConfig(
            params,
            target.host,
            out_dir,
            target.metrics_port,
            args.parent_pid,
            args.progress,
            metrics_host=args.metrics_host,
            workers=workers,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
