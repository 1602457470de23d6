"""`python -m dashboards.show [DASHBOARD] [--var NAME=VALUE] [--range 15m] [--prometheus URL]`: every query
of the dashboards with Grafana's variables substituted, and a link that opens it in Prometheus' own
/graph page, for a stack without Grafana. Loki and Jaeger queries are printed too, marked as such.

Exit status 0, or 2 with a message naming the bad argument (unknown dashboard or variable, bad range)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from dashboards import queries as dq
from dashboards.build import BUILDERS, DASHBOARDS_DIR
from sample_shop.topology import PROMETHEUS_PORT, SCRAPE_INTERVAL_S, port_offset

_RANGE = re.compile(r"^(?P<n>[1-9]\d*)(?P<unit>[smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class UsageError(ValueError):
    """A bad argument; the message says which and what is valid."""


def parse_range(text: str) -> int:
    match = _RANGE.match(text.strip())
    if not match:
        raise UsageError(f"--range: {text!r} is not a duration like 15m, 1h, 90s or 2d")
    return int(match["n"]) * _UNIT_S[match["unit"]]


def parse_vars(items: Sequence[str], dashboard: dict[str, Any]) -> dict[str, object]:
    """NAME=VALUE (VALUE may be a,b for several, or All) -> selections for queries.interpolate."""
    known = {str(v["name"]): v for v in dq.variables(dashboard)}
    chosen: dict[str, object] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"--var {item!r}: expected NAME=VALUE, e.g. --var service=gateway")
        if name not in known:
            valid = ", ".join(known) or "none"
            raise UsageError(f"--var {item!r}: {dashboard['uid']} has no variable {name!r} (it has: {valid})")
        chosen[name] = dq.ALL if value == "All" else value.split(",")
    return chosen


def load_dashboards(names: Sequence[str]) -> list[dict[str, Any]]:
    by_uid = {}
    for file in BUILDERS:
        doc = json.loads(Path(DASHBOARDS_DIR, file).read_text(encoding="utf-8"))
        by_uid[doc["uid"]] = doc
    unknown = [n for n in names if n not in by_uid]
    if unknown:
        raise UsageError(f"unknown dashboard {unknown[0]!r}; known: {', '.join(sorted(by_uid))}")
    return [by_uid[n] for n in names] if names else list(by_uid.values())


def graph_url(prometheus: str, expr: str, range_s: int, instant: bool) -> str:
    params = {"g0.expr": expr, "g0.tab": "1" if instant else "0", "g0.range_input": f"{range_s}s"}
    return f"{prometheus.rstrip('/')}/graph?{urlencode(params)}"


def render(dashboards: list[dict[str, Any]], variables: Sequence[str], range_s: int, prometheus: str) -> str:
    time = dq.time_variables(range_s, SCRAPE_INTERVAL_S)
    lines = []
    for dashboard in dashboards:
        selections = parse_vars(variables, dashboard) if variables and len(dashboards) == 1 else {}
        lines.append(f"# {dashboard['title']} ({dashboard['uid']})")
        for q in dq.queries(dashboard):
            if q.kind != "panel":
                continue
            expr = dq.interpolate(q.expr, dashboard, selections, time)
            lines.append(
                f"- {q.title} [{q.ref_id}]" + ("" if q.datasource == "prometheus" else f" ({q.datasource})")
            )
            lines.append(f"    {expr}")
            if q.datasource == "prometheus":
                lines.append(f"    {graph_url(prometheus, expr, range_s, q.instant)}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.show", description=__doc__.splitlines()[0])
    parser.add_argument("dashboard", nargs="*", help="dashboard uid(s); default: all")
    parser.add_argument("--var", action="append", default=[], help="NAME=VALUE (one dashboard only)")
    parser.add_argument("--range", default="15m", help="time range, as the dashboard's picker (default 15m)")
    parser.add_argument(
        "--prometheus",
        default=None,
        help="Prometheus URL for the /graph links (default 127.0.0.1:9090 plus TESTBED_PORT_OFFSET)",
    )
    args = parser.parse_args(argv)
    try:
        if args.var and len(args.dashboard) != 1:
            raise UsageError("--var needs exactly one dashboard, e.g. `shop-overview --var service=gateway`")
        prometheus = args.prometheus or f"http://127.0.0.1:{PROMETHEUS_PORT + port_offset()}"
        text = render(load_dashboards(args.dashboard), args.var, parse_range(args.range), prometheus)
    except (UsageError, dq.QueryError, ValueError) as exc:
        print(f"python -m dashboards.show: error: {exc}", file=sys.stderr)
        return 2
    try:
        print(text)
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
