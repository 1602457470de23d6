"""`testbed slo ...`: the SLO gate (`check`), rule generation (`rules`), SLO file validation (`validate`)
and statistical comparison (`compare`). Exit status of check: 0 all met, 1 any breached, 2 cannot judge."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from sample_shop import topology
from sample_shop.basics import parse_duration
from slo.compare import DEFAULT_SLICE_S, ComparisonReport, compare
from slo.evaluate import DEFAULT_RECOVERY_WINDOW_S, EXIT_CANNOT_JUDGE, GateReport, RuleOverride
from slo.gate import CannotJudge, check_live, check_run, run_windows
from slo.prom import Prometheus, PrometheusError, default_prometheus_url
from slo.report import gate_message, print_table, write_reports
from slo.rules import PromtoolError, check_rules, write_prometheus_rules
from slo.runfolder import JUNIT_XML, REPORT_JSON, SUMMARY_MD
from slo.sequential import RuleError, RuleSettings
from slo.sources import (
    RunFolderSource,
    SourceError,
    Window,
    load_phases,
    parse_time,
)
from slo.spec import SLO, SpecError, load_slos

slo_app = typer.Typer(
    name="slo",
    help=(
        "Service level objectives: judge a run or a time window (check), generate the Prometheus rules "
        "(rules), validate SLO files (validate), compare two windows statistically (compare). "
        "SLO files are OpenSLO v1 YAML in slo/specs/ (docs/slo.md)."
    ),
    no_args_is_help=True,
)

SloFiles = typer.Option(
    None, "--slo", help="OpenSLO file(s) to use instead of slo/specs/*.yaml (repeat the option for several)."
)
JsonOpt = typer.Option(
    False, "--json", help="Print a machine-readable JSON result on stdout instead of tables."
)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the top-level app."""
    app.add_typer(slo_app, name="slo")


def _fail(message: str, as_json: bool) -> typer.Exit:
    if as_json:
        print(json.dumps({"status": "error", "exit_code": EXIT_CANNOT_JUDGE, "errors": message.splitlines()}))
    else:
        console = Console(stderr=True)
        console.print("[red]error:[/red] ", end="")
        console.print(message, highlight=False, markup=False)
    return typer.Exit(EXIT_CANNOT_JUDGE)


def _load(files: list[Path] | None) -> list[SLO]:
    try:
        return load_slos(files or None)
    except SpecError as exc:
        raise CannotJudge(str(exc)) from None


def _seconds(option: str, text: str) -> float:
    try:
        return float(parse_duration(text))
    except ValueError as exc:
        raise CannotJudge(f"{option}: {exc}") from None


def _resolve_run(run: Path) -> Path:
    path = run.resolve()
    if not path.is_dir():
        raise CannotJudge(
            f"--run {run}: no such run folder. Run an experiment first (`make experiment`) or give runs/<id>."
        )
    return path


@slo_app.command("check")
def check(
    run: Path | None = typer.Option(
        None, "--run", help="Judge a run folder (runs/<id>/ or runs/latest): its metrics and phases."
    ),
    from_: str | None = typer.Option(
        None, "--from", help="Start of a live window: ISO 8601, unix seconds, now-10m or -10m."
    ),
    to: str | None = typer.Option(None, "--to", help="End of the live window (default: now)."),
    phases_file: Path | None = typer.Option(
        None, "--phases", help="With --from/--to: a phases.json to judge per phase."
    ),
    phase: list[str] | None = typer.Option(
        None, "--phase", help="Phase(s) to judge (default: baseline, fault, recovery; others shown for info)."
    ),
    slo_files: list[Path] | None = SloFiles,
    prometheus: str | None = typer.Option(
        None,
        "--prometheus",
        help="Prometheus URL for --from/--to (default: the stack's, or 127.0.0.1:9090+offset).",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write report.json, junit.xml and summary.md here (default with --run: RUN/slo)."
    ),
    min_events: int | None = typer.Option(
        None,
        "--min-events",
        min=1,
        help="Events a window needs for time-to-recover (default: per SLO, 10); verdicts use the rule below.",
    ),
    zone: str | None = typer.Option(
        None,
        "--zone",
        help="Indifference zone in burn-rate multiples, LOW,HIGH (default per SLO file, 0.5,2): a burn "
        "rate at or below LOW must come out met, at or above HIGH breached.",
    ),
    alpha: str | None = typer.Option(
        None, "--alpha", help="Chance of a false breach at burn <= LOW (default per SLO file, 0.05)."
    ),
    beta: str | None = typer.Option(
        None, "--beta", help="Chance of a false pass at burn >= HIGH (default per SLO file, 0.05)."
    ),
    recovery_window: str = typer.Option(
        f"{DEFAULT_RECOVERY_WINDOW_S:.0f}s", "--recovery-window", help="Window length for time to recover."
    ),
    timeout: float = typer.Option(15.0, "--timeout", help="Seconds to wait for each Prometheus query."),
    as_json: bool = JsonOpt,
) -> None:
    """The SLO gate: judge every SLO over a run folder or a live window.

    Each judged phase is decided by a sequential test (docs/slo.md): met, breached or inconclusive,
    with the SLI's interval and, when undecided, how many more events (and seconds) it needs. Its
    error rates hold however the data were read: at most --alpha false breaches for a shop burning at
    most LOW, at most --beta false passes for one burning at least HIGH.

    Prints a table (or JSON with --json) and writes JSON, JUnit XML and Markdown reports. Exit status:
    0 all objectives met, 1 any breached, 2 cannot judge (no data, too few events to decide,
    Prometheus unreachable, invalid SLO file, broken query). Neither no data nor inconclusive is a pass.

    Examples: testbed slo check --run runs/latest;  testbed slo check --from now-10m --to now
    """
    try:
        override = _rule_override(zone, alpha, beta)
        report, out_dir = _check(
            run,
            from_,
            to,
            phases_file,
            phase,
            slo_files,
            prometheus,
            out,
            min_events,
            recovery_window,
            timeout,
            override,
        )
    except (CannotJudge, SourceError) as exc:
        raise _fail(str(exc), as_json) from None
    paths = write_reports(report, out_dir) if out_dir else _written(report, run, out)
    if as_json:
        data = report.to_dict()
        data["message"] = gate_message(report)
        data["reports"] = [str(p) for p in paths]
        print(json.dumps(data, indent=2))
    else:
        console = Console()
        print_table(report, console)
        if paths:
            console.print(f"reports: {', '.join(str(p) for p in paths)}", highlight=False)
    raise typer.Exit(report.exit_code)


def _check(
    run: Path | None,
    from_: str | None,
    to: str | None,
    phases_file: Path | None,
    phase: list[str] | None,
    slo_files: list[Path] | None,
    prometheus: str | None,
    out: Path | None,
    min_events: int | None,
    recovery_window: str,
    timeout: float,
    rule_override: RuleOverride,
) -> tuple[GateReport, Path | None]:
    if run is not None and (from_ or to):
        raise CannotJudge("give either --run DIR or --from/--to, not both")
    if run is None and from_ is None:
        raise CannotJudge(
            "nothing to judge: give --run DIR (e.g. runs/latest) or a live window --from T [--to T]"
        )
    recovery_s = _seconds("--recovery-window", recovery_window)
    if run is not None:
        report, _ = check_run(
            run, slo_files=slo_files, phases=phase, min_events=min_events, recovery_window_s=recovery_s,
            rule_override=rule_override, out_dir=out,
        )  # fmt: skip
        return report, None  # written by check_run
    now = datetime.now(UTC)
    start = parse_time(from_ or "", now)
    end = parse_time(to, now) if to else now.timestamp()
    if end <= start:
        raise CannotJudge(f"--to ({to or 'now'}) must be after --from ({from_})")
    if end > now.timestamp() + 1:
        raise CannotJudge(f"--to ({to}) is in the future; the gate judges what has happened")
    report = check_live(
        prometheus or _stack_prometheus_url(), start, end, slo_files=slo_files,
        windows=load_phases(phases_file) if phases_file else None, phases=phase, min_events=min_events,
        recovery_window_s=recovery_s, rule_override=rule_override, timeout_s=timeout,
    )  # fmt: skip
    return report, out


def _rule_override(zone: str | None, alpha: str | None, beta: str | None) -> RuleOverride:
    """--zone/--alpha/--beta as typed, validated (the SLOs' own targets are checked when judging)."""
    settings = RuleSettings()
    try:
        for name, text in (("zone", zone), ("alpha", alpha), ("beta", beta)):
            if text is not None:
                settings = settings.with_text(name, text)
        settings.rule(0.999)  # order and range; each SLO's own target is checked when judging
    except RuleError as exc:
        raise CannotJudge(f"--{exc}") from None
    return RuleOverride(
        settings.zone if zone is not None else None,
        settings.alpha if alpha is not None else None,
        settings.beta if beta is not None else None,
    )


def _written(report: GateReport, run: Path | None, out: Path | None) -> list[Path]:
    """The report files check_run wrote for --run."""
    if run is None:
        return []
    folder = out or run.resolve() / "slo"
    return [folder / name for name in (REPORT_JSON, JUNIT_XML, SUMMARY_MD)]


def _stack_prometheus_url() -> str:
    try:
        return topology.StackDescriptor.load().prometheus_url
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return default_prometheus_url()


@slo_app.command("rules")
def rules(
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for the rule file (default: <state dir>/prometheus/rules, which Prometheus loads).",
    ),
    check_: bool = typer.Option(False, "--check", help="Also run `promtool check rules` on the result."),
    slo_files: list[Path] | None = SloFiles,
    as_json: bool = JsonOpt,
) -> None:
    """Generate Prometheus recording rules and multiwindow multi-burn-rate alerts from the SLO files.

    Rule and alert names are listed in docs/slo.md. A running Prometheus picks the file up on reload
    (`testbed up` regenerates it before starting Prometheus)."""
    target = out or topology.default_state_dir() / "prometheus" / "rules"
    try:
        paths = write_prometheus_rules(target, slo_files or None)
        checked = check_rules(paths) if check_ else ""
    except SpecError as exc:
        raise _fail(str(exc), as_json) from None
    except (PromtoolError, OSError) as exc:
        raise _fail(str(exc), as_json) from None
    reloaded = _reload_stack_prometheus(target) if out is None else ""
    if as_json:
        print(
            json.dumps(
                {"status": "ok", "files": [str(p) for p in paths], "promtool": checked, "reload": reloaded}
            )
        )
    else:
        console = Console()
        for p in paths:
            console.print(f"wrote {p}", highlight=False)
        if checked:
            console.print(checked, highlight=False, markup=False)
        if reloaded:
            console.print(reloaded, highlight=False, markup=False)


def _reload_stack_prometheus(rules_dir: Path) -> str:
    """When the rules went to a running stack's folder, make its Prometheus load them now."""
    try:
        stack = topology.StackDescriptor.load()
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return ""  # no stack: Prometheus reads the file when `testbed up` starts it
    if Path(stack.state_dir or topology.default_state_dir()).resolve() not in rules_dir.resolve().parents:
        return ""
    try:
        with Prometheus(stack.prometheus_url, timeout_s=5.0) as prom:
            prom.reload()
    except PrometheusError as exc:
        return f"note: the stack's Prometheus did not reload the rules ({exc}); `testbed down && testbed up`"
    return f"Prometheus at {stack.prometheus_url} reloaded the rules"


@slo_app.command("validate")
def validate(
    files: list[Path] | None = typer.Argument(None, help="OpenSLO files (default: slo/specs/*.yaml)."),
    as_json: bool = JsonOpt,
) -> None:
    """Check SLO files and list their objectives; errors name file, line and field. Exit 2 when invalid."""
    try:
        slos = _load(files)
    except CannotJudge as exc:
        raise _fail(str(exc), as_json) from None
    rows = [
        {
            "name": s.name,
            "journey": s.journey,
            "source": s.source,
            "kind": s.kind,
            "target": s.target,
            "threshold_s": s.threshold_s,
            "period_s": s.period_s,
            "critical": s.critical,
            "file": _rel(s.file),
        }
        for s in slos
    ]
    if as_json:
        print(json.dumps({"status": "ok", "slos": rows}, indent=2))
        return
    table = Table(title=f"{len(slos)} SLOs")
    for col in ("name", "journey", "source", "kind", "objective", "period", "file"):
        table.add_column(col)
    for s in slos:
        objective = f"{s.target * 100:g}%" + (f" ≤ {s.threshold_s:g} s" if s.threshold_s is not None else "")
        table.add_row(
            s.name, s.journey or "-", s.source, s.kind, objective, f"{s.period_s // 60} min", _rel(s.file)
        )
    Console().print(table)


def _rel(file: str) -> str:
    try:
        return str(Path(file).resolve().relative_to(Path.cwd()))
    except ValueError:
        return file


@slo_app.command("compare")
def compare_cmd(
    run_a: Path = typer.Argument(..., help="Run folder (the baseline run, or the only run)."),
    run_b: Path | None = typer.Argument(
        None, help="Second run folder (the candidate). Omit to compare phases of RUN_A."
    ),
    phase_a: str | None = typer.Option(
        None,
        "--phase-a",
        help="Baseline phase (default: baseline with one run; fault, else the whole run, with two).",
    ),
    phase_b: str | None = typer.Option(
        None, "--phase-b", help="Candidate phase (default: fault with one run; same as --phase-a with two)."
    ),
    slo_files: list[Path] | None = SloFiles,
    slice_: str = typer.Option(
        f"{DEFAULT_SLICE_S:.0f}s", "--slice", help="Slice length: each slice's SLI is one sample."
    ),
    confidence: float = typer.Option(
        0.98, "--confidence", min=0.5, max=0.999, help="Mann-Whitney confidence."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Statistical comparison (Mann-Whitney U per SLO, Kayenta-like score): baseline vs fault of one run,
    or run A vs run B. Exit 0 Pass (score >= 75), 1 Marginal or Fail, 2 cannot compare."""
    try:
        report = _compare(run_a, run_b, phase_a, phase_b, slo_files, slice_, confidence)
    except (CannotJudge, SourceError, ValueError) as exc:
        raise _fail(str(exc), as_json) from None
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_comparison(report, Console())
    raise typer.Exit(report.exit_code)


def _pick(windows: list[Window], name: str | None, default: list[str], run: Path) -> Window:
    by_name = {w.name: w for w in windows}
    if name is not None:
        if name not in by_name:
            raise CannotJudge(f"{run}: no phase {name!r}; phases: {', '.join(by_name)}")
        return by_name[name]
    for candidate in default:
        if candidate in by_name:
            return by_name[candidate]
    judged = [w for w in windows if w.name != "warmup"] or windows
    return Window("run", min(w.start for w in judged), max(w.end for w in judged))


def _compare(
    run_a: Path,
    run_b: Path | None,
    phase_a: str | None,
    phase_b: str | None,
    slo_files: list[Path] | None,
    slice_: str,
    confidence: float,
) -> ComparisonReport:
    slos = [s for s in _load(slo_files) if s.gated]  # as the gate: testbed/gate "false" is left out
    slice_s = _seconds("--slice", slice_)
    dir_a = _resolve_run(run_a)
    src_a = RunFolderSource(dir_a)
    wins_a = run_windows(dir_a)
    if run_b is None:
        win_a = _pick(wins_a, phase_a, ["baseline"], dir_a)
        win_b = _pick(wins_a, phase_b, ["fault"], dir_a)
        if win_a == win_b:
            raise CannotJudge(f"{run_a}: needs two different phases (give --phase-a and --phase-b)")
        return compare(slos, (src_a, win_a), (src_a, win_b), slice_s, confidence)
    dir_b = _resolve_run(run_b)
    src_b = RunFolderSource(dir_b)
    wins_b = run_windows(dir_b)
    win_a = _pick(wins_a, phase_a, ["fault"], dir_a)
    win_b = _pick(wins_b, phase_b or (win_a.name if win_a.name != "run" else None), ["fault"], dir_b)
    return compare(slos, (src_a, win_a), (src_b, win_b), slice_s, confidence)


def _print_comparison(report: ComparisonReport, console: Console) -> None:
    table = Table(title=f"{report.baseline}  vs  {report.candidate}  ({report.slice_s:g} s slices)")
    for col in ("SLO", "group", "baseline median", "candidate median", "shift (HL)", "p-value", "class", ""):
        table.add_column(col)
    fmt = _fmt_ratio
    for m in report.metrics:
        table.add_row(
            m.name + (" (critical)" if m.critical else ""),
            m.group,
            f"{fmt(m.baseline_median)} (n={m.n_baseline})",
            f"{fmt(m.candidate_median)} (n={m.n_candidate})",
            "-" if m.shift is None else f"{m.shift * 100:+.2f} pp",
            "-" if m.p_value is None else f"{m.p_value:.3g}",
            m.classification,
            "[red]FAIL[/]" if m.failed else "[green]ok[/]",
        )
    console.print(table)
    style = {"pass": "green", "marginal": "yellow", "fail": "bold red"}[report.result.verdict]
    console.print(
        f"score [{style}]{report.result.score:.0f}[/] -> [{style}]{report.result.verdict.upper()}[/] "
        f"({report.result.reason}); groups: "
        + ", ".join(f"{g} {s:.0f}" for g, s in report.result.groups.items())
    )


def _fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"
