"""Where the load goes and where its metrics are served: the gateway URL (from the StackDescriptor unless
given), the loopback check, and the exporter port.

Only loopback receives load (docs/load.md): the testbed shares a machine, and load or faults aimed elsewhere
would hit someone else's service. A kind cluster's gateway is normally
reached through a port-forward on 127.0.0.1 too; `allow_non_loopback` exists for a cluster you own that is
reachable only on another address, and must be asked for explicitly."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from load.profiles import LoadConfigError
from sample_shop.topology import LOAD_METRICS_PORT, StackDescriptor, default_state_dir, port_offset


@dataclass(frozen=True)
class Target:
    host: str  # base URL of the gateway, no trailing slash
    metrics_port: int  # 0 = do not serve client metrics
    stack_target: str | None  # "local" / "kind" when read from stack.json


def is_loopback_address(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def check_url(url: str, field: str = "host") -> tuple[str, str, int]:
    """Validate a base URL -> (normalised URL, hostname, port). Pure."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadConfigError(field, f"expected a base URL such as http://127.0.0.1:8080, got {url!r}")
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise LoadConfigError(field, f"expected a base URL without path or query, got {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise LoadConfigError(field, f"bad port in {url!r}") from None
    netloc = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{netloc}:{port}", parts.hostname, port


def resolves_to_loopback(hostname: str) -> bool:
    """True when every address the name resolves to is a loopback address."""
    if is_loopback_address(hostname):
        return True
    try:
        infos = socket.getaddrinfo(hostname, None)
    except OSError:
        return False
    return bool(infos) and all(is_loopback_address(str(info[4][0])) for info in infos)


def resolve_target(
    host: str | None = None,
    *,
    state_dir: Path | str | None = None,
    metrics_port: int | None = None,
    allow_non_loopback: bool = False,
) -> Target:
    """The gateway URL and exporter port for a run. Without `host`, both come from the running stack's
    stack.json (raises FileNotFoundError saying how to start one)."""
    stack: StackDescriptor | None = None
    if host is None:
        stack = StackDescriptor.load(Path(state_dir) if state_dir else default_state_dir())
        host = stack.gateway_url
    url, hostname, _ = check_url(host)
    if not allow_non_loopback and not resolves_to_loopback(hostname):
        raise LoadConfigError(
            "host",
            f"{hostname} is not a loopback address; only 127.0.0.1 may receive load. For a kind cluster "
            "use a port-forward to 127.0.0.1, or pass --allow-non-loopback for a cluster you own.",
        )
    if metrics_port is None:
        metrics_port = stack.load_metrics_port if stack else LOAD_METRICS_PORT + port_offset()
    if not 0 <= metrics_port <= 65535:
        raise LoadConfigError("metrics_port", f"must be between 0 and 65535 (0 = off), got {metrics_port}")
    return Target(url, metrics_port, stack.target if stack else None)


def check_reachable(url: str, timeout_s: float = 3.0) -> None:
    """Raise ConnectionError when nothing accepts connections at the URL's host and port."""
    _, hostname, port = check_url(url)
    try:
        with socket.create_connection((hostname, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ConnectionError(
            f"the gateway at {url} does not accept connections ({exc.strerror or exc}). "
            "Is the stack up? Start it with `testbed up` (or `make up`)."
        ) from exc
