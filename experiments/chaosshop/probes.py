"""Chaos Toolkit probes of the shop: SLIs of the SLOs in slo/specs/, error ratios, latency quantiles,
retry amplification and process memory from Prometheus (through slo's Prometheus I/O, which turns
Prometheus' strings into numbers), the active faults, and the stack's health.

Windows. A probe judges the traffic of the last `window_s` seconds; with `since_phase`, everything since
that phase of this experiment began; with `during_phase`, that phase alone (so the check after the method
can judge the fault phase). The window never reaches back before this experiment's load started.

No data. Once this experiment's load runs, a window with fewer than `min_events` events raises (an
experiment without traffic proves nothing, so it fails). Before the load has started - the steady-state
check that precedes the method - there is no traffic of this experiment to judge: SLI probes then answer
`{"judged": false, "sli": 1.0, "why": ...}` and leave that check to the health probes."""

from __future__ import annotations

import functools
import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from chaosshop import runstate
from chaosshop.settings import Configuration, ConfigurationError, control, number, stack
from sample_shop.topology import (
    BREAKER_STATE,
    CLIENT_REQUESTS,
    CLIENT_RETRIES,
    HTTP_DURATION,
    HTTP_REQUESTS,
    SCRAPE_INTERVAL_S,
    SERVICES,
    SHOP_JOB,
)
from slo.prom import Prometheus
from slo.promql import quantile_at, sum_increase_at
from slo.selector import Matcher, Selector
from slo.spec import SLO, load_slos

__all__ = [
    "active_faults",
    "breaker_open",
    "client_retry_ratio",
    "error_ratio",
    "kubernetes_context",
    "latency_quantile",
    "process_memory_mb",
    "replicas_up",
    "slo_sli",
    "stack_healthy",
    "stack_target",
]

MIN_WINDOW_S = int(4 * SCRAPE_INTERVAL_S)  # shorter windows see too few scrapes to compute an increase


@functools.cache
def _slos() -> dict[str, SLO]:
    return {s.name: s for s in load_slos()}


def _slo(name: str) -> SLO:
    slos = _slos()
    if name not in slos:
        raise ConfigurationError(
            f"slo: unknown SLO {name!r}; defined in slo/specs/: {', '.join(sorted(slos))}"
        )
    return slos[name]


@dataclass(frozen=True)
class TrafficWindow:
    """The traffic a probe judges, as its common arguments ask: `seconds` up to `at` (unix seconds),
    whether this experiment's load has run, and the fewest events that make an answer."""

    seconds: int
    at: float
    load_ran: bool
    min_events: int

    @classmethod
    def of(
        cls, window_s: Any, since_phase: str | None, during_phase: str | None, min_events: Any
    ) -> TrafficWindow:
        """The last `window_s` seconds; or from the start of `since_phase` to now; or exactly
        `during_phase` (to now while it runs). A phase that has not begun yet leaves the last `window_s`
        seconds. Never before this experiment's load started."""
        if since_phase and during_phase:
            raise ConfigurationError("give since_phase or during_phase, not both")
        needed = int(number(min_events, "min_events", 1, 1e9))
        run = runstate.current()
        now = time.time()
        end = min(now, run.load_stopped_at) if run.load_stopped_at else now
        start = end - number(window_s, "window_s", MIN_WINDOW_S, 86_400)
        wanted = since_phase or during_phase
        if wanted:
            phase = next((p for p in reversed(run.phases) if p.name == wanted), None)
            if phase is not None:
                start = phase.start
                if during_phase and phase.end is not None:
                    end = min(end, phase.end)
        load_ran = run.load_started_at is not None
        if run.load_started_at is not None:
            start = max(start, run.load_started_at)
        return cls(max(MIN_WINDOW_S, math.ceil(end - start)), end, load_ran, needed)

    def events(self, prom: Prometheus, counter: Selector) -> float:
        """How much `counter` increased in the window (0 when it has no series)."""
        return _scalar(prom, sum_increase_at(counter, self.seconds, self.at)) or 0.0


def _prometheus(configuration: Configuration) -> Prometheus:
    return Prometheus(stack(configuration).prometheus_url, timeout_s=10.0)


def _scalar(prom: Prometheus, promql: str, at: float | None = None) -> float | None:
    result = prom.instant(promql, at=at)
    if not result:
        return None
    value = result[0][1]
    return None if math.isnan(value) else value


def slo_sli(
    slo: str,
    window_s: Any = 30,
    since_phase: str | None = None,
    min_events: Any = 10,
    during_phase: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """The SLI of SLO `slo` (a name from slo/specs/) over the window: good / total events. Returns
    {"slo", "sli", "target", "objective_met", "good", "total", "window_s", "judged"}; tolerate it with
    `{type: range, target: sli, range: [min, 1.0]}`."""
    spec = _slo(slo)
    window = TrafficWindow.of(window_s, since_phase, during_phase, min_events)
    seconds, needed = window.seconds, window.min_events
    with _prometheus(configuration) as prom:
        total = window.events(prom, spec.total)
        part = window.events(prom, spec.part)
    good = part if spec.good is not None else total - part
    base = {
        "slo": slo,
        "target": spec.target,
        "window_s": seconds,
        "good": round(good, 3),
        "total": round(total, 3),
    }
    if not window.load_ran:  # other traffic (an earlier experiment's tail) is not this experiment's to judge
        return base | {
            "sli": 1.0,
            "objective_met": True,
            "judged": False,
            "why": "no load ran in this experiment yet: nothing to judge (health probes judge the gate)",
        }
    if total < needed:
        raise RuntimeError(
            f"no data: {total:.0f} events of {slo} in the last {seconds} s, fewer than min_events={needed}. "
            "Is the load running and reaching the journey? (raise users or the window)"
        )
    sli = max(0.0, min(1.0, good / total))
    return base | {"sli": round(sli, 5), "objective_met": sli >= spec.target, "judged": True}


def _check_service(service: str | None) -> None:
    if service is not None and service not in SERVICES:
        raise ConfigurationError(f"service: unknown service {service!r}; valid: {', '.join(SERVICES)}")


def _matchers(**labels: str | None) -> tuple[Matcher, ...]:
    """`label="value"` matchers of the labels given (None: not matched)."""
    return tuple(Matcher(label, "=", value) for label, value in labels.items() if value)


def _server_matchers(service: str | None, route: str | None) -> tuple[Matcher, ...]:
    """The server-side series of `service` (default the gateway), optionally of one route."""
    _check_service(service)
    return _matchers(service=service or "gateway", route=route)


def _measured(value: float | None, events: float, window: TrafficWindow, what: str) -> dict[str, Any]:
    """The common answer of the traffic probes: {"value", "events", "window_s", "judged"}; tolerate it
    with `{type: range, target: value, range: [lo, hi]}`. Before this experiment's load ran: not judged,
    `value` is 0.0, the neutral one (nothing observed)."""
    seconds, needed = window.seconds, window.min_events
    base = {"window_s": seconds, "events": round(events, 3)}
    if not window.load_ran:
        return base | {
            "value": 0.0,
            "judged": False,
            "why": "no load ran in this experiment yet: nothing to judge (health probes judge the gate)",
        }
    if value is None or events < needed:
        raise RuntimeError(f"no data: {events:.0f} {what} in the last {seconds} s (min_events={needed})")
    return base | {"value": round(value, 5), "judged": True}


def error_ratio(
    service: str | None = None,
    route: str | None = None,
    window_s: Any = 30,
    since_phase: str | None = None,
    min_events: Any = 10,
    during_phase: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Share of 5xx answers of `service` (default the gateway), optionally of one route, over the window."""
    matchers = _server_matchers(service, route)
    window = TrafficWindow.of(window_s, since_phase, during_phase, min_events)
    requests = Selector(HTTP_REQUESTS.name, matchers)
    with _prometheus(configuration) as prom:
        total = window.events(prom, requests)
        bad = window.events(prom, Selector(HTTP_REQUESTS.name, (*matchers, *_matchers(status_class="5xx"))))
    ratio = bad / total if total else None
    return _measured(ratio, total, window, f"requests to {requests.promql()}")


def latency_quantile(
    quantile: Any = 0.95,
    service: str | None = None,
    route: str | None = None,
    window_s: Any = 30,
    since_phase: str | None = None,
    min_events: Any = 10,
    during_phase: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """The `quantile` of server-side latency in seconds (histogram_quantile over the window)."""
    q = number(quantile, "quantile", 0.0, 1.0)
    matchers = _server_matchers(service, route)
    window = TrafficWindow.of(window_s, since_phase, during_phase, min_events)
    buckets = Selector(f"{HTTP_DURATION.name}_bucket", matchers)
    count = Selector(f"{HTTP_DURATION.name}_count", matchers)
    with _prometheus(configuration) as prom:
        value = _scalar(prom, quantile_at(q, buckets, window.seconds, window.at))
        events = window.events(prom, count)
    return _measured(value, events, window, f"requests to {count.promql()}")


def client_retry_ratio(
    service: str | None = None,
    peer: str | None = None,
    window_s: Any = 30,
    since_phase: str | None = None,
    min_events: Any = 5,
    during_phase: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Retries per outbound call (`shop_client_retries_total` / first attempts) of `service` (all callers
    when not given), optionally towards one `peer`: 0 when nothing is retried, 3 when every call is tried
    4 times."""
    matchers = _matchers(service=service, peer=peer)
    window = TrafficWindow.of(window_s, since_phase, during_phase, min_events)
    calls_sel = Selector(CLIENT_REQUESTS.name, matchers)
    with _prometheus(configuration) as prom:
        retries = window.events(prom, Selector(CLIENT_RETRIES.name, matchers))
        calls = window.events(prom, calls_sel)
    first_attempts = calls - retries  # every attempt is counted in CLIENT_REQUESTS
    ratio = retries / first_attempts if first_attempts > 0 else None
    return _measured(ratio, first_attempts, window, f"outbound calls {calls_sel.promql()}")


def breaker_open(service: str, peer: str, configuration: Configuration = None) -> bool:
    """True when the circuit breaker of `service` towards `peer` is open (or half-open) on any replica."""
    with _prometheus(configuration) as prom:
        value = _scalar(prom, f'max({BREAKER_STATE.name}{{service="{service}", peer="{peer}"}})')
    return bool(value and value >= 1)


def process_memory_mb(service: str, configuration: Configuration = None) -> float:
    """Largest resident memory of `service`'s replicas in MiB (process_resident_memory_bytes)."""
    _check_service(service)
    with _prometheus(configuration) as prom:
        value = _scalar(prom, f'max(process_resident_memory_bytes{{job="{SHOP_JOB}", service="{service}"}})')
    if value is None:
        raise RuntimeError(f'no memory figure for {service}: is it scraped (up{{job="{SHOP_JOB}"}})?')
    return round(value / 2**20, 1)


def replicas_up(service: str, configuration: Configuration = None) -> int:
    """How many replicas of `service` Prometheus scrapes successfully right now."""
    _check_service(service)
    with _prometheus(configuration) as prom:
        value = _scalar(prom, f'sum(up{{job="{SHOP_JOB}", service="{service}"}})')
    return int(value or 0)


def active_faults(service: str | None = None, configuration: Configuration = None) -> int:
    """Number of faults active now (application faults on replicas, pauses, pending), of `service` or of
    the whole stack. 0 is the steady state."""
    with control(configuration) as api:
        listing = api.faults()
    entries = listing.get("faults", []) + listing.get("pending", [])
    return sum(1 for f in entries if service is None or f["service"] == service)


def stack_healthy(configuration: Configuration = None) -> bool:
    """As many shop targets per service are scraped (up == 1) as the stack declares replicas, and the
    gateway answers /readyz. Counted per service, not matched by `replica` label: locally that label is the
    replica's index, on kind the pod's name (pods have no index)."""
    descriptor = stack(configuration)
    try:
        ready = httpx.get(f"{descriptor.gateway_url}/readyz", timeout=5.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False
    with _prometheus(configuration) as prom:
        ups = prom.instant(f'up{{job="{SHOP_JOB}"}}')
    up = Counter(labels.get("service") for labels, value in ups if value == 1)
    wanted = Counter(r.service for r in descriptor.replicas)
    return ready and all(up[service] >= count for service, count in wanted.items())


def stack_target(configuration: Configuration = None) -> str:
    """Where the stack runs: "local" or "kind" (from stack.json). Kind-only experiments tolerate "kind"."""
    return stack(configuration).target


def kubernetes_context() -> str:
    """The Kubernetes context chaostoolkit-kubernetes will use (KUBERNETES_CONTEXT). Unset is an error, so a
    kind-only experiment never acts on whatever cluster the kubeconfig happens to point at; tolerate it with
    `{type: regex, pattern: "^kind-"}`."""
    context = os.environ.get("KUBERNETES_CONTEXT", "").strip()
    if not context:
        raise RuntimeError(
            "KUBERNETES_CONTEXT is not set: set it to the kind cluster's context (kind-chaos-shop for "
            "`make cluster`), so that this experiment cannot act on another cluster"
        )
    return context
