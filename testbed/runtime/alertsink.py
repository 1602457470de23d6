"""The testbed's webhook receiver for Alertmanager: `python -m testbed.runtime.alertsink --port P --out F`.

Every notification Alertmanager POSTs to /alerts is appended to F as one JSON line
`{"received": ISO time, "received_unix": seconds, "notification": <Alertmanager's webhook payload>}`, so a
run can tell when a page was delivered, not only when a rule fired. Standard library only (it is one more
resident process of the stack, so it stays small); loopback only locally; demands the stack's bearer token.

On kind the same file runs in the shop image as the `alert-webhook` pod (deploy/components/observability/
alert-webhook.yaml; `python -m deploy.assemble` puts it in a ConfigMap): there it listens on the pod's
address (--host 0.0.0.0) and a NetworkPolicy, not a token, admits only Alertmanager. So it imports nothing
beyond the standard library and what the image ships (sample_shop)."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sample_shop.basics import utc_iso
from sample_shop.kit.control import check_bearer

WEBHOOK_PATH = "/alerts"
MAX_BODY_BYTES = 4 * 1024 * 1024


def record_line(payload: object, received_unix: float) -> str:
    return json.dumps(
        {"received": utc_iso(received_unix), "received_unix": received_unix, "notification": payload},
        sort_keys=True,
    )


TOKEN_HINT = "the stack's token file, <state>/token (Alertmanager's http_config)"


def make_handler(out: Path, token: str | None) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, code: int, text: str) -> None:
            body = (text + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._answer(200, "ok")
            else:
                self._answer(404, "not found: POST /alerts takes Alertmanager's webhook notifications")

        def do_POST(self) -> None:
            if self.path != WEBHOOK_PATH:
                self._answer(404, "not found")
                return
            refusal = (
                None if token is None else check_bearer(self.headers.get("Authorization"), token, TOKEN_HINT)
            )
            if refusal is not None:  # the control plane's one token check (kit/control.py)
                self._answer(refusal.status, f"bearer token required: {refusal.message}")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY_BYTES:
                self._answer(400, "a JSON body of at most 4 MiB is required")
                return
            received = time.time()
            try:
                payload = json.loads(self.rfile.read(length))
            except (json.JSONDecodeError, UnicodeDecodeError):
                self._answer(400, "the body is not JSON")
                return
            line = record_line(payload, received) + "\n"
            with lock, out.open("a", encoding="utf-8") as f:  # one write per line: readers see whole lines
                f.write(line)
            self._answer(200, "recorded")

        def log_message(self, format: str, *args: object) -> None:
            if self.command == "GET":  # health probes every second: not worth a line each
                return
            print(json.dumps({"timestamp": utc_iso(time.time()), "level": "info", "message": format % args}))

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.runtime.alertsink",
        description="Record Alertmanager's webhook notifications as JSON lines (started by `testbed up`).",
    )
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on: loopback locally; 0.0.0.0 in the kind pod (alert-webhook.yaml)",
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON lines file the notifications go to")
    parser.add_argument("--token-file", type=Path, default=None, help="bearer token the sender must show")
    args = parser.parse_args(argv)
    token = args.token_file.read_text().strip() if args.token_file else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.out, token))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
