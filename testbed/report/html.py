"""report.html: one self-contained page (inline CSS, figures as data: URIs, no script, no network), built
from ReportData and the figures. Pure: data in, text out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from testbed.report.data import ReportData
from testbed.report.style import SERVICE_COLORS
from testbed.report.traces import TraceView

VERDICT_STYLE = {
    "met": ("SLOs MET", "ok"),
    "breached": ("SLOs BREACHED", "bad"),
    "nodata": ("NO DATA", "warn"),
    "inconclusive": ("INCONCLUSIVE", "warn"),
    "unreliable": ("UNRELIABLE", "warn"),
}
STATUS_CLASS = {
    "met": "ok",
    "breached": "bad",
    "nodata": "warn",
    "inconclusive": "warn",
    "unreliable": "warn",
}

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;
 color:#222;line-height:1.4;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;
 padding-bottom:4px}h3{font-size:14px;margin:14px 0 6px}
.sub{color:#666;font-size:13px}.badge{display:inline-block;padding:6px 14px;border-radius:6px;
 font-weight:700;font-size:16px;color:#fff;margin:10px 0}
.ok{background:#2e7d32}.bad{background:#c62828}.warn{background:#ef6c00}
td.ok,td.bad,td.warn{background:none}td.ok{color:#2e7d32}td.bad{color:#c62828;font-weight:600}
td.warn{color:#ef6c00}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}th,td{border:1px solid #ddd;
 padding:3px 7px;text-align:left;vertical-align:top}th{background:#f5f5f5}td.n{text-align:right}
.dim{color:#888}.msg{font-size:15px;margin:6px 0 12px}img{max-width:100%;display:block;margin:6px 0 14px}
.wf{font-size:11.5px;width:100%;margin-bottom:12px}.wf td{border:none;border-bottom:1px solid #f0f0f0;
 padding:1px 4px;white-space:nowrap}.bar{position:relative;height:12px;background:#fafafa;min-width:420px}
.bar span{position:absolute;top:1px;height:10px;border-radius:2px}.err{outline:2px solid #c62828}
.problems{background:#fff3e0;border:1px solid #ffcc80;padding:8px 12px;font-size:13px}
code{background:#f3f3f3;padding:0 3px}ul{margin:4px 0}
"""


def _t(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x * 100:.{digits}f}%"


def _num(x: float | None, fmt: str = ".0f") -> str:
    return "-" if x is None else format(x, fmt)


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f} s"


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """Cells are HTML already (escape text before)."""
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="n"' if i in numeric else ""
            if cell.startswith("<td"):
                cells.append(cell)
            else:
                cells.append(f"<td{cls}>{cell}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</table>"


def header(data: ReportData) -> str:
    info = data.info
    label, cls = VERDICT_STYLE.get(info.verdict or "", ("CANNOT JUDGE", "warn"))
    if info.status not in ("completed", "deviated"):
        label, cls = f"CANNOT JUDGE ({info.status})", "warn"
    config = ", ".join(
        f"{escape(k)}={escape(str(v))}"
        for k, v in sorted(info.config.items())
        if k not in ("state_dir", "load_out")
    )
    wall = info.timing.get("wall_s")
    return f"""
<h1>{escape(info.title or info.experiment)}</h1>
<p>{escape(info.description)}</p>
<div class="sub">experiment <b>{escape(info.experiment)}</b> · run <code>{escape(info.id)}</code> · target
{escape(info.target)} · profile {escape(info.profile or "-")} · started {escape(info.started)} · ended
{escape(info.ended or "-")}{f" · {wall:.0f} s in all" if isinstance(wall, int | float) else ""}</div>
<div class="badge {cls}">{escape(label)}</div>
<span class="sub"> exit status {info.exit_code if info.exit_code is not None else "-"} · run status
{escape(info.status)}</span>
<div class="msg">{escape(info.message)}</div>
<div class="sub">configuration: {config}</div>"""


def hypothesis(data: ReportData) -> str:
    h = data.info.hypothesis
    if not h:
        return "<h2>Steady-state hypothesis</h2><p class='dim'>no journal: the hypothesis was not checked</p>"

    def met(value: Any) -> str:
        return {True: "<span class='ok-t'>held</span>", False: "<b>did not hold</b>", None: "not checked"}[
            value
        ]

    failing = ", ".join(f"{escape(k)} ({v} times)" for k, v in (h.get("failing_probes") or {}).items())
    return f"""<h2>Steady-state hypothesis</h2>
<p>{escape(h.get("title") or "")}<br>before the method: {met(h.get("before"))} · during (checked
{h.get("during_checks", 0)} times continuously): {h.get("during_deviations", 0)} deviation(s)
{f"— failing probes: {failing}" if failing else ""} · after: {met(h.get("after"))}
{"· <b>deviated</b> (a finding)" if h.get("deviated") else ""}</p>"""


def phases_section(data: ReportData) -> str:
    if not data.phases:
        return "<h2>Phases</h2><p class='dim'>no phases recorded</p>"
    stats = {r["phase"]: r for r in data.phase_stats}
    rows = []
    for p in data.phases:
        s = stats.get(p.name, {})
        host = data.host_cpu.get(p.name, {})
        rows.append(
            [
                f"<b>{escape(p.name)}</b>",
                _t(p.start),
                _t(p.end),
                f"{p.seconds:.1f} s",
                _num(s.get("requests"), "d") if s.get("requests") is not None else "-",
                _num(s.get("rps"), ".1f"),
                _pct(s.get("error_ratio")),
                _num(s.get("p50_ms")),
                _num(s.get("p95_ms")),
                _num(s.get("p99_ms")),
                _pct(host.get("busy_mean"), 0),
                _pct(host.get("busy_max"), 0),
                _pct(host.get("waiting_mean"), 0),
            ]
        )
    host_note = (
        "Host CPU from node_exporter: busy share of all cores (mean, peak) and the share of time some task "
        "waited for a CPU (Linux pressure stall information); a saturated host slows every service at once."
        if data.host_cpu
        else "Host CPU: not measured in this run (node_exporter was not running; `testbed doctor` checks)."
    )
    grafana = ""
    url = data.info.stack.get("grafana_url")
    if url:
        start, end = int(data.phases[0].start * 1000), int(data.phases[-1].end * 1000)
        grafana = (
            f'<p class="sub">Grafana: <a href="{escape(url)}/d/experiment-timeline?from={start}'
            f'&amp;to={end}">experiment timeline of this window</a> (live data)</p>'
        )
    return (
        "<h2>Phases</h2><p class='sub'>Times UTC. Requests and latency as the load generator saw them "
        f"(load/requests.parquet). {escape(host_note)}</p>"
        + _table(
            [
                "phase",
                "start",
                "end",
                "duration",
                "requests",
                "req/s",
                "errors",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "host CPU",
                "host CPU peak",
                "CPU wait",
            ],
            rows,
            numeric=range(3, 13),
        )
        + grafana
    )


def figures_section(figures: Iterable[tuple[str, str, str]]) -> str:
    parts = [
        "<h2>Over time</h2><p class='sub'>Phases shaded: warm-up grey, baseline green, <b>fault red</b>, "
        "recovery blue.</p>"
    ]
    for key, title, png in figures:
        parts.append(f'<img id="fig-{key}" alt="{escape(title)}" src="data:image/png;base64,{png}">')
    return "\n".join(parts)


def slo_section(data: ReportData) -> str:
    gate = data.gate
    if not gate:
        why = data.info.chaos.get("gate_error") or "the SLO gate did not write slo/report.json"
        return f"<h2>SLOs</h2><p class='problems'>cannot judge: {escape(str(why))}</p>"
    windows = [w["name"] for w in gate.get("windows", [])]
    judged = set(gate.get("judged_windows", []))
    head = ["SLO", "objective"]
    head += [
        f"{escape(w)}{'' if w in judged else ' (info)'}<br><span class='dim'>SLI (events) · budget</span>"
        for w in windows
    ]
    head += [
        "interval",
        "needs",
        "budget used",
        "time to detect",
        "time to page",
        "time to recover",
        "verdict",
    ]
    rows = []
    for s in gate.get("slos", []):
        objective = f"{s['target'] * 100:g}%" + (f" ≤ {s['threshold_s']:g} s" if s.get("threshold_s") else "")
        cells = [f"{escape(s['name'])}{' <b>(critical)</b>' if s.get('critical') else ''}", objective]
        for w in s.get("windows", []):
            cls = STATUS_CLASS.get(w["status"], "") if w.get("judged") else "dim"
            text = f"{_pct(w.get('sli'))} ({w.get('total', 0):g}) · {_pct(w.get('budget_consumed'), 1)}"
            cells.append(f'<td class="{cls}">{text}</td>')
        overall = s.get("overall") or {}
        low, high = overall.get("sli_low"), overall.get("sli_high")
        needed = overall.get("events_needed")
        cells += [
            f"{_pct(low, 1)}-{_pct(high, 1)}" if low is not None and high is not None else "-",
            "-" if s["status"] != "inconclusive" else ("∞" if needed is None else f"{needed:,.0f} events"),
            _pct(overall.get("budget_consumed"), 1),
            _secs(s.get("time_to_detect_s")),
            _secs(s.get("time_to_page_s")),
            _secs(s.get("time_to_recover_s")),
            f'<td class="{STATUS_CLASS.get(s["status"], "")}">{escape(s["status"].upper())}</td>',
        ]
        rows.append(cells)
    notes = [
        f"<li>{escape(s['name'])}: {escape(n)}</li>" for s in gate.get("slos", []) for n in s.get("notes", [])
    ]
    notes += [
        f"<li>{escape(s['name'])}: {escape(s['detection_note'])}</li>"
        for s in gate.get("slos", [])
        if s.get("detection_note") and s["status"] == "breached"
    ]
    notes += [
        f"<li>{escape(s['name'])}: {escape(s['page_note'])}</li>"
        for s in gate.get("slos", [])
        if s.get("page_note") and s["status"] == "breached"
    ]
    return (
        f"<h2>SLOs: {escape(str(gate.get('status', '')).upper())}</h2>"
        "<p class='sub'>Per phase: SLI, events, and the share of the SLO period's error budget (1 h) the "
        "phase consumed. Time to detect: fault start to the first burn-rate alert (rule evaluation in "
        "Prometheus). Time to page: fault start to the first page Alertmanager delivered to the testbed's "
        "receiver (alerts.jsonl), what an on-call engineer would see. Time to recover: fault "
        "end to the first 30 s window back within the objective.</p>"
        + _table(head, rows)
        + (f"<h3>Notes</h3><ul>{''.join(notes)}</ul>" if notes else "")
    )


def comparison_section(data: ReportData) -> str:
    c = data.comparison
    if not c:
        return (
            "<h2>Baseline vs fault</h2><p class='dim'>no comparison: the run needs a baseline and a fault "
            "phase with metrics</p>"
        )
    rows = []
    for m in c.get("metrics", []):
        cls = {"pass": "ok", "nodata": "warn"}.get(m["classification"], "bad")
        shift = "-" if m.get("shift") is None else f"{m['shift'] * 100:+.2f} pp"
        ci = (
            ""
            if m.get("shift_low") is None
            else f" [{m['shift_low'] * 100:+.2f}, {m['shift_high'] * 100:+.2f}]"
        )
        rows.append(
            [
                escape(m["name"]),
                escape(m["group"]),
                _pct(m.get("baseline_median")),
                _pct(m.get("candidate_median")),
                shift + ci,
                "-" if m.get("p_value") is None else f"{m['p_value']:.3g}",
                f"{m['n_baseline']} / {m['n_candidate']}",
                f'<td class="{cls}">{escape(m["classification"])}</td>',
            ]
        )
    return (
        f"<h2>Baseline vs fault: score {c['score']:.0f} ({escape(c['verdict'])})</h2>"
        f"<p class='sub'>Each SLO's SLI over {c['slice_s']:g} s slices of the baseline against the fault "
        "phase: "
        "two-sided Mann-Whitney U (98 % confidence) and the Hodges-Lehmann shift with its confidence "
        "interval; a metric fails only when it drops significantly and by more than 0.5 pp. "
        f"{escape(c.get('reason', ''))}.</p>"
        + _table(
            ["SLO", "journey", "baseline median", "fault median", "shift (CI)", "p", "slices", "class"], rows
        )
    )


def _waterfall(trace: TraceView, colors: dict[str, str]) -> str:
    total = max(trace.duration_ms, 1e-3)
    rows = []
    for r in trace.rows:
        left = 100.0 * r.offset_ms / total
        width = max(0.4, 100.0 * r.duration_ms / total)
        color = colors.setdefault(r.service, SERVICE_COLORS[len(colors) % len(SERVICE_COLORS)])
        err = " err" if r.error else ""
        rows.append(
            f"<tr><td style='padding-left:{4 + 12 * r.depth}px'>{escape(r.service)}</td>"
            f"<td>{escape(r.name)}</td><td class='n'>{r.duration_ms:.1f} ms</td>"
            f"<td class='bar'><span class='{err.strip()}' "
            f"style='left:{left:.2f}%;width:{min(width, 100 - left):.2f}%;"
            f"background:{color}'></span></td></tr>"
        )
    more = f"<tr><td colspan=4 class='dim'>… {trace.hidden} more spans</td></tr>" if trace.hidden else ""
    return "<table class='wf'>" + "".join(rows) + more + "</table>"


def traces_section(data: ReportData) -> str:
    if not data.traces:
        return (
            "<h2>Slowest traces</h2><p class='dim'>no spans in traces/spans.jsonl (traces sampled at the "
            "gateway; none in the window, or they went to Jaeger)</p>"
        )
    colors: dict[str, str] = {}
    parts = [
        f"<h2>Slowest traces</h2><p class='sub'>The {len(data.traces)} slowest of "
        f"{data.span_count} spans' traces in the window (traces/spans.jsonl, OTLP JSON). Red outline: "
        "span status error.</p>"
    ]
    for t in data.traces:
        parts.append(
            f"<h3>{t.duration_ms:.0f} ms · {escape(t.root_service)} {escape(t.root_name)} · "
            f"{t.span_count} spans · {_t(t.start)} UTC in {escape(t.phase or 'no phase')}"
            f"{' · <b>error</b>' if t.error else ''} · "
            f"<code>{escape(t.trace_id)}</code></h3>" + _waterfall(t, colors)
        )
    return "\n".join(parts)


def logs_section(data: ReportData) -> str:
    if not data.log_rows:
        return (
            f"<h2>Logs</h2><p class='sub'>{data.log_count} log lines in the window "
            "(logs/logs.jsonl); no warning or error.</p>"
        )
    rows = [
        [
            escape(r["service"]),
            escape(r["phase"]),
            str(r.get("warning", 0)),
            str(r.get("error", 0) + r.get("critical", 0)),
            str(r.get("raw", 0)),
        ]
        for r in data.log_rows
    ]
    return (
        f"<h2>Logs</h2><p class='sub'>{data.log_count} log lines in the window (logs/logs.jsonl): warnings "
        "and errors per service and phase; raw = lines that are not JSON (e.g. a traceback).</p>"
        + _table(["service", "phase", "warnings", "errors", "raw"], rows, numeric=(2, 3, 4))
    )


def files_section(data: ReportData) -> str:
    info = data.info
    items = [
        ("run.json", "what ran, status, verdict, timing"),
        ("phases.json", "phase boundaries"),
        ("journal.json", "Chaos Toolkit journal"),
        ("chaos.log", "chaos run output"),
        ("slo/summary.md", "SLO summary (Markdown)"),
        ("slo/report.json", "SLO report (JSON)"),
        ("slo/junit.xml", "SLO report (JUnit)"),
        ("metrics/series.parquet", "Prometheus series"),
        ("metrics/queries.json", "their PromQL"),
        ("load/summary.json", "load summary"),
        ("traces/spans.jsonl", "spans"),
        ("logs/logs.jsonl", "logs"),
    ]
    links = " · ".join(f'<a href="{p}">{p}</a> <span class="dim">({d})</span>' for p, d in items)
    cleanup = escape(", ".join(f"{k}: {v}" for k, v in info.cleanup.items() if k != "load_out_dir"))
    timing = escape(", ".join(f"{k} {v}" for k, v in info.timing.items()))
    notes = [*info.collection.get("notes", []), *data.problems, *info.collection.get("errors", [])]
    problems = (
        (
            "<div class='problems'><b>Notes and problems</b><ul>"
            + "".join(f"<li>{escape(str(n))}</li>" for n in notes)
            + "</ul></div>"
        )
        if notes
        else ""
    )
    return (
        f"<h2>Files and housekeeping</h2>{problems}<p class='sub'>{links}</p>"
        f"<p class='sub'>Rollback check after chaos ended: {cleanup or '-'}.<br>Timing (s): {timing or '-'}."
        f"<br>Re-render with <code>testbed report {escape(str(data.run.root))}</code>.</p>"
    )


def render_html(data: ReportData, figures: Iterable[tuple[str, str, str]]) -> str:
    body = "\n".join(
        [
            header(data),
            hypothesis(data),
            phases_section(data),
            slo_section(data),
            figures_section(figures),
            comparison_section(data),
            traces_section(data),
            logs_section(data),
            files_section(data),
        ]
    )
    title = escape(f"{data.info.experiment} · {data.info.id}")
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{CSS}</style></head>"
        f"<body>\n{body}\n<p class='dim sub'>chaos-shop testbed · report rendered from the run folder alone"
        "</p></body></html>\n"
    )
