"""A picture of one trace from a click to its e-mail: the span waterfall of a checkout that runs gateway ->
orders -> outbox -> notifications -> SMTP, as a PNG (docs/shop.md, "The asynchronous path").

    python -m testbed.report.email_trace FOLDER [--trace-id ID] [--out PNG]
    python -m testbed.report.email_trace FOLDER --checkout [--gateway URL] [--out PNG]

FOLDER is a state folder (`.testbed/`, `TESTBED_STATE_DIR`: the trace files of a running or stopped
stack, `traces/*.jsonl`) or a run folder (`runs/<id>`: `traces/spans.jsonl`). Without `--trace-id` the
newest trace that reached the SMTP server is drawn. `--checkout` first makes one: a new shopper checks
out one product through the gateway of the running stack with a fresh sampled `traceparent` (as the
storefront's checkout button does), and the script waits until the e-mail's span is in the trace files.

Spans are read with testbed.runfolder's OTLP-JSON reader and laid out by testbed.report.traces.waterfall,
the same code as report.html's waterfalls.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sample_shop import topology
from testbed.report.style import SERVICE_COLORS
from testbed.report.traces import WaterfallRow, group_traces, waterfall
from testbed.runfolder import RunPaths, SpanRecord, iter_json_lines, read_spans, spans_of_request
from testbed.runtime.layout import StateLayout

EMAIL_SPAN = ("notifications", "smtp send")  # the function's client span of the SMTP delivery
CONSUMER_PREFIX = "notify "
PUBLISH_PREFIX = "outbox publish "
DEFAULT_OUT = Path("docs/img/trace-click-to-email.png")
TEST_CARD = {"number": "4242424242424242", "expiry": "12/39", "cvc": "123"}


class TraceNotFound(LookupError):
    pass


def load_spans(folder: Path) -> list[SpanRecord]:
    """Every span of a run folder (traces/spans.jsonl) or of a state folder (traces/*.jsonl)."""
    run = RunPaths(folder)
    if run.spans_jsonl.is_file():
        return read_spans(run)
    traces = StateLayout(folder).traces_dir
    if not traces.is_dir():
        raise TraceNotFound(f"{folder}: no traces/ folder; give a state folder (.testbed) or a run folder")
    return [
        span
        for path in sorted(traces.glob("*.jsonl"))
        for request in iter_json_lines(path)
        for span in spans_of_request(request)
    ]


def reaches_email(spans: Sequence[SpanRecord]) -> bool:
    """The trace has an SMTP delivery that succeeded, under a consumer span of an outbox event."""
    names = {(s.service, s.name) for s in spans}
    delivered = any((s.service, s.name) == EMAIL_SPAN and not s.error for s in spans)
    consumed = any(s.service == EMAIL_SPAN[0] and s.name.startswith(CONSUMER_PREFIX) for s in spans)
    published = any(s.name.startswith(PUBLISH_PREFIX) for s in spans)
    return delivered and consumed and published and ("gateway" in {service for service, _ in names})


def email_traces(spans: Sequence[SpanRecord]) -> dict[str, list[SpanRecord]]:
    """The traces that run from the gateway to an accepted e-mail, oldest first."""
    found = {tid: members for tid, members in group_traces(spans).items() if reaches_email(members)}
    return dict(sorted(found.items(), key=lambda item: min(s.start_ns for s in item[1])))


def pick_trace(spans: Sequence[SpanRecord], trace_id: str | None = None) -> list[SpanRecord]:
    if trace_id is not None:
        members = group_traces(spans).get(trace_id.lower())
        if not members:
            raise TraceNotFound(f"trace {trace_id}: no span of it in the trace files")
        return members
    found = email_traces(spans)
    if not found:
        raise TraceNotFound(
            "no trace runs from the gateway to an e-mail: check out (the storefront, or --checkout) while "
            "the stack runs, and wait a second for the function"
        )
    return list(found.values())[-1]


def _label(row: WaterfallRow) -> str:
    return "  " * row.depth + f"{row.service}: {row.name}"


def render(spans: Sequence[SpanRecord], out: Path) -> Path:
    """The waterfall of one trace as a PNG; the wait in the outbox (from the producer span's end to the
    consumer span's start) is marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = waterfall(spans)
    total_ms = max(max(r.offset_ms + r.duration_ms for r in rows), 1e-3)
    colors: dict[str, str] = {}
    height = 0.34 * len(rows) + 1.6
    fig, ax = plt.subplots(figsize=(11, height))
    fig.subplots_adjust(left=0.36, right=0.97, top=1 - 0.45 / height, bottom=0.55 / height)
    for y, row in enumerate(rows):
        color = colors.setdefault(row.service, SERVICE_COLORS[len(colors) % len(SERVICE_COLORS)])
        width = max(row.duration_ms, total_ms * 0.002)
        ax.barh(y, width, left=row.offset_ms, height=0.62, color=color,
                edgecolor="#c00000" if row.error else color, linewidth=1.5 if row.error else 0)  # fmt: skip
        text = f" {row.duration_ms:.1f} ms"
        ax.text(row.offset_ms + width, y, text, va="center", ha="left", fontsize=7.5, color="#333333")
    publish = next((y for y, r in enumerate(rows) if r.name.startswith(PUBLISH_PREFIX)), None)
    consume = next((y for y, r in enumerate(rows) if r.name.startswith(CONSUMER_PREFIX)), None)
    if publish is not None and consume is not None:
        start = rows[publish].offset_ms + rows[publish].duration_ms
        end = rows[consume].offset_ms
        ax.annotate("", xy=(end, consume), xytext=(start, publish),
                    arrowprops={"arrowstyle": "->", "color": "#555555", "linestyle": ":"})  # fmt: skip
        ax.text((start + end) / 2, (publish + consume) / 2, f"in the outbox {end - start:.0f} ms",
                ha="center", va="center", fontsize=8, color="#555555",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})  # fmt: skip
    # left-aligned labels, so the indentation shows the parent-child nesting
    ax.set_yticks(range(len(rows)), [_label(r) for r in rows], fontsize=8, ha="left", family="monospace")
    ax.tick_params(axis="y", pad=fig.subplotpars.left * fig.get_figwidth() * 72 - 12, length=0)
    ax.invert_yaxis()
    ax.set_xlim(0, total_ms * 1.1)
    ax.set_xlabel("ms since the click")
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title(
        f"From a click to an e-mail: trace {spans[0].trace_id} ({len(spans)} spans, {total_ms:.0f} ms)",
        fontsize=10,
        loc="left",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
    return out


def checkout(gateway: str) -> str:
    """One checkout by a new shopper with a sampled trace context; its trace id."""
    import httpx

    trace_id = secrets.token_hex(16)
    try:
        return _checkout(gateway, trace_id)
    except httpx.HTTPError as exc:
        raise TraceNotFound(
            f"cannot check out at {gateway} ({exc}); is the stack up (`testbed up`)?"
        ) from None


def _checkout(gateway: str, trace_id: str) -> str:
    import httpx

    email = f"picture-{secrets.token_hex(4)}@example.com"
    password = "picture-" + secrets.token_hex(6)
    with httpx.Client(base_url=gateway, timeout=10) as http:
        http.post("/api/auth/register", json={"email": email, "password": password, "name": "Ada"})
        login = http.post("/api/auth/login", json={"email": email, "password": password})
        login.raise_for_status()
        auth = {"authorization": f"Bearer {login.json()['access_token']}"}
        products = http.get("/api/products", params={"limit": 50}).json()["items"]
        product = next(p for p in products if p["stock"] > 0)
        http.post("/api/cart/items", json={"product_id": product["id"], "quantity": 1}, headers=auth)
        answer = http.post(
            "/api/checkout",
            json={"card": TEST_CARD},
            headers={
                **auth,
                "Idempotency-Key": "picture-" + secrets.token_hex(8),
                "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
            },
        )
        if answer.status_code not in (200, 201):
            raise TraceNotFound(f"the checkout answered {answer.status_code}: {answer.text[:200]}")
    return trace_id


def wait_for_email(folder: Path, trace_id: str, timeout_s: float) -> list[SpanRecord]:
    deadline = time.monotonic() + timeout_s
    while True:
        members = group_traces(load_spans(folder)).get(trace_id, [])
        if reaches_email(members):
            # orders' span of the ack may sit in its exporter's next batch (every 0.5 s): one more tick
            time.sleep(1.0)
            return group_traces(load_spans(folder)).get(trace_id, members)
        if time.monotonic() > deadline:
            raise TraceNotFound(f"trace {trace_id}: no e-mail span within {timeout_s:.0f} s")
        time.sleep(0.3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.report.email_trace",
        description="Draw one trace from a click to its e-mail (gateway -> orders -> outbox -> "
        "notifications -> SMTP) as a span waterfall PNG.",
    )
    parser.add_argument("folder", type=Path, help="a state folder (.testbed) or a run folder (runs/<id>)")
    parser.add_argument("--trace-id", help="this trace (default: the newest that reached the SMTP server)")
    parser.add_argument("--checkout", action="store_true", help="make one: check out on the running stack")
    parser.add_argument(
        "--gateway",
        help="the gateway for --checkout (default http://127.0.0.1:8080 + TESTBED_PORT_OFFSET)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the e-mail span")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the PNG (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        if args.checkout:
            gateway = args.gateway or f"http://127.0.0.1:{topology.app_port('gateway', 0)}"
            trace_id = checkout(gateway)
            spans = wait_for_email(args.folder, trace_id, args.timeout)
        else:
            spans = pick_trace(load_spans(args.folder), args.trace_id)
    except TraceNotFound as exc:
        print(f"email_trace: {exc}", file=sys.stderr)
        return 2
    out = render(spans, args.out)
    services = " -> ".join(dict.fromkeys(r.service for r in waterfall(spans)))
    print(f"trace {spans[0].trace_id}: {len(spans)} spans ({services}) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
