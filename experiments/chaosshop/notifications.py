"""Chaos Toolkit actions and probes of the asynchronous path (docs/shop.md, "The asynchronous path"): faults
of the notifications function, a poison order, and the checks the notifications experiments rest on -
the backlog grew, every order e-mail arrived exactly once, the poison event was parked.

Local stack only: the e-mails are read from the local SMTP server's Maildir (`<state>/mail`), the events
from orders' outbox (its internal route, with the stack's service token). Any exception fails the activity,
and the chaosshop control then fails the experiment."""

from __future__ import annotations

import logging
import mailbox
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from chaosshop import runstate
from chaosshop.settings import Configuration, control, number, stack
from sample_shop.faultd.processes import FUNCTION_FAULT_KINDS, MAX_FUNCTION_FAULT_S, validate_function_fault
from sample_shop.kit.auth import SERVICE_TOKEN_HEADER
from sample_shop.topology import NOTIFICATIONS_FUNCTION, StackDescriptor

__all__ = [
    "emails_exactly_once",
    "expect_backlog",
    "inject_function_fault",
    "place_poison_order",
    "poison_parked",
]

log = logging.getLogger("chaostoolkit")
CARD = {"number": "4242424242424242", "expiry": "12/39", "cvc": "123"}
POISON_DOMAIN = "poison.invalid"  # the local SMTP server refuses the reserved .invalid domain (550)


def inject_function_fault(
    kind: str,
    params: dict[str, Any] | None = None,
    ttl_s: Any = None,
    function: str = NOTIFICATIONS_FUNCTION,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """A fault of a function: kill (an instance), down (at zero for ttl_s), smtp-latency (params.ms)."""
    body: dict[str, Any] = {"kind": kind, "params": params or {}}
    if ttl_s is not None:
        body["ttl_s"] = number(ttl_s, "ttl_s", 1, MAX_FUNCTION_FAULT_S)
    validate_function_fault(function, body)  # ValueError names the field
    with control(configuration) as api:
        answer = api.inject(function, kind, body["params"], body.get("ttl_s"), None)
    log.info("function fault %s on %s (%s)", kind, function, FUNCTION_FAULT_KINDS[kind])
    return answer


# ---- reading the path ------------------------------------------------------------------------------


def _events(descriptor: StackDescriptor) -> list[dict[str, Any]]:
    errors = []
    for replica in descriptor.replicas_of("orders"):
        try:
            response = httpx.get(
                f"{replica.url}/outbox/events",
                params={"limit": 1000},
                headers={SERVICE_TOKEN_HEADER: descriptor.token()},
                timeout=5.0,
            )
            response.raise_for_status()
            events: list[dict[str, Any]] = response.json()["events"]
            return events
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            errors.append(f"{replica.url}: {exc}")
    raise RuntimeError("cannot read orders' outbox: " + ("; ".join(errors) or "no orders replica"))


def _backlog(configuration: Configuration) -> dict[str, Any]:
    with control(configuration) as api:
        listed = api.functions()  # the supervisor's route (testbed/runtime/functions.py)
    for function in listed.get("functions", []):
        if function.get("name") == NOTIFICATIONS_FUNCTION:
            found: dict[str, Any] = function
            return found
    raise RuntimeError(f"the stack runs no {NOTIFICATIONS_FUNCTION} function (GET /functions)")


def _mail_counts(descriptor: StackDescriptor) -> Counter[str]:
    folder = Path(descriptor.state_dir) / "mail"
    if not folder.is_dir():
        return Counter()
    return Counter(str(m["X-Shop-Event-Id"]) for m in mailbox.Maildir(folder, create=False))


def _since() -> float:
    """The start of this experiment's first phase (its events are the ones judged); now before any."""
    phases = runstate.current().phases
    return phases[0].start if phases else time.time()


def _poisoned(event: dict[str, Any]) -> bool:
    return str(event.get("payload", {}).get("email") or "").endswith(".invalid")


# ---- actions -------------------------------------------------------------------------------------------


def place_poison_order(configuration: Configuration = None) -> dict[str, Any]:
    """A shopper registered at an address the mail server always refuses buys one item: its order e-mail
    is a poison event (fails on every try). The order itself succeeds."""
    descriptor = stack(configuration)
    email = f"poison-{uuid.uuid4().hex[:10]}@{POISON_DOMAIN}"
    with httpx.Client(base_url=descriptor.gateway_url, timeout=15.0) as http:
        registered = http.post(
            "/api/auth/register", json={"email": email, "password": "poison-pw-1", "name": "P"}
        )
        if registered.status_code != 201:
            raise RuntimeError(
                f"registering the poison shopper: HTTP {registered.status_code} {registered.text}"
            )
        login = http.post("/api/auth/login", json={"email": email, "password": "poison-pw-1"})
        login.raise_for_status()
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        http.post("/api/cart/items", json={"product_id": 1, "quantity": 1}).raise_for_status()
        order = http.post("/api/checkout", json={"card": CARD}, headers={"Idempotency-Key": uuid.uuid4().hex})
        if order.status_code != 201:
            raise RuntimeError(f"the poison shopper's checkout: HTTP {order.status_code} {order.text}")
    order_id = str(order.json()["id"])
    log.info("poison order %s placed by %s", order_id, email)
    return {"order_id": order_id, "email": email}


def expect_backlog(min_undelivered: Any = 1, configuration: Configuration = None) -> dict[str, Any]:
    """Fails unless the outbox holds at least `min_undelivered` undelivered events now (the function is
    down: checkouts go on, their e-mails wait)."""
    wanted = int(number(min_undelivered, "min_undelivered", 0, 1_000_000))
    function = _backlog(configuration)
    undelivered = int((function.get("backlog") or {}).get("undelivered", 0))
    if undelivered < wanted:
        raise RuntimeError(
            f"the backlog did not grow: {undelivered} undelivered order events, expected at least {wanted} "
            f"({function['running']} instances running)"
        )
    return {"undelivered": undelivered, "running": function["running"], "held": function.get("held_until")}


# ---- probes ----------------------------------------------------------------------------------------------


def emails_exactly_once(within_s: Any = 30, configuration: Configuration = None) -> bool:
    """True once every order event of this experiment (since its first phase) is delivered and has exactly
    one e-mail in the mailbox; poison events (refused addresses) are left to `poison_parked`. Waits up to
    `within_s` for the backlog to drain; False (with the reason logged) otherwise."""
    descriptor = stack(configuration)
    deadline = time.monotonic() + number(within_s, "within_s", 0, 600)
    since, until = _since(), time.time()  # the events made until now: the load may still be making more
    reason = ""
    while True:
        events = [e for e in _events(descriptor) if since <= e["created_s"] <= until and not _poisoned(e)]
        mails = _mail_counts(descriptor)
        waiting = [e["event_id"] for e in events if e["state"] in ("pending", "leased")]
        wrong = {
            e["event_id"]: mails[e["event_id"]]
            for e in events
            if e["state"] == "done" and mails[e["event_id"]] != 1
        }
        parked = [e["event_id"] for e in events if e["state"] == "parked"]
        if not waiting and not wrong and not parked:
            log.info("%d order e-mails of this experiment, each exactly once", len(events))
            return True
        reason = f"{len(waiting)} undelivered, {len(parked)} parked, e-mail counts not 1: {wrong}"
        if wrong or parked or time.monotonic() > deadline:
            log.error("order e-mails not exactly once: %s", reason)
            return False
        time.sleep(0.5)


def poison_parked(within_s: Any = 30, configuration: Configuration = None) -> bool:
    """True once every poison event of this experiment (an order e-mail to a refused address) is parked
    after the outbox's tries, without any e-mail sent. Waits up to `within_s`."""
    descriptor = stack(configuration)
    deadline = time.monotonic() + number(within_s, "within_s", 0, 600)
    since = _since()
    while True:
        events = [e for e in _events(descriptor) if e["created_s"] >= since and _poisoned(e)]
        mails = _mail_counts(descriptor)
        if any(mails[e["event_id"]] for e in events):
            log.error(
                "a poison event was e-mailed: %s", [e["event_id"] for e in events if mails[e["event_id"]]]
            )
            return False
        if all(e["state"] == "parked" for e in events):
            log.info("%d poison event(s) parked after %s tries", len(events), [e["attempts"] for e in events])
            return True
        if time.monotonic() > deadline:
            log.error(
                "poison events not parked: %s", [(e["event_id"], e["state"], e["attempts"]) for e in events]
            )
            return False
        time.sleep(0.5)
