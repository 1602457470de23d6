"""Generated Prometheus rules: `promtool check rules` and `promtool test rules` run for real."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from slo.promql import ALERT_NAME
from slo.rules import (
    RULES_FILE_NAME,
    check_rules,
    promtool_path,
    rule_groups,
    slo_labels,
    write_prometheus_rules,
)
from slo.selector import bucket_label
from slo.spec import SPECS_DIR, SpecError, load_slos

GATEWAY = 'service="gateway",route="/api/checkout",method="POST",synthetic="true",job="shop"'
CHECKOUT_LE = bucket_label(
    next(s.threshold_s for s in load_slos() if s.name == "checkout-latency-gateway" and s.threshold_s)
)
STEPS = 240  # seconds of input, one sample per second
FAULT_AT = 120  # from here half of the checkouts fail and every checkout is slower than its threshold


def _counter(per_step: list[int], missing_until: int = 0) -> str:
    """promtool values: cumulative counter from per-step increments; '_' (no sample) before missing_until."""
    out, total = [], 0
    for i, n in enumerate(per_step):
        total += n
        out.append("_" if i < missing_until else str(total))
    return " ".join(out)


def _series(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": values}


def checkout_fault_series() -> list[dict[str, str]]:
    ok = [10 if i < FAULT_AT else 5 for i in range(STEPS)]
    err = [0 if i < FAULT_AT else 5 for i in range(STEPS)]
    fast = [10 if i < FAULT_AT else 0 for i in range(STEPS)]  # requests under the latency threshold
    total = [10] * STEPS
    return [
        _series("shop_http_requests_total", f'{GATEWAY},status_class="2xx"', _counter(ok)),
        # like prometheus_client, the 5xx series only appears with the first error
        _series("shop_http_requests_total", f'{GATEWAY},status_class="5xx"', _counter(err, FAULT_AT)),
        _series(
            "shop_http_request_duration_seconds_bucket",
            f'{GATEWAY},status_class="2xx",le="{CHECKOUT_LE}"',
            _counter(fast),
        ),
        _series("shop_http_request_duration_seconds_count", f'{GATEWAY},status_class="2xx"', _counter(total)),
    ]


def expected_alert(name: str, severity: str) -> dict[str, Any]:
    (slo,) = [s for s in load_slos() if s.name == name]
    group = rule_groups(slo)[0]
    rule = next(r for r in group["rules"] if r.get("alert") and r["labels"]["severity"] == severity)
    return {"exp_labels": {**slo_labels(slo), "severity": severity}, "exp_annotations": rule["annotations"]}


def run_promtool_test(tmp_path: Path, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    rules = write_prometheus_rules(
        tmp_path / "rules", [SPECS_DIR / "gateway.yaml"]
    )  # the gateway SLOs suffice
    test_file = tmp_path / "rules-test.yml"
    test_file.write_text(
        yaml.safe_dump({"rule_files": [str(p) for p in rules], "evaluation_interval": "1s", "tests": tests})
    )
    return subprocess.run(
        [promtool_path(), "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_generated_rules_pass_promtool_check(tmp_path: Path) -> None:
    paths = write_prometheus_rules(tmp_path)
    assert [p.name for p in paths] == [RULES_FILE_NAME]
    assert "SUCCESS" in check_rules(paths)
    groups = yaml.safe_load(paths[0].read_text())["groups"]
    assert len(groups) == 2 * len(load_slos())
    records = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    for name in (
        "slo:sli_error:ratio_rate4s",
        "slo:sli_error:ratio_rate1h",
        "slo:current_burn_rate:ratio",
        "slo:period_burn_rate:ratio",
        "slo:period_error_budget_remaining:ratio",
        "slo:objective:ratio",
        "slo:error_budget:ratio",
        "slo:time_period:seconds",
    ):
        assert name in records


def test_burn_rate_alerts_fire_on_errors_and_on_latency(tmp_path: Path) -> None:
    tests = [
        {
            "interval": "1s",
            "input_series": checkout_fault_series(),
            "alert_rule_test": [
                {"eval_time": f"{FAULT_AT - 20}s", "alertname": ALERT_NAME, "exp_alerts": []},
                {
                    "eval_time": f"{FAULT_AT + 30}s",
                    "alertname": ALERT_NAME,
                    "exp_alerts": [
                        expected_alert("checkout-availability-gateway", "page"),
                        expected_alert("checkout-availability-gateway", "ticket"),
                        expected_alert("checkout-latency-gateway", "page"),
                        expected_alert("checkout-latency-gateway", "ticket"),
                    ],
                },
            ],
            "promql_expr_test": [
                {
                    "expr": 'slo:sli_error:ratio_rate4s{slo="checkout-availability-gateway"}',
                    "eval_time": f"{FAULT_AT + 30}s",
                    "exp_samples": [
                        {
                            "labels": 'slo:sli_error:ratio_rate4s{slo="checkout-availability-gateway",'
                            'journey="checkout",source="server",sli_kind="availability",window="4s"}',
                            "value": 0.5,
                        }
                    ],
                },
                {
                    "expr": 'slo:current_burn_rate:ratio{slo="checkout-latency-gateway"}',
                    "eval_time": f"{FAULT_AT + 30}s",
                    "exp_samples": [
                        {
                            "labels": 'slo:current_burn_rate:ratio{slo="checkout-latency-gateway",'
                            'journey="checkout",source="server",sli_kind="latency"}',
                            "value": 20,  # all slow: error ratio 1 / budget 0.05
                        }
                    ],
                },
            ],
        }
    ]
    proc = run_promtool_test(tmp_path, tests)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_total_outage_without_any_good_series_still_pages(tmp_path: Path) -> None:
    """The `or vector(0)` guard: when no request ever succeeded there is no good series at all."""
    tests = [
        {
            "interval": "1s",
            "input_series": [
                _series("shop_http_requests_total", f'{GATEWAY},status_class="5xx"', _counter([10] * 60)),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "30s",
                    "alertname": ALERT_NAME,
                    "exp_alerts": [
                        expected_alert("checkout-availability-gateway", "page"),
                        expected_alert("checkout-availability-gateway", "ticket"),
                    ],
                }
            ],
        }
    ]
    proc = run_promtool_test(tmp_path, tests)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zero_traffic_never_alerts(tmp_path: Path) -> None:
    idle = " ".join(["100"] * 60)  # counters exist but do not move
    tests = [
        {
            "interval": "1s",
            "input_series": [
                _series("shop_http_requests_total", f'{GATEWAY},status_class="2xx"', idle),
                _series("shop_http_requests_total", f'{GATEWAY},status_class="5xx"', idle),
            ],
            "alert_rule_test": [{"eval_time": "40s", "alertname": ALERT_NAME, "exp_alerts": []}],
        }
    ]
    proc = run_promtool_test(tmp_path, tests)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_test_can_fail(tmp_path: Path) -> None:
    """Control: expecting a page before the fault must fail promtool, or the tests above prove nothing."""
    tests = [
        {
            "interval": "1s",
            "input_series": checkout_fault_series(),
            "alert_rule_test": [
                {
                    "eval_time": f"{FAULT_AT - 20}s",
                    "alertname": ALERT_NAME,
                    "exp_alerts": [expected_alert("checkout-availability-gateway", "page")],
                }
            ],
        }
    ]
    proc = run_promtool_test(tmp_path, tests)
    assert proc.returncode != 0


def test_invalid_slo_file_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: openslo/v1\nkind: SLO\nmetadata:\n  name: x\n")
    with pytest.raises(SpecError, match=r"bad\.yaml"):
        write_prometheus_rules(tmp_path / "rules", [bad])
    assert not (tmp_path / "rules" / RULES_FILE_NAME).exists()
