"""OpenSLO loading: the shipped SLO set, and invalid files rejected naming file, field and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sample_shop import topology
from sample_shop.basics import parse_duration
from slo.selector import SelectorError, bucket_label, check_selector, parse_selector
from slo.spec import SpecError, load_slos

VALID = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: checkout-availability-test
  labels:
    journey: checkout
spec:
  service: shop
  indicator:
    metadata:
      name: checkout-availability-test-sli
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec:
              query: 'shop_http_requests_total{service="gateway", route="/api/checkout", status_class!="5xx"}'
        total:
          metricSource:
            type: Prometheus
            spec:
              query: 'shop_http_requests_total{service="gateway", route="/api/checkout"}'
  timeWindow:
    - duration: 1h
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - displayName: ok
      target: 0.99
"""

LATENCY_GOOD = 'shop_http_request_duration_seconds_bucket{service="gateway", route="/api/checkout", le="LE"}'
LATENCY_TOTAL = 'shop_http_request_duration_seconds_count{service="gateway", route="/api/checkout"}'


def write(tmp_path: Path, text: str, name: str = "slo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path | list[Path]) -> list:
    with pytest.raises(SpecError) as info:
        load_slos(path if isinstance(path, list) else [path])
    return info.value.problems


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_shipped_slos_cover_every_journey_from_both_sides() -> None:
    slos = load_slos()
    assert len(slos) == 17  # 16 for the journeys and the order e-mails' (slo/specs/notifications.yaml)
    kinds = {(s.journey, s.source, s.kind) for s in slos}
    for journey in topology.JOURNEY_ROUTES:
        for source in ("server", "client"):
            for kind in ("availability", "latency"):
                assert (journey, source, kind) in kinds
    for s in slos:
        assert 0 < s.target < 1 and s.period_s == 3600
        if s.journey is None:  # the order e-mails': no route, one metric of orders
            assert s.name == "order-email-latency" and s.threshold_s == 30.0 and not s.gated
            continue
        # every route of the journey and nothing else is selected (no drift from topology)
        label = "route" if s.source == "server" else "name"
        m = s.total.matcher(label)
        assert m is not None
        routes = {r for _, r in topology.JOURNEY_ROUTES[s.journey]}
        known = {r for rs in topology.JOURNEY_ROUTES.values() for _, r in rs}
        assert {r for r in known if m.matches(r)} == routes, s.name
    assert [s.name for s in slos if s.critical] == [
        "checkout-availability-client",
        "checkout-availability-gateway",
    ]


def test_valid_file_loads(tmp_path: Path) -> None:
    (slo,) = load_slos([write(tmp_path, VALID)])
    assert slo.name == "checkout-availability-test"
    assert slo.kind == "availability" and slo.source == "server"
    assert slo.target == 0.99 and slo.error_budget == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("old", "new", "field", "needle", "message"),
    [
        ("kind: SLO", "kind: Service", "kind", "kind:", "must be 'SLO' or 'SLI'"),
        ("apiVersion: openslo/v1", "apiVersion: openslo/v2", "apiVersion", "apiVersion", "openslo/v1"),
        ("      target: 0.99", "      target: 1.5", "spec.objectives[0].target", "target:", "(0, 1)"),
        ("      target: 0.99", "      target: 0", "spec.objectives[0].target", "target:", "(0, 1)"),
        ("      target: 0.99", "      target: 1", "spec.objectives[0].target", "target:", "(0, 1)"),
        (
            "      target: 0.99",
            "      target: high",
            "spec.objectives[0].target",
            "target:",
            "must be a number",
        ),
        ("  service: shop\n", "", "spec.service", "spec:", "required field is missing"),
        (
            "    - duration: 1h",
            "    - duration: 1 hour",
            "spec.timeWindow[0].duration",
            "duration:",
            "cannot parse",
        ),
        (
            "budgetingMethod: Occurrences",
            "budgetingMethod: Timeslices",
            "spec.budgetingMethod",
            "budgeting",
            "Occurrences",
        ),
        ("  objectives:", "  objectivez:", "spec.objectivez", "objectivez", "unknown or unsupported field"),
        (
            'shop_http_requests_total{service="gateway", route="/api/checkout"}',
            'shop_requests_total{service="gateway"}',
            "spec.indicator.spec.ratioMetric.total.metricSource.spec.query",
            "shop_requests_total",
            "unknown metric",
        ),
        (
            'route="/api/checkout"}',
            'route="/api/chekout"}',
            "spec.indicator.spec.ratioMetric.total.metricSource.spec.query",
            "chekout",
            "selects nothing",
        ),
        (
            'status_class!="5xx"}',
            'status_class!="5xx", colour="red"}',
            "spec.indicator.spec.ratioMetric.good.metricSource.spec.query",
            "colour",
            "no label 'colour'",
        ),
        ("journey: checkout", "journey: shopping", "metadata.labels.journey", "journey:", "unknown journey"),
        (
            "    journey: checkout\n",
            '    journey: checkout\n  annotations:\n    testbed/alpha: "0.7"\n',
            "metadata.annotations.testbed/alpha",
            "testbed/alpha",
            "must be between 0 and 0.5",
        ),
        (
            "    journey: checkout\n",
            '    journey: checkout\n  annotations:\n    testbed/beta: "often"\n',
            "metadata.annotations.testbed/beta",
            "testbed/beta",
            "expected a number",
        ),
        (
            "    journey: checkout\n",
            '    journey: checkout\n  annotations:\n    testbed/zone: "2,0.5"\n',
            "metadata.annotations.testbed/zone",
            "testbed/zone",
            "low < high",
        ),
        (
            "    journey: checkout\n",
            '    journey: checkout\n  annotations:\n    testbed/zone: "0.5,200"\n',
            "metadata.annotations.testbed/zone",
            "testbed/zone",
            "every event is bad",
        ),
    ],
)
def test_invalid_files_name_file_field_and_line(
    tmp_path: Path, old: str, new: str, field: str, needle: str, message: str
) -> None:
    assert old in VALID
    text = VALID.replace(old, new, 1)
    path = write(tmp_path, text)
    problems = problems_of(path)
    hit = [p for p in problems if p.path == field]
    assert hit, f"expected a problem at {field}, got {[str(p) for p in problems]}"
    assert message in hit[0].message
    assert hit[0].file == str(path)
    assert hit[0].line == line_of(text, needle)
    assert f"{path}:{hit[0].line}: {field}:" in str(SpecError(problems))


@pytest.mark.parametrize("le", ["0.3", "0.30", "0.5", "1", "2.5"])
def test_latency_threshold_on_a_bucket_boundary_loads_and_is_normalised(tmp_path: Path, le: str) -> None:
    text = VALID.replace(
        'shop_http_requests_total{service="gateway", route="/api/checkout", status_class!="5xx"}',
        LATENCY_GOOD.replace("LE", le),
    ).replace('shop_http_requests_total{service="gateway", route="/api/checkout"}', LATENCY_TOTAL)
    (slo,) = load_slos([write(tmp_path, text)])
    assert slo.kind == "latency"
    assert slo.threshold_s == float(le)
    assert slo.good is not None and slo.good.matcher("le").value == bucket_label(float(le))


@pytest.mark.parametrize("le", ["0.35", "3", "abc"])
def test_latency_threshold_not_a_bucket_is_rejected(tmp_path: Path, le: str) -> None:
    text = VALID.replace(
        'shop_http_requests_total{service="gateway", route="/api/checkout", status_class!="5xx"}',
        LATENCY_GOOD.replace("LE", le),
    ).replace('shop_http_requests_total{service="gateway", route="/api/checkout"}', LATENCY_TOTAL)
    path = write(tmp_path, text)
    (problem,) = problems_of(path)
    assert problem.path == "spec.indicator.spec.ratioMetric.good.metricSource.spec.query"
    assert "bucket boundar" in problem.message
    assert problem.line == line_of(text, "le=")


def test_good_must_be_a_subset_of_total(tmp_path: Path) -> None:
    text = VALID.replace(
        'route="/api/checkout", status_class!="5xx"}', 'route="/api/cart", status_class!="5xx"}'
    )
    (problem,) = problems_of(write(tmp_path, text))
    assert problem.path.endswith("ratioMetric.good") and "subset" in problem.message


def test_missing_fields_and_several_problems_reported_together(tmp_path: Path) -> None:
    text = "apiVersion: openslo/v1\nkind: SLO\nmetadata:\n  name: x\nspec:\n  service: shop\n"
    problems = problems_of(write(tmp_path, text))
    fields = {p.path for p in problems}
    assert {"spec.indicator", "spec.timeWindow", "spec.budgetingMethod", "spec.objectives"} <= fields


def test_broken_yaml_and_duplicate_keys(tmp_path: Path) -> None:
    (broken,) = problems_of(write(tmp_path, "apiVersion: openslo/v1\nkind: [SLO\n"))
    assert "invalid YAML" in broken.message and broken.line is not None
    dup = VALID.replace("  service: shop\n", "  service: shop\n  service: other\n")
    problems = problems_of(write(tmp_path, dup, "dup.yaml"))
    assert any("duplicate key" in p.message and p.line == line_of(dup, "service: other") for p in problems)


def test_sli_reference_across_files(tmp_path: Path) -> None:
    sli = """\
apiVersion: openslo/v1
kind: SLI
metadata:
  name: checkout-ok
spec:
  ratioMetric:
    counter: true
    bad:
      metricSource:
        type: Prometheus
        spec:
          query: 'shop_http_requests_total{service="gateway", route="/api/checkout", status_class="5xx"}'
    total:
      metricSource:
        type: Prometheus
        spec:
          query: 'shop_http_requests_total{service="gateway", route="/api/checkout"}'
"""
    start = VALID.index("  indicator:")
    end = VALID.index("  timeWindow:")
    slo_text = VALID[:start] + "  indicatorRef: checkout-ok\n" + VALID[end:]
    (slo,) = load_slos([write(tmp_path, sli, "sli.yaml"), write(tmp_path, slo_text, "slo.yaml")])
    assert slo.bad is not None and slo.good is None
    missing = slo_text.replace("indicatorRef: checkout-ok", "indicatorRef: nope")
    (problem,) = problems_of(write(tmp_path, missing, "missing.yaml"))
    assert problem.path == "spec.indicatorRef" and "no SLI named 'nope'" in problem.message


def test_missing_file_and_duplicate_names(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path / "nope.yaml")
    assert "does not exist" in problem.message
    a, b = write(tmp_path, VALID, "a.yaml"), write(tmp_path, VALID, "b.yaml")
    problems = problems_of([a, b])
    assert any("also used in" in p.message for p in problems)


def test_selector_parser() -> None:
    sel = parse_selector("""load_requests_total{name=~'/api/cart|/api/cart/items', outcome="ok",}""")
    assert sel.metric == "load_requests_total"
    assert [(m.label, m.op, m.value) for m in sel.matchers] == [
        ("name", "=~", "/api/cart|/api/cart/items"),
        ("outcome", "=", "ok"),
    ]
    assert parse_selector(sel.promql()) == sel
    for bad in ("sum(rate(x[5m]))", 'x{a="1"} / y', 'x{a="1"', "x{a}", 'x{a="1", a="2"}'):
        with pytest.raises(SelectorError):
            parse_selector(bad)
    with pytest.raises(SelectorError, match="gauge"):
        check_selector(parse_selector("shop_http_inflight_requests"))
    with pytest.raises(SelectorError, match="regular expression"):
        check_selector(parse_selector('shop_http_requests_total{route=~"(unclosed"}'))


def test_parse_duration() -> None:
    assert parse_duration("1h") == 3600
    assert parse_duration("1h30m") == 5400
    assert parse_duration("2w") == 14 * 86400
    for bad in ("", "1 hour", "0s", "h"):
        with pytest.raises(ValueError):
            parse_duration(bad)
