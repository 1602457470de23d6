"""Chaos Toolkit actions of the shop: faults (through the stack's control API), client policies, process
faults, background load and holding a phase.

Plain functions, as Chaos Toolkit calls them: arguments from the experiment (strings from `--var` are
converted), `configuration` injected. Any exception marks the action failed, and the chaosshop control
then fails the experiment (a failed action is never a silent pass)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from chaosshop import runstate
from chaosshop.settings import (
    Configuration,
    ConfigurationError,
    budget_s,
    control,
    default_fault_ttl_s,
    number,
    stack,
    state_dir,
)
from load.control import current_load
from load.control import start_load as _start_load
from load.control import stop_load as _stop_load
from sample_shop.kit.faultspec import TTL_RANGE_S
from sample_shop.kit.policy import POLICY_TTL_RANGE_S, PROFILES
from slo.confidence import Confidence, judged_slos, phase_confidence, write_confidence

__all__ = [
    "clear_faults",
    "hold",
    "inject_fault",
    "kill_instance",
    "pause_instance",
    "reset_client_policy",
    "restart_instance",
    "set_client_policy",
    "start_load",
    "stop_load",
]

log = logging.getLogger("chaostoolkit")
RUNNING_WAIT_S = 60.0  # a replica must be back this soon before it can be killed again


def _replica(value: Any) -> int | None:
    return None if value is None or value == "" else int(number(value, "replica", 0, 4))


# ---- faults ------------------------------------------------------------------------------------------


def inject_fault(
    service: str,
    kind: str,
    params: dict[str, Any] | None = None,
    ttl_s: Any = None,
    replica: Any = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Inject a fault into every replica of `service` (or one). Its TTL defaults to the experiment's
    `fault_s` plus a margin, so a fault outlives a killed experiment by seconds at most. Fails when no
    replica confirmed it."""
    ttl = default_fault_ttl_s(configuration) if ttl_s is None else number(ttl_s, "ttl_s", *TTL_RANGE_S)
    ttl = min(max(ttl, TTL_RANGE_S[0]), TTL_RANGE_S[1])
    with control(configuration) as api:
        answer = api.inject(service, kind, params or {}, ttl, _replica(replica))
    if "fault" in answer:
        if not answer.get("applied"):
            errors = "; ".join(f"{r['service']}-{r['replica']}: {r['error']}" for r in answer["replicas"])
            raise RuntimeError(f"no replica of {service} confirmed the {kind} fault: {errors}")
        runstate.current().injected.append(answer["fault"])
    log.info("injected %s into %s: %s", kind, service, answer.get("fault", {}).get("id", ""))
    return answer


def clear_faults(service: str | None = None, configuration: Configuration = None) -> dict[str, Any]:
    """Remove every fault (or those of `service`) and end pauses; fails if a replica did not confirm."""
    with control(configuration) as api:
        answer = api.clear(service or None)
    if answer.get("unconfirmed"):
        errors = "; ".join(f"{r['service']}-{r['replica']}: {r['error']}" for r in answer["unconfirmed"])
        raise RuntimeError(f"faults cleared but not confirmed by: {errors} (they end at their TTL)")
    return answer


# ---- process faults ------------------------------------------------------------------------------------


def _wait_running(api: Any, service: str, replica: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    state = "unknown"
    while time.monotonic() < deadline:
        listing = api.processes().get("processes", [])
        match = [p for p in listing if p["service"] == service and p["replica"] == replica]
        state = match[0]["state"] if match else "absent"
        if state == "running":
            return
        time.sleep(0.2)
    raise RuntimeError(f"{service}-{replica} is not running again after {timeout_s:g} s (state {state})")


def kill_instance(
    service: str,
    replica: Any = 0,
    times: Any = 1,
    interval_s: Any = 0,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """SIGKILL a replica (the runtime restarts it like a crashed pod). With `times` > 1, kill it again
    `interval_s` after it is back up each time."""
    index = _replica(replica) or 0
    count = int(number(times, "times", 1, 100))
    pause = number(interval_s, "interval_s", 0, 3600)
    kills = []
    with control(configuration) as api:
        for n in range(count):
            if n:
                time.sleep(pause)
                _wait_running(api, service, index, RUNNING_WAIT_S)
            answer = api.inject(service, "kill", {}, None, index)
            kills.append({"at": time.time(), "state": answer["replicas"][0].get("state")})
    return {"service": service, "replica": index, "kills": kills}


def pause_instance(
    service: str, seconds: Any, replica: Any = 0, configuration: Configuration = None
) -> dict[str, Any]:
    """SIGSTOP a replica for `seconds`; the supervisor sends SIGCONT then, whatever happens to us."""
    with control(configuration) as api:
        return api.inject(service, "pause", {}, number(seconds, "seconds", 1, 600), _replica(replica) or 0)


def restart_instance(service: str, replica: Any = 0, configuration: Configuration = None) -> dict[str, Any]:
    """Stop a replica gracefully and start it again."""
    with control(configuration) as api:
        return api.inject(service, "restart", {}, None, _replica(replica) or 0)


# ---- client policy ------------------------------------------------------------------------------------


def set_client_policy(
    service: str,
    profile: str = "naive",
    overrides: dict[str, Any] | None = None,
    ttl_s: Any = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Override the outbound-client policy (timeouts, retries, breaker) of every replica of `service`
    until reset or `ttl_s` (default: the experiment's whole duration plus a margin)."""
    if profile not in PROFILES:
        raise ConfigurationError(f"profile: must be one of {', '.join(PROFILES)}, got {profile!r}")
    ttl = budget_s(configuration) if ttl_s is None else number(ttl_s, "ttl_s", *POLICY_TTL_RANGE_S)
    with control(configuration) as api:
        answer = api.set_policy(service, profile, overrides, min(ttl, POLICY_TTL_RANGE_S[1]))
    if not answer.get("applied"):
        raise RuntimeError(f"no replica of {service} confirmed the policy override: {answer['replicas']}")
    return answer


def reset_client_policy(service: str | None = None, configuration: Configuration = None) -> dict[str, Any]:
    """Back to the policy each replica started with (all services when `service` is not given)."""
    with control(configuration) as api:
        return api.reset_policy(service or None)


# ---- load ---------------------------------------------------------------------------------------------


def start_load(
    profile: str | None = None,
    users: Any = None,
    duration: Any = None,
    think_time_factor: Any = None,
    spawn_rate: Any = None,
    out_dir: str | None = None,
    mix: str | None = None,
    workers: Any = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Start simulated shoppers in the background (load/, Locust) and return once they run. Unset
    arguments come from the configuration (`profile`, `users`, `think_time_factor`, `mix`, `load_out`,
    `load_workers`: Locust worker processes for load beyond one core, default 0 = one process); the
    duration defaults to the experiment's phases plus a margin, so the load always ends by itself."""
    conf = configuration or {}
    directory = state_dir(configuration)
    run = runstate.current()
    out = (
        out_dir
        or conf.get("load_out")
        or directory / "experiment-load" / f"{run.experiment}-{int(time.time())}"
    )
    handle = _start_load(
        profile or conf.get("profile") or "steady",
        out_dir=Path(str(out)),
        users=users if users is not None else conf.get("users"),
        duration=duration if duration is not None else f"{budget_s(configuration):.0f}s",
        think_time_factor=think_time_factor
        if think_time_factor is not None
        else conf.get("think_time_factor"),
        spawn_rate=spawn_rate if spawn_rate is not None else conf.get("spawn_rate"),
        mix=mix or conf.get("mix"),
        state_dir=directory,
        workers=workers if workers is not None else conf.get("load_workers"),
    )
    run.load = handle
    run.load_started_at = handle.started
    return {"pid": handle.pid, "out_dir": handle.out_dir, "host": handle.host, "params": handle.params}


def stop_load(configuration: Configuration = None) -> dict[str, Any]:
    """Stop the background load (this experiment's, or the one recorded in the state folder) and return
    its summary; `{"stopped": false}` when none runs."""
    run = runstate.current()
    directory = state_dir(configuration)
    handle = run.load if run.load is not None else current_load(directory)
    if handle is None:
        return {"stopped": False}
    summary = _stop_load(handle, state_dir=directory)
    run.load = None
    run.load_stopped_at = time.time()
    run.load_summary = summary
    keep = ("requests", "failures", "failure_ratio", "rps", "latency_ms", "exit_reason", "wall_s")
    return {"stopped": True, "out_dir": handle.out_dir, **{k: (summary or {}).get(k) for k in keep}}


# ---- time -----------------------------------------------------------------------------------------------


CONFIDENCE_EVERY_S = 2.0  # how often a confident hold asks Prometheus (two scrapes)
DEFAULT_CONFIDENT_MIN_S = 10.0  # a confident phase lasts at least this long (a few scrapes, a first alert)
JUDGED_PHASES = ("baseline", "fault", "recovery")  # what the gate judges (slo/sources.py)


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool) or value is None:
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise ConfigurationError(f"{name}: must be true or false, got {value!r}")


def hold(
    seconds: Any,
    until_confident: Any = None,
    min_seconds: Any = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Wait `seconds` (a phase's duration): the load keeps running, the hypothesis keeps being checked.
    Interruptible with Ctrl-C like any activity.

    With `until_confident` (default: the configuration's `until_confident`), `seconds` is the most the
    phase may last: it ends as soon as the sequential rule has decided every SLO the gate will judge
    (met or breached, docs/slo.md), after at least `min_seconds` (configuration `confident_min_s`,
    default 10). Only the judged phases (baseline, fault, recovery) wait for confidence."""
    wait = number(seconds, "seconds", 0, 86_400)
    conf = configuration or {}
    confident = _flag(
        conf.get("until_confident") if until_confident is None else until_confident, "until_confident"
    )
    started = time.monotonic()
    deadline = started + wait
    phase = runstate.current().current_phase
    if not confident or phase is None or phase.name not in JUDGED_PHASES:
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 1.0))
        return {"held_s": round(time.monotonic() - started, 3)}
    raw_min = conf.get("confident_min_s", DEFAULT_CONFIDENT_MIN_S) if min_seconds is None else min_seconds
    minimum = min(wait, number(raw_min, "min_seconds", 0, 86_400))
    status = _hold_until_confident(configuration, phase.name, phase.start, started + minimum, deadline)
    runstate.current().confidence[phase.name] = status.to_dict()
    pending = ", ".join(s.name for s in status.pending)
    log.info(
        "phase %s %s after %.0f s%s", phase.name, "decided" if status.decided else "NOT decided",
        time.monotonic() - started, f" (undecided: {pending})" if pending else "",
    )  # fmt: skip
    return {
        "held_s": round(time.monotonic() - started, 3),
        "until_confident": True,
        "decided": status.decided,
        "undecided": [s.name for s in status.pending],
    }


def _hold_until_confident(
    configuration: Configuration, phase: str, phase_start: float, earliest: float, deadline: float
) -> Confidence:
    """Judge the phase so far every CONFIDENCE_EVERY_S until every SLO is decided (not before
    `earliest`) or `deadline` (monotonic clock) passes; the latest status goes to the state folder."""
    directory = state_dir(configuration)
    descriptor = stack(configuration)
    slos = judged_slos(descriptor.client_metrics_scraped, f"{descriptor.target} Prometheus")
    experiment = runstate.current().experiment
    status = Confidence(experiment, phase, phase_start, time.time(), error="not judged yet")
    while True:
        status = phase_confidence(experiment, descriptor.prometheus_url, phase, phase_start, slos)
        write_confidence(directory, status)
        now = time.monotonic()
        if (status.decided and now >= earliest) or now >= deadline:
            return status
        time.sleep(max(0.0, min(CONFIDENCE_EVERY_S, deadline - now)))
