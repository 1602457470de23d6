"""Grafana dashboard JSON, built from small typed pieces: datasource references with the topology's fixed
UIDs, panels, targets, variables, annotations, and a layout that places panels on the 24-column grid.

Only what our dashboards use is modelled; the output follows Grafana's dashboard schema (version 39,
Grafana 10.4 and later migrate it as needed). Pure: dicts in, dicts out."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sample_shop.topology import DATASOURCE_UIDS

SCHEMA_VERSION = 39
GRID_COLUMNS = 24
DEFAULT_TIME_FROM = "now-15m"
DEFAULT_REFRESH = "5s"
# Refresh choices offered in the picker; 5 s is the default and Grafana's own minimum (min_refresh_interval).
REFRESH_INTERVALS = ("5s", "10s", "30s", "1m", "5m")

Json = dict[str, Any]


def ds(kind: str) -> Json:
    """A datasource reference by the fixed UID of topology.DATASOURCE_UIDS."""
    return {"type": kind, "uid": DATASOURCE_UIDS[kind]}


PROMETHEUS = ds("prometheus")
LOKI = ds("loki")
JAEGER = ds("jaeger")
GRAFANA_BUILTIN = {"type": "grafana", "uid": "-- Grafana --"}  # Grafana's own annotation store

# --------------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------------


def prom(
    expr: str, legend: str = "", *, instant: bool = False, exemplar: bool = False, table: bool = False
) -> Json:
    """A Prometheus target. Range queries unless `instant`; `table` for table panels (one row a series)."""
    return {
        "datasource": PROMETHEUS,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "exemplar": exemplar,
        "format": "table" if table else "time_series",
    }


def loki(expr: str, legend: str = "") -> Json:
    target: Json = {"datasource": LOKI, "editorMode": "code", "expr": expr, "queryType": "range"}
    if legend:
        target["legendFormat"] = legend
    return target


def jaeger_search(service: str, *, min_duration: str = "", limit: int = 20) -> Json:
    target: Json = {"datasource": JAEGER, "queryType": "search", "service": service, "limit": limit}
    if min_duration:
        target["minDuration"] = min_duration
    return target


def jaeger_trace(trace_id: str) -> Json:
    return {"datasource": JAEGER, "queryType": "", "query": trace_id}


# --------------------------------------------------------------------------------------------------
# Field configuration
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    value: float | None  # None: the base colour below every step
    color: str


GREEN_ONLY = (Threshold(None, "green"),)


@dataclass(frozen=True)
class ValueMapping:
    """A value mapping: the number a state is exported as, what to show, and its colour."""

    value: int
    text: str
    color: str


@dataclass
class Fields:
    unit: str = "short"
    no_value: str = ""
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    thresholds: Sequence[Threshold] = GREEN_ONLY
    mappings: Sequence[ValueMapping] = ()
    links: Sequence[Json] = ()
    overrides: Sequence[Json] = ()
    color_mode: str = "palette-classic"

    def to_json(self, custom: Json | None = None) -> Json:
        defaults: Json = {
            "unit": self.unit,
            "color": {"mode": self.color_mode},
            "thresholds": {
                "mode": "absolute",
                "steps": [{"value": t.value, "color": t.color} for t in self.thresholds],
            },
            "mappings": _mappings(self.mappings),
            "links": list(self.links),
        }
        if self.no_value:
            defaults["noValue"] = self.no_value
        for key in ("decimals", "min", "max"):
            if getattr(self, key) is not None:
                defaults[key] = getattr(self, key)
        if custom:
            defaults["custom"] = custom
        return {"defaults": defaults, "overrides": list(self.overrides)}


def _mappings(mappings: Sequence[ValueMapping]) -> list[Json]:
    if not mappings:
        return []
    options = {
        str(m.value): {"text": m.text, "color": m.color, "index": index} for index, m in enumerate(mappings)
    }
    return [{"type": "value", "options": options}]


def override_by_regex(pattern: str, properties: Mapping[str, Any]) -> Json:
    """Properties for the series whose display name matches `pattern` (e.g. dashed objective lines)."""
    return {
        "matcher": {"id": "byRegexp", "options": pattern},
        "properties": [{"id": key, "value": value} for key, value in properties.items()],
    }


def link(title: str, url: str) -> Json:
    return {"title": title, "url": url, "targetBlank": False}


def explore_url(datasource: Json, query: Json, range_from: str, range_to: str) -> str:
    """A Grafana Explore URL (the `panes` format of Grafana 10.2+). Grafana variables such as
    ${__field.labels.service} may appear in the query values: they are kept unencoded so Grafana
    replaces them when the link is clicked."""
    pane = {
        "datasource": datasource["uid"],
        "queries": [{"refId": "A", **query}],
        "range": {"from": range_from, "to": range_to},
    }
    text = json.dumps({"a": pane}, separators=(",", ":"))
    # Encode everything but the variable syntax, which Grafana must still see.
    return "/explore?schemaVersion=1&orgId=1&panes=" + quote(text, safe="${}_.:")


# --------------------------------------------------------------------------------------------------
# Panels
# --------------------------------------------------------------------------------------------------

_LEGEND_TABLE = {
    "displayMode": "table",
    "placement": "bottom",
    "showLegend": True,
    "calcs": ["lastNotNull", "max"],
}
_LEGEND_LIST = {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []}


@dataclass
class Panel:
    """One panel before layout: its kind, title, queries and options; `w` x `h` grid cells."""

    type: str
    title: str
    description: str
    targets: list[Json]
    fields: Fields = field(default_factory=Fields)
    options: Json = field(default_factory=dict)
    custom: Json | None = None
    transformations: list[Json] = field(default_factory=list)
    w: int = 12
    h: int = 8
    repeat: str = ""  # a variable: one copy of the panel per selected value

    def to_json(self, panel_id: int, x: int, y: int) -> Json:
        targets = [{"refId": _ref_id(i), **t} for i, t in enumerate(self.targets)]
        panel: Json = {
            "id": panel_id,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "gridPos": {"h": self.h, "w": self.w, "x": x, "y": y},
            "fieldConfig": self.fields.to_json(self.custom),
            "options": self.options,
        }
        if self.targets:  # a text panel queries nothing and names no datasource
            kinds = {t["datasource"]["type"] for t in self.targets}
            if len(kinds) != 1:
                raise ValueError(f"panel {self.title!r} mixes datasources {sorted(kinds)}")
            panel["datasource"] = self.targets[0]["datasource"]
            panel["targets"] = targets
        if self.repeat:
            panel.update(repeat=self.repeat, repeatDirection="h", maxPerRow=4)
        if self.transformations:
            panel["transformations"] = self.transformations
        return panel


def _ref_id(index: int) -> str:
    return chr(ord("A") + index)


def timeseries(
    title: str,
    description: str,
    targets: list[Json],
    fields: Fields,
    *,
    w: int = 12,
    h: int = 8,
    stacked: bool = False,
    legend_table: bool = True,
) -> Panel:
    custom = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 20 if stacked else 8,
        "showPoints": "never",
        "spanNulls": False,  # a gap is a gap: no traffic must not look like a steady line
        "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
        "axisSoftMin": 0,
    }
    options = {
        "legend": _LEGEND_TABLE if legend_table else _LEGEND_LIST,
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return Panel("timeseries", title, description, targets, fields, options, custom, w=w, h=h)


def stat(
    title: str, description: str, targets: list[Json], fields: Fields, *, w: int = 4, h: int = 4
) -> Panel:
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "area",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": "auto",
    }
    return Panel("stat", title, description, targets, fields, options, w=w, h=h)


def bargauge(
    title: str, description: str, targets: list[Json], fields: Fields, *, w: int = 12, h: int = 8
) -> Panel:
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "orientation": "horizontal",
        "displayMode": "gradient",
        "showUnfilled": True,
    }
    return Panel("bargauge", title, description, targets, fields, options, w=w, h=h)


def state_timeline(
    title: str, description: str, targets: list[Json], fields: Fields, *, w: int = 12, h: int = 8
) -> Panel:
    options = {
        "mergeValues": True,
        "showValue": "auto",
        "alignValue": "left",
        "rowHeight": 0.9,
        "legend": _LEGEND_LIST,
        "tooltip": {"mode": "single", "sort": "none"},
    }
    custom = {"lineWidth": 0, "fillOpacity": 80}
    return Panel("state-timeline", title, description, targets, fields, options, custom, w=w, h=h)


def table(
    title: str,
    description: str,
    targets: list[Json],
    fields: Fields,
    columns: Mapping[str, str],
    *,
    w: int = 24,
    h: int = 8,
) -> Panel:
    """Instant table targets merged into one row per label set; `columns` renames `Value #<refId>`."""
    transformations = [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {"excludeByName": {"Time": True}, "renameByName": dict(columns), "indexByName": {}},
        },
    ]
    options = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
    panel = Panel("table", title, description, targets, fields, options, w=w, h=h)
    panel.transformations = transformations
    return panel


def logs(title: str, description: str, targets: list[Json], *, w: int = 24, h: int = 12) -> Panel:
    options = {
        "showTime": True,
        "showLabels": False,
        "wrapLogMessage": True,
        "prettifyLogMessage": False,
        "enableLogDetails": True,
        "dedupStrategy": "none",
        "sortOrder": "Descending",
    }
    return Panel("logs", title, description, targets, Fields(), options, w=w, h=h)


def traces(title: str, description: str, targets: list[Json], *, w: int = 24, h: int = 14) -> Panel:
    return Panel("traces", title, description, targets, Fields(), {}, w=w, h=h)


def trace_search(title: str, description: str, targets: list[Json], fields: Fields, *, w: int = 24) -> Panel:
    options = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
    return Panel("table", title, description, targets, fields, options, w=w, h=10)


def text(title: str, markdown: str, *, w: int = 24, h: int = 3) -> Panel:
    return Panel("text", title, "", [], Fields(), {"mode": "markdown", "content": markdown}, w=w, h=h)


@dataclass
class Row:
    title: str


# --------------------------------------------------------------------------------------------------
# Variables and annotations
# --------------------------------------------------------------------------------------------------

ALL = "$__all"


def query_variable(
    name: str, label: str, query: str, *, multi: bool = True, all_value: str = ".+", description: str = ""
) -> Json:
    """A Prometheus `label_values(...)` variable, refreshed when the time range changes so a label that
    appears during the run (a route first hit later) shows up. Multi-value with All by default; All
    becomes `all_value` (a regex matching every non-empty value) rather than a long alternation."""
    variable: Json = {
        "name": name,
        "label": label,
        "description": description,
        "type": "query",
        "datasource": PROMETHEUS,
        "query": query,
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "regex": "",
        "hide": 0,
        "multi": multi,
        "includeAll": multi,
        "options": [],
        "current": {"selected": True, "text": ["All"], "value": [ALL]} if multi else {},
    }
    if multi:
        variable["allValue"] = all_value
    return variable


def custom_variable(name: str, label: str, values: Sequence[str], *, description: str = "") -> Json:
    """A fixed list (e.g. the topology's services for Loki and Jaeger, which cannot be asked locally)."""
    first = values[0]
    return {
        "name": name,
        "label": label,
        "description": description,
        "type": "custom",
        "query": ",".join(values),
        "hide": 0,
        "multi": False,
        "includeAll": False,
        "options": [{"text": v, "value": v, "selected": v == first} for v in values],
        "current": {"selected": True, "text": first, "value": first},
    }


def textbox_variable(name: str, label: str, default: str = "", *, description: str = "") -> Json:
    return {
        "name": name,
        "label": label,
        "description": description,
        "type": "textbox",
        "query": default,
        "hide": 0,
        "options": [{"text": default, "value": default, "selected": True}],
        "current": {"text": default, "value": default},
    }


BUILTIN_ANNOTATION: Json = {
    "builtIn": 1,
    "datasource": GRAFANA_BUILTIN,
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}


def prom_annotation(
    name: str,
    expr: str,
    *,
    title: str,
    text: str = "",
    tags: Sequence[str] = (),
    color: str,
    step: str = "2s",
) -> Json:
    """A Prometheus annotation: every sample > 0 is an event; events at most `step` apart merge into one
    region (Grafana's Prometheus annotation support), so a phase that lasts a minute is one band."""
    return {
        "name": name,
        "datasource": PROMETHEUS,
        "enable": True,
        "hide": False,
        "iconColor": color,
        "expr": expr,
        "step": step,
        "titleFormat": title,
        "textFormat": text,
        "tagKeys": ",".join(tags),
        "useValueForTime": False,
    }


# --------------------------------------------------------------------------------------------------
# The dashboard
# --------------------------------------------------------------------------------------------------


def layout(items: Iterable[Panel | Row]) -> list[Json]:
    """Place panels left to right, wrapping at 24 columns; a Row starts a new line. Ids count from 1."""
    out: list[Json] = []
    x = y = line_h = 0
    panel_id = 0
    for item in items:
        panel_id += 1
        if isinstance(item, Row):
            y += line_h
            x, line_h = 0, 0
            out.append(
                {
                    "id": panel_id,
                    "type": "row",
                    "title": item.title,
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": GRID_COLUMNS, "x": 0, "y": y},
                    "panels": [],
                }
            )
            y += 1
            continue
        if item.w > GRID_COLUMNS:
            raise ValueError(f"panel {item.title!r} is {item.w} columns wide; the grid has {GRID_COLUMNS}")
        if x + item.w > GRID_COLUMNS:
            y += line_h
            x, line_h = 0, 0
        out.append(item.to_json(panel_id, x, y))
        x += item.w
        line_h = max(line_h, item.h)
    return out


def dashboard(
    *,
    uid: str,
    title: str,
    description: str,
    tags: Sequence[str],
    items: Iterable[Panel | Row],
    variables: Sequence[Json] = (),
    annotations: Sequence[Json] = (),
    links: Sequence[Json] = (),
) -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": list(tags),
        "editable": True,
        "graphTooltip": 1,  # shared crosshair: a spike lines up across panels
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": DEFAULT_TIME_FROM, "to": "now"},
        "timepicker": {"refresh_intervals": list(REFRESH_INTERVALS)},
        "timezone": "browser",
        "refresh": DEFAULT_REFRESH,
        "weekStart": "",
        "links": list(links),
        "annotations": {"list": [BUILTIN_ANNOTATION, *annotations]},
        "templating": {"list": list(variables)},
        "panels": layout(items),
    }


def dashboard_links(tag: str) -> list[Json]:
    """A drop-down linking every dashboard with `tag`, keeping time range and variables."""
    return [
        {
            "title": "Chaos shop",
            "type": "dashboards",
            "tags": [tag],
            "asDropdown": True,
            "includeVars": True,
            "keepTime": True,
            "icon": "external link",
            "targetBlank": False,
            "tooltip": "",
            "url": "",
        }
    ]
