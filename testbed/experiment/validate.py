"""The door of an experiment file, beyond what the catalog loader checks: every chaosshop activity names a
function that exists and only arguments it takes, and the arguments of the fault, process and policy
actions are checked against the fault catalog (sample_shop/kit/faultspec.py) and the ranges the actions
enforce; duplicate keys and a chaosshop extension without an `id` are refused. Checked when the file is
loaded (with its own configuration) and again after `--var` substitution (with the effective one), so a
bad fault never brings the stack up only to fail at inject time.

Pure apart from importing the chaosshop modules to read their signatures. Every problem names the file,
the line and the field."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from sample_shop.kit.faultspec import DEFAULT_TTL_S, FaultSpecError, validate_fault_spec
from sample_shop.kit.policy import POLICY_TTL_RANGE_S, PROFILES
from sample_shop.topology import MAX_REPLICAS, NOTIFICATIONS_FUNCTION, SERVICE_NAMES
from slo.yamlpos import Document, format_path

FieldPath = tuple[str | int, ...]
EXTENSION = "chaosshop"
INJECTED = {"configuration", "secrets"}  # Chaos Toolkit passes these itself
_WHOLE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_PART = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Unknown:
    """A value only known when `chaos run` starts (an env configuration entry): not checked here."""


UNKNOWN = _Unknown()


def experiment_problems(path: Path, doc: Document, configuration: Mapping[str, Any]) -> list[str]:
    """Everything wrong with the file at the door, each as "file:line: field: message"."""
    problems = [
        f"{path}:{line}: {format_path(field)}: duplicate key (the later value would win)"
        for field, line in doc.duplicate_keys
    ]
    data = doc.value if isinstance(doc.value, dict) else {}
    for index, ext in enumerate(data.get("extensions") or []):
        if isinstance(ext, dict) and ext.get("name") == EXTENSION and not ext.get("id"):
            where: tuple[str | int, ...] = ("extensions", index, "id")
            problems.append(
                f"{path}:{doc.line(where) or 1}: {format_path(where)}: required: the experiment's id "
                "(names its run folders and its Prometheus label), e.g. the file name"
            )
    for where, provider in _chaosshop_providers(data):
        problems += [
            f"{path}:{doc.line(field) or 1}: {format_path(field)}: {message}"
            for field, message in _provider_problems(where, provider, configuration)
        ]
    return problems


def _chaosshop_providers(data: Mapping[str, Any]) -> Iterator[tuple[FieldPath, dict[str, Any]]]:
    """(path of the provider, provider) of every python activity of a chaosshop module."""
    hypothesis = data.get("steady-state-hypothesis")
    groups: list[tuple[FieldPath, Any]] = [
        (("method",), data.get("method")),
        (("rollbacks",), data.get("rollbacks")),
    ]
    if isinstance(hypothesis, dict):
        groups.append((("steady-state-hypothesis", "probes"), hypothesis.get("probes")))
    for base, activities in groups:
        for i, activity in enumerate(activities if isinstance(activities, list) else []):
            provider = activity.get("provider") if isinstance(activity, dict) else None
            if (
                isinstance(provider, dict)
                and provider.get("type") == "python"
                and str(provider.get("module", "")).startswith(f"{EXTENSION}.")
            ):
                yield (*base, i, "provider"), provider


def _substitute(value: Any, configuration: Mapping[str, Any]) -> Any:
    """Chaos Toolkit's `${name}` substitution: a whole-string reference keeps the value's type, one inside
    a string is formatted into it. A value not known until `chaos run` starts is UNKNOWN."""
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole:
            found = configuration.get(whole.group(1), value)
            return UNKNOWN if isinstance(found, dict) else found
        names = _PART.findall(value)
        if any(isinstance(configuration.get(n), dict) for n in names):
            return UNKNOWN
        return _PART.sub(lambda m: str(configuration.get(m.group(1), m.group(0))), value)
    if isinstance(value, dict):
        return {k: _substitute(v, configuration) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, configuration) for v in value]
    return value


def _contains_unknown(value: Any) -> bool:
    if value is UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(_contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_unknown(v) for v in value)
    return False


def _origin(raw: Any, configuration: Mapping[str, Any]) -> str:
    """` (from ${name} = value)` when a checked value came from the configuration (or a --var)."""
    whole = _WHOLE.match(raw) if isinstance(raw, str) else None
    if whole and whole.group(1) in configuration:
        return (
            f" (from ${{{whole.group(1)}}} = {configuration[whole.group(1)]!r}; a --var or the configuration)"
        )
    return ""


def _provider_problems(
    where: FieldPath, provider: dict[str, Any], configuration: Mapping[str, Any]
) -> list[tuple[FieldPath, str]]:
    module_name, func_name = str(provider.get("module")), provider.get("func")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return [((*where, "module"), f"no chaosshop module {module_name!r}")]
    exported = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    func = getattr(module, str(func_name), None) if func_name in exported else None
    if not callable(func):
        public = sorted(n for n in exported if callable(getattr(module, n, None)))
        return [
            ((*where, "func"), f"{module_name} has no function {func_name!r}; valid: {', '.join(public)}")
        ]
    raw = provider.get("arguments") or {}
    if not isinstance(raw, dict):
        return [((*where, "arguments"), "must be a mapping of argument names to values")]
    args_path = (*where, "arguments")
    parameters = {name: p for name, p in inspect.signature(func).parameters.items() if name not in INJECTED}
    problems: list[tuple[FieldPath, str]] = []
    for name in raw:
        if name not in parameters:
            problems.append(
                (
                    (*args_path, name),
                    f"{func_name} takes no argument {name!r}; valid: {', '.join(parameters)}",
                )
            )
    for name, parameter in parameters.items():
        if parameter.default is inspect.Parameter.empty and name not in raw:
            problems.append((args_path, f"{func_name} needs the argument {name!r}"))
    if problems:
        return problems
    args = {k: _substitute(v, configuration) for k, v in raw.items()}
    check = _CHECKS.get(str(func_name))
    if check is None:
        return []
    return [
        ((*args_path, *field), message + _origin(_raw_at(raw, field), configuration))
        for field, message in check(args)
    ]


def _raw_at(raw: Mapping[str, Any], field: FieldPath) -> Any:
    value: Any = raw
    for part in field:
        value = value.get(part) if isinstance(value, dict) else None
    return value


# --------------------------------------------------------------------------------------------------
# What each action accepts (the same ranges the actions in experiments/chaosshop/actions.py enforce)
# --------------------------------------------------------------------------------------------------

Problems = list[tuple[FieldPath, str]]


def _number(args: Mapping[str, Any], name: str, lo: float, hi: float) -> Problems:
    value = args.get(name)
    if value is None or value is UNKNOWN:
        return []
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not lo <= number <= hi:
        return [((name,), f"must be a number between {lo:g} and {hi:g}, got {value!r}")]
    return []


def _service(args: Mapping[str, Any], required: bool = True) -> Problems:
    service = args.get("service")
    if service is UNKNOWN or (service in (None, "") and not required):
        return []
    if service not in SERVICE_NAMES:
        return [(("service",), f"unknown service {service!r}; valid: {', '.join(SERVICE_NAMES)}")]
    return []


def _replica(args: Mapping[str, Any]) -> Problems:
    return [] if args.get("replica") in (None, "") else _number(args, "replica", 0, MAX_REPLICAS - 1)


def _inject_fault(args: Mapping[str, Any]) -> Problems:
    problems = _service(args) + _replica(args)
    if _contains_unknown(args):
        return problems
    spec = {
        "kind": args.get("kind"),
        "params": args.get("params") or {},
        "ttl_s": DEFAULT_TTL_S if args.get("ttl_s") is None else args.get("ttl_s"),
    }
    service = args.get("service") if not problems else None
    try:
        validate_fault_spec(spec, service if service in SERVICE_NAMES else None, allow_process=True)
    except FaultSpecError as exc:
        for error in exc.errors:
            field: FieldPath = tuple(error.field.split(".")) if error.field != "body" else ()
            problems.append((field, error.message))
    return problems


def _kill(args: Mapping[str, Any]) -> Problems:
    return (
        _service(args)
        + _replica(args)
        + _number(args, "times", 1, 100)
        + _number(args, "interval_s", 0, 3600)
    )


def _pause(args: Mapping[str, Any]) -> Problems:
    return _service(args) + _replica(args) + _number(args, "seconds", 1, 600)


def _restart(args: Mapping[str, Any]) -> Problems:
    return _service(args) + _replica(args)


def _set_policy(args: Mapping[str, Any]) -> Problems:
    problems = _service(args) + _number(args, "ttl_s", *POLICY_TTL_RANGE_S)
    profile = args.get("profile", "naive")
    if profile is not UNKNOWN and profile not in PROFILES:
        problems.append((("profile",), f"must be one of {', '.join(PROFILES)}, got {profile!r}"))
    return problems


def _optional_service(args: Mapping[str, Any]) -> Problems:
    return _service(args, required=False)


def _clear_target(args: Mapping[str, Any]) -> Problems:
    """clear_faults also takes the notifications function: faultd clears a function's faults by its name."""
    if args.get("service") == NOTIFICATIONS_FUNCTION:
        return []
    problems = _service(args, required=False)
    if problems:
        valid = ", ".join((*SERVICE_NAMES, NOTIFICATIONS_FUNCTION))
        return [(("service",), f"unknown service {args.get('service')!r}; valid: {valid}")]
    return problems


def _hold(args: Mapping[str, Any]) -> Problems:
    return _number(args, "seconds", 0, 86_400)


_CHECKS: dict[str, Callable[[Mapping[str, Any]], Problems]] = {
    "inject_fault": _inject_fault,
    "kill_instance": _kill,
    "pause_instance": _pause,
    "restart_instance": _restart,
    "set_client_policy": _set_policy,
    "reset_client_policy": _optional_service,
    "clear_faults": _clear_target,
    "hold": _hold,
}


def effective_problems(path: Path, configuration: Mapping[str, Any]) -> list[str]:
    """The checks again with the configuration `chaos run` will get (after `--var`, `--users`, ...)."""
    from slo.yamlpos import load_documents

    docs = load_documents(path)
    return experiment_problems(path, docs[0], configuration) if docs else []
