"""`make traces-ui` (`python -m testbed.tracesui`): look at the shop's traces in a real trace UI here.

Starts Arize Phoenix on loopback (installed once, pinned, into the user's cache: testbed/phoenix.py),
brings the local stack up with `--otlp-endpoint` pointing at it (or uses a stack already sending there),
runs one checkout, finds that checkout's trace in Phoenix and prints where to open it. Then it waits;
Ctrl-C stops Phoenix and the stack it started."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

import httpx

from sample_shop.topology import default_state_dir, port_offset
from testbed import phoenix
from testbed.journey import JourneyError, one_checkout
from testbed.runtime.base import RuntimeFailure, UpOptions
from testbed.runtime.local import LocalTarget

CHECKOUT_PATH = {"gateway", "orders", "cart", "catalog", "payment"}
ABOUT = """\
What this is: Arize Phoenix, an open-source observability tool built for LLM applications, used here
because it is a complete OTLP/HTTP trace server with a UI that installs from PyPI. The services send it
their spans with the standard OpenTelemetry OTLP/HTTP exporter, the same one Jaeger, Tempo and the
vendors take. It shows traces and span trees; it has no service map, and all spans land in one project.
Jaeger (and Grafana, Loki) run on the kind cluster, not on this machine: `make cluster deploy`, then
Jaeger at http://127.0.0.1:16686 (docs/kind.md). Without a trace server the traces are OTLP-JSON files
in the state folder, and every run folder keeps its own (traces/spans.jsonl, shown in report.html)."""


def _say(message: str) -> None:
    print(message, flush=True)


def main() -> int:
    offset = port_offset()
    target = LocalTarget(default_state_dir(), offset)
    binary = phoenix.ensure_phoenix(progress=_say)
    data_dir = target.layout.root / "phoenix"
    _say(f"starting Phoenix on 127.0.0.1:{phoenix.PHOENIX_PORT + offset} (data in {data_dir})")
    server = phoenix.start_phoenix(binary, data_dir, offset)
    started_stack = False
    try:
        if target.is_up():
            running = target.descriptor()
            if running.otlp_endpoint != server.url:
                _say(
                    f"error: a stack is already up in {target.layout.root} and sends its traces to "
                    f"{running.otlp_endpoint or 'files only'}, not to Phoenix. Run `testbed down` first."
                )
                return 2
            stack = running
        else:
            _say("starting the stack with --otlp-endpoint " + server.url)
            stack = target.up(UpOptions(otlp_endpoint=server.url))
            started_stack = True
        checkout = one_checkout(stack.gateway_url)
        _say(f"one checkout done: order {checkout.order.get('id', '?')}, trace {checkout.trace_id}")
        spans, problems = phoenix.wait_for_trace(
            server.url, checkout.trace_id, checkout.caller_span_id, CHECKOUT_PATH
        )
        if problems:
            _say("error: the checkout's trace is not whole in Phoenix: " + "; ".join(problems))
            return 1
        projects = httpx.get(f"{server.url}/v1/projects", timeout=10).json().get("data") or [{}]
        project_id = next(
            (p["id"] for p in projects if p.get("name") == phoenix.PROJECT), projects[0].get("id")
        )
        _say(
            f"found it in Phoenix: {len(spans)} spans from {', '.join(sorted(CHECKOUT_PATH))}, parents intact"
        )
        _say("")
        _say(ABOUT)
        _say("")
        _say(f"  Phoenix UI      {server.url}")
        _say(f"  this checkout   {server.url}/projects/{project_id}/traces/{checkout.trace_id}")
        _say(f"  shop            {stack.gateway_url}  (browse it, or `make load`: more traces arrive)")
        _say("Ctrl-C stops Phoenix" + (" and the stack." if started_stack else " (the stack keeps running)."))
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        return 0
    except (RuntimeFailure, JourneyError, phoenix.PhoenixError) as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        if started_stack:
            target.down()
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
