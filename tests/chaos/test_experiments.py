"""Every local experiment of the catalog, run for real: `chaos run` (the real CLI) against the session stack
with short phases, real background load, real Prometheus. The journal must end as the header predicts, and
afterwards no fault, policy override or load may be left. The breaker pair must differ in its verdicts, and
repeated kills of orders under checkout load must lose and duplicate no order."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from chaos.helpers import ChaosRun, active_faults, catalog, local_ids, run_chaos
from load.control import current_load
from sample_shop.topology import StackDescriptor

pytestmark = pytest.mark.stack

EXPECTED = {e.id: e.expected for e in catalog()}
OWN_TESTS = {"payment-latency-breaker", "payment-latency-no-breaker", "kill-orders-repeatedly"}
SWEEP = [i for i in local_ids() if i not in OWN_TESTS]
# The spike must fall into the fault phase: load duration 5 x fault, fault after 2 x fault (see its header).
SPIKE = {"warmup_s": 6, "baseline_s": 6, "fault_s": 6, "recovery_s": 12, "load_duration_s": 30}
# Checkouts are a few per cent of the journeys: give the checkout SLIs a fault phase with enough of them.
OVERRIDES: dict[str, dict[str, Any]] = {"load-spike-during-fault": SPIKE, "payment-errors": {"fault_s": 15}}
NOTHING_LEFT = {"faults": [], "pending": [], "desired": [], "policies": []}


def _check_clean_end(run: ChaosRun, stack: StackDescriptor, control: httpx.Client) -> None:
    extension = run.extension()
    assert [p["name"] for p in extension["phases"]] == ["warmup", "baseline", "fault", "recovery"], (
        run.explain()
    )
    assert all(p["end"] for p in extension["phases"])
    assert extension["failed_actions"] == [], run.explain()
    assert [r["status"] for r in run.journal["rollbacks"]] == ["succeeded"] * len(run.journal["rollbacks"])
    assert active_faults(control) == NOTHING_LEFT
    assert current_load(stack.state_dir) is None


@pytest.mark.slow
@pytest.mark.parametrize("experiment_id", SWEEP)
def test_experiment_ends_as_its_header_predicts(
    experiment_id: str, clean_stack: StackDescriptor, control: httpx.Client, tmp_path: Path
) -> None:
    run = run_chaos(experiment_id, tmp_path, **OVERRIDES.get(experiment_id, {}))
    assert run.verdict == EXPECTED[experiment_id], run.explain()
    assert run.returncode == (0 if run.verdict == "completed" else 1), run.explain()
    _check_clean_end(run, clean_stack, control)


def test_the_circuit_breaker_pair_differs_in_its_verdicts(
    clean_stack: StackDescriptor, control: httpx.Client, tmp_path: Path
) -> None:
    """Same fault (payment answers in 2 s), same timeouts and retries; only the breakers differ. The fault
    phase is long enough for checkouts that hang on timeouts (about 10 s each without breakers) to end."""
    runs = {}
    for experiment_id in ("payment-latency-breaker", "payment-latency-no-breaker"):
        runs[experiment_id] = run_chaos(experiment_id, tmp_path, fault_s=18, recovery_s=3)
        _check_clean_end(runs[experiment_id], clean_stack, control)
    with_breaker, without = runs["payment-latency-breaker"], runs["payment-latency-no-breaker"]
    assert with_breaker.verdict == "completed", with_breaker.explain()
    assert without.verdict == "deviated", without.explain()
    probe = "checkout-answers-within-1s-during-fault"
    assert with_breaker.after(probe)["sli"] >= without.after(probe)["sli"] + 0.4


def _load_orders(db: Path) -> pd.DataFrame:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return pd.read_sql_query(
            "SELECT id, user_id, idempotency_key, status, charge_id FROM orders "
            "WHERE idempotency_key LIKE 'load-%'",
            conn,
        )


def test_repeated_kills_of_orders_lose_and_duplicate_no_checkout(
    clean_stack: StackDescriptor, control: httpx.Client, tmp_path: Path
) -> None:
    """Kills orders three times while shoppers check out, then reconciles the shoppers' successful checkouts
    (the load's requests.parquet) with the orders SQLite database: exactly one paid order each (or one
    paid and since cancelled by the load's cancel journey)."""
    db = Path(clean_stack.state_dir) / "data" / "orders.db"
    before = set(_load_orders(db)["id"])
    load_out = tmp_path / "load"
    run = run_chaos(
        "kill-orders-repeatedly", tmp_path, fault_s=12, recovery_s=10, window_s=6, load_out=str(load_out)
    )
    assert run.verdict == EXPECTED["kill-orders-repeatedly"], run.explain()
    _check_clean_end(run, clean_stack, control)
    kills = next(r for r in run.journal["run"] if r["activity"]["name"] == "kill-orders-repeatedly")
    assert len(kills["output"]["kills"]) == 3

    requests = pd.read_parquet(load_out / "requests.parquet")
    checkouts = requests[(requests["name"] == "/api/checkout") & (requests["method"] == "POST")]
    successes = int(checkouts["ok"].sum())
    assert successes >= 3, "too few checkouts to say anything; raise users"
    assert (checkouts["status_code"] >= 500).any() or (checkouts["status_code"] == 0).any(), (
        "the kills should have failed some checkout attempts"
    )
    orders = _load_orders(db)
    new = orders[~orders["id"].isin(before)]
    # the load's cancel_order journey cancels some paid orders; only a paid order can be cancelled
    # (sample_shop/orders/lifecycle.py), so a cancelled one was a successful checkout too
    completed = new[new["status"].isin(["paid", "shipped", "delivered", "cancelled"])]
    assert not new.duplicated(["user_id", "idempotency_key"]).any(), "one order per checkout key"
    assert completed["charge_id"].notna().all() and not completed["charge_id"].duplicated().any()
    assert len(completed) == successes, (
        f"{successes} checkouts succeeded for the shoppers, {len(completed)} paid (or since cancelled) "
        f"orders (pending/failed: {new['status'].value_counts().to_dict()})"
    )
