"""Is a loopback port free, and if not, who holds it."""

from __future__ import annotations

import contextlib
import socket

import psutil

from testbed.runtime.forkserver import command_of


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a listener could bind host:port now (SO_REUSEADDR: TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_owner(port: int) -> str:
    """'pid 123 (python -m sample_shop.catalog)' for the process listening on the port, when visible."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                try:
                    cmdline = " ".join(command_of(psutil.Process(conn.pid)))[:120]
                except psutil.Error:
                    cmdline = "?"
                return f"pid {conn.pid} ({cmdline})"
    return "a process this user cannot see"


def listening(ports: dict[int, str]) -> dict[int, str]:
    """The subset of `ports` (port -> role) that something still listens on."""
    return {port: role for port, role in ports.items() if not port_is_free(port)}


def busy_ports_message(busy: dict[int, str]) -> str:
    lines = [
        f"port {port} ({role}) is already in use by {port_owner(port)}" for port, role in sorted(busy.items())
    ]
    return "; ".join(lines)
