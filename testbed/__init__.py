"""The chaos-shop testbed: the `testbed` CLI, runtime targets, experiment orchestration, collection and
reporting. Nothing in the shop, load, slo or experiments rooms imports it (docs/architecture.md)."""
