"""Load beyond one core: Locust's own distributed mode on this machine. The load process becomes the master
(the shape, the stats, the CSVs, the client-metrics exporter, summary.json) and starts N worker processes
(`python -m load.worker`) that run the users. Each worker writes its own part of requests.parquet and sends
its client-metric observations to the master once a second; at the end the master merges the parts into
the one requests.parquet a single-process run writes, with the `users` column from the master's own
timeline (the total over all workers, not one worker's share).

Imported only by the load process (gevent, Locust)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gevent
import psutil

from load.profiles import LoadParams
from load.results import REQUESTS_PARQUET, request_schema

WORKER_PART_GLOB = ".requests-worker-*.parquet"
METRICS_MESSAGE = "client_metrics"  # worker -> master: [(name, method, response_time_ms, ok), ...]
CONNECT_TIMEOUT_S = 30.0
WORKER_EXIT_TIMEOUT_S = 15.0

Observation = tuple[str, str, float, bool]


def worker_part(out_dir: Path, index: int) -> Path:
    return out_dir / f".requests-worker-{index}.parquet"


def free_port(host: str = "127.0.0.1") -> int:
    """A port the master can bind for its workers (the OS picks it; Locust binds it right after)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class MetricsBatch:
    """A worker's client-metric observations since the last send (the master's exporter serves them)."""

    def __init__(self) -> None:
        self._pending: list[Observation] = []

    def observe(self, name: str, method: str, response_time_ms: float, ok: bool) -> None:
        self._pending.append((name, method, float(response_time_ms), bool(ok)))

    def drain(self) -> list[Observation]:
        pending, self._pending = self._pending, []
        return pending


class WorkerProcesses:
    """The N local worker processes of one run: started, watched for CPU, and ended."""

    def __init__(self, count: int, params: LoadParams, host: str, master_port: int, out_dir: Path) -> None:
        self.count = count
        self.out_dir = out_dir
        argv = [sys.executable, "-m", "load.worker", "--master-port", str(master_port), "--host", host]
        argv += ["--think-time-factor", f"{params.think_time_factor:g}", "--mix", params.mix]
        argv += ["--parent-pid", str(os.getpid())]
        log = (out_dir / "workers.log").open("ab")
        try:
            self.popens = [
                subprocess.Popen(
                    [*argv, "--index", str(i), "--part", str(worker_part(out_dir, i))],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                for i in range(count)
            ]
        finally:
            log.close()
        self.processes = [psutil.Process(p.pid) for p in self.popens]
        self.client_ids: list[str] = []
        for process in self.processes:
            process.cpu_percent(None)  # the first call only starts the measurement

    def cpu_share(self) -> float:
        """The workers' CPU since the last call, as a fraction of one core (summed over the workers)."""
        total = 0.0
        for process in self.processes:
            with contextlib.suppress(psutil.Error):  # ended: it uses no CPU any more
                total += process.cpu_percent(None) / 100.0
        return total

    def wait_connected(self, runner: Any, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Until every worker has said hello to the master; RuntimeError (with the workers' log) if not."""
        deadline = time.monotonic() + timeout_s
        while runner.worker_count < self.count:
            dead = [p.args[-3] for p in self.popens if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"worker(s) {', '.join(dead)} exited" if dead else f"not all within {timeout_s:.0f} s"
                raise RuntimeError(
                    f"{runner.worker_count} of {self.count} load workers connected ({why}); "
                    f"see {self.out_dir / 'workers.log'}"
                )
            gevent.sleep(0.1)
        self.client_ids = [client.id for client in runner.clients.all]

    def quit(self, runner: Any, timeout_s: float = WORKER_EXIT_TIMEOUT_S) -> None:
        """Tell each worker to quit while the master still listens, so their final stats reports (sent on
        quit) reach the master's stats; then wait for them to exit. Locust's own `MasterRunner.quit` is not
        enough: a worker that reported "stopped" is dropped from the master's list (so it would get no quit)
        until it says "ready" again after its stop_timeout pause, and the master stops listening half a
        second after sending."""
        from locust.rpc import Message

        for client_id in self.client_ids:  # by the ids they connected with, listed or not
            runner.server.send_to_client(Message("quit", None, client_id))
        self.wait_ended(timeout_s)

    def wait_ended(self, timeout_s: float = WORKER_EXIT_TIMEOUT_S) -> None:
        """Each worker closes its part and exits; a straggler is killed."""
        deadline = time.monotonic() + timeout_s
        for popen in self.popens:
            while popen.poll() is None and time.monotonic() < deadline:
                gevent.sleep(0.1)
            if popen.poll() is None:
                popen.kill()
                popen.wait()


def merge_parts(out_dir: Path, users_timeline: Sequence[tuple[float, int]]) -> int:
    """Merge the workers' parts into requests.parquet (sorted by time), the `users` column from the
    master's timeline of (unix time, users) at or before each request. Returns the row count."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = request_schema()
    parts = sorted(out_dir.glob(WORKER_PART_GLOB))
    tables = []
    for part in parts:
        try:
            tables.append(pq.read_table(part, schema=schema))
        except (OSError, pa.ArrowInvalid):  # a worker killed before it closed its part wrote nothing usable
            continue
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    table = table.sort_by("timestamp")
    if users_timeline and table.num_rows:
        times_ms = np.array([int(t * 1000) for t, _ in users_timeline], dtype=np.int64)
        counts = np.array([u for _, u in users_timeline], dtype=np.int32)
        stamps = table.column("timestamp").cast(pa.int64()).to_numpy()
        at = np.clip(np.searchsorted(times_ms, stamps, side="right") - 1, 0, len(counts) - 1)
        table = table.set_column(
            schema.get_field_index("users"), schema.field("users"), pa.array(counts[at], pa.int32())
        )
    tmp = out_dir / f".{REQUESTS_PARQUET}.tmp"
    pq.write_table(table, tmp)
    tmp.replace(out_dir / REQUESTS_PARQUET)
    for part in parts:
        part.unlink(missing_ok=True)
    return table.num_rows
