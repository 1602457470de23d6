"""`testbed up --otlp-endpoint`: every service sends its traces with the standard OTLP/HTTP (protobuf)
exporter to a real trace backend - Arize Phoenix, pinned, in its own virtual environment in the user's
cache (installed on first use, a few minutes; then reused) - and the run-folder trace files are still
written beside it. One checkout, then its trace is read back through Phoenix's REST API: a span from
every service on the checkout path and every parent link intact. Jaeger/Tempo/a Collector would take the
same exporter but cannot be installed here (they run on kind)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sample_shop.topology import StackDescriptor
from testbed import phoenix
from testbed.journey import one_checkout
from testbed.runtime.base import InputError, UpOptions
from testbed.runtime.envcontract import service_env
from testbed.runtime.layout import PortPlan, StateLayout
from testbed.runtime.local import LocalTarget
from testbed.runtime.options import make_options, parse_otlp_endpoint
from tests.conftest import wait_until

CHECKOUT_PATH = {"gateway", "orders", "cart", "catalog", "payment"}


def test_the_endpoint_is_validated_before_anything_starts() -> None:
    assert parse_otlp_endpoint("http://127.0.0.1:6006/") == "http://127.0.0.1:6006"
    for bad, why in (
        ("127.0.0.1:4318", "not an http"),
        ("http://127.0.0.1:4318/v1/traces", "/v1/traces is appended"),
        ("http://host:port", "invalid port"),
    ):
        with pytest.raises(InputError, match=why):
            parse_otlp_endpoint(bad)
    with pytest.raises(InputError, match="--no-trace-files needs --otlp-endpoint"):
        make_options(trace_files=False)


def test_services_get_the_endpoint_and_keep_their_files_unless_told(tmp_path: Path) -> None:
    layout, ports = StateLayout(tmp_path), PortPlan(0)
    both = make_options(otlp_endpoint="http://127.0.0.1:6006")
    env = service_env({}, "orders", 0, both, ports, layout, "s", both.otlp_endpoint, both.trace_files)
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:6006" and env["SHOP_TRACE_FILES"] == "on"
    only = make_options(otlp_endpoint="http://127.0.0.1:6006", trace_files=False)
    env = service_env({}, "orders", 0, only, ports, layout, "s", only.otlp_endpoint, only.trace_files)
    assert env["SHOP_TRACE_FILES"] == "off"


def _file_spans(traces_dir: Path, trace_id: str) -> dict[str, str]:
    """span id -> service of the trace's spans in the OTLP-JSON files."""
    out = {}
    for path in traces_dir.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            for rs in json.loads(line)["resourceSpans"]:
                attrs = {a["key"]: a["value"].get("stringValue") for a in rs["resource"]["attributes"]}
                for scope in rs["scopeSpans"]:
                    for span in scope["spans"]:
                        if span["traceId"] == trace_id:
                            out[span["spanId"]] = attrs["service.name"]
    return out


@pytest.fixture(scope="module")
def phoenix_server(tmp_path_factory: pytest.TempPathFactory, spare_port_offset: int) -> Iterator[str]:
    binary = phoenix.ensure_phoenix(progress=lambda m: print(m, flush=True))
    server = phoenix.start_phoenix(binary, tmp_path_factory.mktemp("phoenix"), spare_port_offset)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.mark.slow
def test_a_checkout_trace_is_whole_in_phoenix(
    phoenix_server: str, tmp_path: Path, spare_port_offset: int
) -> None:
    target = LocalTarget(tmp_path / "state", spare_port_offset, exit_with_pid=os.getpid())
    try:
        stack: StackDescriptor = target.up(
            UpOptions(extras=False, timeout_s=90, otlp_endpoint=phoenix_server)
        )
        assert stack.otlp_endpoint == phoenix_server and stack.traces_dir
        checkout = one_checkout(stack.gateway_url)
        spans, problems = phoenix.wait_for_trace(
            phoenix_server, checkout.trace_id, checkout.caller_span_id, CHECKOUT_PATH
        )
        assert not problems, problems
        assert all(s["context"]["trace_id"] == checkout.trace_id for s in spans)

        # besides, not instead: the run-folder files hold the very same spans, with their services named
        def in_files() -> bool:
            return set(_file_spans(Path(stack.traces_dir or ""), checkout.trace_id)) >= {
                s["context"]["span_id"] for s in spans
            }

        wait_until(in_files, timeout=10, interval=0.3, message="the trace files to hold the trace too")
        services = set(_file_spans(Path(stack.traces_dir or ""), checkout.trace_id).values())
        assert services >= CHECKOUT_PATH
    finally:
        target.down()
