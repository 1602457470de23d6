"""The notebooks' figures (matplotlib), phases shaded on every time axis. Each function draws one figure
from an already shaped frame and returns it; the notebook's inline backend shows it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from notebooks.analysis.traces import Section
from testbed.report.style import PHASE_COLORS, UNKNOWN_PHASE_COLOR
from testbed.runfolder import Phase, SpanRecord

PERCENTILE_STYLES = {"p50_ms": ":", "p95_ms": "-", "p99_ms": "--"}


def shade_phases(ax: Axes, phases: Sequence[Phase], origin: float, label: bool = True) -> None:
    for p in phases:
        start, end = p.start - origin, p.end - origin
        ax.axvspan(start, end, color=PHASE_COLORS.get(p.name, UNKNOWN_PHASE_COLOR), alpha=0.4, lw=0, zorder=0)
        if label:
            ax.text((start + end) / 2, 1.01, p.name, transform=ax.get_xaxis_transform(), ha="center",
                    va="bottom", fontsize=8, color="#b22222" if p.name == "fault" else "#555555")  # fmt: skip
    ax.grid(True, alpha=0.3)


def over_time(frame: pd.DataFrame, phases: Sequence[Phase], origin: float, title: str) -> Figure:
    """Latency percentiles, error ratio and throughput (rows of overview.over_time) over time."""
    fig, (lat, err, rps) = plt.subplots(3, 1, figsize=(11, 7.5), sharex=True)
    x = frame.index.to_numpy(dtype=float)
    for column, style in PERCENTILE_STYLES.items():
        lat.plot(x, frame[column], ls=style, color="#1f77b4", label=column.removesuffix("_ms"))
    lat.set_yscale("log")
    lat.set_ylabel("latency (ms)")
    lat.legend(fontsize=8, loc="upper left")
    err.plot(x, frame["error_ratio"] * 100, color="#d62728")
    err.set_ylabel("failed requests (%)")
    rps.plot(x, frame["rps"], color="#2ca02c")
    rps.set_ylabel("requests / s")
    rps.set_xlabel("seconds since the first phase started")
    for i, ax in enumerate((lat, err, rps)):
        shade_phases(ax, phases, origin, label=i == 0)
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    fig.tight_layout()
    return fig


def panels(
    frames: Sequence[tuple[str, str, pd.DataFrame]], phases: Sequence[Phase], origin: float, title: str
) -> Figure:
    """One panel per (title, y label, wide frame indexed by seconds since origin, a line per column)."""
    fig, axes = plt.subplots(len(frames), 1, figsize=(11, 2.6 * len(frames)), sharex=True, squeeze=False)
    for i, (ax, (panel_title, ylabel, wide)) in enumerate(zip(axes[:, 0], frames, strict=True)):
        for column in wide.columns:
            ax.plot(wide.index, wide[column], lw=1.2, label=str(column))
        ax.set_title(panel_title, fontsize=9, loc="left", pad=14 if i == 0 else 4)
        ax.set_ylabel(ylabel)
        if len(wide.columns):
            ax.legend(fontsize=7, ncol=5, loc="upper left")
        shade_phases(ax, phases, origin, label=i == 0)
    axes[-1, 0].set_xlabel("seconds since the first phase started")
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    fig.tight_layout()
    return fig


def ecdf(samples: Mapping[str, np.ndarray], title: str, xlabel: str) -> Figure:
    """Empirical CDFs of several samples (e.g. a journey's latency in baseline and fault), log x."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, values in samples.items():
        values = np.sort(values[np.isfinite(values)])
        if len(values):
            ax.step(
                values,
                np.arange(1, len(values) + 1) / len(values),
                where="post",
                label=f"{label} (n={len(values)})",
            )
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of requests ≤ x")
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def effect_sizes(table: pd.DataFrame, title: str) -> Figure:
    """Cliff's delta per (journey, metric) of compare.compare_requests; failing metrics in red."""
    rows = table.dropna(subset=["cliffs_delta"])
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.2))
    labels = [f"{j} · {m}" for j, m in rows.index]
    colors = ["#d62728" if failed else "#7f7f7f" for failed in rows["failed"]]
    ax.barh(labels, rows["cliffs_delta"], color=colors)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlim(-1, 1)
    ax.invert_yaxis()
    ax.set_xlabel("Cliff's delta (candidate vs baseline): -1 always lower ... +1 always higher")
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def durations_box(spans: pd.DataFrame, phases: Sequence[str], title: str) -> Figure:
    """Server span durations per service, one box per phase side by side, log y."""
    server = spans[(spans["kind"] == "server") & spans["phase"].isin(phases)]
    services = sorted(server["service"].unique())
    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.8 / max(1, len(phases))
    for i, phase in enumerate(phases):
        data = [
            server.loc[(server["service"] == s) & (server["phase"] == phase), "duration_ms"] for s in services
        ]
        positions = np.arange(len(services)) + (i - (len(phases) - 1) / 2) * width
        keep = [k for k, d in enumerate(data) if len(d)]
        if not keep:
            continue
        box = ax.boxplot([data[k] for k in keep], positions=positions[keep], widths=width * 0.9,
                         patch_artist=True, showfliers=False)  # fmt: skip
        for patch in box["boxes"]:
            patch.set_facecolor(PHASE_COLORS.get(phase, UNKNOWN_PHASE_COLOR))
        ax.plot([], [], color=PHASE_COLORS.get(phase, UNKNOWN_PHASE_COLOR), lw=8, label=phase)
    ax.set_xticks(np.arange(len(services)), services)
    ax.set_yscale("log")
    ax.set_ylabel("server span duration (ms)")
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def grouped_bars(table: pd.DataFrame, title: str, xlabel: str) -> Figure:
    """Horizontal bars, one group per row, one bar per column (e.g. where_time_went per phase)."""
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(table) + 1.5))
    height = 0.8 / max(1, len(table.columns))
    y = np.arange(len(table))
    for i, column in enumerate(table.columns):
        ax.barh(y + i * height, table[column], height=height, label=str(column),
                color=PHASE_COLORS.get(str(column)), edgecolor="#555555", lw=0.5)  # fmt: skip
    ax.set_yticks(y + height * (len(table.columns) - 1) / 2, table.index)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _depth_first(spans: Sequence[SpanRecord]) -> list[tuple[SpanRecord, int]]:
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for s in spans:
        children.setdefault(s.parent_id if s.parent_id in ids else None, []).append(s)
    out: list[tuple[SpanRecord, int]] = []
    stack = [(s, 0) for s in sorted(children.get(None, []), key=lambda s: -s.start_ns)]
    seen: set[str] = set()
    while stack:
        span, depth = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        out.append((span, depth))
        stack.extend(
            (c, depth + 1) for c in sorted(children.get(span.span_id, []), key=lambda s: -s.start_ns)
        )
    return out


def waterfall(spans: Sequence[SpanRecord], path: Sequence[Section], title: str) -> Figure:
    """A trace's spans as bars (grey; errors outlined red), its critical-path sections drawn over them."""
    rows = _depth_first(spans)
    t0 = min(s.start_ns for s in spans)
    index = {span.span_id: i for i, (span, _) in enumerate(rows)}
    fig, ax = plt.subplots(figsize=(11, 0.28 * len(rows) + 1.2))
    for i, (span, _) in enumerate(rows):
        ax.barh(i, span.duration_ms, left=(span.start_ns - t0) / 1e6, color="#c7c7c7",
                edgecolor="#d62728" if span.error else "none", height=0.7)  # fmt: skip
    for section in path:
        if section.span_id in index:
            ax.barh(index[section.span_id], section.ms, left=(section.start_ns - t0) / 1e6, color="#ff7f0e",
                    height=0.35)  # fmt: skip
    ax.set_yticks(
        range(len(rows)), ["  " * depth + f"{s.service}: {s.name}" for s, depth in rows], fontsize=7
    )
    ax.invert_yaxis()
    ax.set_xlabel("ms since the trace started (orange: the critical path)")
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def stacked_counts(table: pd.DataFrame, title: str, ylabel: str) -> Figure:
    """Stacked bars: one bar per row (e.g. phase), one segment per column (e.g. log level)."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    bottom = np.zeros(len(table))
    for column in table.columns:
        values = table[column].to_numpy(dtype=float)
        ax.bar(table.index.astype(str), values, bottom=bottom, label=str(column))
        bottom += values
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def heatmap(
    table: pd.DataFrame, title: str, fmt: str = "{:.0%}", vmax: float | None = None, cmap: str = "Reds"
) -> Figure:
    """A small table as a heatmap with each cell's value written in it (NaN cells blank). `vmax`: the
    value at which the colour saturates (e.g. 1.0 for a budget: spent is spent)."""
    fig, ax = plt.subplots(figsize=(1.3 * len(table.columns) + 2, 0.45 * len(table) + 1.5))
    if table.empty:
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        ax.set_title(title, fontsize=10, loc="left")
        return fig
    values = table.to_numpy(dtype=float)
    top = vmax if vmax is not None else float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
    ax.imshow(np.nan_to_num(values, nan=0.0), cmap=cmap, aspect="auto", vmin=0.0, vmax=top or 1.0)
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):
            dark = top and v / top > 0.6
            ax.text(
                c, r, fmt.format(v), ha="center", va="center", fontsize=8, color="white" if dark else "black"
            )
    ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns])
    ax.set_yticks(range(len(table.index)), [str(i) for i in table.index])
    ax.set_xlabel(str(table.columns.name or ""))
    ax.set_ylabel(str(table.index.name or ""))
    ax.set_title(title, fontsize=10, loc="left")
    fig.tight_layout()
    return fig
