"""One instance of the notifications function: claim an order event from orders' outbox, send its e-mail,
remember it as sent, acknowledge it; again, until told to stop (SIGTERM finishes the event in hand).

Exactly one e-mail per event from at-least-once delivery: the outbox hands an event out again when its
lease runs out without an acknowledgement (the instance died, or the ack was lost). Before sending, the
instance looks the event id up in its own SQLite table of sent ids (`<state>/data/notifications.db`); after
the SMTP server has accepted the message it inserts the id, commits, and only then acknowledges. An
instance SIGKILLed between sending and acknowledging leaves the id recorded, so the next claim of that
event is acknowledged without a second e-mail. The window left is between the SMTP server's 250 and the
commit of the insert (a few hundred microseconds): a kill exactly there sends the e-mail twice.

A failed delivery is given back (`POST /outbox/fail`): pending again, parked by orders once its attempts
are spent. The trace goes on from the change's `traceparent` (stored in the event: orders' producer span)
in the event's consumer span, with the SMTP delivery (whose context the e-mail carries in
`X-Shop-Traceparent`) and the ack or give-back to orders (which orders continues) as client spans under it.
"""

from __future__ import annotations

import logging
import signal
import smtplib
import sqlite3
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import httpx

from sample_shop.basics import utc_iso
from sample_shop.kit.auth import SERVICE_TOKEN_HEADER
from sample_shop.notifications.config import FUNCTION, NotifierConfig

log = logging.getLogger("sample_shop.notifications")

SUBJECTS = {
    "order.paid": "Your order {short} is confirmed",
    "order.shipped": "Your order {short} has shipped",
    "order.delivered": "Your order {short} was delivered",
    "order.cancelled": "Your order {short} is cancelled and refunded",
}


class DeliveryFailed(Exception):
    """The SMTP server did not take the message; `permanent` for a 5xx answer."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class SentIds:
    """The instance's memory of sent events (shared by every instance: one SQLite file, WAL)."""

    def __init__(self, config: NotifierConfig) -> None:
        config.dedup_db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.db = sqlite3.connect(config.dedup_db, timeout=10, isolation_level=None)
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS sent (event_id TEXT PRIMARY KEY, message_id TEXT NOT NULL, "
            "sent_at TEXT NOT NULL, sent_s REAL NOT NULL, consumer TEXT NOT NULL)"
        )

    def sent_s(self, event_id: str) -> float | None:
        row = self.db.execute("SELECT sent_s FROM sent WHERE event_id = ?", (event_id,)).fetchone()
        return None if row is None else float(row[0])

    def record(self, event_id: str, message_id: str, sent_s: float, consumer: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO sent (event_id, message_id, sent_at, sent_s, consumer) VALUES (?,?,?,?,?)",
            (event_id, message_id, utc_iso(sent_s), sent_s, consumer),
        )

    def close(self) -> None:
        self.db.close()


def compose(event: dict[str, Any], sender: str, traceparent: str | None) -> EmailMessage:
    payload = event["payload"]
    short = event["order_id"][:8]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = payload.get("email") or ""
    message["Subject"] = SUBJECTS.get(event["type"], "Your order {short}: " + event["type"]).format(
        short=short
    )
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(idstring=event["event_id"], domain="shop.local")
    message["X-Shop-Event-Id"] = event["event_id"]
    message["X-Shop-Order-Id"] = event["order_id"]
    message["X-Shop-Event-Type"] = event["type"]
    if traceparent:
        message["X-Shop-Traceparent"] = traceparent
    total = payload.get("total_cents")
    amount = f"{total / 100:.2f} {payload.get('currency', 'EUR')}" if isinstance(total, int) else "-"
    message.set_content(
        f"Hello,\n\nyour order {event['order_id']} is now {payload.get('status')}.\n"
        f"Total: {amount}\n\nThe chaos shop\n"
    )
    return message


class Notifier:
    def __init__(self, config: NotifierConfig, tracer: Any | None = None) -> None:
        self.config = config
        self.tracer = tracer
        self.sent = SentIds(config)
        self.http = httpx.Client(timeout=5.0, headers={SERVICE_TOKEN_HEADER: config.service_token})
        self.stopping = False
        self._next_orders = 0
        self.delivered = 0

    # ---- orders' outbox --------------------------------------------------------------------------

    def _orders(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call to an orders replica (round robin; the next one on a connection error). Inside an
        event's span (ack, give back) the call is a client span whose `traceparent` orders continues, so
        the event's trace shows its outcome arriving back at orders."""
        if self.tracer is None:
            return self._orders_call(method, path, **kwargs)
        from opentelemetry import trace

        if not trace.get_current_span().is_recording():  # a claim: no event, no trace yet
            return self._orders_call(method, path, **kwargs)
        from sample_shop.kit.telemetry import format_traceparent

        with self.tracer.start_as_current_span(
            f"{method} orders{path}",
            kind=trace.SpanKind.CLIENT,
            attributes={"peer.service": "orders", "http.request.method": method, "url.path": path},
        ) as span:
            headers = {"traceparent": format_traceparent(span.get_span_context())}
            response = self._orders_call(method, path, headers=headers, **kwargs)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(trace.Status(trace.StatusCode.ERROR))
            return response

    def _orders_call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        urls = self.config.orders_urls
        last: Exception | None = None
        for i in range(len(urls)):
            url = urls[(self._next_orders + i) % len(urls)]
            try:
                response = self.http.request(method, url + path, **kwargs)
                self._next_orders = (self._next_orders + i + 1) % len(urls)
                return response
            except httpx.HTTPError as exc:
                last = exc
        raise last or RuntimeError("no orders URL")

    def claim(self) -> list[dict[str, Any]]:
        response = self._orders(
            "POST",
            "/outbox/claim",
            json={"consumer": self.config.consumer, "limit": 1, "lease_s": self.config.lease_s},
        )
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()["events"]
        return events

    def ack(self, event_id: str, sent_s: float) -> None:
        response = self._orders("POST", "/outbox/ack", json={"event_ids": [event_id], "sent_s": sent_s})
        response.raise_for_status()

    def give_back(self, event_id: str, error: str) -> None:
        response = self._orders("POST", "/outbox/fail", json={"event_id": event_id, "error": error})
        if response.status_code not in (200, 409):  # 409: its lease ran out meanwhile
            response.raise_for_status()

    # ---- one event -------------------------------------------------------------------------------

    def _smtp_span(self, event_id: str) -> Any:
        """The client span of one SMTP delivery (a child of the event's span), or a null context."""
        from contextlib import nullcontext

        if self.tracer is None:
            return nullcontext()
        from opentelemetry.trace import SpanKind

        return self.tracer.start_as_current_span(
            "smtp send",
            kind=SpanKind.CLIENT,
            attributes={
                "peer.service": "mailserver",
                "server.address": self.config.smtp_host,
                "server.port": self.config.smtp_port,
                "messaging.message.id": event_id,
            },
        )

    def send(self, message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(
                self.config.smtp_host, self.config.smtp_port, timeout=self.config.smtp_timeout_s
            ) as smtp:
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryFailed(
                f"recipient refused: {exc.recipients}", all(c >= 500 for c in codes)
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryFailed(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", exc.smtp_code >= 500) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryFailed(f"SMTP server unreachable: {exc}", False) from None

    def handle(self, event: dict[str, Any]) -> str:
        """Deliver one claimed event; what happened: sent, duplicate or failed."""
        from contextlib import nullcontext

        span_cm: Any = nullcontext()
        if self.tracer is not None:
            from opentelemetry.trace import SpanKind

            from sample_shop.kit.telemetry import parent_context

            span_cm = self.tracer.start_as_current_span(
                f"notify {event['type']}",
                context=parent_context(event.get("traceparent")),
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "outbox",
                    "messaging.operation": "process",
                    "messaging.message.id": event["event_id"],
                    "shop.order_id": event["order_id"],
                    "shop.event_attempt": event["attempts"],
                },
            )
        with span_cm as span:
            outcome = self._handle(event, span)
            if span is not None:
                span.set_attribute("shop.outcome", outcome)
            return outcome

    def _handle(self, event: dict[str, Any], span: Any) -> str:
        event_id = event["event_id"]
        fields = {"event_id": event_id, "order_id": event["order_id"], "type": event["type"]}
        already = self.sent.sent_s(event_id)
        if already is not None:  # sent by a life that did not get to acknowledge it
            self.ack(event_id, already)
            log.info("already sent; acknowledged", extra={"fields": {"event": "notify_duplicate", **fields}})
            return "duplicate"
        if not event["payload"].get("email"):
            self.give_back(event_id, "the order has no e-mail address")
            log.warning("no recipient", extra={"fields": {"event": "notify_failed", **fields}})
            return "failed"
        failure: DeliveryFailed | None = None
        with self._smtp_span(event_id) as smtp_span:
            traceparent = None
            if smtp_span is not None:  # the e-mail carries the context of the span that sent it
                from sample_shop.kit.telemetry import format_traceparent

                traceparent = format_traceparent(smtp_span.get_span_context())
            message = compose(event, self.config.sender, traceparent or event.get("traceparent"))
            try:
                self.send(message)
            except DeliveryFailed as exc:
                failure = exc
                if smtp_span is not None:
                    from opentelemetry.trace import Status, StatusCode

                    smtp_span.set_attribute("error.type", "permanent" if exc.permanent else "transient")
                    smtp_span.set_status(Status(StatusCode.ERROR, str(exc)))
        if failure is not None:
            self.give_back(event_id, str(failure))
            if span is not None:
                span.set_attribute("error.type", "permanent" if failure.permanent else "transient")
            log.warning(
                "e-mail not delivered",
                extra={"fields": {"event": "notify_failed", "error": str(failure), **fields}},
            )
            return "failed"
        sent_s = time.time()
        self.sent.record(event_id, str(message["Message-ID"]), sent_s, self.config.consumer)  # before ack
        if self.config.ack_delay_s > 0:
            time.sleep(self.config.ack_delay_s)
        self.ack(event_id, sent_s)
        self.delivered += 1
        log.info(
            "e-mail sent",
            extra={
                "fields": {
                    "event": "notify_sent",
                    "latency_s": round(sent_s - float(event["created_s"]), 3),
                    "attempt": event["attempts"],
                    **fields,
                }
            },
        )
        return "sent"

    # ---- the loop --------------------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        log.info(
            "started",
            extra={"fields": {"event": "started", "consumer": self.config.consumer, "function": FUNCTION}},
        )
        idle_since = time.monotonic()
        while not self.stopping:
            self._beat()
            try:
                events = self.claim()
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                log.warning("cannot claim from orders: %s", exc)
                events = []
            for event in events:
                try:
                    self.handle(event)
                except httpx.HTTPError as exc:  # the lease runs out; the event comes back
                    log.warning("orders did not take the outcome of %s: %s", event["event_id"], exc)
            if events:
                idle_since = time.monotonic()
                continue
            if self.config.idle_exit_s and time.monotonic() - idle_since >= self.config.idle_exit_s:
                log.info("idle; exiting", extra={"fields": {"event": "idle_exit"}})
                break
            self._sleep(self.config.poll_s)
        self.close()
        return 0

    def _beat(self) -> None:
        """Touch the heartbeat file, if any: one turn of the loop has begun (python -m
        sample_shop.notifications.heartbeat checks its age)."""
        if self.config.heartbeat_file is not None:
            from sample_shop.notifications.heartbeat import beat

            beat(self.config.heartbeat_file)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.05, seconds))

    def _stop(self, _signum: int, _frame: Any) -> None:
        self.stopping = True

    def close(self) -> None:
        self.http.close()
        self.sent.close()
