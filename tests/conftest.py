"""Suite-wide settings and fixtures.

Tests run their stack on shifted ports (TESTBED_PORT_OFFSET, default 200) and in their own state folder,
so a user's running stack (default ports, `.testbed/`) is never touched.

Fixtures for every area's tests:
- `stack`: the session's local stack (started once, always brought down), a `StackDescriptor`. Replicas:
  `SUITE_REPLICAS` (catalog has two, so "kill one of two" needs no second stack). While it runs,
  TESTBED_STATE_DIR points at its state folder, so `testbed ...` subprocesses find it.
- `stack_ready`: the same stack, after waiting until every process is running and ready again (use it
  after tests that kill or pause replicas).
- `stack_target`: the `LocalTarget` of that stack (kill / pause / restart / status).
- `control`: an httpx client for the control API, bearer token set.
- `prom`: `PromClient` on the stack's Prometheus (instant queries, waiting for a condition).
- `wait_until`: poll a condition with a deadline and a message.
- `suite_replicas`: the replicas of the session stack, per service.
- `spare_port_offset`: an offset for a test that needs a stack of its own (one at a time), clear of the
  session stack's ports.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest

os.environ.setdefault("TESTBED_PORT_OFFSET", "200")

from sample_shop.topology import SERVICE_NAMES, StackDescriptor, port_offset
from testbed.runtime.base import UpOptions
from testbed.runtime.local import LocalTarget

SUITE_REPLICAS: dict[str, int] = {**dict.fromkeys(SERVICE_NAMES, 1), "catalog": 2}
# A second stack 50 ports up: its ports (apps, admin APIs, control, Prometheus) miss every port of the
# session stack for up to 5 replicas a service.
SPARE_OFFSET_STEP = 50
STACK_TIMEOUT_S = 120.0  # a loaded CI machine; the cold start itself is measured by `make bench`

T = TypeVar("T")


STACK_FIXTURES = frozenset(
    {"stack", "shop"}
)  # the session stack; the shop's services as processes (tests/shop)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses a running stack (the session stack or tests/shop's service processes, directly or
    through another fixture) is a `stack` test, marked or not, so `make test-fast` (-m "not stack and not
    slow") never starts one."""
    for item in items:
        uses = STACK_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if uses and item.get_closest_marker("stack") is None:
            item.add_marker(pytest.mark.stack)


def wait_until(
    condition: Callable[[], T], timeout: float = 15.0, interval: float = 0.1, message: str = "condition"
) -> T:
    """Poll `condition` until it returns something truthy; fail the test with `message` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except (httpx.HTTPError, OSError) as exc:  # a server coming back is not there yet
            last = exc
        if last and not isinstance(last, Exception):
            return last  # type: ignore[no-any-return]
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:g} s waiting for {message} (last: {last!r})")


def processes_gone(processes: list[psutil.Process]) -> bool:
    """Every one of these processes has ended (a zombie waiting for its reaper counts as ended)."""
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


class PromClient:
    """Instant queries against the stack's real Prometheus (HTTP API)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10.0)

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = self.http.get("/api/v1/query", params={"query": promql})
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def values(self, promql: str, by: str) -> dict[str, float]:
        """label `by` -> value of each series of an instant query."""
        return {series["metric"].get(by, ""): float(series["value"][1]) for series in self.query(promql)}

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="session")
def stack_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTarget]:
    """The session stack's target; the stack itself is started by `stack`."""
    state_dir = tmp_path_factory.mktemp("stack")
    # the stack stops by itself if this test process dies without tearing down (kill -9, CI timeout)
    target = LocalTarget(state_dir, port_offset(), exit_with_pid=os.getpid())
    # the notifications function scales to zero 2 s after the backlog empties (10 s by default), so the
    # tests of scaling to zero take seconds
    settings = {"TESTBED_STATE_DIR": str(state_dir), "TESTBED_FUNCTION_IDLE_S": "2"}
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield target
    finally:
        try:
            target.down()
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@pytest.fixture(scope="session")
def stack(stack_target: LocalTarget) -> StackDescriptor:
    """The local stack (real services, real Prometheus), up and ready for the whole session."""
    return stack_target.up(UpOptions(replicas=dict(SUITE_REPLICAS), timeout_s=STACK_TIMEOUT_S, extras=False))


@pytest.fixture
def stack_ready(stack: StackDescriptor, stack_target: LocalTarget) -> StackDescriptor:
    """The session stack once every process is running and ready again (after a test's kill or pause)."""

    def healthy() -> bool:
        status = stack_target.status()
        return status.healthy and len([p for p in status.processes if p.replica is not None]) == len(
            stack.replicas
        )

    wait_until(healthy, timeout=60, interval=0.2, message="every replica of the session stack to be ready")
    return stack


@pytest.fixture(scope="session")
def control(stack: StackDescriptor) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.control_url, headers={"Authorization": f"Bearer {stack.token()}"}, timeout=15.0
    ) as client:
        yield client


@pytest.fixture(scope="session")
def prom(stack: StackDescriptor) -> Iterator[PromClient]:
    client = PromClient(stack.prometheus_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(name="wait_until", scope="session")
def wait_until_fixture() -> Callable[..., Any]:
    return wait_until


@pytest.fixture(scope="session")
def suite_replicas() -> dict[str, int]:
    """Replicas of the session stack per service (tests import nothing from conftest: its module name is
    not unique in this tree)."""
    return dict(SUITE_REPLICAS)


@pytest.fixture(scope="session")
def spare_port_offset() -> int:
    return port_offset() + SPARE_OFFSET_STEP


@pytest.fixture(scope="session")
def suite_state_dir(stack: StackDescriptor) -> Path:
    return Path(stack.state_dir)
