"""What several dashboards share: the tag that links them, the public service, the "No data" hints and
the links from a latency point to its traces."""

from __future__ import annotations

from dashboards.grafana import JAEGER, Json, explore_url, jaeger_search, link
from sample_shop.topology import SERVICES, SHOP_JOB

TAG = "chaos-shop"
GATEWAY = next(s.name for s in SERVICES.values() if s.public)
SHOP = SHOP_JOB

# "No data" texts say what to do: the comparable projects' most frequent complaint is a blank panel
# that does not say why.
NO_TRAFFIC = "No requests in this range: start load (`make load`, or `testbed load --profile steady`)"
NO_STACK = "No data: is the stack up (`make up`) and is this the right Prometheus datasource?"
NO_LOAD = "The load generator is not running: `make load` (its metrics exist only while it runs)"
NO_SLO_RULES = (
    "No SLO series: Prometheus has not loaded the rules of slo/specs (`testbed slo rules`), or no traffic"
)
NO_EXPERIMENT = "No experiment phase in this range: run one with `make experiment`"


def trace_links(service: str = "${__field.labels.service}") -> list[Json]:
    """From a latency point to Jaeger: the service's traces in the dashboard's range, and those slower
    than the point's value (the spike). Opens Explore with the Jaeger datasource. `service` is the
    series' own label by default, or a fixed name for panels whose series carry none."""
    return [
        link(
            f"Traces of {service} in this time range",
            explore_url(JAEGER, jaeger_search(service), "${__from}", "${__to}"),
        ),
        link(
            f"Traces of {service} slower than ${{__value.text}}",
            explore_url(
                JAEGER, jaeger_search(service, min_duration="${__value.raw}s"), "${__from}", "${__to}"
            ),
        ),
    ]
