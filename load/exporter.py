"""Client-side metrics of the load generator, exposed for Prometheus (job `load`) while the load runs.

Names, labels and buckets come from `sample_shop.topology` (LOAD_REQUESTS, LOAD_DURATION, LOAD_USERS,
LATENCY_BUCKETS_S), so the SLO rules and dashboards that read them cannot drift. The registry is private
to the load process: no process/GC collectors, only what the topology declares."""

from __future__ import annotations

import errno
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from sample_shop.topology import (
    LATENCY_BUCKETS_S,
    LOAD_CPU,
    LOAD_DURATION,
    LOAD_REQUESTS,
    LOAD_USERS,
    MetricSpec,
)


def _base_name(spec: MetricSpec) -> str:
    # prometheus_client appends `_total` to counters itself
    return spec.name.removesuffix("_total") if spec.kind == "counter" else spec.name


class ClientMetrics:
    """The client metrics in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            _base_name(LOAD_REQUESTS), LOAD_REQUESTS.help, LOAD_REQUESTS.labels, registry=self.registry
        )
        self.duration = Histogram(
            LOAD_DURATION.name,
            LOAD_DURATION.help,
            LOAD_DURATION.labels,
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.users = Gauge(LOAD_USERS.name, LOAD_USERS.help, LOAD_USERS.labels, registry=self.registry)
        self.cpu = Gauge(LOAD_CPU.name, LOAD_CPU.help, LOAD_CPU.labels, registry=self.registry)

    def observe(self, name: str, method: str, response_time_ms: float, ok: bool) -> None:
        self.requests.labels(name=name, method=method, outcome="ok" if ok else "fail").inc()
        self.duration.labels(name=name, method=method).observe(response_time_ms / 1000.0)

    def set_users(self, count: int) -> None:
        self.users.set(count)

    def set_cpu(self, share_of_one_core: float) -> None:
        self.cpu.set(share_of_one_core)

    def wsgi_app(self) -> Any:
        return make_wsgi_app(self.registry)


class MetricsServer:
    """Serves ClientMetrics on 127.0.0.1:port (loopback only) from a gevent WSGI server."""

    def __init__(self, metrics: ClientMetrics, port: int, host: str = "127.0.0.1") -> None:
        from gevent.pywsgi import WSGIServer  # the load process runs on gevent (Locust)

        self.address = (host, port)
        self._server = WSGIServer(self.address, metrics.wsgi_app(), log=None, error_log=None)

    def start(self) -> None:
        try:
            self._server.start()
        except OSError as exc:
            host, port = self.address
            why = "the port is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise OSError(
                f"cannot serve load metrics on {host}:{port}: {why}. Is another load run active "
                "(`testbed load --stop` stops a background one)? Or pass --metrics-port."
            ) from exc

    def stop(self) -> None:
        self._server.stop(timeout=1)
