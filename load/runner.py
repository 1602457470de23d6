"""One load run in this process: Locust's library API on gevent, the client-metrics exporter, the result
files, progress events, and the bounds that make sure the load never outlives its welcome:

- the shape stops the users when the profile's duration is over;
- a wall-clock deadline (duration + stop timeout + grace) stops them even if the shape misbehaves;
- SIGALRM a minute after that ends the process even if the event loop is stuck;
- with `parent_pid`, the run stops as soon as that process is gone (a killed `chaos run`);
- SIGTERM / SIGINT stop it early, and the results are still written.

With `workers` > 0 this process is Locust's master and N local worker processes run the users
(load/distributed.py); the result files are the same.

Imported only by `python -m load`: importing Locust monkey-patches the standard library."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

import gevent
import psutil
from locust.env import Environment
from locust.runners import STATE_STOPPED, Runner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

from load.bounds import STOP_TIMEOUT_S, deadline_s, hard_limit_s
from load.distributed import METRICS_MESSAGE, WorkerProcesses, free_port, merge_parts
from load.exporter import ClientMetrics, MetricsServer
from load.journeys import configure
from load.profiles import LoadParams, peak_users
from load.results import (
    EXCEPTIONS_CSV,
    FAILURES_CSV,
    LOCUST_CSV_PREFIX,
    LOG_FILE,
    PROGRESS_JSONL,
    REQUESTS_PARQUET,
    STATS_CSV,
    STATS_HISTORY_CSV,
    SUMMARY_JSON,
    RequestRecorder,
    read_requests,
    summarize,
)
from load.shapes import shape_for
from sample_shop.basics import utc_iso, write_json_atomic

PROGRESS_INTERVAL_S = 1.0

ExitReason = Literal["completed", "stopped", "parent_gone", "deadline"]
logger = logging.getLogger("load")


@dataclass(frozen=True)
class RunConfig:
    params: LoadParams
    host: str
    out_dir: Path
    metrics_port: int  # 0 = no exporter
    parent_pid: int | None = None
    progress: Literal["text", "jsonl", "none"] = "text"
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 only inside a pod, where Prometheus scrapes from outside
    workers: int = 0  # 0 = the users run in this process; N = Locust master + N local worker processes


class Progress:
    """Progress events go to <out>/progress.jsonl always, and to stdout as text or JSON lines."""

    def __init__(self, out_dir: Path, mode: str, stdout: TextIO = sys.stdout) -> None:
        self.mode = mode
        self.stdout = stdout
        self.file = (out_dir / PROGRESS_JSONL).open("a", buffering=1)

    def emit(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": utc_iso(time.time()), **fields}
        line = json.dumps(record, default=str)
        self.file.write(line + "\n")
        if self.mode == "jsonl":
            self.stdout.write(line + "\n")
            self.stdout.flush()
        elif self.mode == "text":
            stream = sys.stderr if event == "error" else self.stdout
            stream.write(self._text(record) + "\n")
            stream.flush()

    @staticmethod
    def _text(r: dict[str, Any]) -> str:
        if r["event"] == "progress":
            return (
                f"[{r['elapsed_s']:>6.0f}s/{r['duration_s']:.0f}s] users {r['users']:>4}  "
                f"rps {r['rps']:>7.1f}  requests {r['requests']:>7}  failures {r['failures']}"
            )
        if r["event"] == "started":
            return f"load: {r['params']['profile']} against {r['host']}, results in {r['out_dir']}"
        if r["event"] == "finished":
            return f"load: finished ({r['exit_reason']}): {r['requests']} requests, {r['failures']} failures"
        return f"load: {r['event']}: {r.get('message', '')}"

    def close(self) -> None:
        self.file.close()


def _setup_logging(out_dir: Path, to_stderr: bool) -> None:
    handlers: list[logging.Handler] = [logging.FileHandler(out_dir / LOG_FILE)]
    handlers[0].setLevel(logging.INFO)
    if to_stderr:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.WARNING)
        handlers.append(console)
    logging.basicConfig(
        level=logging.INFO,
        handlers=handlers,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


class _CsvWriter(StatsCSVFileWriter):
    """Locust's CSV writer plus one final write after the users stopped (its loop writes every second,
    so without it the last second would be missing)."""

    def write_final(self) -> None:
        self._stats_history_data_rows(self.stats_history_csv_writer, time.time())
        for handle, header, rows in (
            (self.requests_csv_filehandle, self.requests_csv_columns, self._requests_data_rows),
            (self.failures_csv_filehandle, self.failures_columns, self._failures_data_rows),
            (self.exceptions_csv_filehandle, self.exceptions_columns, self._exceptions_data_rows),
        ):
            handle.seek(0)
            handle.truncate()
            csv_writer = csv.writer(handle)
            csv_writer.writerow(header)
            rows(csv_writer)


def _rename_csv(out_dir: Path) -> None:
    for suffix, final in (
        ("stats.csv", STATS_CSV),
        ("stats_history.csv", STATS_HISTORY_CSV),
        ("failures.csv", FAILURES_CSV),
        ("exceptions.csv", EXCEPTIONS_CSV),
    ):
        src = out_dir / f"{LOCUST_CSV_PREFIX}_{suffix}"
        if src.exists():
            src.replace(out_dir / final)


def run(config: RunConfig) -> int:
    """Run the load; write every result file; return the process exit code (0 ok, 1 failures or no
    requests, 3 cannot run)."""
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    _setup_logging(out, to_stderr=config.progress == "text")
    progress = Progress(out, config.progress)
    try:
        return _run(config, progress)
    finally:
        progress.close()


def _run(config: RunConfig, progress: Progress) -> int:
    metrics = ClientMetrics()
    server: MetricsServer | None = None
    if config.metrics_port:
        server = MetricsServer(metrics, config.metrics_port, config.metrics_host)
        try:
            server.start()
        except OSError as exc:
            progress.emit("error", message=str(exc))
            return 3
    out = config.out_dir
    env = _environment(config)
    recorder: RequestRecorder | None = None
    workers: WorkerProcesses | None = None
    if config.workers:
        runner: Runner = env.create_master_runner("127.0.0.1", (port := free_port()))
        _receive_worker_metrics(env, runner, metrics)
        workers = WorkerProcesses(config.workers, config.params, config.host, port, out)
        try:
            workers.wait_connected(runner)
        except RuntimeError as exc:
            runner.quit()
            workers.wait_ended()
            if server is not None:
                server.stop()
            progress.emit("error", message=str(exc))
            return 3
    else:
        runner = env.create_local_runner()
        recorder = RequestRecorder(out / REQUESTS_PARQUET)
        env.events.request.add_listener(request_listener(recorder, metrics, runner))
    csv_writer = _CsvWriter(env, PERCENTILES_TO_REPORT, str(out / LOCUST_CSV_PREFIX), full_history=True)
    csv_greenlet = gevent.spawn(csv_writer.stats_writer)
    stop = _StopRequest()
    gevent.signal_handler(signal.SIGTERM, stop, "stopped")
    gevent.signal_handler(signal.SIGINT, stop, "stopped")

    params = config.params
    stop_after_s = deadline_s(params.duration_s)
    signal.alarm(int(hard_limit_s(params.duration_s)) + 1)  # last resort: default action ends the process
    started = time.time()
    progress.emit(
        "started",
        pid=os.getpid(),
        host=config.host,
        out_dir=str(out),
        params=params.to_dict(),
        metrics_port=config.metrics_port,
        deadline=utc_iso(started + stop_after_s),
        workers=config.workers,
    )
    runner.start_shape()
    watch = _Watch(workers)
    try:
        _watch(config, runner, metrics, progress, stop, started, watch)
    finally:
        if workers is not None:
            workers.quit(runner)  # each stops its users, reports, closes its part of requests.parquet
            runner.greenlet.kill(block=True)  # the shape and the master's loops; no worker is left to stop
        else:
            runner.quit()  # stops the users (each finishes its step, up to STOP_TIMEOUT_S) and the shape
        ended = time.time()
        metrics.set_users(0)
        csv_greenlet.kill(block=True)
        csv_writer.write_final()
        csv_writer.close_files()
        _rename_csv(out)
        if recorder is not None:
            recorder.close()
        else:
            merge_parts(out, watch.users_timeline)
        if server is not None:
            server.stop()
    signal.alarm(0)
    assert stop.reason is not None  # _watch returns only once a stop was requested
    return _report(config, runner, progress, stop.reason, (started, ended), watch)


def _environment(config: RunConfig) -> Environment:
    """Locust's Environment for one run: the journeys with the mix and think time, the profile's shape."""
    user_class = configure(config.params.think_time_factor, config.params.mix)
    return Environment(
        user_classes=[user_class],
        shape_class=shape_for(config.params),
        host=config.host,
        stop_timeout=STOP_TIMEOUT_S,
        catch_exceptions=True,
    )


class Observer(Protocol):
    def observe(self, name: str, method: str, response_time_ms: float, ok: bool) -> None: ...


def _receive_worker_metrics(env: Environment, runner: Runner, metrics: ClientMetrics) -> None:
    """The master's exporter serves the workers' observations (sent each second and in the final report)."""

    def observe_all(observations: list[Any]) -> None:
        for name, method, response_time_ms, ok in observations:
            metrics.observe(name, method, response_time_ms, ok)

    runner.register_message(METRICS_MESSAGE, lambda msg, **_: observe_all(msg.data or []))
    env.events.worker_report.add_listener(
        lambda client_id, data: observe_all(data.get(METRICS_MESSAGE) or [])
    )


def request_listener(recorder: RequestRecorder, metrics: Observer, runner: Runner) -> Callable[..., None]:
    """Locust's request event handler: every request to requests.parquet and the client metrics (in a
    worker process: its part of requests.parquet, observations batched for the master)."""

    def on_request(
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        response: Any = None,
        context: dict[str, Any] | None = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        **_: Any,
    ) -> None:
        status = int(getattr(response, "status_code", 0) or 0)
        recorder.add(
            start_time_s=start_time if start_time is not None else time.time() - response_time / 1000,
            name=name,
            method=request_type,
            journey=(context or {}).get("journey", "unknown"),
            response_time_ms=response_time,
            status_code=status,
            exception=None if exception is None else str(exception)[:500],
            response_length=response_length or 0,
            users=runner.user_count,
        )
        metrics.observe(name, request_type, response_time, exception is None)

    return on_request


class _StopRequest:
    """The first reason to stop wins (a signal, the shape's end, the deadline, the parent gone)."""

    def __init__(self) -> None:
        self.reason: ExitReason | None = None

    def __call__(self, reason: ExitReason) -> None:
        if self.reason is None:
            self.reason = reason
            logger.info("stopping: %s", reason)


class _Watch:
    """What the watch loop saw: the most users, the users over time (for the workers' merged rows) and
    the load generator's CPU per tick (this process plus its workers, fraction of one core)."""

    def __init__(self, workers: WorkerProcesses | None) -> None:
        self.workers = workers
        self.max_users = 0
        self.users_timeline: list[tuple[float, int]] = [(time.time(), 0)]
        self.cpu_samples: list[float] = []
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first call only starts the measurement

    def tick(self, now: float, users: int) -> float:
        self.max_users = max(self.max_users, users)
        self.users_timeline.append((now, users))
        cpu = self._process.cpu_percent(None) / 100.0  # share of one core since the last tick
        if self.workers is not None:
            cpu += self.workers.cpu_share()
        self.cpu_samples.append(cpu)
        return cpu

    def cpu_summary(self) -> dict[str, float | None]:
        samples = self.cpu_samples
        if not samples:
            return {"max": None, "mean": None}
        return {"max": round(max(samples), 3), "mean": round(sum(samples) / len(samples), 3)}


def _watch(
    config: RunConfig,
    runner: Runner,
    metrics: ClientMetrics,
    progress: Progress,
    stop: _StopRequest,
    started: float,
    watch: _Watch,
) -> None:
    """Every PROGRESS_INTERVAL_S until a stop is requested: the users gauge, a progress event, the
    deadline and parent checks; what it sees goes into `watch`."""
    duration_s = config.params.duration_s
    stop_after_s = deadline_s(duration_s)
    recent: deque[tuple[float, int]] = deque(maxlen=6)  # (time, requests) for a 5 s rps window
    while True:
        gevent.sleep(PROGRESS_INTERVAL_S)
        now = time.time()
        users = runner.user_count
        metrics.set_users(users)
        cpu = watch.tick(now, users)
        metrics.set_cpu(cpu)
        total = runner.stats.total
        recent.append((now, total.num_requests))
        window_s = recent[-1][0] - recent[0][0]
        rps = (recent[-1][1] - recent[0][1]) / window_s if window_s > 0 else 0.0
        if runner.state == STATE_STOPPED:  # the shape ended the run: no "0 users" progress line
            stop("completed")
            return
        progress.emit(
            "progress",
            elapsed_s=round(now - started, 1),
            duration_s=duration_s,
            users=users,
            requests=total.num_requests,
            failures=total.num_failures,
            rps=round(rps, 2),
            cpu=round(cpu, 3),
        )
        if config.parent_pid is not None and os.getppid() != config.parent_pid:
            stop("parent_gone")
        elif now - started > stop_after_s:
            stop("deadline")
        if stop.reason is not None:
            return


def _report(
    config: RunConfig,
    runner: Runner,
    progress: Progress,
    reason: ExitReason,
    window: tuple[float, float],
    watch: _Watch,
) -> int:
    """summary.json and the "finished" event; the exit code (1 when no requests, failures or journey
    errors)."""
    out, params = config.out_dir, config.params
    started, ended = window
    summary = summarize(
        read_requests(out),
        params=params.to_dict(),
        host=config.host,
        started=utc_iso(started),
        ended=utc_iso(ended),
        wall_s=ended - started,
        exit_reason=reason,
        peak_users=max(watch.max_users, 0) or peak_users(params),
    )
    summary["journey_errors"] = sum(row["count"] for row in runner.exceptions.values())
    summary["workers"] = config.workers
    # the noise guard of the verdicts reads this: a saturated load generator measures itself, not the shop
    summary["load_generator_cpu"] = watch.cpu_summary()
    write_json_atomic(out / SUMMARY_JSON, summary, allow_nan=False)
    progress.emit(
        "finished",
        exit_reason=reason,
        requests=summary["requests"],
        failures=summary["failures"],
        journey_errors=summary["journey_errors"],
        summary_file=str(out / SUMMARY_JSON),
        summary=summary,  # the whole summary, so a pod's log alone tells the result
    )
    if summary["requests"] == 0 or summary["failures"] or summary["journey_errors"]:
        return 1
    return 0
