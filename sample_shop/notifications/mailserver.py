"""The local SMTP server: `python -m sample_shop.notifications.mailserver --port P --maildir DIR`.

A real SMTP server (aiosmtpd) on loopback only (on kind: the pod's address, `--in-pod`), storing every
accepted message as one file of a Maildir (`DIR/new/`), so tests and experiments read the mailbox with the
standard library's `mailbox.Maildir`.
Two behaviours of real mail servers, for the faults:

- a recipient in the reserved `.invalid` domain (RFC 2606) is refused with 550 - a permanent failure, so
  an order e-mail to such an address is a poison event that is parked after its tries;
- a delay before each DATA answer (a slow SMTP server) while `DIR/../smtp-delay.json` says so:
  `{"delay_s": 2.0, "until": <unix time>}`, written by the fault controller and ignored once expired.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import mailbox
import signal
import sys
import time
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from sample_shop.kit.logs import setup_logging

log = logging.getLogger("sample_shop.mailserver")
REFUSED_DOMAIN = ".invalid"
MAX_DELAY_S = 120.0


def delay_file(maildir: Path) -> Path:
    return maildir.parent / "smtp-delay.json"


def current_delay(maildir: Path, now: float | None = None) -> float:
    """The slow-SMTP delay in force (0 without one, or once its `until` has passed)."""
    try:
        spec = json.loads(delay_file(maildir).read_text())
        delay, until = float(spec["delay_s"]), float(spec["until"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
    if (now if now is not None else time.time()) >= until:
        return 0.0
    return min(max(delay, 0.0), MAX_DELAY_S)


class MaildirHandler:
    """aiosmtpd handler: refuse `.invalid` recipients, store each message in the Maildir."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.box = mailbox.Maildir(maildir, create=True)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower().rstrip(">").endswith(REFUSED_DOMAIN):
            log.info("recipient refused", extra={"fields": {"event": "smtp_refused", "rcpt": address}})
            return f"550 5.1.2 {address}: the {REFUSED_DOMAIN} domain accepts no mail"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        delay = current_delay(self.maildir)
        if delay > 0:
            await asyncio.sleep(delay)
        message = message_from_bytes(envelope.content, policy=default_policy)
        key = self.box.add(message)
        log.info(
            "message stored",
            extra={
                "fields": {
                    "event": "smtp_stored",
                    "key": key,
                    "message_id": message.get("Message-ID"),
                    "rcpt": list(envelope.rcpt_tos),
                    "delay_s": delay,
                }
            },
        )
        return "250 2.0.0 message accepted for delivery"


def messages(maildir: Path) -> list[Any]:
    """Every stored message (email.message.Message), oldest first: what tests and experiments read."""
    if not maildir.is_dir():
        return []
    box = mailbox.Maildir(maildir, create=False)
    found = list(box.values())
    return sorted(found, key=lambda m: m.get_date() if hasattr(m, "get_date") else 0)


async def serve(host: str, port: int, maildir: Path) -> None:
    from aiosmtpd.smtp import SMTP

    handler = MaildirHandler(maildir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="shop.local"), host=host, port=port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("started", extra={"fields": {"event": "started", "port": port, "maildir": str(maildir)}})
    await stop.wait()
    server.close()
    await server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_shop.notifications.mailserver")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (loopback, unless --in-pod)")
    parser.add_argument(
        "--in-pod",
        action="store_true",
        help="allow a non-loopback --host (0.0.0.0 on Kubernetes, where the mailserver NetworkPolicy "
        "admits the notifications pods alone)",
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", type=Path, required=True, help="where messages are stored")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost") and not args.in_pod:
        print(
            f"mailserver: --host {args.host!r}: loopback only (127.0.0.1 or ::1); another address only "
            "with --in-pod (a Kubernetes pod behind its NetworkPolicy)",
            file=sys.stderr,
        )
        return 2
    if not 1 <= args.port <= 65535:
        print(f"mailserver: --port {args.port}: between 1 and 65535", file=sys.stderr)
        return 2
    setup_logging("mailserver", None, "info")
    try:
        asyncio.run(serve(args.host, args.port, args.maildir.resolve()))
    except OSError as exc:
        print(f"mailserver: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
