"""Every query of a dashboard JSON, and Grafana's substitution of variables into them, so that tests and
benchmarks run the exact text Grafana would send. Pure: dashboard dicts and values in, strings out.

What is modelled of Grafana (public/app/plugins/datasource/prometheus, rangeUtil):
- $__interval: range / max data points rounded to a "nice" step, never below the datasource's scrape
  interval (jsonData.timeInterval) nor below range / 11000 (Prometheus' point limit);
- $__rate_interval: max($__interval + scrape interval, 4 x scrape interval);
- $__range: the range in whole seconds, e.g. "900s";
- a multi-value or include-All variable used in a query is regex-escaped (each special character gets a
  PromQL-escaped backslash) and joined as (a|b); All is the variable's allValue, unescaped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sample_shop.basics import prom_duration

# Grafana's roundInterval table above 1 s: (upper bound of the raw interval, rounded interval), in ms.
_NICE_STEPS_MS: tuple[tuple[float, int], ...] = (
    (1_500, 1_000), (3_500, 2_000), (7_500, 5_000), (12_500, 10_000), (17_500, 15_000),
    (25_000, 20_000), (45_000, 30_000), (90_000, 60_000), (210_000, 120_000), (450_000, 300_000),
    (750_000, 600_000), (1_050_000, 900_000), (1_500_000, 1_200_000), (2_700_000, 1_800_000),
    (5_400_000, 3_600_000), (9_000_000, 7_200_000), (16_200_000, 10_800_000), (32_400_000, 21_600_000),
)  # fmt: skip
PROMETHEUS_MAX_POINTS = 11_000
DEFAULT_MAX_DATA_POINTS = 1_000  # a panel about 1000 px wide
BUILTIN_VARIABLES = frozenset({"__interval", "__interval_ms", "__rate_interval", "__range", "__range_s",
                               "__range_ms", "__from", "__to", "__auto"})  # fmt: skip
# $name, ${name} and ${name:format}; [[name]] is deprecated and not used by our dashboards.
VARIABLE_RE = re.compile(r"\$(?:\{(?P<braced>\w+)(?::\w+)?\}|(?P<plain>\w+))")
_REGEX_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|]")


class QueryError(ValueError):
    """A query cannot be interpolated: it names a variable the dashboard does not define."""


@dataclass(frozen=True)
class Query:
    """One query as it sits in the dashboard, with where it came from."""

    dashboard: str  # dashboard uid
    panel_id: int | None  # None for annotations and variables
    title: str  # panel title, annotation name or variable name
    ref_id: str
    datasource: str  # prometheus, loki, jaeger
    expr: str  # PromQL/LogQL, or a Jaeger query as "key=value ..."
    instant: bool = False
    exemplar: bool = False
    kind: str = "panel"  # panel, annotation, variable

    @property
    def where(self) -> str:
        what = f"{self.panel_id} {self.title!r}" if self.panel_id is not None else repr(self.title)
        return f"{self.dashboard}: {self.kind} {what} query {self.ref_id}"


def _panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # panels inside a collapsed row


def _jaeger_text(target: Mapping[str, Any]) -> str:
    keys = ("queryType", "service", "operation", "tags", "minDuration", "maxDuration", "limit", "query")
    return " ".join(f"{k}={target[k]}" for k in keys if k in target)


def queries(dashboard: Mapping[str, Any]) -> list[Query]:
    """Every query of the dashboard: panel targets, annotations (not Grafana's built-in one) and
    query variables."""
    uid = str(dashboard.get("uid", "?"))
    found: list[Query] = []
    for panel in _panels(dashboard):
        panel_ds = (panel.get("datasource") or {}).get("type", "")
        for target in panel.get("targets", []):
            ds_type = (target.get("datasource") or {}).get("type", panel_ds)
            text = _jaeger_text(target) if ds_type == "jaeger" else str(target.get("expr", ""))
            found.append(
                Query(
                    dashboard=uid,
                    panel_id=panel.get("id"),
                    title=str(panel.get("title", "")),
                    ref_id=str(target.get("refId", "")),
                    datasource=ds_type,
                    expr=text,
                    instant=bool(target.get("instant")) and not target.get("range"),
                    exemplar=bool(target.get("exemplar")),
                )
            )
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("builtIn"):
            continue
        ds_type = (annotation.get("datasource") or {}).get("type", "")
        name, expr = str(annotation.get("name")), str(annotation.get("expr", ""))
        found.append(Query(uid, None, name, "annotation", ds_type, expr, kind="annotation"))
    for variable in variables(dashboard):
        if variable.get("type") == "query":
            ds_type = (variable.get("datasource") or {}).get("type", "")
            name, expr = str(variable["name"]), variable_query(variable)
            found.append(Query(uid, None, name, "variable", ds_type, expr, kind="variable"))
    return found


def variables(dashboard: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(dashboard.get("templating", {}).get("list", []))


def variable_query(variable: Mapping[str, Any]) -> str:
    query = variable.get("query", "")
    return str(query.get("query", "")) if isinstance(query, Mapping) else str(query)


@dataclass(frozen=True)
class LabelValuesQuery:
    """`label_values(selector, label)` of a Prometheus query variable."""

    selector: str
    label: str


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>.*?)\s*,\s*(?P<label>\w+)\s*\)\s*$", re.S)


def parse_label_values(query: str) -> LabelValuesQuery:
    match = _LABEL_VALUES.match(query)
    if not match:
        raise QueryError(f"not a label_values(selector, label) query: {query!r}")
    return LabelValuesQuery(match["selector"], match["label"])


def referenced(text: str) -> set[str]:
    """Names of the variables a query uses ($name, ${name}, ${name:fmt})."""
    return {m["braced"] or m["plain"] for m in VARIABLE_RE.finditer(text)}


# --------------------------------------------------------------------------------------------------
# Time variables
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeVariables:
    range_s: float
    interval_s: float
    rate_interval_s: float

    def values(self) -> dict[str, str]:
        return {
            "__interval": prom_duration(self.interval_s),
            "__interval_ms": str(round(self.interval_s * 1000)),
            "__rate_interval": prom_duration(self.rate_interval_s),
            "__range": f"{round(self.range_s)}s",
            "__range_s": str(round(self.range_s)),
            "__range_ms": str(round(self.range_s * 1000)),
            "__auto": prom_duration(self.interval_s),
        }


def nice_interval_ms(raw_ms: float) -> int:
    for upper, nice in _NICE_STEPS_MS:
        if raw_ms < upper:
            return nice
    return 86_400_000 * max(1, round(raw_ms / 86_400_000))


def time_variables(
    range_s: float, scrape_interval_s: float, max_data_points: int = DEFAULT_MAX_DATA_POINTS
) -> TimeVariables:
    """What Grafana computes for a Prometheus panel over `range_s` seconds (see module docstring)."""
    if range_s <= 0 or scrape_interval_s <= 0 or max_data_points <= 0:
        raise ValueError("range, scrape interval and max data points must be positive")
    interval_s = nice_interval_ms(range_s * 1000 / max_data_points) / 1000
    interval_s = max(interval_s, scrape_interval_s)
    safe = range_s / PROMETHEUS_MAX_POINTS
    interval_s = max(interval_s, math.ceil(safe) if safe > 1 else safe)
    rate_s = max(interval_s + scrape_interval_s, 4 * scrape_interval_s)
    return TimeVariables(range_s, interval_s, rate_s)


# --------------------------------------------------------------------------------------------------
# Template variables
# --------------------------------------------------------------------------------------------------


ALL = object()  # the "All" selection of an include-All variable


def regex_escape(value: str) -> str:
    r"""Grafana's prometheusSpecialRegexEscape: `{` -> `\\{` inside the PromQL string, i.e. `\{` for RE2."""
    return _REGEX_SPECIAL.sub(lambda m: "\\\\" + m.group(0), value.replace("\\", "\\\\\\\\"))


def format_value(variable: Mapping[str, Any], selection: object) -> str:
    """The text Grafana puts in a Prometheus query for `selection` (a value, a list of values, or ALL)."""
    if selection is ALL:
        if not variable.get("includeAll"):
            raise QueryError(f"variable {variable.get('name')!r} has no All option")
        return str(variable.get("allValue") or ".*")
    values = [selection] if isinstance(selection, str) else list(selection)  # type: ignore[call-overload]
    if not (variable.get("multi") or variable.get("includeAll")):
        if len(values) != 1:
            raise QueryError(f"variable {variable.get('name')!r} takes one value, got {values}")
        return str(values[0])
    escaped = [regex_escape(str(v)) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(
    text: str,
    dashboard: Mapping[str, Any],
    selections: Mapping[str, object],
    time: TimeVariables,
) -> str:
    """`text` with every variable replaced. `selections` maps a variable name to a value, a list of
    values or ALL; a variable without a selection takes its dashboard default (current value)."""
    by_name = {str(v["name"]): v for v in variables(dashboard)}
    builtins = time.values()

    def replace(match: re.Match[str]) -> str:
        name = match["braced"] or match["plain"]
        if name in builtins:
            return builtins[name]
        variable = by_name.get(name)
        if variable is None:
            raise QueryError(f"{dashboard.get('uid')}: {match.group(0)} is not a variable of the dashboard")
        selection = selections[name] if name in selections else default_selection(variable)
        return format_value(variable, selection)

    return VARIABLE_RE.sub(replace, text)


def default_selection(variable: Mapping[str, Any]) -> object:
    current = variable.get("current") or {}
    value = current.get("value")
    if value in ("$__all", ["$__all"]):
        return ALL
    if value is None:
        raise QueryError(f"variable {variable.get('name')!r} has no default; select a value")
    return value


def selection_sets(
    dashboard: Mapping[str, Any], resolved: Mapping[str, Sequence[str]]
) -> list[dict[str, object]]:
    """Realistic selections to test: the defaults (All for multi-value variables), then each multi-value
    variable in turn set to its first resolved value (`resolved`: variable -> values Prometheus lists)."""
    sets: list[dict[str, object]] = [{}]
    for variable in variables(dashboard):
        name = str(variable["name"])
        if variable.get("includeAll") and resolved.get(name):
            sets.append({name: [resolved[name][0]]})
    return sets


# --------------------------------------------------------------------------------------------------
# Selectors and grouping labels of a PromQL expression (enough for the dashboards' own queries)
# --------------------------------------------------------------------------------------------------

_SELECTOR = re.compile(r"(?P<name>[a-zA-Z_:][\w:]*)?\{(?P<body>(?:[^{}\"]|\"(?:[^\"\\]|\\.)*\")*)\}")
_MATCHER = re.compile(r'\s*(?P<label>\w+)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*(?:,|$)')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\((?P<labels>[^()]*)\)")


@dataclass(frozen=True)
class Selector:
    name: str  # "" when the name is given as a __name__ matcher
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)

    @property
    def labels(self) -> set[str]:
        return {label for label, _, _ in self.matchers if label != "__name__"}

    def name_regex(self) -> str | None:
        return next((v for label, op, v in self.matchers if label == "__name__" and op == "=~"), None)


def selectors(expr: str) -> list[Selector]:
    """The series selectors of a PromQL expression, `name{...}` or `{__name__=~"..."}`. Every selector
    of our dashboards has braces (promql.sel writes `{}` even without matchers), so none is missed."""
    found = []
    for match in _SELECTOR.finditer(expr):
        body = match["body"].strip()
        matchers = []
        position = 0
        while position < len(body):
            m = _MATCHER.match(body, position)
            if m is None:
                raise QueryError(f"cannot read the label matchers {body!r} in {expr!r}")
            matchers.append((m["label"], m["op"], m["value"]))
            position = m.end()
        found.append(Selector(match["name"] or "", tuple(matchers)))
    return found


def grouping_labels(expr: str) -> set[str]:
    """Labels named in by (...), without (...), on (...) and ignoring (...) clauses."""
    return {
        label.strip()
        for match in _GROUPING.finditer(expr)
        for label in match["labels"].split(",")
        if label.strip()
    }
