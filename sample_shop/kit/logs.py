"""JSON log lines on stdout (the supervisor writes them to <state>/logs/<service>-<replica>.log):
timestamp, level (lower case), service, replica, logger, trace_id, span_id, message, plus the `fields` a
caller passes in `extra={"fields": {...}}`. The one log format of the stack: the shop's replicas, the fault
controller (`python -m sample_shop.faultd`, so Loki on kind gets JSON) and the local supervisor (replica
null) all write it. The trace and span ids come from the current OpenTelemetry span, so a log line
written while a request is served carries that request's trace.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

from opentelemetry import trace

from sample_shop.basics import utc_iso

_STD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, replica: int | None) -> None:
        super().__init__()
        self.service = service
        self.replica = replica

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": utc_iso(record.created),
            "level": record.levelname.lower(),
            "service": self.service,
            "replica": self.replica,
            "logger": record.name,
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"] = format(context.trace_id, "032x")
            line["span_id"] = format(context.span_id, "016x")
        line["message"] = record.getMessage()
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line.setdefault(key, value)
        for key, value in record.__dict__.items():  # plain extra={...} keys, e.g. from libraries
            if key not in _STD_ATTRS and key != "fields" and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def setup_logging(
    service: str, replica: int | None, level: str = "info", stream: TextIO | None = None
) -> None:
    """Route every logger (ours, uvicorn's, SQLAlchemy's) through one JSON handler on stdout."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(service, replica))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # the shop middleware writes access lines
