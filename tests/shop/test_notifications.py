"""The notifications function against the real shop processes, a real SMTP server (aiosmtpd, loopback)
and real SQLite (issue 18 item 4): exactly one e-mail per order event, also when the notifier is SIGKILLed
between sending and acknowledging; a poison event is parked after its tries while the others flow; the
trace goes on from the status change to the e-mail."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sample_shop import topology
from sample_shop.kit.auth import SERVICE_TOKEN_HEADER
from sample_shop.notifications.mailserver import messages
from sample_shop.orders.outbox import MAX_ATTEMPTS
from shop.helpers import CARD, Customer, spans_of_trace
from shop.processes import ADMIN_TOKEN, REPO, ShopProcesses, offset
from shop.test_lifecycle import admin_client, paid_order

pytestmark = pytest.mark.usefixtures("clean_faults")
TOKEN = {SERVICE_TOKEN_HEADER: ADMIN_TOKEN}
StartNotifier = Callable[..., subprocess.Popen[bytes]]


def smtp_port() -> int:
    return topology.SMTP_PORT + offset()


@pytest.fixture(scope="module")
def maildir(shop: ShopProcesses) -> Iterator[Path]:
    folder = shop.state_dir / "mail"
    log = (shop.state_dir / "logs" / "mailserver.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "sample_shop.notifications.mailserver", "--port", str(smtp_port()),
         "--maildir", str(folder)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                import socket

                socket.create_connection(("127.0.0.1", smtp_port()), timeout=0.5).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "the SMTP server did not start"
                time.sleep(0.05)
        yield folder
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@pytest.fixture
def start_notifier(shop: ShopProcesses, maildir: Path) -> Iterator[StartNotifier]:
    started: list[subprocess.Popen[bytes]] = []

    def start(instance: int = 0, **env: str) -> subprocess.Popen[bytes]:
        full = {k: v for k, v in os.environ.items() if not k.startswith(("SHOP_", "OTEL_"))}
        full.update(
            {
                "TESTBED_PORT_OFFSET": str(offset()),
                "SHOP_STATE_DIR": str(shop.state_dir),
                "SHOP_UPSTREAM_ORDERS": shop.url("orders"),
                "SHOP_ADMIN_TOKEN": ADMIN_TOKEN,
                "SHOP_SMTP_PORT": str(smtp_port()),
                "SHOP_FUNCTION_INSTANCE": str(instance),
                "SHOP_NOTIFY_POLL_S": "0.1",
                "PYTHONUNBUFFERED": "1",
                **env,
            }
        )
        log = (shop.state_dir / "logs" / f"notifications-{instance}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "sample_shop.notifications"],
            env=full, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


def events_of(shop: ShopProcesses, order_id: str) -> list[dict[str, Any]]:
    listed = httpx.get(f"{shop.url('orders')}/outbox/events", headers=TOKEN, timeout=5).json()["events"]
    return sorted((e for e in listed if e["order_id"] == order_id), key=lambda e: e["created_s"])


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def mails_by_event(maildir: Path) -> Counter[str]:
    return Counter(str(m["X-Shop-Event-Id"]) for m in messages(maildir))


def all_done(shop: ShopProcesses, order_ids: list[str], count: int) -> bool:
    found = [e for o in order_ids for e in events_of(shop, o)]
    return len(found) == count and all(e["state"] == "done" for e in found)


def test_one_email_per_event_with_the_trace(
    shop: ShopProcesses, customer: Customer, maildir: Path, start_notifier: StartNotifier
) -> None:
    shipped = paid_order(customer)
    admin = admin_client(shop)
    trace_id = uuid.uuid4().hex
    try:
        answer = admin.post(
            f"/api/admin/orders/{shipped['id']}/status",
            json={"status": "shipped"},
            headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"},
        )
        assert answer.status_code == 200, answer.text
    finally:
        admin.close()
    cancelled = paid_order(customer, product_id=6, quantity=1)
    assert customer.http.post(f"/api/orders/{cancelled['id']}/cancel").status_code == 200
    start_notifier()
    ids = [shipped["id"], cancelled["id"]]
    wait_for("four delivered events", lambda: all_done(shop, ids, 4))
    events = [e for o in ids for e in events_of(shop, o)]
    assert sorted(e["type"] for e in events) == sorted(
        ["order.paid", "order.shipped", "order.paid", "order.cancelled"]
    )
    counts = mails_by_event(maildir)
    assert [counts[e["event_id"]] for e in events] == [1, 1, 1, 1]
    mine = {str(m["X-Shop-Event-Id"]): m for m in messages(maildir)}
    shipping_mail = mine[events_of(shop, shipped["id"])[1]["event_id"]]
    assert shipping_mail["To"] == customer.email and "has shipped" in str(shipping_mail["Subject"])
    _, mail_trace, mail_span, _ = str(shipping_mail["X-Shop-Traceparent"]).split("-")
    assert mail_trace == trace_id
    # The whole path in one trace: the admin's change in orders, the outbox event it published, the
    # function's span for that event, the SMTP delivery (the span the e-mail names) and the ack that
    # orders served - gateway -> orders -> outbox -> notifications -> SMTP, and back to orders.
    path = {
        "publish": ("orders", "outbox publish order.shipped"),
        "notify": ("notifications", "notify order.shipped"),
        "smtp": ("notifications", "smtp send"),
        "ack_client": ("notifications", "POST orders/outbox/ack"),
        "ack": ("orders", "POST /outbox/ack"),
    }

    def whole_path() -> list[dict[str, Any]]:
        found = spans_of_trace(shop.state_dir / "traces", trace_id, {"gateway", "orders"}, 0)
        return found if set(path.values()) <= {(s["service"], s["name"]) for s in found} else []

    spans = wait_for("every span of the path in the trace files", whole_path, timeout_s=10)
    by_name = {(s["service"], s["name"]): s for s in spans}
    publish, notify, smtp, ack_client, ack = (by_name[path[step]] for step in path)
    assert publish["kind"] == 4 and notify["kind"] == 5 and smtp["kind"] == 3  # producer, consumer, client
    assert publish["parentSpanId"] in {s["spanId"] for s in spans if s["service"] == "orders"}
    assert notify["parentSpanId"] == publish["spanId"]
    assert smtp["parentSpanId"] == notify["spanId"] and smtp["spanId"] == mail_span
    assert ack_client["parentSpanId"] == notify["spanId"] and ack["parentSpanId"] == ack_client["spanId"]
    assert [s["name"] for s in spans if s["service"] == "notifications"].count("notify order.shipped") == 1
    metrics = httpx.get(f"{shop.url('orders')}/metrics", timeout=5).text
    assert 'shop_notification_latency_seconds_bucket{le="30.0",service="orders",type="order.shipped"}' in (
        metrics
    )
    assert 'shop_notification_backlog{service="orders",state="parked"}' in metrics


def test_killed_between_send_and_ack_still_one_email(
    shop: ShopProcesses, customer: Customer, maildir: Path, start_notifier: StartNotifier
) -> None:
    order = paid_order(customer)
    [event] = events_of(shop, order["id"])
    # this life records the e-mail as sent, then waits before acknowledging: it is killed there
    doomed = start_notifier(instance=1, SHOP_NOTIFY_ACK_DELAY_S="60", SHOP_NOTIFY_LEASE_S="2")
    dedup = shop.state_dir / "data" / "notifications.db"

    def recorded() -> bool:
        if not dedup.exists():
            return False
        with sqlite3.connect(dedup, timeout=5) as db:
            has_table = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sent'").fetchone()
            return bool(has_table) and bool(
                db.execute("SELECT 1 FROM sent WHERE event_id = ?", (event["event_id"],)).fetchone()
            )

    wait_for("the e-mail recorded as sent", recorded)
    assert mails_by_event(maildir)[event["event_id"]] == 1
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(5)
    assert events_of(shop, order["id"])[0]["state"] == "leased"  # never acknowledged
    start_notifier(instance=2, SHOP_NOTIFY_LEASE_S="2")
    wait_for("the event delivered", lambda: events_of(shop, order["id"])[0]["state"] == "done")
    assert mails_by_event(maildir)[event["event_id"]] == 1
    assert events_of(shop, order["id"])[0]["attempts"] == 2
    log = (shop.state_dir / "logs" / "notifications-2.log").read_text()
    assert "notify_duplicate" in log and event["event_id"] in log


def test_a_poison_event_is_parked_and_the_others_flow(
    shop: ShopProcesses, customer: Customer, maildir: Path, start_notifier: StartNotifier
) -> None:
    http = httpx.Client(base_url=shop.url("gateway"), timeout=15)
    email = f"poison-{uuid.uuid4().hex[:8]}@shop.invalid"  # the SMTP server refuses .invalid (550)
    try:
        assert (
            http.post(
                "/api/auth/register", json={"email": email, "password": "password-1", "name": "Poison"}
            ).status_code
            == 201
        )
        login = http.post("/api/auth/login", json={"email": email, "password": "password-1"})
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        assert http.post("/api/cart/items", json={"product_id": 7, "quantity": 1}).status_code == 200
        poisoned = http.post(
            "/api/checkout", json={"card": CARD}, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        assert poisoned.status_code == 201, poisoned.text
    finally:
        http.close()
    good = paid_order(customer)
    start_notifier(instance=3)
    wait_for("the good event delivered", lambda: events_of(shop, good["id"])[0]["state"] == "done")
    [parked] = wait_for(
        "the poison event parked",
        lambda: [e for e in events_of(shop, poisoned.json()["id"]) if e["state"] == "parked"],
    )
    assert parked["attempts"] == MAX_ATTEMPTS
    listed = httpx.get(f"{shop.url('orders')}/outbox/events?state=parked", headers=TOKEN, timeout=5).json()
    assert "550" in next(e for e in listed["events"] if e["event_id"] == parked["event_id"])["last_error"]
    assert mails_by_event(maildir)[parked["event_id"]] == 0
    assert mails_by_event(maildir)[events_of(shop, good["id"])[0]["event_id"]] == 1


def test_the_picture_of_a_click_to_its_email(
    shop: ShopProcesses, maildir: Path, start_notifier: StartNotifier, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """`python -m testbed.report.email_trace STATE --checkout`, as docs/shop.md's picture was made: a real
    checkout, its trace found in the real trace files once the function has sent the e-mail, drawn."""
    from sample_shop.notifications import heartbeat
    from testbed.report import email_trace

    # as a pod on kind runs it: named by the pod, beating for its exec probes (deploy/base/notifications)
    beat_file = tmp_path / "heartbeat"
    start_notifier(
        instance=4, SHOP_NOTIFY_CONSUMER="notifications-pod-a", SHOP_NOTIFY_HEARTBEAT_FILE=str(beat_file)
    )
    out = tmp_path / "trace.png"
    code = email_trace.main(
        [str(shop.state_dir), "--checkout", "--gateway", shop.url("gateway"), "--out", str(out)]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    trace_id = printed.split()[1].rstrip(":")
    assert "gateway -> orders" in printed and printed.rstrip().endswith(str(out))
    spans = email_trace.pick_trace(email_trace.load_spans(shop.state_dir), trace_id)
    assert email_trace.reaches_email(spans)
    assert trace_id in email_trace.email_traces(email_trace.load_spans(shop.state_dir))
    rows = [(r.service, r.name) for r in email_trace.waterfall(spans)]
    assert rows[0] == ("gateway", "POST /api/checkout")
    assert rows.index(("orders", "outbox publish order.paid")) < rows.index(
        ("notifications", "notify order.paid")
    ) < rows.index(("notifications", "smtp send"))  # fmt: skip
    [mail] = [m for m in messages(maildir) if str(m["X-Shop-Traceparent"]).split("-")[1] == trace_id]
    assert "is confirmed" in str(mail["Subject"])
    # a run folder's traces/spans.jsonl, written by the experiment's real collector, draws the same trace
    from testbed.experiment import telemetry

    run = tmp_path / "run"
    spans_file = run / "traces" / "spans.jsonl"
    files = telemetry.trace_files(shop.state_dir / "traces")
    assert telemetry.collect_traces(files, {}, time.time() - 600, time.time() + 1, spans_file) > 0
    from_run = email_trace.pick_trace(email_trace.load_spans(run), trace_id)
    assert {s.span_id for s in from_run} == {s.span_id for s in spans}
    assert email_trace.main([str(run), "--trace-id", trace_id, "--out", str(tmp_path / "run.png")]) == 0
    assert heartbeat.main([str(beat_file), "5"]) == 0  # the loop beats
    log = (shop.state_dir / "logs" / "notifications-4.log").read_text()
    assert '"consumer": "notifications-pod-a"' in log or '"consumer":"notifications-pod-a"' in log
    # without a trace that reached an e-mail: exit 2 and a message, no picture
    empty = tmp_path / "empty"
    (empty / "traces").mkdir(parents=True)
    assert email_trace.main([str(empty), "--out", str(tmp_path / "none.png")]) == 2
    assert "no trace runs from the gateway to an e-mail" in capsys.readouterr().err
    assert not (tmp_path / "none.png").exists()
