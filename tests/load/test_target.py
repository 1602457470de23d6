"""Where load may go: URL validation and the loopback rule (pure, plus local name resolution)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from load.profiles import LoadConfigError
from load.target import check_url, is_loopback_address, resolve_target, resolves_to_loopback
from sample_shop.topology import LOAD_METRICS_PORT, StackDescriptor


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://localhost", "http://localhost:80"),
        ("https://[::1]:9443", "https://[::1]:9443"),
    ],
)
def test_check_url_normalises(url: str, normalised: str) -> None:
    assert check_url(url)[0] == normalised


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8080", "ftp://127.0.0.1", "http://", "http://127.0.0.1:8080/api", "http://h:99999"]
)
def test_check_url_rejects(url: str) -> None:
    with pytest.raises(LoadConfigError) as err:
        check_url(url)
    assert err.value.field == "host"


def test_loopback_rule() -> None:
    assert (
        is_loopback_address("127.0.0.1") and is_loopback_address("127.8.9.10") and is_loopback_address("::1")
    )
    assert not is_loopback_address("10.0.0.1") and not is_loopback_address("localhost")
    assert resolves_to_loopback("localhost")
    assert not resolves_to_loopback("192.168.1.10")
    assert not resolves_to_loopback("no-such-host.invalid")


def test_non_loopback_host_is_refused_unless_explicitly_allowed() -> None:
    with pytest.raises(LoadConfigError, match=r"not a loopback address.*--allow-non-loopback"):
        resolve_target("http://192.168.1.10:8080", metrics_port=0)
    assert resolve_target("http://192.168.1.10:8080", metrics_port=0, allow_non_loopback=True).host == (
        "http://192.168.1.10:8080"
    )


def test_target_comes_from_stack_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="testbed up"):
        resolve_target(state_dir=tmp_path)
    StackDescriptor(
        target="local", gateway_url="http://127.0.0.1:8580", prometheus_url="http://127.0.0.1:9590",
        control_url="http://127.0.0.1:18500", token_file=str(tmp_path / "token"), load_metrics_port=10146,
    ).write(tmp_path)  # fmt: skip
    target = resolve_target(state_dir=tmp_path)
    assert (target.host, target.metrics_port, target.stack_target) == (
        "http://127.0.0.1:8580",
        10146,
        "local",
    )
    monkeypatch.setenv("TESTBED_PORT_OFFSET", "7")
    assert resolve_target("http://127.0.0.1:1").metrics_port == LOAD_METRICS_PORT + 7
    assert json.loads((tmp_path / "stack.json").read_text())["gateway_url"].endswith(":8580")
