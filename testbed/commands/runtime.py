"""`testbed up`, `testbed status`, `testbed down`: the stack's lifecycle (`--target local`, the default, or
`--target kind`: the cluster of `make cluster images deploy`, docs/kind.md)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from sample_shop.topology import SERVICE_NAMES, StackDescriptor, default_state_dir
from testbed.runtime import get_target
from testbed.runtime.base import InputError, RuntimeFailure, StackStatus, StartupProgress, Target, UpRequest
from testbed.runtime.extras import EXTRA_NAMES
from testbed.runtime.options import make_options

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3
TARGET_HELP = (
    "local (the default): processes on this machine; kind: the cluster of `make cluster images deploy` "
    "(checked and described in stack.json, never created; docs/kind.md)"
)


def _target(name: str, console: Console, as_json: bool) -> Target:
    try:
        return get_target(name)
    except RuntimeFailure as failure:
        _print_failure(failure, console, as_json)
        raise typer.Exit(EXIT_USAGE) from None


def _console(stderr: bool = False) -> Console:
    """Wide when not on a terminal, so that logs and pipes get whole lines, not wrapped ones."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160)


def _print_failure(failure: RuntimeFailure, console: Console, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"status": "failed", **failure.to_dict()}, indent=2))
        return
    console.print(f"[red]error:[/red] {failure.message}", highlight=False)
    if failure.hint:
        console.print(f"  how to fix: {failure.hint}", highlight=False)
    if failure.log_tail:
        console.print(f"  last lines of {failure.log_path or 'its log'}:", highlight=False)
        for line in failure.log_tail.splitlines():
            console.print(f"    {line}", highlight=False, markup=False)


class _ProgressView:
    """A live status line on a terminal; one line per change otherwise (CI logs)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()
        self.status = console.status("starting the stack") if console.is_terminal else None
        self.last_count = -1

    def __enter__(self) -> _ProgressView:
        if self.status:
            self.status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status:
            self.status.__exit__(None, None, None)

    def __call__(self, progress: StartupProgress) -> None:
        elapsed = time.monotonic() - self.started
        total = len(progress.ready) + len(progress.waiting)
        if total == 0:
            return
        head = f"{elapsed:4.1f}s  {len(progress.ready)}/{total} ready"
        detail = ", ".join(progress.waiting[:3]) + (" ..." if len(progress.waiting) > 3 else "")
        if self.status:
            self.status.update(f"starting the stack: {head}" + (f" - waiting for {detail}" if detail else ""))
        elif len(progress.ready) != self.last_count:
            self.console.print(f"  {head}" + (f" (waiting for {detail})" if detail else ""), highlight=False)
        self.last_count = len(progress.ready)


def _print_stack(descriptor: StackDescriptor, notes: list[str], console: Console, headline: str) -> None:
    console.print(headline, highlight=False)
    counts = {s: len(descriptor.replicas_of(s)) for s in SERVICE_NAMES}
    rows = [
        ("shop (gateway)", descriptor.gateway_url),
        ("prometheus", descriptor.prometheus_url),
        ("control API", f"{descriptor.control_url}  (token: {descriptor.token_file})"),
    ]
    if descriptor.alertmanager_url:
        rows.append(
            ("alertmanager", f"{descriptor.alertmanager_url}  (pages recorded in {descriptor.alerts_file})")
        )
    for name in EXTRA_NAMES:
        url = getattr(descriptor, f"{name}_url")
        if url:
            rows.append((name, url))
    rows.append(("replicas", ",".join(f"{s}={n}" for s, n in counts.items())))
    rows.append(("logs", descriptor.logs_dir or ""))
    if descriptor.traces_dir:
        rows.append(("traces", descriptor.traces_dir))
    if descriptor.otlp_endpoint:
        rows.append(("traces (OTLP)", f"{descriptor.otlp_endpoint}/v1/traces"))
    for label, value in rows:
        console.print(f"  {label:<15} {value}", highlight=False)
    for note in notes:
        console.print(f"  [dim]note: {note}[/dim]", highlight=False)
    console.print("next: `testbed status`, `testbed experiment run`, `testbed down`", highlight=False)


def up(
    replicas: str = typer.Option(
        None,
        "--replicas",
        help=f"Replicas per service as SERVICE=COUNT,... (1-5 each; others get 1). Services: "
        f"{', '.join(SERVICE_NAMES)}. Example: --replicas catalog=2,payment=2",
    ),
    resilience: str = typer.Option(
        None, help="Outbound client profile: resilient (timeouts, retries, breaker; the default) or naive."
    ),
    telemetry: str = typer.Option(None, help="on (the default): traces, metrics detail, access logs; off."),
    timeout: float = typer.Option(
        60.0, help="Seconds to wait until everything is ready (then fail and clean up)."
    ),
    extras: bool = typer.Option(
        True, "--extras/--no-extras", help="Start Jaeger, Loki and Grafana when their binaries are on PATH."
    ),
    otlp_endpoint: str = typer.Option(
        None,
        "--otlp-endpoint",
        metavar="URL",
        help="Also send every service's traces to this OTLP/HTTP endpoint (protobuf, the standard "
        "exporter; e.g. http://127.0.0.1:6006 for Phoenix, `make traces-ui`). /v1/traces is appended.",
    ),
    trace_files: bool = typer.Option(
        True,
        "--trace-files/--no-trace-files",
        help="Keep writing the OTLP-JSON trace files the run folders collect (--no-trace-files: only to "
        "--otlp-endpoint; runs then hold no traces).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object (the stack descriptor) on stdout."
    ),
    target_name: str = typer.Option("local", "--target", help=TARGET_HELP),
) -> None:
    """Start the local stack: every service replica and a real Prometheus (plus Jaeger/Loki/Grafana when
    installed). Waits until every replica's /readyz answers 200 and Prometheus reports up == 1 for every
    target, then prints the URLs. Already up: says so and exits 0. On failure: says which process and why,
    shows the tail of its log, and leaves nothing running (exit 1; bad input: exit 2). Ports:
    TESTBED_PORT_OFFSET; state folder: TESTBED_STATE_DIR (default .testbed/). `--target kind` waits for the
    kind cluster instead and writes its stack.json (docs/kind.md)."""
    console = _console(stderr=as_json)
    errors = _console(stderr=True)
    target = _target(target_name, errors, as_json)
    try:
        request = UpRequest(replicas, resilience, telemetry, otlp_endpoint)
        target.check_up_request(request)
        options = make_options(
            replicas,
            resilience or "resilient",
            telemetry or "on",
            timeout,
            extras,
            otlp_endpoint,
            trace_files,
        )
    except InputError as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    started = time.monotonic()
    try:
        running = target.running_stack(request)
        already = running is not None
        if running is not None:
            descriptor = running
        else:
            with _ProgressView(errors) as view:
                descriptor = target.up(options, progress=view)
    except RuntimeFailure as failure:
        _print_failure(failure, errors, as_json)
        raise typer.Exit(EXIT_FAILED) from None
    except InputError as exc:  # options the target cannot honour (kind)
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        errors.print("interrupted: the stack was stopped", highlight=False)
        raise typer.Exit(130) from None
    elapsed = time.monotonic() - started
    notes = target.startup_notes()
    if as_json:
        result: dict[str, Any] = {
            "status": "already_up" if already else "up",
            "elapsed_s": None if already else round(elapsed, 2),
            "notes": notes,
            "stack": json.loads(descriptor.to_json()),
        }
        print(json.dumps(result, indent=2))
        return
    headline = (
        f"[green]already up[/green] (state: {descriptor.state_dir}); nothing to do"
        if already
        else f"[green]stack up[/green] in {elapsed:.1f} s (state: {descriptor.state_dir})"
    )
    _print_stack(descriptor, notes if not already else [], console, headline)


def _status_table(status: StackStatus) -> Table:
    table = Table(title=f"stack in {status.state_dir}: {status.message}", title_justify="left")
    for column in (
        "service",
        "replica",
        "pid",
        "port",
        "state",
        "health",
        "restarts",
        "RSS MB",
        "PSS MB",
        "url",
    ):
        table.add_column(column, justify="right" if column.endswith("MB") else "left")
    for p in status.processes:
        health = f"[green]{p.health}[/green]" if p.healthy else f"[red]{p.health}[/red]"
        table.add_row(
            p.service,
            "-" if p.replica is None else str(p.replica),
            str(p.pid or "-"),
            str(p.port or "-"),
            p.state,
            health,
            str(p.restarts),
            "-" if p.rss_mb is None else f"{p.rss_mb:.0f}",
            "-" if p.pss_mb is None else f"{p.pss_mb:.0f}",
            p.url or "",
        )
    known = [p for p in status.processes if p.rss_mb is not None]
    if known:
        rss = sum(p.rss_mb or 0.0 for p in known)
        pss = sum(p.pss_mb or 0.0 for p in known)
        table.caption = f"every process: RSS {rss:.0f} MB, PSS {pss:.0f} MB (PSS splits shared pages)"
    return table


def status(
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON on stdout."),
    target_name: str = typer.Option("local", "--target", help=TARGET_HELP),
) -> None:
    """Show every process of the stack: service, replica, pid, port, state, health (/readyz), restarts,
    memory (RSS and PSS, local target) and URL. Exit 0 when everything is healthy, 1 when something is not
    (or still starting), 3 when no stack runs."""
    console = _console()
    current = _target(target_name, _console(stderr=True), as_json).status()
    if as_json:
        print(json.dumps(current.to_dict(), indent=2))
    elif not current.processes:
        console.print(current.message, highlight=False)
    else:
        console.print(_status_table(current))
        for function in current.functions:
            console.print(_function_line(function), highlight=False)
        unhealthy = [p for p in current.processes if not p.healthy]
        if unhealthy:
            names = ", ".join(p.service + ("" if p.replica is None else f"-{p.replica}") for p in unhealthy)
            console.print(f"[red]unhealthy:[/red] {names}", highlight=False)
    if not current.running:
        raise typer.Exit(EXIT_NOT_RUNNING)
    if not current.healthy:
        raise typer.Exit(EXIT_FAILED)


def _function_line(function: dict[str, Any]) -> str:
    """One line per function: instances now / the limit, cold starts, crashes, the outbox backlog."""
    backlog = function.get("backlog") or {}
    states = backlog.get("states", {})
    queue = (
        f"backlog {backlog.get('undelivered', '?')} undelivered, {states.get('parked', 0)} parked"
        if backlog
        else f"backlog unknown ({function.get('backlog_error') or 'not polled yet'})"
    )
    held = " [yellow]held at zero[/yellow]" if function.get("held_until") else ""
    return (
        f"function {function['name']}: {function['running']}/{function['max_instances']} instances, "
        f"{function['cold_starts']} cold starts, {function['crashes']} crashes, {queue}{held}"
    )


def down(
    as_json: bool = typer.Option(False, "--json", help="Print what was stopped as JSON on stdout."),
    target_name: str = typer.Option("local", "--target", help=TARGET_HELP),
) -> None:
    """Stop the stack: every replica, Prometheus, the extras and the supervisor. Verifies that no process and
    no listening port of the stack remains. Running it when nothing runs is fine (exit 0). `--target kind`
    only removes stack.json: the cluster keeps running (`make cluster-down` deletes it)."""
    console = _console(stderr=True)
    target = _target(target_name, console, as_json)
    root = default_state_dir()
    described = (root / StackDescriptor.FILE_NAME).exists()
    try:
        stopped = target.down()
    except RuntimeFailure as failure:
        _print_failure(failure, console, as_json)
        raise typer.Exit(EXIT_FAILED) from None
    if target.down_note is not None:  # nothing was stopped: the stack runs on (kind's cluster)
        if as_json:
            print(json.dumps({"status": "forgotten", "stopped": [], "message": target.down_note}, indent=2))
        else:
            forgot = "stack.json removed from" if described else "no stack.json in"
            console.print(f"{forgot} {root}; {target.down_note}", highlight=False)
    elif as_json:
        print(json.dumps({"status": "stopped" if stopped else "not_running", "stopped": stopped}, indent=2))
    elif stopped:
        console.print(
            f"[green]stopped[/green] {len(stopped)} processes; no process or port of the stack remains "
            f"(logs and data kept in {root})",
            highlight=False,
        )
    else:
        console.print(f"nothing was running in {root}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the top-level app."""
    app.command("up")(up)
    app.command("status")(status)
    app.command("down")(down)
