"""Experiment orchestration: `testbed experiment run` end to end (runner.py): the catalog (catalog.py),
the phase schedule (schedule.py, pure), one experiment at a time (lock.py), the `chaos run` subprocess
(chaos.py), live progress (live.py, progress.py), the last-line rollback (safety.py), collection into the
run folder (collect.py, queries.py, telemetry.py) and what the end means (outcome.py, pure)."""
