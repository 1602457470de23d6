"""Prometheus vector selectors as the SLO files write them (`metric{label="value", ...}`): parsing,
rendering and checking against the topology's metric names, label sets and latency buckets.

An SLO's good/total/bad query is exactly one vector selector of a counter (or of a histogram's
`_bucket` / `_count` series). Restricting the language to that keeps every query checkable at load time
(unknown metric or label, a `le` that is not a bucket boundary, a route that does not exist) and lets
the evaluator and the rule generator wrap it uniformly in `sum(increase(...))` / `sum(rate(...))`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from sample_shop import topology
from slo.errors import SloError

MATCH_OPS = ("=~", "!~", "!=", "=")  # longest first, for the scanner
SCRAPE_LABELS = ("job", "instance", "replica")  # added by Prometheus' scrape configuration
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class SelectorError(SloError, ValueError):
    """A selector that cannot be parsed or does not fit the topology."""


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str

    def promql(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.label}{self.op}"{escaped}"'

    def matches(self, candidate: str) -> bool:
        if self.op == "=":
            return candidate == self.value
        if self.op == "!=":
            return candidate != self.value
        hit = re.fullmatch(self.value, candidate) is not None  # Prometheus anchors regexes
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...] = ()

    def promql(self) -> str:
        return f"{self.metric}{{{', '.join(m.promql() for m in self.matchers)}}}"

    def without(self, label: str) -> frozenset[Matcher]:
        return frozenset(m for m in self.matchers if m.label != label)

    def matcher(self, label: str) -> Matcher | None:
        return next((m for m in self.matchers if m.label == label), None)


def parse_selector(text: str) -> Selector:
    """Parse `name{a="x", b=~"y|z"}` (double, single or backtick quotes). Raises SelectorError."""
    s = text.strip()
    m = _IDENT.match(s)
    if not m:
        raise SelectorError(f"expected a metric name at the start of {text!r} (a single vector selector)")
    metric, pos = m.group(0), m.end()
    matchers: list[Matcher] = []

    def skip_ws(p: int) -> int:
        while p < len(s) and s[p].isspace():
            p += 1
        return p

    pos = skip_ws(pos)
    if pos < len(s) and s[pos] == "{":
        pos = skip_ws(pos + 1)
        while pos < len(s) and s[pos] != "}":
            lm = _LABEL.match(s, pos)
            if not lm:
                raise SelectorError(f"expected a label name at position {pos} of {text!r}")
            label, pos = lm.group(0), skip_ws(lm.end())
            op = next((o for o in MATCH_OPS if s.startswith(o, pos)), None)
            if op is None:
                raise SelectorError(f"expected one of = != =~ !~ after label {label!r} in {text!r}")
            value, pos = _read_string(s, skip_ws(pos + len(op)), text)
            matchers.append(Matcher(label, op, value))
            pos = skip_ws(pos)
            if pos < len(s) and s[pos] == ",":
                pos = skip_ws(pos + 1)
            elif pos < len(s) and s[pos] != "}":
                raise SelectorError(f"expected ',' or '}}' at position {pos} of {text!r}")
        if pos >= len(s):
            raise SelectorError(f"missing closing '}}' in {text!r}")
        pos = skip_ws(pos + 1)
    if pos != len(s):
        raise SelectorError(
            f"unexpected {s[pos:]!r} after the selector in {text!r}: an SLO query is one vector selector "
            'such as shop_http_requests_total{service="gateway"}; the evaluator adds sum(increase(...))'
        )
    labels = [mt.label for mt in matchers]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise SelectorError(f"label(s) {', '.join(dupes)} matched more than once in {text!r}")
    return Selector(metric, tuple(matchers))


def _read_string(s: str, pos: int, text: str) -> tuple[str, int]:
    if pos >= len(s) or s[pos] not in "\"'`":
        raise SelectorError(f"expected a quoted label value at position {pos} of {text!r}")
    quote, pos = s[pos], pos + 1
    out: list[str] = []
    while pos < len(s):
        ch = s[pos]
        if ch == quote:
            return "".join(out), pos + 1
        if ch == "\\" and quote != "`" and pos + 1 < len(s):
            nxt = s[pos + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            pos += 2
            continue
        out.append(ch)
        pos += 1
    raise SelectorError(f"unterminated string in {text!r}")


# --------------------------------------------------------------------------------------------------
# Checking a selector against the topology
# --------------------------------------------------------------------------------------------------

_METRICS = {spec.name: spec for spec in topology.ALL_METRICS}
KNOWN_ROUTES: tuple[str, ...] = tuple(
    dict.fromkeys(route for routes in topology.JOURNEY_ROUTES.values() for _, route in routes)
)
KNOWN_METHODS: tuple[str, ...] = tuple(
    dict.fromkeys(method for routes in topology.JOURNEY_ROUTES.values() for method, _ in routes)
)
# Label values that are enumerable from the topology; a matcher on them must select at least one.
_ENUMERATED: dict[str, tuple[str, ...]] = {
    "service": topology.SERVICE_NAMES,
    "status_class": topology.STATUS_CLASSES,
    "route": (*KNOWN_ROUTES, topology.UNMATCHED_ROUTE),
    "name": KNOWN_ROUTES,  # the load generator names requests by gateway route template
    "method": KNOWN_METHODS,
    "synthetic": ("true", "false"),
}


def bucket_label(threshold_s: float) -> str:
    """The `le` label value exactly as prometheus_client writes the bucket boundary (1.0 -> "1.0")."""
    return str(floatToGoString(threshold_s))


def counter_series_names() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Series names an SLO may count: every counter, and every histogram's _bucket and _count.
    Maps series name -> (role, allowed labels) with role 'counter', 'bucket' or 'count'."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for spec in _METRICS.values():
        labels = (*spec.labels, *SCRAPE_LABELS)
        if spec.kind == "counter":
            out[spec.name] = ("counter", labels)
        elif spec.kind == "histogram":
            out[f"{spec.name}_bucket"] = ("bucket", (*labels, "le"))
            out[f"{spec.name}_count"] = ("count", labels)
    return out


def family(series_name: str) -> str:
    for suffix in ("_bucket", "_count"):
        if series_name.endswith(suffix) and series_name[: -len(suffix)] in _METRICS:
            return series_name[: -len(suffix)]
    return series_name


def check_selector(sel: Selector) -> tuple[Selector, float | None]:
    """Validate against the topology. Returns the selector with `le` normalised to the exporter's spelling
    and the latency threshold (for `_bucket` selectors). Raises SelectorError saying what to write instead."""
    names = counter_series_names()
    if sel.metric not in names:
        hint = ""
        if sel.metric in _METRICS:
            kind = _METRICS[sel.metric].kind
            hint = f" ({sel.metric} is a {kind}; count events with a counter or a histogram's _bucket/_count)"
        raise SelectorError(
            f"unknown metric {sel.metric!r}{hint}; SLOs can count: {', '.join(sorted(names))}"
        )
    role, allowed = names[sel.metric]
    threshold: float | None = None
    matchers: list[Matcher] = []
    for m in sel.matchers:
        if m.label not in allowed:
            raise SelectorError(
                f"{sel.metric} has no label {m.label!r}; its labels are: {', '.join(allowed)}"
            )
        if m.op in ("=~", "!~"):
            try:
                re.compile(m.value)
            except re.error as exc:
                message = f"invalid regular expression {m.value!r} for label {m.label}: {exc}"
                raise SelectorError(message) from None
        if m.label == "le":
            threshold, m = _check_le(m, _METRICS[family(sel.metric)].buckets)
        elif m.label in _ENUMERATED and m.op in ("=", "=~"):
            known = _ENUMERATED[m.label]
            if not any(m.matches(v) for v in known):
                raise SelectorError(
                    f"{m.label}{m.op}{m.value!r} selects nothing the shop exports; "
                    f"known values: {', '.join(known)}"
                )
        matchers.append(m)
    if role == "bucket" and threshold is None:
        buckets = ", ".join(bucket_label(b) for b in _METRICS[family(sel.metric)].buckets)
        raise SelectorError(f'{sel.metric} needs le="<threshold>", one of the bucket boundaries: {buckets}')
    return Selector(sel.metric, tuple(matchers)), threshold


def _check_le(m: Matcher, boundaries: tuple[float, ...]) -> tuple[float, Matcher]:
    buckets = ", ".join(bucket_label(b) for b in boundaries)
    if m.op != "=":
        raise SelectorError(f'the latency threshold must be an exact match le="<boundary>", not le{m.op}')
    try:
        value = float(m.value)
    except ValueError:
        message = f"le={m.value!r} is not a number; use one of the bucket boundaries: {buckets}"
        raise SelectorError(message) from None
    if value not in boundaries:
        raise SelectorError(
            f"latency threshold le={m.value!r} is not a histogram bucket boundary, so it selects nothing; "
            f"use one of: {buckets} (seconds)"
        )
    return value, Matcher("le", "=", bucket_label(value))
