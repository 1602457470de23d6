"""One experiment end to end: lock, stack up and ready, `chaos run` under load with live progress, rollback
whatever happens, collect, judge, render. `run_experiment` is what `testbed experiment run` and the
benchmark call; everything before the run folder exists raises ExperimentError (exit 2)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from load.control import current_load
from load.profiles import LoadConfigError, resolve_params
from sample_shop.basics import utc_iso, write_json_atomic
from sample_shop.topology import StackDescriptor
from slo.confidence import read_confidence
from slo.evaluate import GateReport
from slo.gate import CannotJudge, check_run
from slo.prom import Prometheus
from slo.report import gate_message
from slo.spec import SpecError
from testbed.experiment import live
from testbed.experiment.catalog import PHASE_KEYS, Experiment, ExperimentFileError, resolve_experiment
from testbed.experiment.chaos import DEFAULT_HYPOTHESIS_FREQUENCY_S, ChaosProcess, chaos_binary, chaos_command
from testbed.experiment.collect import Collected, collect_run, relocate_load, telemetry_files
from testbed.experiment.errors import ExperimentError
from testbed.experiment.lock import ExperimentBusy, ExperimentLock
from testbed.experiment.orphans import process_identity, settle_all
from testbed.experiment.outcome import (
    EXIT_CANNOT_JUDGE,
    exit_code,
    hypothesis_summary,
    run_status,
    verdict_line,
)
from testbed.experiment.progress import ProgressView, QuietView
from testbed.experiment.safety import clear_everything
from testbed.experiment.schedule import PhasePlan, hard_timeout_s, plan_phases, position
from testbed.experiment.telemetry import snapshot
from testbed.experiment.validate import effective_problems
from testbed.runfolder import RunInfo, RunPaths, create_run, update_latest, write_run_info
from testbed.runtime import get_target
from testbed.runtime.base import InputError, RuntimeFailure, Target, UpOptions

SAMPLE_EVERY_S = 2.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")
READY_WAIT_S = 60.0
DEFAULT_UP_TIMEOUT_S = 90.0


@dataclass
class RunRequest:
    experiment: str
    target: str = "local"
    profile: str | None = None
    users: int | None = None
    overrides: dict[str, float | None] = field(default_factory=dict)  # phase -> seconds
    variables: dict[str, str] = field(default_factory=dict)  # other configuration entries
    until_confident: bool | None = None  # None: as the experiment's configuration says
    runs_dir: Path = Path("runs")
    state_dir: Path = Path(".testbed")
    hypothesis_frequency_s: float = DEFAULT_HYPOTHESIS_FREQUENCY_S
    up_timeout_s: float = DEFAULT_UP_TIMEOUT_S
    timeout_s: float | None = None  # the hard timeout of `chaos run`; None: schedule.hard_timeout_s
    render: bool = True


@dataclass
class RunOutcome:
    run: RunPaths
    info: RunInfo
    gate: GateReport | None
    exit_code: int


# --------------------------------------------------------------------------------------------------
# Before the run: what to run, with which values (pure)
# --------------------------------------------------------------------------------------------------


def chaos_configuration(
    exp: Experiment,
    plan: PhasePlan,
    request: RunRequest,
    *,
    state_dir: Path,
    load_out: Path,
) -> dict[str, Any]:
    """The configuration values handed to `chaos run` (a var file): the phase durations, the user's
    overrides from the request (--profile, --users, --var; only of entries the experiment declares: Chaos
    Toolkit ignores undeclared ones), the state folder and where the load writes its results."""
    profile, users, variables = request.profile, request.users, request.variables
    declared = exp.configuration
    conf: dict[str, Any] = dict(plan.config_values())
    keys = ", ".join(sorted(declared))
    for option, key, value in (("--profile", "profile", profile), ("--users", "users", users)):
        if value is None:
            continue
        if key not in declared:
            raise ExperimentError(
                "input",
                f"{option}: the experiment {exp.name} has no `{key}` configuration to override",
                hint=f"its configuration: {keys}",
            )
        conf[key] = value
    if request.until_confident is not None:
        if "until_confident" not in declared:
            raise ExperimentError(
                "input",
                f"--until-confident: the experiment {exp.name} has no `until_confident` configuration",
                hint="declare `until_confident: false` in its configuration (its `hold` actions then "
                "end their phase once the SLOs are decided)",
            )
        conf["until_confident"] = request.until_confident
    for key, value in variables.items():
        if key in PHASE_KEYS.values():
            phase = key.removesuffix("_s")
            raise ExperimentError("input", f"--var {key}: set phase durations with --{phase} instead")
        if key not in declared:
            raise ExperimentError(
                "input",
                f"--var {key}: the experiment {exp.name} declares no configuration `{key}`",
                hint=f"its configuration: {keys}",
            )
        conf[key] = value
    effective_profile = str(conf.get("profile", declared.get("profile", "steady")))
    try:
        resolve_params(
            effective_profile,
            conf.get("users", declared.get("users")),
            plan.total_s,
            mix=conf.get("mix", declared.get("mix")),
        )
    except LoadConfigError as exc:
        option = {"profile": "--profile", "users": "--users"}.get(exc.field, exc.field)
        raise ExperimentError("input", f"{option}: {exc.message}") from None
    if "state_dir" in declared:
        conf["state_dir"] = str(state_dir)
    if "load_out" in declared:
        conf["load_out"] = str(load_out)
    return conf


def resolve(request: RunRequest) -> tuple[Experiment, PhasePlan]:
    try:
        exp = resolve_experiment(request.experiment)
    except ExperimentFileError as exc:
        raise ExperimentError("input", str(exc)) from None
    if exp.target != request.target:
        raise ExperimentError(
            "input",
            f"the experiment {exp.name} is for the {exp.target} target, not {request.target}",
            hint=f"run it with --target {exp.target} (make experiment TARGET={exp.target})",
        )
    try:
        plan = plan_phases(exp.durations, request.overrides)
    except ValueError as exc:
        raise ExperimentError("input", str(exc)) from None
    # validates the overrides before anything starts
    conf = chaos_configuration(exp, plan, request, state_dir=request.state_dir, load_out=request.runs_dir)
    problems = effective_problems(exp.path, {**exp.configuration, **conf})
    if problems:
        raise ExperimentError("input", "invalid experiment with these values:\n  " + "\n  ".join(problems))
    return exp, plan


# --------------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------------


def _failure(failure: RuntimeFailure) -> ExperimentError:
    detail = f"last lines of {failure.log_path or 'its log'}:\n{failure.log_tail}" if failure.log_tail else ""
    return ExperimentError("stack", f"the stack could not start: {failure.message}", failure.hint, detail)


def ensure_stack(target: Target, exp: Experiment, up_timeout_s: float, view: ProgressView) -> StackDescriptor:
    """The running stack (checked healthy), or a new one with the replicas the experiment requires."""
    try:
        stack: StackDescriptor | None = target.descriptor()
    except RuntimeFailure:
        stack = None
    if stack is None:
        view.stage(f"starting the stack ({target.name})")
        replicas = {**UpOptions().replicas, **exp.required_replicas}
        try:
            return target.up(UpOptions(replicas=replicas, timeout_s=up_timeout_s), progress=view.startup)
        except RuntimeFailure as failure:
            raise _failure(failure) from None
        except InputError as exc:  # another `up` started a different stack meanwhile
            raise ExperimentError("stack", str(exc)) from None
    short = {s: n for s, n in exp.required_replicas.items() if len(stack.replicas_of(s)) < n}
    if short:
        need = ",".join(f"{s}={n}" for s, n in exp.required_replicas.items())
        raise ExperimentError(
            "stack",
            f"the experiment {exp.name} needs replicas {need}; the running stack has "
            + ", ".join(f"{s}={len(stack.replicas_of(s))}" for s in short),
            hint=f"`testbed down`, then run the experiment again: it starts the stack with {need} "
            f"(or `testbed down && testbed up --replicas {need}`)",
        )
    deadline = time.monotonic() + READY_WAIT_S
    while True:
        status = target.status()
        if status.healthy:
            return stack
        if time.monotonic() > deadline:
            bad = [
                f"{p.service}{'' if p.replica is None else f'-{p.replica}'}: {p.health}"
                for p in status.processes
                if not p.healthy
            ]
            raise ExperimentError(
                "stack",
                f"the stack is up but not healthy after {READY_WAIT_S:g} s: "
                + ("; ".join(bad) or status.message),
                hint="`testbed status` shows every process; `testbed down && testbed up` restarts it",
            )
        time.sleep(0.5)


def judge_run(run_dir: Path) -> tuple[GateReport | None, str, list[str]]:
    """The gate over the run folder; run.json, written first, says which SLOs the stack could measure.
    Returns the report (or None and why it cannot judge) and the notes for run.json, naming the SLOs left
    out and why."""
    try:
        gate, _ = check_run(run_dir)
    except (SpecError, CannotJudge) as exc:
        return None, str(exc), []
    notes = []
    if gate.not_judged:
        names = ", ".join(e["name"] for e in gate.not_judged)
        reasons = "; ".join(sorted({e["reason"] for e in gate.not_judged}))
        notes.append(f"SLOs not judged ({names}): {reasons}; see slo/summary.md")
    return gate, "", notes


# --------------------------------------------------------------------------------------------------
# Signals: Ctrl-C and SIGTERM become "interrupt the experiment", which rolls back
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _interrupts() -> Iterator[list[int]]:
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, _frame: Any) -> None:
        received.append(signum)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


@dataclass
class RunContext:
    """One experiment run as it goes, carried through the orchestration the way Locust's `Environment`
    carries a test run: what was asked, what runs, on which stack, in which run folder, and the timings
    gathered on the way. Created once the run folder exists; every later step reads and fills it."""

    request: RunRequest
    exp: Experiment
    plan: PhasePlan
    stack: StackDescriptor
    state_dir: Path
    view: ProgressView
    started_wall: float  # time.time() when `run_experiment` was called
    run: RunPaths
    info: RunInfo
    conf: dict[str, Any]  # the configuration handed to `chaos run`
    timing: dict[str, float] = field(default_factory=dict)  # seconds per stage, for run.json
    lock: ExperimentLock | None = None  # covers every process of the run (chaos joins it when started)


@dataclass
class ChaosResult:
    """What the `chaos run` stage leaves for collecting and judging."""

    chaos: ChaosProcess | None
    cleanup: dict[str, Any]  # what the rollback check cleared
    interrupted: bool
    timed_out: bool
    load_out: str | None  # where the load said it writes, seen while it ran
    run_start: float  # wall-clock window of the run, for collection
    run_end: float
    marks: dict[str, int]  # telemetry file offsets before the run


def run_experiment(request: RunRequest, view: ProgressView | None = None) -> RunOutcome:
    view = view or QuietView()
    started_wall = time.time()
    exp, plan = resolve(request)
    state_dir = request.state_dir.resolve()
    try:
        target = get_target(request.target, state_dir)
    except RuntimeFailure as failure:
        raise ExperimentError("stack", failure.message, failure.hint) from None
    lock = ExperimentLock(state_dir)
    try:
        lock.acquire(exp.name)
    except ExperimentBusy as exc:
        raise ExperimentError("busy", str(exc)) from None
    settle_all(request.runs_dir.resolve(), time.time())  # runs killed earlier say so, not `running`
    try:
        t_stack = time.monotonic()
        stack = ensure_stack(target, exp, request.up_timeout_s, view)
        stack_s = time.monotonic() - t_stack
        ctx = _start_run(request, exp, plan, stack, view, started_wall)
        ctx.lock = lock
        lock.set_run_dir(str(ctx.run.root))
        ctx.timing["stack_s"] = round(stack_s, 2)
        return _run(ctx)
    finally:
        lock.release()


_STACK_FIELDS = (
    "target",
    "gateway_url",
    "prometheus_url",
    "control_url",
    "grafana_url",
    "jaeger_url",
    "state_dir",
    "client_metrics_scraped",
)


def _start_run(
    request: RunRequest,
    exp: Experiment,
    plan: PhasePlan,
    stack: StackDescriptor,
    view: ProgressView,
    started_wall: float,
) -> RunContext:
    """The run folder with its first run.json, and the context that carries it through the run."""
    state_dir = request.state_dir.resolve()
    run = create_run(request.runs_dir.resolve(), exp.name, datetime.now(UTC))
    conf = chaos_configuration(exp, plan, request, state_dir=state_dir, load_out=run.load_dir)
    info = RunInfo(
        id=run.id,
        experiment=exp.name,
        title=exp.title,
        description=exp.description,
        experiment_file=str(exp.path),
        target=request.target,
        profile=str(conf.get("profile", exp.configuration.get("profile", ""))),
        config={**{k: v for k, v in exp.configuration.items() if not isinstance(v, dict)}, **conf},
        started=utc_iso(time.time()),
        stack={k: getattr(stack, k) for k in _STACK_FIELDS},
        processes={"orchestrator": process_identity(os.getpid())},
    )
    write_run_info(run, info)
    return RunContext(request, exp, plan, stack, state_dir, view, started_wall, run, info, conf)


def _run(ctx: RunContext) -> RunOutcome:
    try:
        result = _execute(ctx)
        return _finish(ctx, result)
    except BaseException as exc:  # our own error or a second Ctrl-C: the run folder says so
        info = ctx.info
        info.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
        info.exit_code = 130 if isinstance(exc, KeyboardInterrupt) else EXIT_CANNOT_JUDGE
        info.message = f"the orchestrator stopped: {exc!r}"
        info.ended = utc_iso(time.time())
        write_run_info(ctx.run, info)
        raise


def _execute(ctx: RunContext) -> ChaosResult:
    """`chaos run` under live progress, then the rollback check, whatever happened."""
    run, exp, plan, stack, view = ctx.run, ctx.exp, ctx.plan, ctx.stack, ctx.view
    write_json_atomic(run.chaos_vars, {"configuration": ctx.conf})
    marks = snapshot(telemetry_files(stack))
    env = {**os.environ, "TESTBED_STATE_DIR": str(ctx.state_dir)}
    if stack.kubernetes_context and "KUBERNETES_CONTEXT" not in env:
        env["KUBERNETES_CONTEXT"] = stack.kubernetes_context
    command = chaos_command(
        exp.path, run, hypothesis_frequency_s=ctx.request.hypothesis_frequency_s, chaos=chaos_binary()
    )
    view.stage(f"run folder {run.root}")
    view.stage(
        f"running {exp.name}: "
        + ", ".join(f"{name} {seconds:g}s" for name, seconds in plan.durations)
        + " (Ctrl-C stops it and rolls back)"
    )
    run_start = time.time() - 1.0
    chaos: ChaosProcess | None = None
    watch = _Watch()
    cleanup: dict[str, Any] = {}
    with _interrupts() as signals:  # Ctrl-C is ours until the cleanup is done
        try:
            chaos = ChaosProcess(command, run, env)
            if ctx.lock is not None:
                ctx.lock.add_member("chaos", chaos.pid)
            ctx.info.processes = {**ctx.info.processes, "chaos": process_identity(chaos.pid)}
            write_run_info(run, ctx.info)
            threading.Thread(target=_prewarm, name="prewarm", daemon=True).start()
            t_chaos = time.monotonic()
            _watch_chaos(ctx, chaos, signals, watch)
            ctx.timing["chaos_s"] = round(time.monotonic() - t_chaos, 2)
        finally:
            if chaos is not None and chaos.poll() is None:  # an error of our own: never leave chaos running
                chaos.stop()
            view.stage("rollback check: clearing every fault and stopping the load")
            cleanup = clear_everything(stack, ctx.state_dir)
            _strip_colours(run.chaos_log)
    run_end = time.time()
    view.close()
    return ChaosResult(
        chaos=chaos,
        cleanup=cleanup,
        interrupted=watch.interrupted,
        timed_out=watch.timed_out,
        load_out=watch.load_out,
        run_start=run_start,
        run_end=run_end,
        marks=marks,
    )


@dataclass
class _Watch:
    """What watching `chaos run` saw: filled in while it runs, so it survives an error in the loop."""

    interrupted: bool = False
    timed_out: bool = False
    load_out: str | None = None


def _watch_chaos(ctx: RunContext, chaos: ChaosProcess, signals: list[int], watch: _Watch) -> None:
    """Until `chaos run` exits: Ctrl-C and the hard timeout become interrupts (escalating on repeats),
    and every SAMPLE_EVERY_S the live progress is sampled and shown."""
    view, plan = ctx.view, ctx.plan
    timeout_s = ctx.request.timeout_s or hard_timeout_s(plan)
    deadline = time.monotonic() + timeout_s
    t_chaos = time.monotonic()
    t_wall = time.time()
    phase, phase_seen = None, None
    with Prometheus(ctx.stack.prometheus_url, timeout_s=2.0) as prom:
        while chaos.poll() is None:
            if signals and not watch.interrupted:
                watch.interrupted = True
                view.stage(
                    "interrupted: stopping the experiment, rolling back "
                    "(Ctrl-C again stops chaos at once; faults and load are then cleared here)"
                )
                chaos.interrupt()
            elif len(signals) == 2 and not chaos.terminated:
                view.stage("stopping chaos now")
                chaos.terminate()
            elif len(signals) >= 3 and not chaos.killed:
                chaos.kill()
            if time.monotonic() > deadline and not watch.timed_out:
                watch.timed_out = True
                view.stage(f"hard timeout ({timeout_s:.0f} s) reached: stopping, rolling back")
                chaos.interrupt()
            chaos.escalate()
            sample = live.sample(prom, ctx.exp.name)
            held = read_confidence(ctx.state_dir, ctx.exp.name, since=t_wall)
            if held is not None and held.get("phase") == sample.phase:
                sample = dataclasses.replace(sample, confidence=live.confidence_text(held))
            if sample.phase and sample.phase != phase:
                phase, phase_seen = sample.phase, time.time()
            handle = current_load(ctx.state_dir)
            if handle is not None:
                watch.load_out = handle.out_dir
            now = time.time()
            view.update(time.monotonic() - t_chaos, position(plan, phase, phase_seen, now), sample)
            _sleep_while_running(chaos, SAMPLE_EVERY_S)


def _prewarm() -> None:
    """Import what collection, judging and rendering need while the phases run (seconds of CPU that would
    otherwise follow the run)."""
    with contextlib.suppress(Exception):
        import slo.compare  # noqa: F401
        import testbed.report.plots  # noqa: F401


def _strip_colours(path: Path) -> None:
    """chaoslib colours its log lines even when not on a terminal; chaos.log is read as plain text."""
    with contextlib.suppress(OSError):
        text = path.read_text(errors="replace")
        path.write_text(ANSI.sub("", text))


def _sleep_while_running(chaos: ChaosProcess, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and chaos.poll() is None:
        time.sleep(0.1)


def _read_journal(run: RunPaths) -> dict[str, Any] | None:
    try:
        data = json.loads(run.journal_json.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _journal_load_out(journal: dict[str, Any] | None) -> str | None:
    for entry in (journal or {}).get("run") or []:
        output = entry.get("output") if isinstance(entry, dict) else None
        if isinstance(output, dict) and output.get("out_dir") and "pid" in output:
            return str(output["out_dir"])
    return None


def _finish(ctx: RunContext, result: ChaosResult) -> RunOutcome:
    """After `chaos run`: collect, judge, write run.json, render; the outcome and its exit code."""
    run, info, view, timing = ctx.run, ctx.info, ctx.view, ctx.timing
    journal = _read_journal(run)
    chaos = result.chaos
    chaos_exit = chaos.popen.returncode if chaos is not None else None
    status, why = run_status(journal, chaos_exit, interrupted=result.interrupted, timed_out=result.timed_out)
    moved = relocate_load(run, _journal_load_out(journal) or result.load_out)
    view.stage("collecting metrics, traces and logs")
    t = time.monotonic()
    collected: Collected = collect_run(
        run, ctx.stack, ctx.exp.name, ctx.plan, journal, result.run_start, result.run_end, result.marks
    )
    timing["collect_s"] = round(time.monotonic() - t, 2)
    if moved:
        collected.notes.append(moved)
    view.stage("judging the SLOs")
    t = time.monotonic()
    gate, gate_error, notes = judge_run(run.root)
    collected.notes += notes
    timing["judge_s"] = round(time.monotonic() - t, 2)
    if collected.errors and status in ("completed", "deviated"):
        status, why = "error", "; ".join(collected.errors)
    code = exit_code(status, gate.exit_code if gate else None)
    info.ended = utc_iso(result.run_end)
    info.status = status
    info.verdict = gate.status if gate else None
    info.exit_code = code
    info.message = verdict_line(
        status, why, gate.status if gate else None, gate_message(gate) if gate else gate_error
    )
    info.hypothesis = hypothesis_summary(journal)
    info.chaos = {
        "exit_code": chaos_exit,
        "journal_status": (journal or {}).get("status"),
        "deviated": (journal or {}).get("deviated"),
        "why": why,
        "command": chaos.command if chaos else [],
    }
    if gate_error:
        info.chaos["gate_error"] = gate_error
    info.cleanup = result.cleanup
    info.collection = collected.to_dict()
    write_run_info(run, info)
    if ctx.request.render:
        _render(ctx)
    update_latest(run.root.parent, run)
    wall = time.time() - ctx.started_wall
    # the phases as they ran (a phase held until confident ends before its planned maximum)
    held = sum(p.end - p.start for p in collected.phases) if collected.phases else ctx.plan.total_s
    info.timing = {
        **timing,
        "wall_s": round(wall, 2),
        "phases_s": round(held, 2),
        "planned_phases_s": ctx.plan.total_s,
        "overhead_s": round(wall - held, 2),
    }
    write_run_info(run, info)
    return RunOutcome(run, info, gate, code)


def _render(ctx: RunContext) -> None:
    """report.html; the verdict stands if it fails, and run.json says so loudly."""
    ctx.view.stage("rendering report.html")
    t = time.monotonic()
    try:
        from testbed.report.render import render_report

        render_report(ctx.run)
    except Exception as exc:
        ctx.info.collection.setdefault("errors", []).append(f"report.html not rendered: {exc!r}")
    ctx.timing["render_s"] = round(time.monotonic() - t, 2)
