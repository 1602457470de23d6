"""Arize Phoenix as a real OTLP trace backend with a UI, for this machine where Jaeger, Tempo and the
OpenTelemetry Collector cannot be installed (they run on kind: docs/kind.md).

Phoenix is an open-source LLM-observability tool that happens to be a complete OTLP/HTTP trace server: it
stores what the standard protobuf exporter sends to /v1/traces (it refuses OTLP-JSON) and shows traces
and span trees. It has no service map, and every span lands in one project ("default"). It is big (about
860 MB installed, 450 MB resident), so it gets its own virtual environment in the user's cache, pinned,
installed once and reused: never part of the testbed's .venv.

`ensure_phoenix` installs it; `start_phoenix` runs it on loopback; `trace_spans` reads one trace back
through Phoenix's REST API; `trace_problems` (pure) says what is wrong with a trace's shape."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sample_shop.basics import write_json_atomic

PHOENIX_VERSION = "20.26.1"  # pinned: its REST API (/v1/projects/{project}/spans) is what the check reads
PHOENIX_PORT = 6006  # Phoenix's own default (UI, REST and OTLP/HTTP on one port), shifted by the offset
PHOENIX_GRPC_PORT = 4317  # OTLP/gRPC (unused by the testbed, but Phoenix always listens), shifted too
PROJECT = "default"
INSTALL_TIMEOUT_S = 1800


class PhoenixError(RuntimeError):
    """Phoenix could not be installed, started or asked (the message says what and where to look)."""


def cache_root() -> Path:
    """Outside the repository: a clean clone must not carry 860 MB, and every clone reuses the install."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chaos-shop"


def install_dir(version: str = PHOENIX_VERSION) -> Path:
    return cache_root() / f"phoenix-{version}-py{sys.version_info.major}.{sys.version_info.minor}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One installer at a time (two test runs, or a test and `make traces-ui`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_phoenix(progress: Callable[[str], None] = print, version: str = PHOENIX_VERSION) -> Path:
    """The `phoenix` binary of the pinned install, installing it first when absent (pip, a few minutes)."""
    folder = install_dir(version)
    binary = folder / "venv" / "bin" / "phoenix"
    marker = folder / "installed.json"
    with _locked(folder.parent / f".{folder.name}.lock"):
        try:
            if json.loads(marker.read_text()).get("version") == version and binary.is_file():
                return binary
        except (FileNotFoundError, ValueError):
            pass
        progress(f"installing Arize Phoenix {version} into {folder} (once; about 860 MB, a few minutes)")
        shutil.rmtree(folder / "venv", ignore_errors=True)
        started = time.monotonic()
        steps = [
            [sys.executable, "-m", "venv", str(folder / "venv")],
            [str(folder / "venv" / "bin" / "pip"), "install", "--quiet", f"arize-phoenix=={version}"],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
            if done.returncode != 0:
                output = (done.stderr or done.stdout)[-1500:]
                raise PhoenixError(f"installing Phoenix failed at `{' '.join(step[:3])} ...`: {output}")
        write_json_atomic(
            marker, {"version": version, "python": sys.version.split()[0], "installed": time.time()}
        )
        progress(f"Phoenix installed in {time.monotonic() - started:.0f} s")
    return binary


@dataclass
class PhoenixServer:
    process: subprocess.Popen[bytes]
    url: str  # UI, REST API and OTLP/HTTP (the exporter's base URL: it appends /v1/traces)
    log_path: Path

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop this Phoenix by its pid: SIGTERM, then SIGKILL after the grace period."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_phoenix(binary: Path, work_dir: Path, port_offset: int, timeout_s: float = 90.0) -> PhoenixServer:
    """Phoenix on 127.0.0.1 (its SQLite database in `work_dir`), ready to take traces when this returns."""
    work_dir.mkdir(parents=True, exist_ok=True)
    port = PHOENIX_PORT + port_offset
    env = {
        **os.environ,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(PHOENIX_GRPC_PORT + port_offset),
        "PHOENIX_WORKING_DIR": str(work_dir),
        "PHOENIX_TELEMETRY_ENABLED": "false",  # no usage reports to the vendor from a test machine
    }
    log_path = work_dir / "phoenix.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(binary), "serve"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    server = PhoenixServer(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-1500:]
            raise PhoenixError(f"Phoenix exited with code {process.returncode} while starting: {tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return server
        time.sleep(0.5)
    server.stop()
    raise PhoenixError(f"Phoenix was not ready after {timeout_s:g} s; see {log_path}")


def trace_spans(url: str, trace_id: str, project: str = PROJECT) -> list[dict[str, Any]]:
    """Every span Phoenix holds for one trace (its REST API, paginated)."""
    spans: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"trace_id": trace_id, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        response = httpx.get(f"{url}/v1/projects/{project}/spans", params=params, timeout=10)
        if response.status_code != 200:
            raise PhoenixError(f"Phoenix answered {response.status_code} for the spans of {trace_id}")
        body = response.json()
        spans += body.get("data") or []
        cursor = body.get("next_cursor")
        if not cursor:
            return spans


def services_on_path(spans: Sequence[dict[str, Any]]) -> set[str]:
    """The services a trace passed through, from its shape alone (Phoenix keeps no resource attributes):
    a client span names its peer (`peer.service`), and a server span under it is that peer's. The root is
    the gateway's."""
    by_parent: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        by_parent.setdefault(span.get("parent_id"), []).append(span)
    services = set()
    for span in spans:
        peer = (span.get("attributes") or {}).get("peer.service")
        if peer and by_parent.get(span["context"]["span_id"]):
            services.add(str(peer))
    return services


def trace_problems(spans: Sequence[dict[str, Any]], caller_span_id: str, want: set[str]) -> list[str]:
    """What is wrong with a trace as Phoenix stored it: empty, a parent link that points at no span of the
    trace (other than the caller's span outside the shop), a root that is not the caller's child, or a
    service of the path without a span."""
    if not spans:
        return ["Phoenix holds no span of this trace"]
    ids = {s["context"]["span_id"] for s in spans}
    problems = []
    dangling = {s.get("parent_id") for s in spans} - ids - {caller_span_id, None}
    if dangling:
        problems.append(f"parent links to spans Phoenix does not hold: {sorted(str(d) for d in dangling)}")
    roots = [s for s in spans if s.get("parent_id") == caller_span_id]
    if len(roots) != 1:
        problems.append(f"expected one span under the caller's span {caller_span_id}, found {len(roots)}")
    seen = services_on_path(spans) | ({"gateway"} if roots else set())
    if want - seen:
        problems.append(f"no span from {sorted(want - seen)} (seen: {sorted(seen)})")
    return problems


def wait_for_trace(
    url: str, trace_id: str, caller_span_id: str, want: set[str], timeout_s: float = 20.0
) -> tuple[list[dict[str, Any]], list[str]]:
    """The trace once it is whole in Phoenix (the exporters batch every 0.5 s), else the last problems."""
    deadline = time.monotonic() + timeout_s
    while True:
        spans = trace_spans(url, trace_id)
        problems = trace_problems(spans, caller_span_id, want)
        if not problems or time.monotonic() > deadline:
            return spans, problems
        time.sleep(0.5)
