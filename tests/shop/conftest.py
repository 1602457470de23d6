"""Fixtures of the shop's live tests: one set of real shop processes per session (catalog with two
replicas sharing its SQLite file), cleaned of faults and policy overrides after every test, and always
stopped at the end - also when a test fails."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sample_shop import topology
from shop.helpers import Customer, admin
from shop.processes import ShopProcesses


@pytest.fixture(scope="session")
def shop() -> Iterator[ShopProcesses]:
    # Our own folder rather than pytest's tmp_path: concurrent pytest sessions on this machine rotate the
    # shared /tmp/pytest-of-<user> folders and could delete a running shop's state.
    state = Path(tempfile.mkdtemp(prefix="shop-test-"))
    processes = ShopProcesses(state, replicas={"catalog": 2})
    try:
        processes.start_all()
        yield processes
    finally:
        processes.stop_all()
        if not os.environ.get("SHOP_TEST_KEEP_STATE"):
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def clean_faults(shop: ShopProcesses) -> Iterator[None]:
    try:
        yield
    finally:
        for service, replica in list(shop.running):
            try:
                admin(shop, service, "DELETE", "/faults", replica)
                admin(shop, service, "DELETE", "/policy", replica)
            except httpx.HTTPError:
                pass
        for service, replica in list(shop.running):  # no test inherits another's breaker windows
            if topology.SERVICES[service].depends_on:
                admin(shop, service, "DELETE", "/breakers", replica)


@pytest.fixture
def customer(shop: ShopProcesses) -> Iterator[Customer]:
    c = Customer(shop)
    try:
        yield c
    finally:
        c.close()
