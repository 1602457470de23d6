"""The experiment catalog (`experiments/*.yaml`): find an experiment by name or path, and check that it
has what the orchestrator needs (phase durations, the chaosshop control and its phases), with errors that
name the file, the line and the field.

Chaos Toolkit validates the rest of the file itself when `chaos run` starts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sample_shop.topology import MAX_REPLICAS, SERVICE_NAMES
from slo.yamlpos import Document, YamlSyntaxError, format_path, load_documents
from testbed.experiment.validate import experiment_problems

EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"
PHASES = ("warmup", "baseline", "fault", "recovery")
PHASE_KEYS: dict[str, str] = {p: f"{p}_s" for p in PHASES}
TARGETS = ("local", "kind")
CONTROL_MODULE = "chaosshop.control"
EXTENSION = "chaosshop"
MAX_PHASE_S = 6 * 3600.0


class ExperimentFileError(ValueError):
    """An experiment cannot be found or lacks what the orchestrator needs. The message says where."""


@dataclass(frozen=True)
class Experiment:
    name: str  # the chaosshop extension's id (what Prometheus and the run folder call it)
    path: Path
    title: str
    description: str
    target: str  # local | kind
    configuration: dict[str, Any]  # as written (env entries stay mappings)
    durations: dict[str, float]  # phase -> seconds, as written
    phase_activities: dict[str, str]  # phase -> method activity that starts it
    required_replicas: dict[str, int] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return sum(self.durations.values())


def _where(path: Path, doc: Document, field_path: tuple[str | int, ...]) -> str:
    return f"{path}:{doc.line(field_path) or 1}: {format_path(field_path)}"


def _positive(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and 0 < number <= MAX_PHASE_S else None


FieldPath = tuple[str | int, ...]


class _Problems:
    """The problems found in one experiment file, each naming the file, the line and the field."""

    def __init__(self, path: Path, doc: Document) -> None:
        self.path, self.doc = path, doc
        self.found: list[str] = []

    def __call__(self, field_path: FieldPath, message: str) -> None:
        self.found.append(f"{_where(self.path, self.doc, field_path)}: {message}")


def load_experiment(path: Path) -> Experiment:
    """Read and check one experiment file; ExperimentFileError lists every problem found."""
    try:
        docs = load_documents(path)
    except YamlSyntaxError as exc:
        raise ExperimentFileError(str(exc)) from None
    except OSError as exc:
        raise ExperimentFileError(f"{path}: cannot read the experiment ({exc.strerror})") from None
    if len(docs) != 1 or not isinstance(docs[0].value, dict):
        raise ExperimentFileError(f"{path}:1: an experiment is one YAML (or JSON) mapping")
    doc = docs[0]
    data: dict[str, Any] = doc.value
    problem = _Problems(path, doc)
    activities = _method_activities(problem, data)
    configuration = data.get("configuration") or {}
    if not isinstance(configuration, dict):
        problem(("configuration",), "must be a mapping of names to values")
        configuration = {}
    durations = _durations(problem, configuration)
    problem.found += experiment_problems(path, doc, configuration)  # actions' arguments, duplicate keys
    _check_control(problem, data.get("controls") or [])
    ext_path, ext = _extension(problem, data.get("extensions") or [])
    has_extension = ext_path != ("extensions",)
    name = str(ext.get("id") or path.stem)
    target = str(ext.get("target") or "local")
    if target not in TARGETS:
        problem((*ext_path, "target"), f"must be one of {', '.join(TARGETS)}, got {target!r}")
    phase_activities = _phase_activities(problem, ext_path, ext, activities) if has_extension else {}
    required = _required_replicas(problem, ext_path, ext)
    if problem.found:
        raise ExperimentFileError("invalid experiment:\n  " + "\n  ".join(problem.found))
    return Experiment(
        name=name,
        path=path.resolve(),
        title=str(data.get("title", "")),
        description=" ".join(str(data.get("description") or "").split()),
        target=target,
        configuration=dict(configuration),
        durations=durations,
        phase_activities=phase_activities,
        required_replicas=required,
    )


def _method_activities(problem: _Problems, data: dict[str, Any]) -> set[Any]:
    """What Chaos Toolkit itself requires (a title and a method), and the names of the method's activities."""
    for key in ("title", "method"):
        if not data.get(key):
            problem((key,), f"required by Chaos Toolkit; the experiment has no {key}")
    if "method" in data and not isinstance(data["method"], list):
        problem(("method",), "must be a list of activities")
    return {a.get("name") for a in data.get("method") or [] if isinstance(a, dict) and a.get("name")}


def _durations(problem: _Problems, configuration: dict[str, Any]) -> dict[str, float]:
    """Every phase's duration from the configuration's `<phase>_s`."""
    durations: dict[str, float] = {}
    for phase, key in PHASE_KEYS.items():
        seconds = _positive(configuration.get(key))
        if key not in configuration:
            problem(("configuration",), f"needs {key} (seconds of the {phase} phase)")
        elif seconds is None:
            problem(
                ("configuration", key),
                f"must be a number of seconds > 0 and <= {MAX_PHASE_S:g}, got {configuration[key]!r}",
            )
        else:
            durations[phase] = seconds
    return durations


def _check_control(problem: _Problems, controls: Any) -> None:
    if not any(
        isinstance(c, dict) and (c.get("provider") or {}).get("module") == CONTROL_MODULE for c in controls
    ):
        problem(
            ("controls",),
            f"needs the chaosshop control, which records the phases: "
            f"`controls: [{{name: chaosshop, provider: {{type: python, module: {CONTROL_MODULE}}}}}]`",
        )


def _extension(problem: _Problems, extensions: Any) -> tuple[FieldPath, dict[str, Any]]:
    """The chaosshop extension and where it is (`("extensions",)` and `{}` when there is none)."""
    index, ext = next(
        ((i, e) for i, e in enumerate(extensions) if isinstance(e, dict) and e.get("name") == EXTENSION),
        (None, {}),
    )
    if index is None:
        problem(("extensions",), "needs a chaosshop extension with `id` and `phases` (docs/experiments.md)")
        return ("extensions",), {}
    return ("extensions", index), ext


def _phase_activities(
    problem: _Problems, ext_path: FieldPath, ext: dict[str, Any], activities: set[Any]
) -> dict[str, str]:
    """phase -> the method activity that starts it, from the extension's `phases`."""
    phases = ext.get("phases") or {}
    phase_activities: dict[str, str] = {}
    if not isinstance(phases, dict):
        problem((*ext_path, "phases"), "must map phase names to method activity names")
        return phase_activities
    for phase in ("baseline", "fault"):
        if phase not in phases:
            problem((*ext_path, "phases"), f"needs the {phase} phase (the activity that starts it)")
    for phase, activity in phases.items():
        if phase not in PHASES:
            problem((*ext_path, "phases", phase), f"unknown phase; phases are {', '.join(PHASES)}")
        elif activity not in activities:
            problem(
                (*ext_path, "phases", phase),
                f"no method activity is named {activity!r}; "
                f"activities: {', '.join(sorted(str(a) for a in activities))}",
            )
        else:
            phase_activities[phase] = str(activity)
    return phase_activities


def _required_replicas(problem: _Problems, ext_path: FieldPath, ext: dict[str, Any]) -> dict[str, int]:
    """service -> the replicas the experiment needs, from the extension's `requires.replicas`."""
    required: dict[str, int] = {}
    replicas = ((ext.get("requires") or {}) if isinstance(ext.get("requires"), dict) else {}).get("replicas")
    for service, count in (replicas or {}).items():
        where = (*ext_path, "requires", "replicas", service)
        if service not in SERVICE_NAMES:
            problem(where, f"unknown service; services: {', '.join(SERVICE_NAMES)}")
        elif not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_REPLICAS:
            problem(where, f"must be a whole number from 1 to {MAX_REPLICAS}, got {count!r}")
        else:
            required[service] = count
    return required


def catalog_files(directory: Path = EXPERIMENTS_DIR) -> list[Path]:
    return sorted(p for p in directory.glob("*.y*ml") if p.is_file())


def list_experiments(directory: Path = EXPERIMENTS_DIR) -> list[Experiment | ExperimentFileError]:
    """Every experiment of the catalog, or the error that keeps it from running."""
    out: list[Experiment | ExperimentFileError] = []
    for path in catalog_files(directory):
        try:
            out.append(load_experiment(path))
        except ExperimentFileError as exc:
            out.append(exc)
    return out


def resolve_experiment(name_or_path: str, directory: Path = EXPERIMENTS_DIR) -> Experiment:
    """A catalog name (`payment-latency-breaker`) or a path to a YAML/JSON file."""
    text = name_or_path.strip()
    if not text:
        raise ExperimentFileError("no experiment given; `testbed experiment list` shows the catalog")
    candidate = Path(text).expanduser()
    looks_like_path = candidate.suffix in (".yaml", ".yml", ".json") or "/" in text
    if looks_like_path:
        if not candidate.is_file():
            raise ExperimentFileError(f"{text}: no such experiment file")
        return load_experiment(candidate)
    for path in catalog_files(directory):
        if path.stem == text:
            return load_experiment(path)
    names = ", ".join(p.stem for p in catalog_files(directory))
    raise ExperimentFileError(
        f"unknown experiment {text!r}; the catalog ({directory}) has: {names}. "
        "Give one of these names or a path to an experiment file."
    )
