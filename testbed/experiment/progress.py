"""How a running experiment shows itself: a live panel on a terminal (rich), one line per phase change and
every few seconds otherwise (CI logs), nothing with --json. All on stderr: stdout carries the result."""

from __future__ import annotations

import sys
import time
from typing import Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.text import Text

from testbed.experiment.live import LiveSample, format_line, metrics_text, phase_text
from testbed.experiment.schedule import Position
from testbed.runtime.base import StartupProgress

PLAIN_EVERY_S = 10.0


class ProgressView(Protocol):
    def stage(self, message: str) -> None:
        """A step of the run (starting the stack, collecting, ...)."""

    def startup(self, progress: StartupProgress) -> None:
        """The stack is coming up."""

    def update(self, elapsed_s: float, pos: Position, sample: LiveSample) -> None:
        """Live numbers while the phases run."""

    def close(self) -> None: ...


class QuietView:
    def stage(self, message: str) -> None:
        pass

    def startup(self, progress: StartupProgress) -> None:
        pass

    def update(self, elapsed_s: float, pos: Position, sample: LiveSample) -> None:
        pass

    def close(self) -> None:
        pass


class LineView:
    """Plain lines: each stage, each phase change, and the live numbers every PLAIN_EVERY_S."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.last_phase: str | None = None
        self.last_print = 0.0
        self.last_ready = -1

    def stage(self, message: str) -> None:
        self.console.print(message, highlight=False, markup=False)

    def startup(self, progress: StartupProgress) -> None:
        total = len(progress.ready) + len(progress.waiting)
        if total and len(progress.ready) != self.last_ready:
            self.last_ready = len(progress.ready)
            self.console.print(f"  stack: {len(progress.ready)}/{total} ready", highlight=False)

    def update(self, elapsed_s: float, pos: Position, sample: LiveSample) -> None:
        now = time.monotonic()
        if pos.phase != self.last_phase or now - self.last_print >= PLAIN_EVERY_S:
            self.console.print(format_line(elapsed_s, pos, sample), highlight=False, markup=False)
            self.last_phase = pos.phase
            self.last_print = now

    def close(self) -> None:
        pass


class TerminalView:
    """A live panel: the experiment, a bar over the planned phases, the phase and its time left, the
    current SLI and error rate; stages print above it."""

    def __init__(self, console: Console, experiment: str, planned_s: float) -> None:
        self.console = console
        self.experiment = experiment
        self.planned_s = planned_s
        self.live = Live(console=console, refresh_per_second=4, transient=True)
        self.started = False
        self.status = Text("starting")

    def _start(self) -> None:
        if not self.started:
            self.live.start()
            self.started = True

    def stage(self, message: str) -> None:
        self.console.print(message, highlight=False, markup=False)

    def startup(self, progress: StartupProgress) -> None:
        self._start()
        total = len(progress.ready) + len(progress.waiting)
        waiting = ", ".join(progress.waiting[:3]) + (" ..." if len(progress.waiting) > 3 else "")
        self.live.update(Text(f"starting the stack: {len(progress.ready)}/{total} ready  {waiting}"))

    def update(self, elapsed_s: float, pos: Position, sample: LiveSample) -> None:
        self._start()
        done = self.planned_s - pos.run_left_s if pos.run_left_s is not None else 0.0
        bar = ProgressBar(total=max(self.planned_s, 1.0), completed=max(0.0, done), width=50)
        head = Text.assemble(
            (f"{self.experiment}  ", "bold"),
            (phase_text(pos), "red bold" if pos.phase == "fault" else "cyan"),
            f"   elapsed {int(elapsed_s) // 60}:{int(elapsed_s) % 60:02d}",
        )
        self.live.update(Group(head, bar, Text(metrics_text(sample))))

    def close(self) -> None:
        if self.started:
            self.live.stop()
            self.started = False


def make_view(quiet: bool, experiment: str, planned_s: float) -> ProgressView:
    if quiet:
        return QuietView()
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    if console.is_terminal:
        return TerminalView(console, experiment, planned_s)
    return LineView(console)
