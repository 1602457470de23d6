"""The function runner (testbed/runtime/functions.py): the scaling rule and its settings (pure), and on the
session stack the notifications function scaling from zero on a checkout's event, delivering its e-mail
exactly once and scaling back to zero; `testbed status` shows instances, cold starts and backlog."""

from __future__ import annotations

import mailbox
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from sample_shop.topology import StackDescriptor
from testbed.runtime.base import InputError
from testbed.runtime.functions import EVENTS_PER_INSTANCE, RunnerSettings, wanted_instances
from testbed.runtime.local import LocalTarget

CARD = {"number": "4242424242424242", "expiry": "12/39", "cvc": "123"}


def test_wanted_instances_scales_with_the_backlog_up_to_the_limit() -> None:
    assert wanted_instances(0, 0, 2, idle=False) == 0
    assert wanted_instances(1, 0, 2, idle=False) == 1  # from zero: a cold start
    assert wanted_instances(EVENTS_PER_INSTANCE + 1, 1, 2, idle=False) == 2
    assert wanted_instances(1000, 1, 3, idle=False) == 3  # the concurrency limit
    assert wanted_instances(1, 2, 2, idle=False) == 2  # not fewer while it drains
    assert wanted_instances(0, 2, 2, idle=False) == 2  # empty, not yet idle
    assert wanted_instances(0, 2, 2, idle=True) == 0  # idle: back to zero


def test_runner_settings_are_validated_with_the_variable_named() -> None:
    assert RunnerSettings.from_env({}) == RunnerSettings()
    assert RunnerSettings.from_env({"TESTBED_FUNCTION_MAX_INSTANCES": "3"}).max_instances == 3
    for env, wrong in (
        ({"TESTBED_FUNCTION_MAX_INSTANCES": "0"}, "TESTBED_FUNCTION_MAX_INSTANCES"),
        ({"TESTBED_FUNCTION_MAX_INSTANCES": "1.5"}, "whole number"),
        ({"TESTBED_FUNCTION_IDLE_S": "soon"}, "TESTBED_FUNCTION_IDLE_S"),
        ({"TESTBED_FUNCTION_POLL_S": "0"}, "TESTBED_FUNCTION_POLL_S"),
    ):
        with pytest.raises(InputError, match=wrong):
            RunnerSettings.from_env(env)


def buy(stack: StackDescriptor) -> str:
    with httpx.Client(base_url=stack.gateway_url, timeout=15) as http:
        email = f"fn-{uuid.uuid4().hex[:10]}@example.com"
        assert (
            http.post(
                "/api/auth/register", json={"email": email, "password": "password-1", "name": "Fn"}
            ).status_code
            == 201
        )
        login = http.post("/api/auth/login", json={"email": email, "password": "password-1"})
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        assert http.post("/api/cart/items", json={"product_id": 4, "quantity": 1}).status_code == 200
        paid = http.post("/api/checkout", json={"card": CARD}, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert paid.status_code == 201, paid.text
        order_id: str = paid.json()["id"]
        return order_id


def function(control: httpx.Client) -> dict[str, Any]:
    listed = control.get("/functions").json()["functions"]
    return next(f for f in listed if f["name"] == "notifications")


def mails_for(state_dir: Path, order_id: str) -> int:
    folder = state_dir / "mail"
    if not folder.is_dir():
        return 0
    return sum(1 for m in mailbox.Maildir(folder, create=False) if m["X-Shop-Order-Id"] == order_id)


@pytest.mark.stack
def test_notifications_scale_from_zero_deliver_once_and_back_to_zero(
    stack_ready: StackDescriptor, stack_target: LocalTarget, control: httpx.Client, wait_until: Any
) -> None:
    state_dir = Path(stack_ready.state_dir)
    wait_until(lambda: function(control)["running"] == 0, timeout=30, message="the function at zero")
    before = function(control)["cold_starts"]
    order_id = buy(stack_ready)
    wait_until(lambda: mails_for(state_dir, order_id) >= 1, timeout=20, message="the order e-mail")
    assert function(control)["cold_starts"] > before  # it scaled from zero: a new process
    wait_until(lambda: function(control)["running"] == 0, timeout=20, message="back to zero when idle")
    assert mails_for(state_dir, order_id) == 1
    status = stack_target.status()
    [shown] = [f for f in status.to_dict()["functions"] if f["name"] == "notifications"]
    assert shown["max_instances"] >= 1 and shown["backlog"]["undelivered"] == 0
    mailserver = [p for p in status.processes if p.service == "mailserver"]
    assert mailserver and mailserver[0].healthy


def outbox(stack: StackDescriptor, order_id: str) -> list[dict[str, Any]]:
    orders = next(r for r in stack.replicas if r.service == "orders")
    listed = httpx.get(
        f"{orders.url}/outbox/events",
        headers={"X-Shop-Service-Token": stack.token()},
        timeout=5,
    ).json()["events"]
    return [e for e in listed if e["order_id"] == order_id]


@pytest.mark.stack
def test_down_holds_the_function_at_zero_then_every_email_arrives_once(
    stack_ready: StackDescriptor, control: httpx.Client, wait_until: Any
) -> None:
    state_dir = Path(stack_ready.state_dir)
    down = control.post("/faults/notifications", json={"kind": "down", "ttl_s": 6})
    assert down.status_code == 201, down.text
    try:
        listed = control.get("/faults").json()["faults"]
        assert [f["kind"] for f in listed if f["service"] == "notifications"] == ["down"]
        orders = [buy(stack_ready) for _ in range(3)]  # checkout does not wait for the e-mails
        held = function(control)
        assert held["running"] == 0 and held["held_until"] is not None
        wait_until(
            lambda: (function(control)["backlog"] or {}).get("undelivered", 0) >= 3,
            timeout=10,
            message="the backlog to grow while the function is down",
        )
        assert all(mails_for(state_dir, o) == 0 for o in orders)
    finally:
        control.delete("/faults/notifications")  # the hold ends early: recovery
    wait_until(lambda: all(mails_for(state_dir, o) == 1 for o in orders), timeout=30, message="every e-mail")
    assert all(e["state"] == "done" for o in orders for e in outbox(stack_ready, o))
    assert all(mails_for(state_dir, o) == 1 for o in orders)


@pytest.mark.stack
def test_a_killed_instance_is_replaced_and_its_email_still_arrives_once(
    stack_ready: StackDescriptor, control: httpx.Client, wait_until: Any
) -> None:
    state_dir = Path(stack_ready.state_dir)
    refused = control.post("/faults/notifications", json={"kind": "smtp-latency", "params": {"ms": 0}})
    assert refused.status_code == 422 and "params.ms" in refused.text
    slow = control.post(
        "/faults/notifications", json={"kind": "smtp-latency", "params": {"ms": 1500}, "ttl_s": 20}
    )
    assert slow.status_code == 201, slow.text
    try:
        wait_until(lambda: function(control)["running"] == 0, timeout=30, message="the function at zero")
        before = function(control)
        order_id = buy(stack_ready)
        wait_until(lambda: function(control)["running"] >= 1, timeout=10, message="a cold start")
        killed = control.post("/faults/notifications", json={"kind": "kill"})
        assert killed.status_code == 201, killed.text
        assert killed.json()["instances"]
    finally:
        control.delete("/faults/notifications")
    wait_until(lambda: mails_for(state_dir, order_id) >= 1, timeout=40, message="the e-mail after the kill")
    after = function(control)
    assert after["crashes"] > before["crashes"] and after["cold_starts"] >= before["cold_starts"] + 2
    wait_until(lambda: outbox(stack_ready, order_id)[0]["state"] == "done", timeout=40, message="the ack")
    assert mails_for(state_dir, order_id) == 1
