"""Reading an experiment's `configuration` (and the environment) into typed values.

Chaos Toolkit hands `--var name=value` over as text, so every number is converted here, with an error that
names the configuration key and says what is valid. The state folder comes from the `state_dir` entry,
else TESTBED_STATE_DIR, else `.testbed` (so a plain `chaos run` next to `testbed up` just works)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from sample_shop.faultd.client import ControlClient
from sample_shop.topology import StackDescriptor

PHASE_KEYS = ("warmup_s", "baseline_s", "fault_s", "recovery_s")
TTL_MARGIN_S = 15.0  # a fault's default TTL: its phase plus this, so a dead experiment leaves it soon
BUDGET_MARGIN_S = 60.0  # load and policy overrides last the phases plus this (hypothesis, rollbacks)
DEFAULT_FAULT_S = 30.0

Configuration = dict[str, Any] | None


class ConfigurationError(ValueError):
    """A configuration value or an activity argument is wrong; the message names it."""


def number(value: Any, name: str, lo: float = 0.0, hi: float = 86_400.0) -> float:
    """A number from a YAML number or a --var string, within [lo, hi]."""
    if isinstance(value, bool):
        raise ConfigurationError(f"{name}: must be a number between {lo:g} and {hi:g}, got {value!r}")
    try:
        result = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"{name}: must be a number between {lo:g} and {hi:g}, got {value!r}"
        ) from None
    if not math.isfinite(result) or not lo <= result <= hi:
        raise ConfigurationError(f"{name}: must be a number between {lo:g} and {hi:g}, got {value!r}")
    return result


def config_number(configuration: Configuration, key: str, default: float, lo: float = 0.0) -> float:
    raw = (configuration or {}).get(key)
    return default if raw is None or raw == "" else number(raw, f"configuration {key}", lo)


def state_dir(configuration: Configuration) -> Path:
    raw = (configuration or {}).get("state_dir") or os.environ.get("TESTBED_STATE_DIR") or ".testbed"
    return Path(str(raw)).expanduser().resolve()


def stack(configuration: Configuration) -> StackDescriptor:
    """The running stack's descriptor; FileNotFoundError says how to start one."""
    return StackDescriptor.load(state_dir(configuration))


def control(configuration: Configuration) -> ControlClient:
    return ControlClient(stack(configuration))


def phases_total_s(configuration: Configuration) -> float:
    """Sum of the phase durations the experiment declares (missing ones count 0)."""
    return sum(config_number(configuration, key, 0.0) for key in PHASE_KEYS)


def budget_s(configuration: Configuration) -> float:
    """How long the whole experiment may take: what load and policy overrides are bounded by."""
    return phases_total_s(configuration) + BUDGET_MARGIN_S


def default_fault_ttl_s(configuration: Configuration) -> float:
    return config_number(configuration, "fault_s", DEFAULT_FAULT_S, lo=1.0) + TTL_MARGIN_S
