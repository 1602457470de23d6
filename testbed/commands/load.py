"""`testbed load`: run a load profile against the running stack, with a progress display and a final
summary; `--json` for scripts; `--stop` ends a background run (e.g. one an interrupted experiment left).

The load itself runs in its own process (`python -m load`, started through `load.control`), so Locust's
gevent patching never touches the CLI, and the same code path serves `testbed load` and experiments."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from load.control import LoadError, LoadHandle, follow_progress, start_load, stop_load
from load.profiles import PROFILES, LoadConfigError, resolve_params, resolve_workers
from load.results import default_out_dir
from sample_shop.basics import format_duration

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_CANNOT_RUN, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

PROFILE_LINES = "\n\n".join(
    f"{s.name}: {s.description} (default {s.default_users} users, {format_duration(s.default_duration_s)})"
    for s in PROFILES.values()
)


def _usage_error(field: str, message: str) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] --{field.replace('_', '-')}: {message}", highlight=False)
    return typer.Exit(EXIT_USAGE)


def _exit_code(summary: dict[str, Any]) -> int:
    failed = summary.get("failures") or summary.get("journey_errors")
    return EXIT_FAILURES if failed or not summary.get("requests") else EXIT_OK


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def render_summary(summary: dict[str, Any], out_dir: str, console: Console) -> None:
    table = Table(title=f"load: {summary['profile']} against {summary['host']}", title_justify="left")
    for column in ("endpoint", "requests", "failures", "rps", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "endpoint" else "right", no_wrap=True)
    for row in summary["by_name"]:
        lat = row["latency_ms"]
        table.add_row(
            f"{row['method']} {row['name']}",
            str(row["requests"]),
            f"[red]{row['failures']}[/red]" if row["failures"] else "0",
            f"{row['rps']:.1f}",
            _fmt_ms(lat["p50"]),
            _fmt_ms(lat["p95"]),
            _fmt_ms(lat["p99"]),
        )
    lat = summary["latency_ms"]
    table.add_section()
    table.add_row(
        "total",
        str(summary["requests"]),
        str(summary["failures"]),
        f"{summary['rps'] or 0:.1f}",
        _fmt_ms(lat["p50"]),
        _fmt_ms(lat["p95"]),
        _fmt_ms(lat["p99"]),
    )
    console.print(table)
    for error in summary["errors"][:10]:
        console.print(f"  [red]{error['count']}x[/red] {error['method']} {error['name']}: {error['error']}")
    if summary.get("journey_errors"):
        console.print(f"  [red]{summary['journey_errors']} journey exceptions[/red]: see exceptions.csv")
    verdict = "[green]no failed request[/green]"
    if summary["failures"] or summary.get("journey_errors"):
        verdict = "[red]requests failed[/red] (on a healthy shop that is a bug: see failures.csv)"
    elif not summary["requests"]:
        verdict = "[red]no request was made[/red]"
    console.print(
        f"{verdict}; {summary['wall_s']:.0f}s, ended: {summary['exit_reason']}. Results: {out_dir}",
        highlight=False,
    )


def _watch(handle: LoadHandle, console: Console) -> None:
    duration = float(handle.params["duration_s"])
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[stats]}"),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(handle.params["profile"], total=duration, stats="starting")
        for event in follow_progress(handle, poll_s=0.5):
            if event.get("event") == "progress":
                failures = event["failures"]
                bar.update(
                    task,
                    completed=min(duration, event["elapsed_s"]),
                    stats=(
                        f"users {event['users']:>4}  rps {event['rps']:>7.1f}  "
                        f"requests {event['requests']:>7}  "
                        + (f"[red]failures {failures}[/red]" if failures else "failures 0")
                    ),
                )
            elif event.get("event") == "finished":
                bar.update(task, completed=duration)


def load_command(
    profile: str | None = typer.Option(
        None, "--profile", "-p", help="Load shape: " + ", ".join(PROFILES) + ". See the list below."
    ),
    users: str | None = typer.Option(
        None, "--users", "-u", help="Peak simulated users (default: per profile)."
    ),
    duration: str | None = typer.Option(
        None, "--duration", "-d", help="Run time such as 60s, 5m, 1h30m (default: per profile)."
    ),
    spawn_rate: str | None = typer.Option(
        None, "--spawn-rate", help="Users started per second while ramping (default: users/5)."
    ),
    think_time_factor: str | None = typer.Option(
        None, "--think-time-factor", help="Scale the shoppers' 1-4 s think time; 0 = none (benchmarks)."
    ),
    mix: str | None = typer.Option(
        None, "--mix", help="Journey mix: browsing (default, ~4 % checkouts) or buying (~30 %); docs/load.md."
    ),
    workers: str | None = typer.Option(
        None,
        "--workers",
        "-w",
        help="Run the users in N local worker processes under a Locust master, for load beyond one core "
        "(default 0: one process). Same result files.",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Result folder (default: load-results/<UTC time>-<profile>)."
    ),
    host: str | None = typer.Option(None, "--host", help="Gateway base URL (default: the running stack's)."),
    allow_non_loopback: bool = typer.Option(
        False, "--allow-non-loopback", help="Allow a gateway not on 127.0.0.1 (a kind cluster you own)."
    ),
    as_json: bool = typer.Option(False, "--json", help="No progress display; print summary.json to stdout."),
    stop: bool = typer.Option(False, "--stop", help="Stop the load running in the background, if any."),
) -> None:
    """Run a load profile (weighted shop journeys on Locust) against the running stack.

    Shows users, requests per second and failures while it runs, then a table per endpoint. Results go to
    the --out folder: stats.csv, stats_history.csv, failures.csv, requests.parquet, summary.json
    (docs/load.md). Exit code 0 when no request failed, 1 when some did (or none was made), 2 for bad
    input, 3 when the load cannot run (no stack: start it with `testbed up`).
    """
    out_console = Console()
    err_console = Console(stderr=True)
    if stop:
        try:
            summary = stop_load()
        except LoadError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(EXIT_CANNOT_RUN) from None
        if summary is None:
            err_console.print("no load is running")
            raise typer.Exit(EXIT_OK)
        if as_json:
            out_console.print_json(json.dumps(summary))
        else:
            render_summary(summary, "(stopped)", out_console)
        raise typer.Exit(EXIT_OK)
    if profile is None:
        raise _usage_error("profile", "missing; valid profiles: " + ", ".join(PROFILES))
    try:
        params = resolve_params(profile, users, duration, spawn_rate, think_time_factor, mix)
        worker_count = resolve_workers(workers)
    except LoadConfigError as exc:
        raise _usage_error(exc.field, exc.message) from None
    out_dir = out or default_out_dir(params.profile)
    try:
        handle = start_load(
            params.profile,
            out_dir=out_dir,
            users=params.users,
            duration=params.duration_s,
            spawn_rate=params.spawn_rate,
            think_time_factor=params.think_time_factor,
            mix=params.mix,
            host=host,
            allow_non_loopback=allow_non_loopback,
            workers=worker_count,
        )
    except LoadConfigError as exc:
        raise _usage_error(exc.field, exc.message) from None
    except (LoadError, FileNotFoundError, OSError) as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_CANNOT_RUN) from None

    interrupted = False
    try:
        if not as_json:
            err_console.print(
                f"load: {params.profile}, {params.users} users, {format_duration(params.duration_s)} against "
                f"{handle.host} (Ctrl-C stops early and still writes the results)",
                highlight=False,
            )
            _watch(handle, err_console)
        else:
            for _ in follow_progress(handle):
                pass
    except KeyboardInterrupt:
        interrupted = True
        err_console.print("stopping the load and writing results ...")
    try:
        summary = stop_load(handle)
    except LoadError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    if summary is None:  # cannot happen with a handle; kept so a refactor cannot print nothing
        raise typer.Exit(EXIT_CANNOT_RUN)
    if as_json:
        sys.stdout.write(json.dumps(summary | {"out_dir": handle.out_dir}, indent=2) + "\n")
    else:
        render_summary(summary, handle.out_dir, out_console)
    raise typer.Exit(EXIT_INTERRUPTED if interrupted else _exit_code(summary))


def register(app: typer.Typer) -> None:
    """Add this area's commands to the top-level app."""
    app.command(
        "load",
        help=inspect.cleandoc(load_command.__doc__ or "") + "\n\nProfiles:\n\n" + PROFILE_LINES,
        no_args_is_help=False,
    )(load_command)
