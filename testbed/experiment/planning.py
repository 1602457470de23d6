"""`testbed experiment plan`: the event rates an experiment's load gives each SLO, measured before anything
is injected, turned into the phase lengths the gate's sequential rule needs (slo/plan.py does the
arithmetic). Two ways to get the rates:

- from a run folder (`--from-run runs/latest`, the default when one exists): each phase's observed rate;
- by measurement (`--measure 20s`): the experiment's own load (profile, users, mix, think time) against
  the running local stack for that long, no fault, read back from its Prometheus. Every phase is then
  planned at that healthy rate.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from load.control import LoadError, start_load, stop_load
from load.profiles import LoadConfigError
from sample_shop import topology
from slo.gate import CannotJudge, measurable, run_windows
from slo.maths import window_count
from slo.plan import SloPlan, plan_slo
from slo.prom import Prometheus, PrometheusError
from slo.sequential import RuleError
from slo.sources import DEFAULT_JUDGED_PHASES, PrometheusSource, RunFolderSource, Source, SourceError, Window
from slo.spec import SLO, SpecError, load_slos
from testbed.experiment.catalog import Experiment
from testbed.experiment.errors import ExperimentError

MEASURE_RAMP_S = 5.0  # the first seconds of a measurement are the users spawning: not counted


@dataclass(frozen=True)
class Rates:
    """Events per second per SLO name and phase, and where they come from (for the printout)."""

    source: str
    per_slo: dict[str, dict[str, float | None]]


def _rates_over(
    source: Source, slos: Sequence[SLO], windows: Sequence[Window]
) -> dict[str, dict[str, float | None]]:
    source.prepare(slos)
    out: dict[str, dict[str, float | None]] = {}
    for slo in slos:
        ev = source.events(slo)
        out[slo.name] = {
            w.name: (window_count(ev.grid, ev.total, w.start, w.end) / w.seconds if w.seconds > 0 else None)
            for w in windows
        }
    return out


def rates_from_run(run_dir: Path, slos: Sequence[SLO]) -> Rates:
    """Each phase's event rate in a recorded run."""
    try:
        windows = run_windows(run_dir)
        return Rates(f"run folder {run_dir}", _rates_over(RunFolderSource(run_dir), slos, windows))
    except (CannotJudge, SourceError) as exc:
        raise ExperimentError("input", f"--from-run {run_dir}: {exc}") from None


def rates_by_measuring(
    exp: Experiment,
    seconds: float,
    slos: Sequence[SLO],
    prometheus_url: str,
    state_dir: Path,
    progress: Callable[[str], None],
) -> Rates:
    """Run the experiment's load (no fault) for `seconds` against the running stack and read the rates of
    the last `seconds - ramp` from its Prometheus."""
    conf = exp.configuration
    out_dir = Path(tempfile.mkdtemp(prefix="plan-load-", dir=state_dir if state_dir.is_dir() else None))
    try:
        handle = start_load(
            str(conf.get("profile") or "steady"),
            out_dir=out_dir,
            users=conf.get("users"),
            duration=f"{seconds + 30:.0f}s",  # ends by itself even if this process dies
            spawn_rate=conf.get("spawn_rate"),
            think_time_factor=conf.get("think_time_factor"),
            mix=conf.get("mix"),
            state_dir=state_dir,
            workers=conf.get("load_workers"),
        )
    except LoadConfigError as exc:
        raise ExperimentError("input", f"{exp.path}: the experiment's load: {exc}") from None
    except LoadError as exc:
        raise ExperimentError(
            "stack", f"cannot start the measuring load: {exc}", hint="start the stack first: testbed up"
        ) from None
    try:
        progress(f"measuring {exp.name}'s load for {seconds:.0f} s (no fault) ...")
        start = time.time() + MEASURE_RAMP_S
        time.sleep(seconds)
        end = time.time()
    finally:
        stop_load(handle, state_dir=state_dir)
    time.sleep(topology.SCRAPE_INTERVAL_S * 2)  # the last scrape lands in Prometheus
    window = Window("measured", start, end)
    try:
        with Prometheus(prometheus_url, timeout_s=15.0) as prom:
            prom.check()
            measured = _rates_over(PrometheusSource(prom, window), slos, [window])
    except (PrometheusError, SourceError) as exc:
        raise ExperimentError("stack", f"cannot read the measurement from {prometheus_url}: {exc}") from None
    per_slo = {
        name: {phase: by_window["measured"] for phase in exp.durations}
        for name, by_window in measured.items()
    }
    return Rates(f"a {seconds:.0f} s measurement of the experiment's load (no fault)", per_slo)


def experiment_slos(client_metrics_scraped: bool = True) -> list[SLO]:
    try:
        slos = load_slos(None)
    except SpecError as exc:
        raise ExperimentError("input", str(exc)) from None
    chosen, _ = measurable(slos, client_metrics_scraped=client_metrics_scraped, where="this stack")
    return chosen


def plans(exp: Experiment, slos: Sequence[SLO], rates: Rates) -> list[SloPlan]:
    """Every SLO's plan over the judged phases the experiment has."""
    phases = [p for p in DEFAULT_JUDGED_PHASES if p in exp.durations]
    out = []
    for slo in slos:
        try:
            rule = slo.rule.rule(slo.target)
        except RuleError as exc:
            raise ExperimentError("input", f"{slo.file}: {slo.name}: {exc}") from None
        out.append(
            plan_slo(
                slo.name,
                slo.display_name,
                slo.critical,
                rule,
                exp.durations,
                rates.per_slo.get(slo.name, {}),
                phases,
            )
        )
    return out
