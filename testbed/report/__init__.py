"""report.html of a run folder: figures (matplotlib, inline PNG), the SLO table with budget per phase,
time to detect and recover, the baseline-vs-fault comparison, the slowest traces as waterfalls. Reads the
run folder only (testbed.runfolder), never a live Prometheus. Entry point: `render.render_report`."""
