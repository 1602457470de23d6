"""Real shop processes for the shop's tests: each replica is `python -m sample_shop.<service>` with the env
contract, on loopback, on ports shifted clear of any stack (TESTBED_PORT_OFFSET + 3000), in a temporary
state folder. `ShopProcesses.stop_all()` kills every process it started; fixtures call it in `finally`.

Also runnable by hand: `python -m tests.shop.processes` starts the seven services and waits for Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sample_shop import topology

TEST_PORT_SHIFT = 3000  # keeps these processes clear of a stack (services, Prometheus, control API)
ADMIN_TOKEN = "shop-test-admin-token"
JWT_SECRET = "shop-test-jwt-secret-of-at-least-32-bytes"
REPO = Path(__file__).resolve().parents[2]


def offset() -> int:
    return topology.port_offset() + TEST_PORT_SHIFT


@dataclass
class Replica:
    service: str
    replica: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def port(self) -> int:
        return topology.app_port(self.service, self.replica, offset())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.port + topology.ADMIN_PORT_OFFSET}"


@dataclass
class ShopProcesses:
    state_dir: Path
    env: dict[str, str] = field(default_factory=dict)  # extra env for every replica
    replicas: dict[str, int] = field(default_factory=dict)  # service -> replica count (default 1)
    running: dict[tuple[str, int], Replica] = field(default_factory=dict)

    def url(self, service: str, replica: int = 0) -> str:
        return f"http://127.0.0.1:{topology.app_port(service, replica, offset())}"

    def admin_url(self, service: str, replica: int = 0) -> str:
        return f"http://127.0.0.1:{topology.admin_port(service, replica, offset())}"

    def replica_env(self, service: str, replica: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOP_", "OTEL_", "DATABASE_URL"))}
        env.update(
            {
                "TESTBED_PORT_OFFSET": str(offset()),
                "SHOP_REPLICA": str(replica),
                "SHOP_STATE_DIR": str(self.state_dir),
                "SHOP_ADMIN_TOKEN": ADMIN_TOKEN,
                "SHOP_JWT_SECRET": JWT_SECRET,
                "PYTHONUNBUFFERED": "1",
            }
        )
        for dep in topology.SERVICES[service].depends_on:
            count = self.replicas.get(dep, 1)
            env[f"SHOP_UPSTREAM_{dep.upper()}"] = ",".join(self.url(dep, r) for r in range(count))
        env.update(self.env)
        return env

    def start(self, service: str, replica: int = 0, env: dict[str, str] | None = None) -> Replica:
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{service}-{replica}.log"
        full_env = self.replica_env(service, replica)
        full_env.update(env or {})
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", f"sample_shop.{service}"],
                env=full_env,
                cwd=REPO,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        handle = Replica(service, replica, process, log_path)
        self.running[(service, replica)] = handle
        return handle

    def start_all(self, services: tuple[str, ...] = topology.SERVICE_NAMES, timeout_s: float = 30.0) -> None:
        for service in services:
            for replica in range(self.replicas.get(service, 1)):
                self.start(service, replica)
        for service in services:
            for replica in range(self.replicas.get(service, 1)):
                self.wait_ready(service, replica, timeout_s)

    def wait_ready(
        self, service: str, replica: int = 0, timeout_s: float = 30.0, path: str = "/healthz"
    ) -> None:
        handle = self.running[(service, replica)]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if handle.process.poll() is not None:
                raise RuntimeError(
                    f"{service}-{replica} exited with {handle.process.returncode}:\n"
                    + handle.log_path.read_text()[-3000:]
                )
            try:
                with urllib.request.urlopen(self.url(service, replica) + path, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise TimeoutError(
            f"{service}-{replica} not ready after {timeout_s} s:\n" + handle.log_path.read_text()[-3000:]
        )

    def kill(self, service: str, replica: int = 0, sig: int = signal.SIGKILL) -> None:
        handle = self.running.pop((service, replica))
        if handle.process.poll() is None:
            handle.process.send_signal(sig)
            try:
                handle.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                handle.process.kill()
                handle.process.wait(timeout=5)

    def stop_all(self) -> None:
        for key in list(self.running):
            with contextlib.suppress(Exception):  # keep stopping the others
                self.kill(*key, sig=signal.SIGTERM)

    def logs(self, service: str, replica: int = 0) -> list[dict[str, Any]]:
        path = self.state_dir / "logs" / f"{service}-{replica}.log"
        lines = []
        for line in path.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    state = Path(os.environ.get("TESTBED_STATE_DIR", "/tmp/tb-shop"))
    pairs = [arg.split("=", 1) for arg in sys.argv[1:]]  # catalog=2 (replicas) or SHOP_TELEMETRY=off (env)
    replicas = {k: int(v) for k, v in pairs if k in topology.SERVICES}
    env = {k: v for k, v in pairs if k not in topology.SERVICES}
    shop = ShopProcesses(state, env=env, replicas=replicas)
    signal.signal(signal.SIGTERM, _interrupt)  # background jobs ignore SIGINT; stop cleanly on SIGTERM too
    try:
        shop.start_all()
        print(f"shop up: gateway {shop.url('gateway')}  admin token {ADMIN_TOKEN}  state {state}", flush=True)
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        shop.stop_all()


if __name__ == "__main__":
    main()
