"""chaosshop: the Chaos Toolkit extension of the chaos-shop testbed (docs/faults.md).

- `chaosshop.actions`: faults, process faults, client policies, background load, holding a phase;
- `chaosshop.probes`: SLIs of the SLOs, error ratios, latency quantiles, retries, memory, faults, health;
- `chaosshop.control`: phases, failing the experiment on a failed action, cleanup whatever happens.

Every activity takes the stack from `configuration.state_dir`, else TESTBED_STATE_DIR, else `.testbed`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "discover"]


def discover(discover_system: bool = True) -> dict[str, Any]:
    """What `chaos discover chaosshop` reports: the extension's activities."""
    from chaoslib.discovery.discover import discover_actions, discover_probes, initialize_discovery_result

    result = initialize_discovery_result("chaosshop", __version__, "chaos-shop")
    result["activities"].extend(discover_actions("chaosshop.actions"))
    result["activities"].extend(discover_probes("chaosshop.probes"))
    return result
