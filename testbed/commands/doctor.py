"""`testbed doctor`: are the system packages the testbed needs present (scripts/system-packages.txt)?"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from testbed import sysdeps

EXIT_OK, EXIT_MISSING = 0, 2


def doctor(as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout.")) -> None:
    """Check the system packages the testbed uses - Prometheus, Alertmanager, node_exporter, Chromium,
    Docker, debootstrap - against the minimum versions in scripts/system-packages.txt (the list `make
    setup` installs from). Exit 0 when all are present, 2 with install advice for each missing one."""
    try:
        statuses = sysdeps.probe()
    except sysdeps.PackagesFileError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_MISSING) from None
    missing = [s for s in statuses if not s.present]
    if as_json:
        print(json.dumps({"ok": not missing, "parts": [s.to_dict() for s in statuses]}, indent=2))
    else:
        console = Console()
        table = Table(title="system packages (scripts/system-packages.txt)", title_justify="left")
        for column in ("part", "needed", "found", "what for"):
            table.add_column(column)
        for s in statuses:
            found = f"[green]{s.version}[/green]" if s.present else f"[red]{s.problem}[/red]"
            table.add_row(s.name, f">= {s.minimum} ({s.apt_package})", found, s.purpose)
        console.print(table)
        for s in missing:
            console.print(f"[red]missing[/red] {s.name}: {s.advice}", highlight=False)
        if not missing:
            console.print("[green]all present[/green]")
    if missing:
        raise typer.Exit(EXIT_MISSING)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
