"""Benchmarks: `python -m bench` (or `make bench`) measures every registered figure on this machine in one
run and writes bench/RESULTS.md and bench/results.json. See bench/README.md to add one."""
