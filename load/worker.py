"""`python -m load.worker`: one worker process of a distributed load run (load/distributed.py), started by
the load master, never by hand. It runs the users the master gives it, writes its part of
requests.parquet, sends its client-metric observations to the master every second, and exits when the
master quits, when the master process is gone, or at the hard time limit the master passes down."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import gevent
from locust.env import Environment

from load.bounds import STOP_TIMEOUT_S
from load.distributed import METRICS_MESSAGE, MetricsBatch
from load.journeys import configure
from load.results import RequestRecorder
from load.runner import request_listener

SEND_INTERVAL_S = 1.0
log = logging.getLogger("load.worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.worker", description=__doc__)
    parser.add_argument("--master-port", type=int, required=True)
    parser.add_argument("--host", required=True, help="gateway base URL")
    parser.add_argument("--think-time-factor", type=float, required=True)
    parser.add_argument("--mix", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--part", type=Path, required=True, help="this worker's part of requests.parquet")
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format=f"%(asctime)s worker {args.index}: %(levelname)s %(message)s"
    )

    env = Environment(
        user_classes=[configure(args.think_time_factor, args.mix)],
        host=args.host,
        stop_timeout=STOP_TIMEOUT_S,
        catch_exceptions=True,
    )
    runner = env.create_worker_runner("127.0.0.1", args.master_port)
    recorder = RequestRecorder(args.part)
    batch = MetricsBatch()
    env.events.request.add_listener(request_listener(recorder, batch, runner))

    def send_metrics() -> None:
        while True:
            gevent.sleep(SEND_INTERVAL_S)
            pending = batch.drain()
            if pending:
                runner.send_message(METRICS_MESSAGE, pending)

    def on_report(client_id: str, data: dict[str, object]) -> None:
        data[METRICS_MESSAGE] = batch.drain()  # the final report on quit carries the last observations

    def report_on_stop(**_: object) -> None:
        # A worker that reported "stopped" is unknown to the master until its stop_timeout pause is over,
        # and the master discards its reports meanwhile: send the last requests' stats before that.
        runner._send_stats()

    def watch_parent() -> None:
        while os.getppid() == args.parent_pid:
            gevent.sleep(1.0)
        log.warning("the load master is gone: stopping")
        runner.quit()

    env.events.report_to_master.add_listener(on_report)
    env.events.test_stop.add_listener(report_on_stop)
    gevent.spawn(send_metrics)
    gevent.spawn(watch_parent)
    gevent.signal_handler(signal.SIGTERM, runner.quit)
    gevent.signal_handler(signal.SIGINT, runner.quit)
    try:
        runner.greenlet.join()
    finally:
        recorder.close()
        # the master's log of its workers (workers.log) says what each one contributed
        print(
            f"worker {args.index}: {recorder.rows_written} requests recorded in {args.part.name}", flush=True
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
