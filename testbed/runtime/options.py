"""Validation of what a user asks `up` for. Pure: strings in, values or InputError out."""

from __future__ import annotations

from urllib.parse import urlsplit

from sample_shop.topology import MAX_REPLICAS, SERVICE_NAMES
from testbed.runtime.base import RESILIENCE_PROFILES, TELEMETRY_MODES, InputError, UpOptions


def parse_replicas(text: str | None) -> dict[str, int]:
    """`"catalog=2,payment=3"` -> replica count of every service (unnamed services get 1)."""
    counts = dict.fromkeys(SERVICE_NAMES, 1)
    if text is None:
        return counts
    if not text.strip():
        raise InputError(
            f"--replicas is empty; give SERVICE=COUNT pairs, e.g. catalog=2 (services: {_names()})"
        )
    seen: set[str] = set()
    for position, item in enumerate(text.split(","), start=1):
        item = item.strip()
        name, sep, raw_count = item.partition("=")
        name, raw_count = name.strip(), raw_count.strip()
        where = f"--replicas item {position} ({item!r})"
        if not sep or not name or not raw_count:
            raise InputError(f"{where}: expected SERVICE=COUNT, e.g. catalog=2")
        if name not in SERVICE_NAMES:
            raise InputError(f"{where}: unknown service {name!r}; valid services: {_names()}")
        if name in seen:
            raise InputError(f"{where}: {name} is given twice")
        try:
            count = int(raw_count)
        except ValueError:
            raise InputError(f"{where}: the count must be a whole number from 1 to {MAX_REPLICAS}") from None
        if not 1 <= count <= MAX_REPLICAS:
            raise InputError(f"{where}: {count} replicas is out of range; allowed 1 to {MAX_REPLICAS}")
        seen.add(name)
        counts[name] = count
    return counts


def format_replicas(counts: dict[str, int]) -> str:
    """The inverse of parse_replicas for the services with more than one replica ("" when all have one)."""
    return ",".join(f"{name}={n}" for name, n in counts.items() if n != 1)


def make_options(
    replicas: str | None = None,
    resilience: str = "resilient",
    telemetry: str = "on",
    timeout_s: float = 60.0,
    extras: bool = True,
    otlp_endpoint: str | None = None,
    trace_files: bool = True,
) -> UpOptions:
    if resilience not in RESILIENCE_PROFILES:
        raise InputError(
            f"--resilience {resilience!r} is not valid; choose one of {', '.join(RESILIENCE_PROFILES)}"
        )
    if telemetry not in TELEMETRY_MODES:
        raise InputError(
            f"--telemetry {telemetry!r} is not valid; choose one of {', '.join(TELEMETRY_MODES)}"
        )
    if not 1 <= timeout_s <= 3600:
        raise InputError(f"--timeout {timeout_s:g} is out of range; give seconds from 1 to 3600")
    if otlp_endpoint is not None:
        otlp_endpoint = parse_otlp_endpoint(otlp_endpoint)
    elif not trace_files:
        raise InputError("--no-trace-files needs --otlp-endpoint URL: traces would go nowhere")
    return UpOptions(
        replicas=parse_replicas(replicas),
        resilience=resilience,  # type: ignore[arg-type]
        telemetry=telemetry,  # type: ignore[arg-type]
        timeout_s=float(timeout_s),
        extras=extras,
        otlp_endpoint=otlp_endpoint,
        trace_files=trace_files,
    )


def parse_otlp_endpoint(text: str) -> str:
    """An OTLP/HTTP base URL (`http://127.0.0.1:4318`; the exporter appends /v1/traces), without a
    trailing slash."""
    parsed = urlsplit(text.strip())
    hint = "give the OTLP/HTTP base URL, e.g. --otlp-endpoint http://127.0.0.1:4318 (/v1/traces is appended)"
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InputError(f"--otlp-endpoint {text!r} is not an http(s) URL; {hint}")
    try:
        parsed.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise InputError(f"--otlp-endpoint {text!r} has an invalid port; {hint}") from None
    if parsed.path.rstrip("/").endswith("/v1/traces") or parsed.query:
        raise InputError(f"--otlp-endpoint {text!r}: {hint}")
    return text.strip().rstrip("/")


def _names() -> str:
    return ", ".join(SERVICE_NAMES)
