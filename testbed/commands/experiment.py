"""`testbed experiment run|list` and `testbed report RUN_DIR`: one experiment from fault to verdict and
report, the catalog, and re-rendering a run's report from its folder alone.

Exit status of `experiment run`: the SLO gate's - 0 every objective met, 1 an objective breached, 2 cannot
judge (bad input, another experiment running, the stack failed to start, the experiment did not run as
planned, no data); 130 interrupted with Ctrl-C (after the rollback)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from load.profiles import LoadConfigError, parse_duration
from sample_shop.topology import default_state_dir
from testbed.experiment.catalog import EXPERIMENTS_DIR, TARGETS, Experiment, list_experiments
from testbed.experiment.chaos import DEFAULT_HYPOTHESIS_FREQUENCY_S
from testbed.experiment.errors import ExperimentError
from testbed.experiment.outcome import EXIT_CANNOT_JUDGE
from testbed.runfolder import RunFolderError, default_runs_dir, resolve_run

if TYPE_CHECKING:  # the runner pulls in pandas and scipy: imported when a run starts, so --help is quick
    from testbed.experiment.runner import RunOutcome

experiment_app = typer.Typer(
    name="experiment",
    help=(
        "Chaos experiments under load, from fault to verdict and report. `testbed experiment list` shows "
        "the catalog (experiments/*.yaml); `testbed experiment run NAME` runs one end to end."
    ),
    no_args_is_help=True,
)


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160)


def _seconds(option: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value, option)
    except LoadConfigError as exc:
        raise ExperimentError("input", str(exc)) from None


def _variables(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ExperimentError("input", f"--var {pair!r}: expected KEY=VALUE, e.g. --var latency_ms=1500")
        out[key.strip()] = value.strip()
    return out


def _catalog_names() -> str:
    return ", ".join(e.path.stem for e in list_experiments() if isinstance(e, Experiment))


def _fail(error: ExperimentError, as_json: bool) -> typer.Exit:
    if as_json:
        print(json.dumps(error.to_dict(), indent=2))
    else:
        console = _console(stderr=True)
        label = "refused" if error.kind == "busy" else "error"
        console.print(f"[red]{label}:[/red] ", end="")
        console.print(error.message, highlight=False, markup=False, soft_wrap=True)
        if error.hint:
            console.print(f"  how to fix: {error.hint}", highlight=False, markup=False, soft_wrap=True)
        if error.detail:
            for line in error.detail.splitlines():
                console.print(f"    {line}", highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(EXIT_CANNOT_JUDGE)


def summary_json(outcome: RunOutcome) -> dict[str, Any]:
    """The machine-readable summary of `run --json`."""
    info = outcome.info
    slos = []
    for s in outcome.gate.slos if outcome.gate else []:
        slos.append(
            {
                "name": s.name,
                "status": s.status,
                "critical": s.critical,
                "phases": {
                    w.window: {"sli": w.sli, "events": w.total, "budget": w.budget_consumed}
                    for w in s.windows
                },
                "budget_consumed": s.overall.budget_consumed if s.overall else None,
                "time_to_detect_s": s.time_to_detect_s,
                "time_to_recover_s": s.time_to_recover_s,
            }
        )
    return {
        "status": info.status,
        "verdict": info.verdict,
        "exit_code": outcome.exit_code,
        "message": info.message,
        "experiment": info.experiment,
        "run_dir": str(outcome.run.root),
        "report": str(outcome.run.report_html),
        "phases": json.loads(outcome.run.phases_json.read_text())
        if outcome.run.phases_json.is_file()
        else [],
        "hypothesis": info.hypothesis,
        "slos": slos,
        "timing": info.timing,
        "cleanup": info.cleanup,
        "collection": info.collection,
    }


def print_outcome(outcome: RunOutcome, console: Console) -> None:
    from slo.report import print_table

    info = outcome.info
    if outcome.gate is not None:
        print_table(outcome.gate, console)
    h = info.hypothesis
    if h:
        during = f"{h.get('during_deviations', 0)} of {h.get('during_checks', 0)} checks deviated"
        failing = ", ".join(h.get("failing_probes") or {})
        console.print(
            f"hypothesis: before {'held' if h.get('before') else 'did NOT hold'}; during: {during}"
            + (f" ({failing})" if failing else "")
            + f"; after {'held' if h.get('after') else 'did not hold' if h.get('after') is False else '-'}",
            highlight=False,
        )
    if outcome.gate is None or info.status not in ("completed", "deviated"):
        # the gate table ends with the verdict; a run that did not go as planned says why here
        console.print(f"[bold yellow]{info.message}[/]", highlight=False)
    console.print(
        f"run: {outcome.run.root}  (status {info.status}, exit {outcome.exit_code})", highlight=False
    )
    if outcome.run.report_html.is_file():
        console.print(f"report: {outcome.run.report_html}", highlight=False)


@experiment_app.command("run")
def run_cmd(
    experiment: str | None = typer.Argument(
        None, help="A name from the catalog (`testbed experiment list`) or a path to an experiment file."
    ),
    profile: str | None = typer.Option(
        None,
        "--profile",
        help="Load profile (steady, ramp, spike, step, soak, diurnal); default: the experiment's.",
    ),
    target: str = typer.Option("local", "--target", help=f"Where the stack runs: {', '.join(TARGETS)}."),
    users: int | None = typer.Option(None, "--users", help="Simulated shoppers (default: the experiment's)."),
    warmup: str | None = typer.Option(
        None, "--warmup", help="Warm-up duration, e.g. 15s (default: the experiment's)."
    ),
    baseline: str | None = typer.Option(None, "--baseline", help="Baseline phase duration, e.g. 30s."),
    fault: str | None = typer.Option(None, "--fault", help="Fault phase duration, e.g. 60s."),
    recovery: str | None = typer.Option(None, "--recovery", help="Recovery phase duration, e.g. 30s."),
    until_confident: bool = typer.Option(
        False,
        "--until-confident",
        help="End the baseline, fault and recovery phases as soon as every SLO is decided (met or "
        "breached at the stated confidence, docs/slo.md); their durations become maximums.",
    ),
    max_baseline: str | None = typer.Option(
        None, "--max-baseline", help="With --until-confident: the longest the baseline may last, e.g. 2m."
    ),
    max_fault: str | None = typer.Option(
        None, "--max-fault", help="With --until-confident: the longest the fault phase may last, e.g. 5m."
    ),
    max_recovery: str | None = typer.Option(
        None, "--max-recovery", help="With --until-confident: the longest the recovery may last, e.g. 2m."
    ),
    var: list[str] = typer.Option(
        [],
        "--var",
        help="Another configuration value of the experiment, KEY=VALUE (repeatable), e.g. latency_ms=1500.",
    ),
    hypothesis_frequency: float = typer.Option(
        DEFAULT_HYPOTHESIS_FREQUENCY_S,
        "--hypothesis-frequency",
        min=0.5,
        max=60,
        help="Seconds between checks of the steady-state hypothesis while the method runs.",
    ),
    timeout: str | None = typer.Option(
        None,
        "--timeout",
        help="Hard timeout of the experiment, e.g. 5m: then it is interrupted and rolled back (exit 2). "
        "Default: the phases + 2 minutes + 25 %.",
    ),
    runs_dir: Path | None = typer.Option(
        None, "--runs-dir", help="Where run folders go (default: TESTBED_RUNS_DIR, else ./runs)."
    ),
    as_json: bool = typer.Option(False, "--json", help="No progress; print a JSON summary on stdout."),
) -> None:
    """Run one experiment end to end and judge it.

    Brings the stack up if needed, then runs `chaos run` (rollbacks always, steady-state hypothesis checked
    continuously) under load through the phases warm-up, baseline, fault and recovery, showing the phase, the
    time left and the live error rate and SLI. Whatever happens (an error, Ctrl-C, the hard timeout) the
    faults are rolled back and the load stopped. Then it collects metrics, traces, logs and the journal
    into runs/<UTC time>-<experiment>/, judges the SLOs and writes report.html (runs/latest points at it).

    Exit status: 0 every SLO met, 1 an SLO breached, 2 cannot judge (bad input, another experiment running,
    the stack failed to start, the experiment did not run as planned, no data), 130 interrupted.

    With --until-confident (or `until_confident: true` in the experiment, as the default experiment
    has), the judged phases end once the SLO verdicts are decided, each within its duration.

    Examples: testbed experiment run payment-errors;
    testbed experiment run payment-errors --baseline 30s --fault 60s --users 20 --json;
    testbed experiment run db-slow --until-confident --max-fault 5m
    """
    from testbed.experiment.progress import make_view
    from testbed.experiment.runner import RunRequest, resolve, run_experiment

    try:
        if experiment is None:
            raise ExperimentError(
                "input",
                "which experiment? give a name from the catalog or a path",
                hint=f"the catalog: {_catalog_names()}",
            )
        if target not in TARGETS:
            raise ExperimentError("input", f"--target {target!r}: choose one of {', '.join(TARGETS)}")
        maxima = {"baseline": max_baseline, "fault": max_fault, "recovery": max_recovery}
        for phase, value in maxima.items():
            if value is not None and not until_confident:
                raise ExperimentError(
                    "input",
                    f"--max-{phase} needs --until-confident",
                    hint=f"for a fixed length use --{phase} {value}",
                )
            if value is not None and {"baseline": baseline, "fault": fault, "recovery": recovery}[phase]:
                raise ExperimentError("input", f"give --{phase} or --max-{phase}, not both")
        request = RunRequest(
            experiment=experiment,
            target=target,
            profile=profile,
            users=users,
            overrides={
                "warmup": _seconds("--warmup", warmup),
                "baseline": _seconds("--baseline", baseline) or _seconds("--max-baseline", max_baseline),
                "fault": _seconds("--fault", fault) or _seconds("--max-fault", max_fault),
                "recovery": _seconds("--recovery", recovery) or _seconds("--max-recovery", max_recovery),
            },
            until_confident=until_confident or None,
            variables=_variables(var),
            runs_dir=runs_dir or default_runs_dir(),
            state_dir=default_state_dir(),
            hypothesis_frequency_s=hypothesis_frequency,
            timeout_s=_seconds("--timeout", timeout),
        )
        exp, plan = resolve(request)
        view = make_view(as_json, exp.name, plan.total_s)
        try:
            outcome = run_experiment(request, view)
        finally:
            view.close()
    except ExperimentError as error:
        raise _fail(error, as_json) from None
    except KeyboardInterrupt:
        _console(stderr=True).print("interrupted (before the experiment ran, or while collecting)")
        raise typer.Exit(130) from None
    if as_json:
        print(json.dumps(summary_json(outcome), indent=2, default=str))
    else:
        print_outcome(outcome, _console())
    raise typer.Exit(outcome.exit_code)


@experiment_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print the catalog as JSON.")) -> None:
    """The experiment catalog (experiments/*.yaml): name, target, phases, title; files that cannot
    run say why."""
    entries = list_experiments()
    if as_json:
        rows = [
            {
                "name": e.path.stem,
                "id": e.name,
                "target": e.target,
                "title": e.title,
                "file": str(e.path),
                "phases_s": e.durations,
                "total_s": e.total_s,
                "requires_replicas": e.required_replicas,
            }
            if isinstance(e, Experiment)
            else {"error": str(e)}
            for e in entries
        ]
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"experiments in {EXPERIMENTS_DIR}", title_justify="left")
    for column in ("name", "target", "phases (warm-up/baseline/fault/recovery)", "title"):
        table.add_column(column)
    errors = []
    for e in entries:
        if isinstance(e, Experiment):
            phases = "/".join(f"{e.durations[p]:g}" for p in e.durations) + f" s = {e.total_s:g} s"
            table.add_row(e.path.stem, e.target, phases, e.title)
        else:
            errors.append(str(e))
    console = _console()
    console.print(table)
    for error in errors:
        console.print(f"[red]cannot run:[/red] {error}", highlight=False)
    console.print("run one: testbed experiment run NAME  (make experiment EXP=NAME)", highlight=False)


def _fmt_plan_cell(events: float, seconds: float | None) -> str:
    import math

    if not math.isfinite(events):
        return "never"
    if seconds is None:
        return f"{events:,.0f} ev"
    return f"{events:,.0f} ev / {seconds:,.0f} s"


def print_plan(exp: Experiment, source: str, plans: list[Any], console: Console) -> None:
    table = Table(
        "SLO", "phase", "length", "events/s", "events in phase", "met (clean)", "met (burn low)",
        "breached (burn high)", "decides?", box=None, title=f"{exp.name}: events to a decision",
    )  # fmt: skip
    for p in plans:
        label = p.display_name + (" [critical]" if p.critical else "")
        for ph in p.phases:
            rate = "-" if ph.events_per_s is None else f"{ph.events_per_s:.2f}"
            in_phase = "-" if ph.events_in_phase is None else f"{ph.events_in_phase:,.0f}"
            cells = [_fmt_plan_cell(o.events, o.seconds) for o in ph.outlooks]
            need = ph.length_needed_s
            verdict = "yes" if ph.decides_in_time else ("no: needs ~" + f"{need:,.0f} s" if need else "no")
            table.add_row(label, ph.phase, f"{ph.length_s:.0f} s", rate, in_phase, *cells, verdict)
            label = ""
    console.print(table)
    zone = plans[0].rule["zone"] if plans else [0.5, 2]
    console.print(
        f"rates from {source}. Average events (and seconds at the rate) to a verdict at alpha/beta "
        f"{plans[0].rule['alpha'] if plans else 0.05:g}/{plans[0].rule['beta'] if plans else 0.05:g}: "
        f"clean = no bad event, burn low = {zone[0]:g} x budget (must be met), burn high = {zone[1]:g} x "
        "budget (must be breached). docs/slo.md explains the rule.",
        highlight=False,
        soft_wrap=True,
    )


@experiment_app.command("plan")
def plan_cmd(
    experiment: str | None = typer.Argument(None, help="A catalog name (testbed experiment list) or a path."),
    measure: str | None = typer.Option(
        None,
        "--measure",
        help="Run the experiment's load (no fault) against the running stack for this long, e.g. 20s, "
        "and plan at the rates it gives.",
    ),
    from_run: Path | None = typer.Option(
        None,
        "--from-run",
        help="Plan at the event rates of a run folder (default: runs/latest if it exists).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """How long each phase must be for the SLO gate to decide, before anything is injected.

    Per SLO and judged phase: the events per second the experiment's load gives it, and the average
    number of events (and seconds) the sequential rule needs to say met for a clean shop, met at the
    zone's low burn rate, and breached at its high burn rate. A phase marked "no" would likely end
    inconclusive (exit 2): lengthen it (--fault/--baseline of `experiment run`) or raise the load.

    Examples: testbed experiment plan payment-errors;  testbed experiment plan payment-errors --measure 20s
    """
    from slo.plan import plan_json
    from testbed.experiment.catalog import ExperimentFileError, resolve_experiment
    from testbed.experiment.planning import experiment_slos, plans, rates_by_measuring, rates_from_run

    try:
        if experiment is None:
            raise ExperimentError(
                "input", "which experiment? give a name from the catalog or a path",
                hint=f"the catalog: {_catalog_names()}",
            )  # fmt: skip
        if measure is not None and from_run is not None:
            raise ExperimentError("input", "give either --measure or --from-run, not both")
        try:
            exp = resolve_experiment(experiment)
        except ExperimentFileError as exc:
            raise ExperimentError("input", str(exc)) from None
        slos = experiment_slos()
        if measure is not None:
            from sample_shop import topology
            from slo.prom import default_prometheus_url

            seconds = _seconds("--measure", measure) or 0.0
            if seconds < 10:
                raise ExperimentError(
                    "input", f"--measure {measure}: at least 10s (the first 5 s are ramp-up)"
                )
            try:
                url = topology.StackDescriptor.load().prometheus_url
            except (FileNotFoundError, ValueError, KeyError, TypeError):
                url = default_prometheus_url()
            progress = (
                (lambda _m: None) if as_json else (lambda m: _console(stderr=True).print(m, highlight=False))
            )
            rates = rates_by_measuring(exp, seconds, slos, url, default_state_dir(), progress)
        else:
            run = from_run or default_runs_dir() / "latest"
            if from_run is None and not run.exists():
                raise ExperimentError(
                    "input", f"no run to take event rates from ({run} does not exist)",
                    hint="run the experiment once (testbed experiment run NAME), or measure: --measure 20s "
                    "with the stack up (testbed up)",
                )  # fmt: skip
            try:
                paths = resolve_run(run)
            except RunFolderError as exc:
                raise ExperimentError("input", str(exc)) from None
            rates = rates_from_run(paths.root, slos)
        result = plans(exp, slos, rates)
    except ExperimentError as error:
        raise _fail(error, as_json) from None
    if as_json:
        print(
            json.dumps(
                {"experiment": exp.name, "rates_from": rates.source, "slos": plan_json(result)}, indent=2
            )
        )
    else:
        print_plan(exp, rates.source, result, _console())


@experiment_app.command("list-runs")
def list_runs_cmd(
    runs_dir: Path | None = typer.Option(
        None, "--runs-dir", help="Where the run folders are (default: runs/, or $TESTBED_RUNS_DIR)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the runs as JSON."),
) -> None:
    """The run folders, oldest first: id, status, verdict, exit code. A run whose processes are all gone
    while its run.json still says `running` is marked `died` (it was killed without finishing)."""
    import time

    from testbed.experiment.orphans import settle_all
    from testbed.runfolder import list_runs, read_run_info

    folder = runs_dir or default_runs_dir()
    settle_all(folder, time.time())
    rows: list[dict[str, Any]] = []
    for run in list_runs(folder):
        try:
            info = read_run_info(run)
        except RunFolderError as exc:
            rows.append({"id": run.id, "status": "unreadable", "message": str(exc)})
            continue
        rows.append(
            {
                "id": info.id,
                "experiment": info.experiment,
                "started": info.started,
                "status": info.status,
                "verdict": info.verdict,
                "exit_code": info.exit_code,
                "message": info.message,
            }
        )
    if as_json:
        print(json.dumps({"runs_dir": str(folder), "runs": rows}, indent=2))
        return
    table = Table("run", "status", "verdict", "exit", box=None)
    for row in rows:
        table.add_row(
            row["id"], row["status"], str(row.get("verdict") or "-"), str(row.get("exit_code", "-"))
        )
    _console().print(table)


def report_cmd(
    run_dir: Path = typer.Argument(..., help="A run folder: runs/<id> or runs/latest."),
    as_json: bool = typer.Option(False, "--json", help="Print {report, run} as JSON."),
) -> None:
    """Re-render report.html of a run from its folder alone (no Prometheus, no stack needed)."""
    import time

    from testbed.experiment.orphans import settle
    from testbed.report.render import render_report

    try:
        run = resolve_run(run_dir)
        settle(run, time.time())  # a run that died says so in its report
        path = render_report(run)
    except RunFolderError as exc:
        raise _fail(ExperimentError("input", str(exc)), as_json) from None
    if as_json:
        print(json.dumps({"report": str(path), "run": str(run.root)}))
    else:
        _console().print(f"report: {path}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the top-level app."""
    app.add_typer(experiment_app, name="experiment")
    app.command("report")(report_cmd)
