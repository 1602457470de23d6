"""The report's figures (matplotlib, Agg), each returned as a PNG in base64 so report.html renders offline:
throughput, error ratio and latency per journey (client side solid, server side dashed), the SLOs' burn
rate with the alerts that fired, and faults / circuit breakers / users; the phases shaded on every one."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sample_shop import topology
from slo.collect import ALERTS_QUERY_NAME, BURN_RATE_QUERY_NAME
from testbed.experiment import queries
from testbed.report.data import Curve, ReportData, curves, curves_by, ratio
from testbed.report.style import PHASE_COLORS, UNKNOWN_PHASE_COLOR

JOURNEYS = tuple(topology.JOURNEY_ROUTES)
JOURNEY_COLORS = {
    "browse": "#1f77b4",
    "cart": "#2ca02c",
    "checkout": "#d62728",
    "login": "#9467bd",
    "other": "#7f7f7f",
}
QUANTILE_STYLES = {0.5: ":", 0.95: "-", 0.99: "--"}
DPI = 96


def new_figure(height: float) -> tuple[Figure, Axes]:
    fig, ax = plt.subplots(figsize=(11, height))
    fig.subplots_adjust(left=0.07, right=0.93, top=0.86, bottom=0.16)
    return fig, ax


def to_base64(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)  # fixed margins: a "tight" box would draw everything twice
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def shade_phases(ax: Axes, data: ReportData, label: bool = True) -> None:
    for name, start, end in data.phase_spans():
        ax.axvspan(
            start,
            end,
            color=PHASE_COLORS.get(name, UNKNOWN_PHASE_COLOR),
            alpha=0.45 if name != "fault" else 0.35,
            lw=0,
            zorder=0,
        )
        if label:
            ax.text(
                (start + end) / 2,
                1.01,
                name,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=8,
                color="#b22222" if name == "fault" else "#555555",
            )
    ax.set_xlabel("seconds since the first phase started")
    ax.grid(True, alpha=0.3)
    window = data.x_range()
    if window is not None:
        ax.set_xlim(*window)


def _journey_lines(ax: Axes, client: dict[str, Curve], server: dict[str, Curve], scale: float = 1.0) -> bool:
    drawn = False
    for journey in (*JOURNEYS, queries.OTHER_JOURNEY):
        color = JOURNEY_COLORS.get(journey, "#333333")
        if journey in client:
            t, v = client[journey]
            ax.plot(t, v * scale, color=color, lw=1.4, label=f"{journey} (client)")
            drawn = True
        if journey in server:
            t, v = server[journey]
            ax.plot(t, v * scale, color=color, lw=1.0, ls="--", alpha=0.8, label=f"{journey} (server)")
            drawn = True
    return drawn


def _legend(ax: Axes) -> None:
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=7, ncol=4, loc="upper left", framealpha=0.85)


def throughput(data: ReportData) -> str:
    fig, ax = new_figure(3.4)
    client = curves(data.series, queries.name("rps", "client"), "journey", data.origin)
    server = curves(data.series, queries.name("rps", "server"), "journey", data.origin)
    shade_phases(ax, data)
    if not _journey_lines(ax, client, server):
        return _empty(fig, ax, "no throughput data in the run folder")
    ax.set_ylabel("requests / s")
    ax.set_title("Throughput per journey (client solid, gateway dashed)", fontsize=10, loc="left", pad=14)
    _legend(ax)
    return to_base64(fig)


def error_ratio(data: ReportData) -> str:
    fig, ax = new_figure(3.4)
    out = {}
    for side in ("client", "server"):
        total = curves(data.series, queries.name("rps", side), "journey", data.origin)
        bad = curves(data.series, queries.name("errors_rps", side), "journey", data.origin)
        out[side] = ratio(bad, total)
    shade_phases(ax, data)
    if not _journey_lines(ax, out["client"], out["server"], scale=100.0):
        return _empty(fig, ax, "no request data in the run folder")
    ax.set_ylabel("failed requests (%)")
    ax.set_ylim(bottom=0)
    ax.set_title(
        "Error ratio per journey (client: failed checks; gateway: 5xx)", fontsize=10, loc="left", pad=14
    )
    _legend(ax)
    return to_base64(fig)


def _thresholds(data: ReportData) -> dict[str, float]:
    """journey -> the latency SLO's threshold (client side), from the SLO report."""
    out: dict[str, float] = {}
    for slo in (data.gate or {}).get("slos", []):
        if slo.get("kind") == "latency" and slo.get("threshold_s") and slo.get("journey"):
            out.setdefault(slo["journey"], float(slo["threshold_s"]))
    return out


def latency(data: ReportData) -> str:
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.2), sharex=True)
    thresholds = _thresholds(data)
    drawn = False
    for ax, journey in zip(axes.flat, JOURNEYS, strict=False):
        shade_phases(ax, data, label=journey == JOURNEYS[0])
        for q, style in QUANTILE_STYLES.items():
            c = curves(data.series, queries.quantile_name(q, "client"), "journey", data.origin).get(journey)
            if c is not None:
                ax.plot(
                    c[0],
                    c[1] * 1000,
                    color=JOURNEY_COLORS[journey],
                    ls=style,
                    lw=1.3,
                    label=f"p{q * 100:g} client",
                )
                drawn = True
        s = curves(data.series, queries.quantile_name(0.95, "server"), "journey", data.origin).get(journey)
        if s is not None:
            ax.plot(s[0], s[1] * 1000, color="#444444", lw=0.9, alpha=0.7, label="p95 gateway")
        if journey in thresholds:
            ax.axhline(
                thresholds[journey] * 1000,
                color="#b22222",
                lw=0.9,
                ls="-.",
                label=f"SLO {thresholds[journey]:g} s",
            )
        ax.text(
            0.99,
            0.95,
            journey,
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=10,
            fontweight="bold",
            color=JOURNEY_COLORS[journey],
        )
        ax.set_ylabel("ms")
        ax.set_ylim(bottom=0)
        if ax.get_legend_handles_labels()[0]:  # a journey without requests in the run has no lines
            ax.legend(fontsize=6, loc="upper left")
    fig.suptitle("Latency percentiles per journey", fontsize=10, x=0.01, ha="left")
    fig.subplots_adjust(left=0.07, right=0.98, top=0.9, bottom=0.09, hspace=0.3, wspace=0.15)
    if not drawn:
        return _empty(fig, axes.flat[0], "no latency data in the run folder")
    return to_base64(fig)


def burn_rate(data: ReportData) -> str:
    fig, ax = new_figure(3.6)
    burns = curves(data.series, BURN_RATE_QUERY_NAME, "slo", data.origin)
    alerts = curves_by(data.series, ALERTS_QUERY_NAME, ("slo", "severity"), data.origin)
    shade_phases(ax, data)
    if not burns:
        return _empty(fig, ax, "no burn-rate data (were the SLO rules loaded in Prometheus?)")
    hot = {k: v for k, v in burns.items() if len(v[1]) and np.nanmax(v[1]) > 1.0}
    for name, (t, v) in sorted(hot.items()):
        ax.plot(t, np.clip(v, 1e-3, None), lw=1.2, label=name)
    if not hot:
        ax.text(
            0.5,
            0.5,
            "no SLO burned its budget faster than allowed (burn rate ≤ 1 throughout)",
            transform=ax.transAxes,
            ha="center",
            fontsize=9,
        )
    ax.axhline(1.0, color="#555555", lw=0.8, ls=":")
    ax.axhline(14.4, color="#b22222", lw=0.8, ls=":", label="page threshold 14.4")
    ax.set_yscale("log")
    ax.set_ylabel("burn rate (4 s window)")
    firing_y = 1.3 * max([14.4, *[float(np.nanmax(v[1])) for v in hot.values()]])
    ax.set_ylim(top=firing_y * 2.0)
    for key, (t, v) in alerts.items():
        on = t[v > 0]
        if len(on):
            ax.scatter(
                on,
                np.full(len(on), firing_y),
                s=6,
                marker="|",
                color="#b22222" if "page" in key else "#e69f00",
            )
    ax.set_title(
        "SLO burn rate (SLOs above 1 shown; ticks on top: burn-rate alerts firing, red = page)",
        fontsize=10,
        loc="left",
        pad=14,
    )
    _legend(ax)
    return to_base64(fig)


def faults_and_breakers(data: ReportData) -> str:
    fig, ax = new_figure(3.2)
    faults = curves_by(data.series, queries.name("faults_active", ""), ("service", "kind"), data.origin)
    breakers = curves_by(data.series, queries.name("breaker_state", ""), ("service", "peer"), data.origin)
    users = curves(data.series, queries.name("users", ""), "", data.origin)
    shade_phases(ax, data)
    drawn = False
    for key, (t, v) in sorted(faults.items()):
        ax.step(t, v, where="post", lw=1.6, label=f"fault {key}")
        drawn = True
    for key, (t, v) in sorted(breakers.items()):
        if len(v) and np.nanmax(v) > 0:
            ax.step(t, v, where="post", lw=1.2, ls="--", label=f"breaker {key}")
            drawn = True
    ax.set_ylabel("faults active / breaker (2 = open)")
    ax.set_ylim(-0.1, max(2.2, ax.get_ylim()[1]))
    if users:
        twin = ax.twinx()
        t, v = next(iter(users.values()))
        twin.plot(t, v, color="#999999", lw=0.9, label="simulated users")
        twin.set_ylabel("users", color="#777777")
        twin.set_ylim(bottom=0)
    if not drawn:
        ax.text(
            0.5,
            0.5,
            "no fault or open breaker recorded in Prometheus",
            transform=ax.transAxes,
            ha="center",
            fontsize=9,
        )
    ax.set_title(
        "Faults, circuit breakers (dashed) and simulated users (grey)", fontsize=10, loc="left", pad=14
    )
    _legend(ax)
    return to_base64(fig)


def dependencies(data: ReportData) -> str:
    fig, ax = new_figure(3.2)
    failed = curves_by(data.series, queries.name("calls_failed_rps", ""), ("service", "peer"), data.origin)
    retries = curves_by(data.series, queries.name("retries_rps", ""), ("service", "peer"), data.origin)
    shade_phases(ax, data)
    if not failed and not retries:
        return _empty(fig, ax, "no failed outbound call and no retry between services")
    for key, (t, v) in sorted(failed.items()):
        ax.plot(t, v, lw=1.4, label=f"failed {key}")
    for key, (t, v) in sorted(retries.items()):
        ax.plot(t, v, lw=1.1, ls="--", label=f"retries {key}")
    ax.set_ylabel("calls / s")
    ax.set_ylim(bottom=0)
    ax.set_title(
        "Calls between services: failed (5xx, timeout, refused, breaker open) and retries (dashed)",
        fontsize=10,
        loc="left",
        pad=14,
    )
    _legend(ax)
    return to_base64(fig)


def verdict_intervals(data: ReportData) -> str:
    """Every SLO's SLI per judged phase as a dot with its anytime-valid interval, against the objective:
    a whisker wholly right of the objective line is a confident pass, wholly left a confident breach."""
    gate = data.gate or {}
    slos = gate.get("slos") or []
    judged = list(gate.get("judged_windows") or [])
    fig, ax = new_figure(max(2.4, 0.32 * len(slos) + 1.2))
    if not slos or not judged:
        return _empty(fig, ax, "no SLO verdicts (the gate did not judge this run)")
    fig.subplots_adjust(left=0.28, right=0.97, top=0.9, bottom=0.12)
    lows: list[float] = []
    for row, slo in enumerate(slos):
        y = len(slos) - 1 - row
        ax.plot([slo["target"] * 100] * 2, [y - 0.4, y + 0.4], color="#b22222", lw=1.5)
        lows.append(slo["target"] * 100)
        for k, window in enumerate(w for w in slo.get("windows", []) if w.get("judged")):
            if window.get("sli") is None:
                continue
            dy = (k - (len(judged) - 1) / 2) * 0.22
            sli = window["sli"] * 100
            lo = (window.get("sli_low") if window.get("sli_low") is not None else window["sli"]) * 100
            hi = (window.get("sli_high") if window.get("sli_high") is not None else window["sli"]) * 100
            lows.append(lo)
            color = PHASE_COLORS.get(window["window"], UNKNOWN_PHASE_COLOR)
            marker = {"met": "o", "breached": "X", "inconclusive": "D"}.get(window["status"], ".")
            # with few events the interval can lie wholly on one side of the observed SLI: no whisker there
            whiskers = [[max(0.0, sli - lo)], [max(0.0, hi - sli)]]
            ax.errorbar(
                sli, y + dy, xerr=whiskers, fmt=marker, color=color, ms=5, capsize=2, lw=1,
                label=window["window"] if row == 0 else None,
            )  # fmt: skip
    ax.set_yticks(range(len(slos)), [s["name"] for s in reversed(slos)], fontsize=8)
    ax.set_xlim(max(0.0, min(lows) - 1.0), 100.2)
    ax.set_xlabel("SLI % (dot: observed; whisker: anytime-valid interval; red bar: objective)")
    ax.set_title("SLO verdicts per phase (o met, X breached, ◆ inconclusive)", fontsize=10, loc="left", pad=8)
    _legend(ax)
    return to_base64(fig)


def _empty(fig: Figure, ax: Axes, message: str) -> str:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", fontsize=10, color="#b22222")
    return to_base64(fig)


FIGURES = (
    ("verdicts", "SLO verdicts and their intervals", verdict_intervals),
    ("throughput", "Throughput", throughput),
    ("errors", "Error ratio", error_ratio),
    ("latency", "Latency", latency),
    ("burn", "SLO burn rate and alerts", burn_rate),
    ("faults", "Faults and circuit breakers", faults_and_breakers),
    ("dependencies", "Calls between services", dependencies),
)


def all_figures(data: ReportData) -> Iterable[tuple[str, str, str]]:
    """(id, title, base64 PNG) for each figure."""
    for key, title, make in FIGURES:
        yield key, title, make(data)
