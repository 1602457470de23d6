"""`testbed fault inject|list|clear`: faults on the running stack through its control API.

Input is validated here first, with the shop's own fault vocabulary (`sample_shop/kit/faultspec.py`), so a
wrong service, kind or parameter is refused with the valid values before anything is sent (exit 2).
Exit codes: 0 done; 1 the control API refused, or a replica did not confirm; 2 bad input; 3 no stack or
control API unreachable."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from sample_shop.faultd.client import ControlApiError, ControlClient
from sample_shop.faultd.processes import FUNCTION_FAULT_KINDS, validate_function_fault
from sample_shop.kit.faultspec import (
    DEFAULT_TTL_S,
    KINDS,
    PROCESS_KINDS,
    TTL_RANGE_S,
    FaultSpecError,
    validate_fault_spec,
)
from sample_shop.topology import NOTIFICATIONS_FUNCTION, SERVICE_NAMES, StackDescriptor, default_state_dir

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_STACK = 0, 1, 2, 3
MAX_PAUSE_S = 600


def describe_kinds() -> str:
    """Every kind with its parameters, defaults and ranges (the --help text)."""
    blocks = []
    for spec in KINDS.values():
        lines = [f"{spec.name} ({spec.target}): {spec.help}"]
        for p in spec.params:
            default = (
                " (required)" if p.required else (f" (default {p.default})" if p.default is not None else "")
            )
            lines.append(f"  --param {p.name}=...  {p.help}; {p.describe()}{default}")
        if not spec.params:
            lines.append(
                "  no parameters" + ("; --ttl is how long it stays paused" if spec.name == "pause" else "")
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def parse_params(pairs: list[str]) -> dict[str, str]:
    """`k=v` strings -> mapping; raises ValueError naming the bad one."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--param {pair!r}: expected NAME=VALUE, e.g. --param ms=200")
        if name in params:
            raise ValueError(f"--param {name} is given twice")
        params[name] = value
    return params


fault_app = typer.Typer(
    name="fault",
    help=(
        "Inject, list and clear faults on the running stack (through its control API, with its token). "
        "Every fault has a TTL and ends by itself. `testbed fault inject --help` lists every kind."
    ),
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the top-level app."""
    app.add_typer(fault_app, name="fault")


def _err() -> Console:
    return Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def _usage(message: str) -> typer.Exit:
    _err().print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    return typer.Exit(EXIT_USAGE)


def _client() -> ControlClient:
    try:
        stack = StackDescriptor.load(default_state_dir())
    except FileNotFoundError as exc:
        _err().print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_NO_STACK) from None
    try:
        return ControlClient(stack)
    except ControlApiError as exc:
        _err().print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_NO_STACK) from None


def _api_failure(exc: ControlApiError) -> typer.Exit:
    _err().print(f"[red]error:[/red] {exc}", highlight=False)
    return typer.Exit(EXIT_NO_STACK if exc.status == 0 else EXIT_FAILED)


def _inject_function(
    function: str, kind: str, param: list[str], ttl: float | None, replica: int | None, as_json: bool
) -> None:
    """A fault of a function (kill, down, smtp-latency: sample_shop/faultd/processes.py)."""
    if replica is not None:
        raise _usage(f"{function} is a function: it has instances, not replicas; drop --replica")
    try:
        raw = parse_params(param)
        params: dict[str, Any] = {k: int(v) if v.strip().isdigit() else v for k, v in raw.items()}
        body: dict[str, Any] = {"kind": kind, "params": params}
        if ttl is not None:
            body["ttl_s"] = ttl
        validate_function_fault(function, body)
    except ValueError as exc:
        raise _usage(f"invalid {kind} fault for {function}: {exc}") from None
    client = _client()
    with client:
        try:
            answer = client.inject(function, kind, params, ttl, None)
        except ControlApiError as exc:
            raise _api_failure(exc) from None
    if as_json:
        print(json.dumps(answer, indent=2))
        raise typer.Exit(EXIT_OK)
    ends = f", ends at {answer['expires_at']:.0f} (unix time)" if "expires_at" in answer else ""
    Console().print(f"{kind} on function {function}{ends}: {answer}", highlight=False)
    raise typer.Exit(EXIT_OK)


@fault_app.command(
    "inject",
    help=(
        "Inject fault KIND into every replica of SERVICE (or one with --replica). Services: "
        + ", ".join(SERVICE_NAMES)
        + f"; and the function {NOTIFICATIONS_FUNCTION} with kinds "
        + ", ".join(FUNCTION_FAULT_KINDS)
        + " (e.g. testbed fault inject notifications down --ttl 30; ... smtp-latency --param ms=2000)"
        + f". TTL: --ttl seconds ({TTL_RANGE_S[0]}..{TTL_RANGE_S[1]}, default {DEFAULT_TTL_S}); the fault "
        "ends by itself then. Process kinds (kill, pause, restart) act on the process instead.\n\n"
        "Examples: testbed fault inject payment latency --param ms=300 --param jitter_ms=50 --ttl 30; "
        "testbed fault inject orders outbound-error --param peer=payment --param status=503; "
        "testbed fault inject catalog kill --replica 1; testbed fault inject recommendations pause --ttl 5"
        "\n\nKinds and their parameters:\n\n" + describe_kinds()
    ),
    rich_help_panel=None,
)
def inject(
    service: str = typer.Argument(..., help="the service: " + ", ".join(SERVICE_NAMES)),
    kind: str = typer.Argument(..., help="the fault kind: " + ", ".join(KINDS)),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE, repeatable (see the kinds below)"),
    ttl: float | None = typer.Option(None, "--ttl", help="seconds until the fault ends by itself"),
    replica: int | None = typer.Option(None, "--replica", "-r", help="only this replica (0-based)"),
    as_json: bool = typer.Option(False, "--json", help="print the control API's answer as JSON"),
) -> None:
    if service == NOTIFICATIONS_FUNCTION:
        _inject_function(service, kind, param, ttl, replica, as_json)
        return
    if service not in SERVICE_NAMES:
        raise _usage(f"unknown service {service!r}; valid: {', '.join(SERVICE_NAMES)}")
    if kind not in KINDS:
        raise _usage(f"unknown fault kind {kind!r}; valid: {', '.join(KINDS)}")
    try:
        params = parse_params(param)
    except ValueError as exc:
        raise _usage(str(exc)) from None
    body: dict[str, Any] = {"kind": kind, "params": params}
    if ttl is not None:
        body["ttl_s"] = ttl
    if kind == "pause" and (ttl is None or not TTL_RANGE_S[0] <= ttl <= MAX_PAUSE_S):
        raise _usage(
            f"a pause needs --ttl: the seconds the process stays stopped, {TTL_RANGE_S[0]}..{MAX_PAUSE_S}"
        )
    try:
        spec = validate_fault_spec(body, service, allow_process=True)
    except FaultSpecError as exc:
        lines = [f"  {e.field}: {e.message}" for e in exc.errors]
        raise _usage(f"invalid {kind} fault for {service}:\n" + "\n".join(lines)) from None
    client = _client()
    with client:
        if replica is not None:
            count = len(client.stack.replicas_of(service))
            if count and not 0 <= replica < count:
                raise _usage(f"{service} has no replica {replica}; it runs replicas 0 to {count - 1}")
        try:
            answer = client.inject(service, kind, spec.params, ttl, replica)
        except ControlApiError as exc:
            raise _api_failure(exc) from None
    if as_json:
        print(json.dumps(answer, indent=2))
    out = Console(stderr=as_json)
    if kind in PROCESS_KINDS:
        replicas = ", ".join(f"{r['service']}-{r['replica']} ({r['state']})" for r in answer["replicas"])
        if not as_json:
            out.print(f"{kind}: {replicas}", highlight=False)
        raise typer.Exit(EXIT_OK)
    fault = answer["fault"]
    failed = [r for r in answer["replicas"] if not r["applied"]]
    if not as_json:
        where = f"replica {replica}" if replica is not None else f"{len(answer['replicas'])} replica(s)"
        out.print(
            f"injected {kind} into {service} ({where}): id {fault['id']}, params {fault['params']}, "
            f"ends at {fault['expires_at']} (in {fault['ttl_s']:g} s). "
            f"Remove it earlier: testbed fault clear {service}",
            highlight=False,
        )
        for r in failed:
            out.print(
                f"[yellow]not confirmed[/yellow] by {r['service']}-{r['replica']}: {r['error']}",
                highlight=False,
            )
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


@fault_app.command(
    "list", help="Show the active faults of every replica, pauses, pending faults and policies."
)
def list_faults(as_json: bool = typer.Option(False, "--json", help="print JSON for scripts")) -> None:
    with _client() as client:
        try:
            answer = client.faults()
        except ControlApiError as exc:
            raise _api_failure(exc) from None
    if as_json:
        print(json.dumps(answer, indent=2))
        raise typer.Exit(EXIT_OK)
    console = Console()
    if not answer["faults"] and not answer.get("pending"):
        console.print("no active fault")
    else:
        table = Table(title="active faults", title_justify="left")
        for column in ("service", "replica", "kind", "params", "ends in", "id", "source"):
            table.add_column(column)
        for f in answer["faults"]:
            remaining = f.get("remaining_s")
            table.add_row(
                f["service"],
                str(f["replica"]),
                f["kind"],
                json.dumps(f.get("params", {})),
                "-" if remaining is None else f"{remaining:.0f} s",
                f.get("id", "-"),
                f.get("source", "-"),
            )
        for f in answer.get("pending", []):
            table.add_row(
                f["service"],
                str(f["replica"]),
                f["kind"],
                json.dumps(f.get("params", {})),
                f"{f.get('remaining_s', 0):.0f} s",
                f["id"],
                "[yellow]pending[/yellow]",
            )
        console.print(table)
    for p in answer.get("policies", []):
        console.print(
            f"client policy of {p['service']}: {p.get('profile')} {p.get('overrides') or ''} "
            f"for {p['remaining_s']:.0f} s more",
            highlight=False,
        )
    for u in answer.get("unreachable", []):
        console.print(
            f"[yellow]{u['service']}-{u['replica']} did not answer[/yellow]: {u['error']}", highlight=False
        )


@fault_app.command("clear", help="Remove every fault (or those of SERVICE, or one --id) and end pauses now.")
def clear(
    service: str | None = typer.Argument(None, help="only this service's faults"),
    fault_id: str | None = typer.Option(None, "--id", help="only this fault (needs SERVICE)"),
    as_json: bool = typer.Option(False, "--json", help="print the control API's answer as JSON"),
) -> None:
    if service is not None and service not in (*SERVICE_NAMES, NOTIFICATIONS_FUNCTION):
        raise _usage(
            f"unknown service {service!r}; valid: {', '.join((*SERVICE_NAMES, NOTIFICATIONS_FUNCTION))}"
        )
    if fault_id is not None and service is None:
        raise _usage("--id needs the SERVICE too: testbed fault clear SERVICE --id ID")
    started = time.monotonic()
    with _client() as client:
        try:
            answer = client.clear(service, fault_id)
        except ControlApiError as exc:
            raise _api_failure(exc) from None
    if as_json:
        print(json.dumps(answer, indent=2))
    elif not answer["cleared"] and not answer["resumed"]:
        Console().print(
            f"nothing to clear{' on ' + service if service else ''}; replicas confirmed their empty set"
        )
    else:
        Console().print(
            f"cleared {len(answer['cleared'])} fault(s), resumed {len(answer['resumed'])} paused process(es) "
            f"in {time.monotonic() - started:.2f} s",
            highlight=False,
        )
    unconfirmed = answer.get("unconfirmed", [])
    for r in unconfirmed:
        _err().print(
            f"[yellow]not confirmed[/yellow] by {r['service']}-{r['replica']}: {r['error']} "
            "(its faults still end at their TTL)",
            highlight=False,
        )
    raise typer.Exit(EXIT_FAILED if unconfirmed else EXIT_OK)
