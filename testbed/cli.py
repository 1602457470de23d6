"""The `testbed` command line. Each area registers its own commands from `testbed/commands/<area>.py`
through a `register(app)` function, so this file only composes them."""

from __future__ import annotations

import typer

from testbed.commands import doctor, experiment, fault, load, runtime, slo

app = typer.Typer(
    name="testbed",
    help=(
        "An observability and chaos testbed around a sample shop.\n\n"
        "Typical use: `testbed experiment run payment-errors` (brings the stack up if needed), "
        "then open runs/latest/report.html. `testbed COMMAND --help` explains each command."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for area in (runtime, load, fault, slo, experiment, doctor):
    area.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
