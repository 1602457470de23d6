"""Gate report writers: JSON (scripts), JUnit XML (CI test tabs), Markdown (CI job summary), rich table."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sample_shop.basics import utc_iso, write_json_atomic, write_text_atomic
from slo.evaluate import GateReport, SloResult, WindowResult
from slo.runfolder import JUNIT_XML, REPORT_JSON, SUMMARY_MD

_VERDICT = {
    "met": "met",
    "breached": "BREACHED",
    "nodata": "NO DATA",
    "inconclusive": "INCONCLUSIVE",
    "unreliable": "UNRELIABLE",
}
_ICON = {"met": "✅", "breached": "❌", "nodata": "⚠️", "inconclusive": "❔", "unreliable": "🌫️"}
_STYLE = {
    "met": "green",
    "breached": "bold red",
    "nodata": "yellow",
    "inconclusive": "yellow",
    "unreliable": "yellow",
}


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x * 100:.{digits}f}%"


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f} s"


def interval_text(w: WindowResult | None) -> str:
    """The SLI's anytime-valid interval, e.g. 98.1-100%."""
    if w is None or w.sli_low is None or w.sli_high is None:
        return "-"
    return f"{w.sli_low * 100:.1f}-{w.sli_high * 100:.1f}%"


def needed_text(s: SloResult) -> str:
    """What an undecided SLO still needs: events (and seconds at the observed rate) in its slowest window."""
    if s.status != "inconclusive" or s.overall is None:
        return "-"
    if s.overall.events_needed is None:
        return "∞"
    text = f"{s.overall.events_needed:,.0f}"
    return text + (f" (~{s.overall.seconds_needed:.0f} s)" if s.overall.seconds_needed is not None else "")


def rule_text(report: GateReport) -> str:
    """The decision rule(s) in use, once: most reports use one setting for every SLO."""
    settings = sorted(
        {(tuple(s.rule.get("zone", ())), s.rule.get("alpha"), s.rule.get("beta")) for s in report.slos},
        key=str,
    )
    parts = [f"zone {z[0]:g}-{z[1]:g}x burn, alpha {a:g}, beta {b:g}" for z, a, b in settings if len(z) == 2]
    return "sequential test (SPRT, anytime-valid): " + "; ".join(parts) if parts else ""


def objective_text(s: SloResult) -> str:
    base = f"{s.target * 100:g}%"
    return f"{base} ≤ {s.threshold_s:g} s" if s.threshold_s is not None else base


def not_judged_text(report: GateReport) -> str:
    """The SLOs left out, grouped by reason (empty when every SLO was judged)."""
    reasons: dict[str, list[str]] = {}
    for entry in report.not_judged:
        reasons.setdefault(entry["reason"], []).append(entry["name"])
    return "; ".join(f"{len(names)} not judged ({', '.join(names)}): {why}" for why, names in reasons.items())


def gate_message(report: GateReport) -> str:
    left_out = not_judged_text(report)
    message = _gate_message(report)
    return f"{message}; {left_out}" if left_out else message


def _gate_message(report: GateReport) -> str:
    breached = [s.name for s in report.slos if s.status == "breached"]
    nodata = [s.name for s in report.slos if s.status == "nodata"]
    undecided = [s for s in report.slos if s.status == "inconclusive"]
    unreliable = [s.name for s in report.slos if s.status == "unreliable"]
    if report.status == "met":
        return f"all {len(report.slos)} SLOs met over {', '.join(report.judged_windows)}"
    parts = []
    if breached:
        parts.append(f"breached: {', '.join(breached)}")
    if nodata:
        parts.append(
            f"no data: {', '.join(nodata)} (too few events; is the load generator running and scraped? "
            "see the reason per window)"
        )
    if undecided:
        parts.append(
            "inconclusive (too few events to decide; run the phases longer, e.g. with --until-confident): "
            + ", ".join(f"{s.name} needs {needed_text(s)} more events" for s in undecided)
        )
    if unreliable:
        saturated = "; ".join(n["reason"] for n in noise_problems(report))
        parts.append(f"unreliable latency verdicts: {', '.join(unreliable)} ({saturated})")
    return "; ".join(parts)


def noise_problems(report: GateReport) -> list[dict[str, str]]:
    """The judged windows whose measuring instruments were saturated, with the reason (slo/noise.py)."""
    out: list[dict[str, str]] = []
    for entry in report.noise:
        if entry.get("window") in report.judged_windows and not entry.get("reliable", True):
            saturated = " and ".join(str(x) for x in entry.get("saturated", []))
            out.append({"window": str(entry["window"]), "reason": f"{saturated} in {entry['window']}"})
    return out


def write_reports(report: GateReport, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / REPORT_JSON, out_dir / JUNIT_XML, out_dir / SUMMARY_MD]
    write_json_atomic(paths[0], report.to_dict())
    write_text_atomic(paths[1], junit_xml(report))
    write_text_atomic(paths[2], markdown(report))
    return paths


def _window_line(w: WindowResult) -> str:
    return (
        f"{w.window}: {w.status} - good {w.good:g} / total {w.total:g}, SLI {_pct(w.sli, 3)} "
        f"[{interval_text(w)}], burn rate {_num(w.burn_rate)}, budget {_pct(w.budget_consumed, 1)} "
        f"({w.reason})"
    )


def junit_xml(report: GateReport) -> str:
    suite = ET.Element(
        "testsuite",
        name="slo",
        tests=str(len(report.slos) + len(report.not_judged)),
        failures=str(sum(s.status == "breached" for s in report.slos)),
        errors=str(sum(s.status in ("nodata", "inconclusive", "unreliable") for s in report.slos)),
        skipped=str(len(report.not_judged)),
    )
    for s in report.slos:
        case = ET.SubElement(
            suite, "testcase", classname=f"slo.{s.source}.{s.journey or 'shop'}", name=s.name
        )
        details = "\n".join(_window_line(w) for w in s.windows)
        if s.status == "breached":
            bad = [w for w in s.windows if w.judged and w.status == "breached"]
            msg = "; ".join(f"{w.window}: SLI {_pct(w.sli, 3)} < {objective_text(s)}" for w in bad)
            ET.SubElement(case, "failure", message=msg, type="SLOBreached").text = details
        elif s.status == "nodata":
            bad = [w for w in s.windows if w.judged and w.status == "nodata"]
            msg = "; ".join(f"{w.window}: {w.reason}" for w in bad)
            ET.SubElement(case, "error", message=msg, type="SLONoData").text = details
        elif s.status in ("inconclusive", "unreliable"):
            bad = [w for w in s.windows if w.judged and w.status == s.status]
            msg = "; ".join(f"{w.window}: {w.reason}" for w in bad)
            kind = "SLOInconclusive" if s.status == "inconclusive" else "SLOUnreliable"
            ET.SubElement(case, "error", message=msg, type=kind).text = details
        rule = s.rule
        props = ET.SubElement(case, "properties")
        for key in ("method", "zone", "alpha", "beta"):
            value = rule.get(key)
            text = ",".join(f"{v:g}" for v in value) if isinstance(value, list) else str(value)
            ET.SubElement(props, "property", name=key, value=text)
        ET.SubElement(props, "property", name="interval", value=interval_text(s.overall))
        events = "-" if s.overall is None else f"{s.overall.total:g}"
        ET.SubElement(props, "property", name="events", value=events)
        ET.SubElement(props, "property", name="events_needed", value=needed_text(s))
        ET.SubElement(case, "system-out").text = "\n".join([details, *s.notes])
    for entry in report.not_judged:
        case = ET.SubElement(suite, "testcase", classname="slo.not_judged", name=entry["name"])
        ET.SubElement(case, "skipped", message=entry["reason"])
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def markdown(report: GateReport) -> str:
    names = [w.name for w in report.windows]
    lines = [
        f"## SLO gate: {_ICON[report.status]} {_VERDICT[report.status]}",
        "",
        f"{gate_message(report)}. Source: {report.source}. Judged: {', '.join(report.judged_windows)}.",
        "",
        "| SLO | objective | "
        + " | ".join(names)
        + " | interval | needs | budget used | detect | page | recover | verdict |",
        "|---|---|" + "---|" * len(names) + "---|---|---|---|---|---|---|",
    ]
    for s in report.slos:
        cells = []
        for w in s.windows:
            mark = f" {_ICON[w.status]}" if w.judged else ""
            cells.append(f"{_pct(w.sli)} ({w.total:g}){mark}")
        budget = _pct(s.overall.budget_consumed, 1) if s.overall else "-"
        lines.append(
            f"| {s.name} | {objective_text(s)} | "
            + " | ".join(cells)
            + f" | {interval_text(s.overall)} | {needed_text(s)} "
            + f"| {budget} | {_secs(s.time_to_detect_s)} | {_secs(s.time_to_page_s)} "
            f"| {_secs(s.time_to_recover_s)} "
            f"| {_ICON[s.status]} {_VERDICT[s.status]} |"
        )
    notes = [f"- {s.name}: {note}" for s in report.slos for note in s.notes]
    if notes:
        lines += ["", "Notes:", *notes]
    if report.not_judged:
        lines += ["", "Not judged:", *(f"- {e['name']}: {e['reason']}" for e in report.not_judged)]
    noisy = noise_problems(report)
    if noisy:
        lines += [
            "",
            "Noisy machine (latency verdicts unreliable there):",
            *(f"- {n['reason']}" for n in noisy),
        ]
    lines += [
        "",
        "Cells: SLI (events) per window, marked by its verdict. Interval: the SLI's anytime-valid "
        "confidence interval over the judged windows. Needs: events still needed to decide (at the observed "
        "rate) in the slowest undecided window. "
        + rule_text(report)
        + ". Budget used: share of the SLO period's error budget consumed by the judged "
        "windows. Detect: fault start to the first burn-rate alert (rule evaluation). Page: fault start to "
        "the first page Alertmanager delivered (alerts.jsonl). Recover: fault end to the first "
        "healthy window.",
    ]
    if report.windows:
        spans = ", ".join(
            f"{w.name} {utc_iso(w.start, 'seconds')} → {utc_iso(w.end, 'seconds')}" for w in report.windows
        )
        lines += ["", f"Windows: {spans}."]
    return "\n".join(lines) + "\n"


def print_table(report: GateReport, console: Console) -> None:
    table = Table(title=f"SLO gate over {', '.join(report.judged_windows)} ({report.source})")
    table.add_column("SLO")
    table.add_column("objective")
    for phase in report.windows:
        table.add_column(
            phase.name + ("" if phase.name in report.judged_windows else " (info)"), justify="right"
        )
    table.add_column("interval", justify="right")
    table.add_column("needs", justify="right")
    table.add_column("budget", justify="right")
    table.add_column("detect", justify="right")
    table.add_column("page", justify="right")
    table.add_column("recover", justify="right")
    table.add_column("verdict")
    for s in report.slos:
        cells = []
        for w in s.windows:
            text = f"{_pct(w.sli)} ({w.total:g})"
            cells.append(f"[{_STYLE[w.status]}]{text}[/]" if w.judged else f"[dim]{text}[/]")
        table.add_row(
            s.name,
            objective_text(s),
            *cells,
            interval_text(s.overall),
            needed_text(s),
            _pct(s.overall.budget_consumed, 1) if s.overall else "-",
            _secs(s.time_to_detect_s),
            _secs(s.time_to_page_s),
            _secs(s.time_to_recover_s),
            f"[{_STYLE[s.status]}]{_VERDICT[s.status]}[/]",
        )
    console.print(table)
    for s in report.slos:
        for note in s.notes:
            console.print(f"[dim]note[/dim] {s.name}: {note}", highlight=False)
    for e in report.not_judged:
        console.print(f"[yellow]not judged[/yellow] {e['name']}: {e['reason']}", highlight=False)
    for n in noise_problems(report):
        console.print(
            f"[yellow]noisy machine[/yellow] {n['reason']}: latency verdicts there are unreliable",
            highlight=False,
        )
    if report.slos:
        console.print(f"[dim]verdicts: {rule_text(report)}[/dim]", highlight=False)
    console.print(f"[{_STYLE[report.status]}]{_VERDICT[report.status]}[/]: {gate_message(report)}")
