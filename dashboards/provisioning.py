"""Grafana provisioning: the three datasources with the topology's fixed UIDs and the links between them,
and the file provider that loads the dashboards. Pure: returns the documents; build.py writes them.

The URLs are those of a local stack on default ports (a Grafana next to `make up`); deploy/assemble.py
points them at the in-cluster Services for kind and keeps everything else as written here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dashboards.common import TAG
from sample_shop.topology import (
    DATASOURCE_UIDS,
    JAEGER_UI_PORT,
    LOKI_PORT,
    PROMETHEUS_PORT,
    SCRAPE_INTERVAL_S,
)

DEFAULT_URLS: dict[str, str] = {
    "prometheus": f"http://127.0.0.1:{PROMETHEUS_PORT}",
    "loki": f"http://127.0.0.1:{LOKI_PORT}",
    "jaeger": f"http://127.0.0.1:{JAEGER_UI_PORT}",
}
# Where a Grafana reads the dashboard JSON; deploy/assemble.py replaces it with the pod's mount.
DASHBOARDS_PATH = "/var/lib/grafana/dashboards/chaos-shop"
FOLDER = "Chaos shop"

# A trace id as the shop's JSON log lines write it (sample_shop/kit/logs.py): "trace_id":"<32 hex>".
# The same pattern is valid in Go's RE2 (Grafana) and Python's re (tests/dashboards uses it on real lines).
LOG_TRACE_ID_REGEX = r'"trace_id":"([0-9a-f]{32})"'
# Spans to logs: the log streams' `service` label equals the spans' service.name; the trace id is a line
# filter because it is a JSON field locally and structured metadata on kind.
TRACE_TO_LOGS_QUERY = '{${__tags}} |= "${__trace.traceId}"'
TRACE_TO_LOGS_TAGS = [{"key": "service.name", "value": "service"}]


def _seconds(value: float) -> str:
    return f"{value:g}s"


def datasources(urls: Mapping[str, str] = DEFAULT_URLS) -> dict[str, Any]:
    """The datasource provisioning document (before `$` escaping, see escape_env)."""
    uid = DATASOURCE_UIDS
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Shop Prometheus",
                "type": "prometheus",
                "uid": uid["prometheus"],
                "access": "proxy",
                "url": urls["prometheus"],
                "isDefault": True,
                "editable": False,
                "jsonData": {
                    # $__rate_interval = max(interval + this, 4 x this): short windows, data at once
                    "timeInterval": _seconds(SCRAPE_INTERVAL_S),
                    "httpMethod": "POST",
                    "exemplarTraceIdDestinations": [
                        {"name": "trace_id", "datasourceUid": uid["jaeger"], "urlDisplayLabel": "Open trace"}
                    ],
                },
            },
            {
                "name": "Shop Loki",
                "type": "loki",
                "uid": uid["loki"],
                "access": "proxy",
                "url": urls["loki"],
                "editable": False,
                "jsonData": {
                    "maxLines": 1000,
                    "derivedFields": [
                        {
                            "name": "trace_id",
                            "matcherType": "regex",
                            "matcherRegex": LOG_TRACE_ID_REGEX,
                            "datasourceUid": uid["jaeger"],
                            "url": "${__value.raw}",
                            "urlDisplayLabel": "Open trace",
                        }
                    ],
                },
            },
            {
                "name": "Shop Jaeger",
                "type": "jaeger",
                "uid": uid["jaeger"],
                "access": "proxy",
                "url": urls["jaeger"],
                "editable": False,
                "jsonData": {
                    "nodeGraph": {"enabled": True},
                    "tracesToLogsV2": {
                        "datasourceUid": uid["loki"],
                        "spanStartTimeShift": "-1m",
                        "spanEndTimeShift": "1m",
                        "tags": TRACE_TO_LOGS_TAGS,
                        "filterByTraceID": False,
                        "filterBySpanID": False,
                        "customQuery": True,
                        "query": TRACE_TO_LOGS_QUERY,
                    },
                },
            },
        ],
    }


def dashboard_provider(path: str = DASHBOARDS_PATH) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": TAG,
                "orgId": 1,
                "folder": FOLDER,
                "folderUid": TAG,
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": path, "foldersFromFilesStructure": False},
            }
        ],
    }


def escape_env(value: Any) -> Any:
    """Grafana expands $NAME and ${NAME} from the environment in provisioning files; `$$` is a literal
    `$`. Every `$` of a Grafana template (${__value.raw}, ${__trace.traceId}) must be doubled."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: escape_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_env(v) for v in value]
    return value


def unescape_env(value: Any) -> Any:
    """What Grafana sees after expanding a provisioning file that has no environment references."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, dict):
        return {k: unescape_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unescape_env(v) for v in value]
    return value
