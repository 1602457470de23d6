"""The comparable projects' published or measured figures (their sources: bench/README.md, "The comparable
projects' figures"),
shown beside ours in RESULTS.md. Rows are keyed; a Figure with `compare="<row>"` fills our column."""

from __future__ import annotations

PROJECTS: tuple[str, ...] = ("OpenTelemetry Demo", "Online Boutique", "Sock Shop")

# row key -> (row label, {project: their figure})
ROWS: dict[str, tuple[str, dict[str, str]]] = {
    "services": (
        "services",
        {
            "OpenTelemetry Demo": "18 + Kafka, Valkey, Postgres, flagd",
            "Online Boutique": "10 + redis",
            "Sock Shop": "14",
        },
    ),
    "memory": (
        "memory footprint",
        {
            "OpenTelemetry Demo": "6 GB stated, ~3.5 GB measured",
            "Online Boutique": "4 CPU / 4 GiB",
            "Sock Shop": "8 GB / 4 CPU",
        },
    ),
    "start": (
        "start to ready",
        {"OpenTelemetry Demo": "~90 s from prebuilt images", "Online Boutique": "-", "Sock Shop": "-"},
    ),
    "load": (
        "load generator",
        {
            "OpenTelemetry Demo": "Locust, 5 users (~1 req/s)",
            "Online Boutique": "Locust FastHttpUser, 10 users (~2 req/s)",
            "Sock Shop": "old Locust",
        },
    ),
    "faults": (
        "faults",
        {
            "OpenTelemetry Demo": "15 feature flags",
            "Online Boutique": "extra-latency env var",
            "Sock Shop": "none built in",
        },
    ),
    "slo": (
        "SLO checks, notebooks",
        {"OpenTelemetry Demo": "none", "Online Boutique": "none", "Sock Shop": "none"},
    ),
}
