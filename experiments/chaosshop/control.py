"""The chaosshop control: phases, failed actions, and cleanup whatever happens.

Declare it once per experiment:

    controls:
      - name: chaosshop
        provider: {type: python, module: chaosshop.control}
    extensions:
      - name: chaosshop
        id: payment-latency-breaker            # the experiment's name in Prometheus and the run folder
        phases: {warmup: start-load, baseline: baseline, fault: inject-payment-latency, recovery: recovery}

- Phases: a phase starts before the method activity named in `phases` and ends when the next phase starts or
  the method ends. Each start/end is posted to the control API's /phases (Prometheus:
  `testbed_experiment_phase`) and recorded in the journal (`extensions[name=chaosshop].phases`).
- A failed action in the method fails the experiment at once (Chaos Toolkit would carry on): the journal
  status becomes "failed", the remaining method is skipped, the rollbacks run.
- Cleanup, at the end of the experiment and again at control cleanup (after an interruption too): clear every
  fault, reset client policies, stop the load this experiment started. Belt and braces besides the
  rollbacks (run them with `--rollback-strategy always`, or `runtime: {rollbacks: {strategy: always}}`) and
  the TTL every fault carries.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from chaosshop import runstate
from chaosshop.actions import stop_load
from chaosshop.settings import Configuration, control
from sample_shop.faultd.client import ControlApiError

log = logging.getLogger("chaostoolkit")
EXTENSION = "chaosshop"


def extension(experiment: dict[str, Any]) -> dict[str, Any]:
    for item in experiment.get("extensions", []) or []:
        if isinstance(item, dict) and item.get("name") == EXTENSION:
            return item
    return {}


def phase_starts(experiment: dict[str, Any]) -> dict[str, str]:
    """activity name -> phase it starts (from the chaosshop extension's `phases`)."""
    phases = extension(experiment).get("phases") or {}
    return {activity: phase for phase, activity in phases.items()}


def _post_phase(configuration: Configuration, phase: str, state: str) -> None:
    try:
        with control(configuration) as api:
            api.phase(runstate.current().experiment, phase, state)
    except (ControlApiError, FileNotFoundError) as exc:  # annotations are not worth failing for
        log.warning("could not record phase %s %s: %s", phase, state, exc)


def _switch_phase(configuration: Configuration, name: str | None) -> None:
    run = runstate.current()
    now = time.time()
    ended = run.end_phase(now)
    if ended is not None:
        _post_phase(configuration, ended.name, "end")
    if name is not None:
        run.start_phase(name, now)
        _post_phase(configuration, name, "start")
        log.info("phase %s", name)


class _Watch:
    """Chaos Toolkit run-event handler: gives the control the journal and tells it where the run is."""

    def running(self, experiment: Any, journal: dict[str, Any], *_: Any) -> None:
        runstate.current().journal = journal

    def start_method(self, _experiment: Any) -> None:
        runstate.current().stage = "method"

    def method_completed(self, _experiment: Any, _state: Any = None) -> None:
        runstate.current().stage = "after"

    def start_rollbacks(self, _experiment: Any) -> None:
        runstate.current().stage = "rollbacks"

    def activity_completed(self, activity: dict[str, Any], run: dict[str, Any]) -> None:
        state = runstate.current()
        if state.stage == "method" and activity.get("type") == "action" and run.get("status") == "failed":
            state.failed_actions.append(activity.get("name", "?"))
            if state.journal is not None:
                state.journal["status"] = "failed"  # chaoslib stops the method at the next activity
            log.error("action %r failed: the experiment fails (rollbacks still run)", activity.get("name"))

    def __getattr__(self, _name: str) -> Any:  # every other event: nothing to do
        return lambda *args, **kwargs: None


def configure_control(
    experiment: dict[str, Any] | None = None,
    configuration: Configuration = None,
    secrets: Any = None,
    settings: Any = None,
    event_registry: Any = None,
    **_: Any,
) -> None:
    ext = extension(experiment or {})
    run = runstate.reset(str(ext.get("id") or (experiment or {}).get("title", "experiment"))[:200])
    run.configuration = dict(configuration or {})
    if event_registry is not None:
        event_registry.register(_Watch())


def before_activity_control(
    context: dict[str, Any], experiment: Any = None, configuration: Configuration = None, **_: Any
) -> None:
    run = runstate.current()
    if run.stage != "method":
        return
    phase = phase_starts(experiment or {}).get(context.get("name", ""))
    if phase is not None and (run.current_phase is None or run.current_phase.name != phase):
        _switch_phase(configuration, phase)


def after_method_control(context: Any = None, configuration: Configuration = None, **_: Any) -> None:
    _switch_phase(configuration, None)


def _cleanup(configuration: Configuration) -> dict[str, Any]:
    """Clear faults, reset policies, stop our load. Each step is tried even when another fails."""
    run = runstate.current()
    if run.cleanup is not None:
        return run.cleanup
    report: dict[str, Any] = {}
    _switch_phase(configuration, None)
    try:
        with control(configuration) as api:
            cleared = api.clear()
            report["faults_cleared"] = len(cleared.get("cleared", [])) + len(cleared.get("resumed", []))
            report["unconfirmed"] = cleared.get("unconfirmed", [])
            report["policies_reset"] = api.reset_policy().get("reset", [])
    except (ControlApiError, FileNotFoundError) as exc:
        report["error"] = str(exc)
        log.error("cleanup could not reach the control API: %s (faults still end at their TTL)", exc)
    if run.load is not None:
        try:
            report["load"] = stop_load(configuration)
        except Exception as exc:  # the load process also stops by itself at its deadline
            report["load_error"] = str(exc)
    run.cleanup = report
    return report


def after_experiment_control(
    context: Any = None, state: dict[str, Any] | None = None, configuration: Configuration = None, **_: Any
) -> None:
    run = runstate.current()
    report = _cleanup(configuration)
    journal = state if isinstance(state, dict) else run.journal
    if journal is None:
        return
    if run.failed_actions:
        journal["status"] = "failed"  # the after-hypothesis may have reset it
    before = (journal.get("steady_states") or {}).get("before") or {}
    if before and not before.get("steady_state_met", True):
        # chaoslib ends a run whose initial steady state is not met as "completed" (exit 0): the method
        # never ran, so nothing was learned - that is a failure, not a pass
        journal["status"] = "failed"
    journal.setdefault("extensions", []).append(
        {
            "name": EXTENSION,
            "experiment": run.experiment,
            "phases": [p.to_dict() for p in run.phases],
            "faults_injected": run.injected,
            "failed_actions": run.failed_actions,
            "confidence": run.confidence,
            "cleanup": report,
        }
    )


def cleanup_control() -> None:
    """Last resort when the experiment ended without reaching after_experiment_control."""
    run = runstate.current()
    if run.cleanup is None:
        _cleanup(run.configuration)
