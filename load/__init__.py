"""Load: simulated shoppers (Locust) against the shop's gateway, their client metrics and result files.

Locust-free (importable anywhere): `profiles` (names, parameters, pure schedules), `routes`, `results`
(files, columns, summary), `target` (where load may go), `bounds`, `control` (start/stop a background
run). Imported only inside the load process, because Locust monkey-patches the standard library with
gevent: `journeys`, `shapes`, `exporter`, `runner`. Entry point: `python -m load`. See docs/load.md.
"""
