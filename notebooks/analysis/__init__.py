"""Loading and shaping of run folders for the notebooks: pure pandas in, pandas out, apart from `run`
(the only module that reads files) and `plots` (matplotlib).

- `run`: open a run folder, say what is there and what is missing, load each part lazily.
- `overview`: requests over time, per-phase summary, the server-side plot series, the SLO table.
- `compare`: baseline vs fault and run vs run (Mann-Whitney U via slo.stats, effect sizes).
- `traces`: span durations per service and phase, critical paths of the slowest traces.
- `logs`: log lines per phase, error logs by phase, the most frequent error messages.
- `whatif`: the SLOs under other targets and periods (slo.maths, slo.windows).
- `plots`: the figures, phases shaded.
"""
