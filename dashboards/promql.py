"""PromQL spelling for the dashboards: selectors built from the topology's metric specs (a label the
metric does not carry is refused when the dashboards are built, not discovered as "No data" in Grafana)
and the few expression shapes every panel reuses. Pure string building."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sample_shop.topology import MetricSpec

# Labels the scrape adds to every series (`replica` only on the shop job; topology/runtime docs).
TARGET_LABELS: tuple[str, ...] = ("job", "instance", "replica")
RATE = "$__rate_interval"  # Grafana: max(interval + scrape interval, 4 x scrape interval); 4 s at 1 s scrapes


@dataclass(frozen=True)
class Match:
    """A label matcher's operator and value, e.g. Match("=~", "$service")."""

    op: str
    value: str

    def __post_init__(self) -> None:
        if self.op not in ("=", "!=", "=~", "!~"):
            raise ValueError(f"unknown matcher operator {self.op!r}")


def regex(value: str) -> Match:
    return Match("=~", value)


def suffixes(spec: MetricSpec) -> tuple[str, ...]:
    return ("_bucket", "_count", "_sum") if spec.kind == "histogram" else ("",)


def sel(spec: MetricSpec, suffix: str = "", /, **matchers: str | Match) -> str:
    """`name{label="v", other=~"re"}` for a topology metric; labels must be ones the series carries."""
    if suffix not in suffixes(spec):
        raise ValueError(f"{spec.name}: a {spec.kind} has no series suffix {suffix!r}")
    allowed = set(spec.labels) | set(TARGET_LABELS) | ({"le"} if suffix == "_bucket" else set())
    return raw_sel(spec.name + suffix, allowed, **matchers)


def raw_sel(metric: str, allowed: Iterable[str] | None = None, /, **matchers: str | Match) -> str:
    """A selector for a series that is not a topology metric (process_*, up, slo:* records, ALERTS)."""
    parts = []
    known = None if allowed is None else set(allowed)
    for label, matcher in matchers.items():
        if known is not None and label not in known:
            raise ValueError(f"{metric} has no label {label!r} (it has {', '.join(sorted(known))})")
        m = matcher if isinstance(matcher, Match) else Match("=", matcher)
        parts.append(f'{label}{m.op}"{m.value}"')
    return f"{metric}{{{', '.join(parts)}}}"


def by(labels: Iterable[str]) -> str:
    return ", ".join(labels)


def sum_by(labels: Iterable[str], expr: str) -> str:
    grouping = by(labels)
    return f"sum by ({grouping}) ({expr})" if grouping else f"sum({expr})"


def max_by(labels: Iterable[str], expr: str) -> str:
    return f"max by ({by(labels)}) ({expr})"


def rate(selector: str, window: str = RATE) -> str:
    return f"rate({selector}[{window}])"


def sum_rate(labels: Iterable[str], selector: str, window: str = RATE) -> str:
    return sum_by(labels, rate(selector, window))


def quantile(q: float, labels: Iterable[str], bucket_selector: str, window: str = RATE) -> str:
    """histogram_quantile over the buckets summed by `labels` (plus le)."""
    return f"histogram_quantile({q:g}, {sum_rate([*labels, 'le'], bucket_selector, window)})"


def or_zero(expr: str) -> str:
    """For counts and rates whose truthful answer with no events is 0 (a counter child that was never
    incremented does not exist, so without this the panel would say "No data")."""
    return f"{expr} or vector(0)"


def zero_filled(labels: Iterable[str], part: str, whole: str) -> str:
    """`part` where it exists, 0 for every group of `whole` where it does not (both already aggregated by
    `labels`): the error rate of a service without errors is 0, not missing."""
    return f"({part}) or ({whole} * 0)" if by(labels) else f"({part}) or vector(0)"


def ratio(labels: Iterable[str], bad: str, total: str) -> str:
    """Share of bad in total per group; 0 when a group has traffic but no bad events, nothing (NaN)
    when it has no traffic at all (a ratio of nothing is not zero)."""
    labels = list(labels)
    return f"({zero_filled(labels, bad, total)}) / {total}"
