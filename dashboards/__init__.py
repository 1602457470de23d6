"""Grafana dashboards and provisioning for the shop, generated from sample_shop/topology.py.

`python -m dashboards.build` writes dashboards/*.json and dashboards/provisioning/**; the committed files
must equal its output (tests/dashboards checks). docs/dashboards.md describes every dashboard and panel.
"""
