"""OpenSLO v1 files -> validated `SLO` objects (the model the evaluator and the rule generator share).

Supported subset, checked strictly (unknown fields are errors, so a typo never silently drops a setting):

- `kind: SLO` with an inline `indicator` (`metadata.name` + `spec.ratioMetric`) or an `indicatorRef` to a
  `kind: SLI` document in any of the loaded files;
- `ratioMetric` with `good` or `bad`, and `total`, each `metricSource: {type: Prometheus, spec: {query}}`
  where the query is ONE vector selector (see slo/selector.py); the evaluator wraps it in
  `sum(increase(<selector>[<window>]))`;
- `timeWindow: [{duration: 1h, isRolling: true}]`, `budgetingMethod: Occurrences`,
  exactly one objective with `target` in (0, 1) (or `targetPercent` in (0, 100));
- testbed settings as metadata annotations: `testbed/critical: "true"` (a breach fails a comparison
  outright), `testbed/min-events: "20"` (fewer events in a window is "no data", never a pass),
  `testbed/gate: "false"` (the SLO has rules and alerts, but the gate of a run leaves it out and says why:
  for an SLO whose events many experiments never make, such as the order e-mails').

Every problem is reported with file, field path and line:
`slo/specs/x.yaml:12: spec.objectives[0].target: ...`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sample_shop import topology
from sample_shop.basics import parse_duration
from slo.errors import SloError
from slo.selector import Selector, SelectorError, check_selector, family, parse_selector
from slo.sequential import RuleError, RuleSettings
from slo.yamlpos import Document, Path_, YamlSyntaxError, format_path, load_documents

API_VERSION = "openslo/v1"
SPECS_DIR = Path(__file__).resolve().parent / "specs"
DEFAULT_MIN_EVENTS = 10
ANNOTATION_CRITICAL = "testbed/critical"
ANNOTATION_MIN_EVENTS = "testbed/min-events"
ANNOTATION_GATE = "testbed/gate"
# The decision rule's settings per SLO (slo/sequential.py; docs/slo.md): the indifference zone in burn-rate
# multiples ("0.5,2"), and the two error rates.
ANNOTATION_ZONE = "testbed/zone"
ANNOTATION_ALPHA = "testbed/alpha"
ANNOTATION_BETA = "testbed/beta"

SliKind = Literal["availability", "latency"]
SliSource = Literal["server", "client"]


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line or '?'}: {self.path}: {self.message}"


class SpecError(SloError, ValueError):
    """One or more invalid SLO files. `problems` lists every problem found, each with file, field, line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("invalid SLO definition(s):\n  " + "\n  ".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class SLO:
    """One objective on one ratio SLI, ready to evaluate or to turn into rules."""

    name: str
    display_name: str
    description: str
    service: str
    journey: str | None
    kind: SliKind  # latency when the good/bad selector counts a histogram bucket
    source: SliSource  # server: the shop's own metrics; client: the load generator's
    total: Selector
    good: Selector | None  # exactly one of good / bad
    bad: Selector | None
    target: float
    period_s: int
    budgeting_method: str
    threshold_s: float | None
    critical: bool
    min_events: int  # for recovery timing only: the verdict is the sequential rule's
    file: str
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    rule: RuleSettings = field(default_factory=RuleSettings)
    gated: bool = True  # judged by a run's gate (testbed/gate); rules and alerts exist either way

    @property
    def error_budget(self) -> float:
        return 1.0 - self.target

    @property
    def selectors(self) -> tuple[Selector, ...]:
        return tuple(s for s in (self.good, self.bad, self.total) if s is not None)

    @property
    def part(self) -> Selector:
        """The good or the bad selector (whichever the file gives)."""
        part = self.good if self.good is not None else self.bad
        assert part is not None
        return part

    @property
    def part_within_total(self) -> bool:
        """True when good/bad selects a subset of the total's series (same metric, extra matchers), so
        its series can be picked out of the total's locally instead of being queried again."""
        return self.part.metric == self.total.metric and set(self.total.matchers) <= set(self.part.matchers)

    @property
    def queried_selectors(self) -> tuple[Selector, ...]:
        """The selectors that must be range-queried to evaluate this SLO."""
        return (self.total,) if self.part_within_total else (self.part, self.total)


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def default_spec_files() -> list[Path]:
    return sorted(SPECS_DIR.glob("*.yaml"))


def load_slos(files: Iterable[Path] | None = None) -> list[SLO]:
    """Load and validate SLO files (default: slo/specs/*.yaml). Raises SpecError listing every problem."""
    paths = [Path(f) for f in (files if files is not None else default_spec_files())]
    problems: list[Problem] = []
    if not paths:
        raise SpecError([Problem(str(SPECS_DIR), "<files>", None, "no SLO files given or found")])
    documents: list[tuple[str, Document]] = []
    for p in paths:
        if not p.is_file():
            problems.append(
                Problem(str(p), "<file>", None, "file does not exist (give an OpenSLO YAML file)")
            )
            continue
        try:
            docs = load_documents(p)
        except YamlSyntaxError as exc:
            problems.append(Problem(exc.file, "<document>", exc.line, f"invalid YAML: {exc.message}"))
            continue
        except UnicodeDecodeError as exc:
            problems.append(Problem(str(p), "<file>", None, f"not UTF-8 text: {exc}"))
            continue
        if not docs:
            problems.append(Problem(str(p), "<document>", 1, "the file holds no YAML document"))
        documents.extend((str(p), d) for d in docs)

    # First pass: the SLI documents, so SLOs in any file can reference them.
    slis: dict[str, tuple[_Ctx, dict[str, Any]]] = {}
    slo_docs: list[_Ctx] = []
    for file, doc in documents:
        ctx = _Ctx(file, doc, problems)
        for dup_path, line in doc.duplicate_keys:
            message = "duplicate key (the later value would win)"
            problems.append(Problem(file, format_path(dup_path), line, message))
        root = ctx.mapping((), doc.value)
        if root is None:
            continue
        if root.get("apiVersion") != API_VERSION:
            ctx.error(("apiVersion",), f"must be {API_VERSION!r}, got {root.get('apiVersion')!r}")
            continue
        kind = root.get("kind")
        if kind == "SLI":
            name = ctx.name(root)
            spec = ctx.mapping(("spec",), root.get("spec"), required=True)
            ctx.keys((), root, {"apiVersion", "kind", "metadata", "spec"})
            if name and spec is not None:
                if name in slis:
                    ctx.error(("metadata", "name"), f"SLI {name!r} is defined twice")
                slis[name] = (ctx, spec)
        elif kind == "SLO":
            slo_docs.append(ctx)
        else:
            ctx.error(("kind",), f"must be 'SLO' or 'SLI' (the kinds this testbed reads), got {kind!r}")

    slos: list[SLO] = []
    for ctx in slo_docs:
        slo = _build_slo(ctx, slis)
        if slo is not None:
            slos.append(slo)
    seen: dict[str, str] = {}
    for slo in slos:
        if slo.name in seen:
            problems.append(
                Problem(
                    slo.file,
                    "metadata.name",
                    None,
                    f"SLO name {slo.name!r} is also used in {seen[slo.name]}",
                )
            )
        seen[slo.name] = slo.file
    if problems:
        raise SpecError(problems)
    return slos


# --------------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------------

SLO_SPEC_FIELDS = {
    "description",
    "service",
    "indicator",
    "indicatorRef",
    "timeWindow",
    "budgetingMethod",
    "objectives",
}
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")  # DNS label, as OpenSLO asks


class _Ctx:
    """Validation context of one document: records problems with file, field path and line."""

    def __init__(self, file: str, doc: Document, problems: list[Problem]) -> None:
        self.file, self.doc, self.problems = file, doc, problems

    def error(self, path: Path_, message: str) -> None:
        self.problems.append(Problem(self.file, format_path(path), self.doc.line(path), message))

    def mapping(self, path: Path_, value: Any, required: bool = False) -> dict[str, Any] | None:
        if value is None:
            if required:
                self.error(path, "required field is missing")
            return None
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping, got {type(value).__name__}")
            return None
        return value

    def keys(self, path: Path_, value: dict[str, Any], allowed: set[str], unsupported: str = "") -> None:
        for key in value:
            if key not in allowed:
                hint = unsupported or f"allowed here: {', '.join(sorted(allowed))}"
                self.error((*path, key), f"unknown or unsupported field {key!r}; {hint}")

    def string(self, path: Path_, value: Any, required: bool = True) -> str | None:
        if value is None:
            if required:
                self.error(path, "required field is missing")
            return None
        if not isinstance(value, str) or not value.strip():
            self.error(path, f"must be a non-empty string, got {value!r}")
            return None
        return value

    def name(self, root: dict[str, Any]) -> str | None:
        meta = self.mapping(("metadata",), root.get("metadata"), required=True)
        if meta is None:
            return None
        name = self.string(("metadata", "name"), meta.get("name"))
        if name is not None and not _NAME.match(name):
            self.error(("metadata", "name"), f"{name!r} must be lowercase letters, digits and '-' (max 63)")
            return None
        return name


_Ratio = tuple[Selector, Selector | None, Selector | None, float | None]  # total, good, bad, threshold_s


def _build_slo(ctx: _Ctx, slis: dict[str, tuple[_Ctx, dict[str, Any]]]) -> SLO | None:
    root: dict[str, Any] = ctx.doc.value
    before = len(ctx.problems)
    ctx.keys((), root, {"apiVersion", "kind", "metadata", "spec"})
    name = ctx.name(root)
    meta: dict[str, Any] = root["metadata"] if isinstance(root.get("metadata"), dict) else {}
    ctx.keys(("metadata",), meta, {"name", "displayName", "labels", "annotations"})
    labels = _string_map(ctx, ("metadata", "labels"), meta.get("labels"))
    annotations = _string_map(ctx, ("metadata", "annotations"), meta.get("annotations"))
    spec = ctx.mapping(("spec",), root.get("spec"), required=True)
    if spec is None or name is None:
        return None
    ctx.keys(
        ("spec",),
        spec,
        SLO_SPEC_FIELDS,
        unsupported="this testbed reads description, service, indicator | indicatorRef, timeWindow, "
        "budgetingMethod, objectives (alertPolicies are generated from the objectives)",
    )
    service = ctx.string(("spec", "service"), spec.get("service"))
    ratio = _indicator(ctx, spec, slis)
    period_s = _time_window(ctx, spec.get("timeWindow"))
    method = spec.get("budgetingMethod")
    if method != "Occurrences":
        ctx.error(
            ("spec", "budgetingMethod"),
            f"must be 'Occurrences' (events counted over the window; Timeslices are not supported), "
            f"got {method!r}",
        )
    target = _objective(ctx, spec.get("objectives"))
    critical, min_events = _gate_annotations(ctx, annotations)
    gated = annotations.get(ANNOTATION_GATE, "true")
    if gated not in ("true", "false"):
        ctx.error(("metadata", "annotations", ANNOTATION_GATE), f'must be "true" or "false", got {gated!r}')
    rule = _rule_annotations(ctx, annotations, target)
    journey = _journey(ctx, labels)

    if len(ctx.problems) > before or ratio is None or target is None or period_s is None or service is None:
        return None
    total, good, bad, threshold = ratio
    return SLO(
        name=name,
        display_name=str(meta.get("displayName") or name),
        description=str(spec.get("description") or ""),
        service=service,
        journey=journey,
        kind="latency" if threshold is not None else "availability",
        source="client" if total.metric.startswith("load_") else "server",
        total=total,
        good=good,
        bad=bad,
        target=target,
        period_s=period_s,
        budgeting_method="Occurrences",
        threshold_s=threshold,
        critical=critical,
        min_events=min_events,
        file=ctx.file,
        labels=labels,
        rule=rule,
        gated=gated != "false",
    )


def _indicator(
    ctx: _Ctx, spec: dict[str, Any], slis: dict[str, tuple[_Ctx, dict[str, Any]]]
) -> _Ratio | None:
    """The SLO's ratio metric: from its inline `indicator`, or from the SLI its `indicatorRef` names (whose
    problems are then reported against the SLI's file)."""
    indicator_ctx, indicator_spec = ctx, None
    indicator_path: Path_ = ("spec", "indicator", "spec")
    if "indicator" in spec and "indicatorRef" in spec:
        ctx.error(("spec", "indicatorRef"), "give either indicator or indicatorRef, not both")
    elif "indicatorRef" in spec:
        ref = ctx.string(("spec", "indicatorRef"), spec["indicatorRef"])
        if ref is not None:
            if ref not in slis:
                known = ", ".join(sorted(slis)) or "none loaded"
                message = f"no SLI named {ref!r} in the loaded files (SLIs: {known})"
                ctx.error(("spec", "indicatorRef"), message)
            else:
                indicator_ctx, indicator_spec = slis[ref]
                indicator_path = ("spec",)
    else:
        ind = ctx.mapping(("spec", "indicator"), spec.get("indicator"), required=True)
        if ind is not None:
            ctx.keys(("spec", "indicator"), ind, {"metadata", "spec"})
            ind_meta = ctx.mapping(("spec", "indicator", "metadata"), ind.get("metadata"), required=True)
            if ind_meta is not None:
                ctx.string(("spec", "indicator", "metadata", "name"), ind_meta.get("name"))
            indicator_spec = ctx.mapping(indicator_path, ind.get("spec"), required=True)
    if indicator_spec is None:
        return None
    return _ratio_metric(indicator_ctx, indicator_path, indicator_spec)


def _time_window(ctx: _Ctx, tw: Any) -> int | None:
    """The one rolling window's length in seconds."""
    if tw is None:
        ctx.error(
            ("spec", "timeWindow"), "required field missing; write e.g. [{duration: 1h, isRolling: true}]"
        )
        return None
    if not isinstance(tw, list) or len(tw) != 1 or not isinstance(tw[0], dict):
        ctx.error(("spec", "timeWindow"), "must be a list with exactly one {duration, isRolling} entry")
        return None
    ctx.keys(("spec", "timeWindow", 0), tw[0], {"duration", "isRolling"}, "calendar windows unsupported")
    if tw[0].get("isRolling", True) is not True:
        ctx.error(("spec", "timeWindow", 0, "isRolling"), "only rolling windows are supported (true)")
    dur = tw[0].get("duration")
    if dur is None:
        ctx.error(("spec", "timeWindow", 0, "duration"), "required field is missing; write e.g. 1h")
        return None
    try:
        seconds = parse_duration(dur)
    except ValueError as exc:
        ctx.error(("spec", "timeWindow", 0, "duration"), str(exc))
        return None
    if not seconds.is_integer():
        ctx.error(("spec", "timeWindow", 0, "duration"), f"must be a whole number of seconds, got {dur!r}")
        return None
    return int(seconds)


def _gate_annotations(ctx: _Ctx, annotations: dict[str, str]) -> tuple[bool, int]:
    """What the gate reads from the annotations: whether the SLO is critical, and the fewest events it
    needs to decide."""
    critical = annotations.get(ANNOTATION_CRITICAL, "false")
    if critical not in ("true", "false"):
        path = ("metadata", "annotations", ANNOTATION_CRITICAL)
        ctx.error(path, f'must be "true" or "false", got {critical!r}')
    min_events = DEFAULT_MIN_EVENTS
    if ANNOTATION_MIN_EVENTS in annotations:
        raw = annotations[ANNOTATION_MIN_EVENTS]
        if not raw.isdigit() or int(raw) < 1:
            path = ("metadata", "annotations", ANNOTATION_MIN_EVENTS)
            ctx.error(path, f"must be a positive integer, got {raw!r}")
        else:
            min_events = int(raw)
    return critical == "true", min_events


def _rule_annotations(ctx: _Ctx, annotations: dict[str, str], target: float | None) -> RuleSettings:
    """The decision rule's zone, alpha and beta from the annotations (defaults where absent), checked
    against the objective so that a rule that cannot work is refused here, with its place in the file."""
    settings = RuleSettings()
    for key in (ANNOTATION_ZONE, ANNOTATION_ALPHA, ANNOTATION_BETA):
        if key not in annotations:
            continue
        path = ("metadata", "annotations", key)
        try:
            settings = settings.with_text(key.removeprefix("testbed/"), annotations[key])
        except RuleError as exc:
            ctx.error(path, str(exc).split(": ", 1)[-1])
    if target is not None:
        try:
            settings.rule(target)
        except RuleError as exc:
            # the message starts with the setting it is about: point at that annotation when it was given
            name, _, message = str(exc).partition(": ")
            key = f"testbed/{name}"
            where = ("metadata", "annotations", key) if key in annotations else ("metadata", "annotations")
            ctx.error(where, message if key in annotations else str(exc))
    return settings


def _journey(ctx: _Ctx, labels: dict[str, str]) -> str | None:
    journey = labels.get("journey")
    if journey is not None and journey not in topology.JOURNEY_ROUTES:
        ctx.error(
            ("metadata", "labels", "journey"),
            f"unknown journey {journey!r}; known: {', '.join(topology.JOURNEY_ROUTES)}",
        )
    return journey


def _string_map(ctx: _Ctx, path: Path_, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        ctx.error(path, "must be a mapping of strings")
        return {}
    out = {}
    for k, v in value.items():
        if not isinstance(v, str):
            ctx.error((*path, k), f'must be a string (quote it: "{v}"), got {type(v).__name__}')
        else:
            out[k] = v
    return out


def _objective(ctx: _Ctx, objectives: Any) -> float | None:
    path: Path_ = ("spec", "objectives")
    if objectives is None:
        ctx.error(path, "required field is missing; write e.g. [{displayName: ..., target: 0.99}]")
        return None
    if not isinstance(objectives, list) or not objectives:
        ctx.error(path, "must be a non-empty list")
        return None
    if len(objectives) > 1:
        ctx.error((*path, 1), "one objective per SLO: write a second SLO for another target or threshold")
        return None
    obj = ctx.mapping((*path, 0), objectives[0])
    if obj is None:
        return None
    ctx.keys((*path, 0), obj, {"displayName", "target", "targetPercent"})
    if ("target" in obj) == ("targetPercent" in obj):
        ctx.error((*path, 0, "target"), "give exactly one of target (0..1) or targetPercent (0..100)")
        return None
    key, scale = ("target", 1.0) if "target" in obj else ("targetPercent", 100.0)
    raw = obj[key]
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        ctx.error((*path, 0, key), f"must be a number, got {raw!r}")
        return None
    value = float(raw) / scale
    if not 0.0 < value < 1.0:
        bound = "(0, 1)" if key == "target" else "(0, 100)"
        ctx.error((*path, 0, key), f"must be strictly between the bounds {bound}, got {raw!r}")
        return None
    return value


def _ratio_metric(ctx: _Ctx, path: Path_, spec: dict[str, Any]) -> _Ratio | None:
    ctx.keys(path, spec, {"ratioMetric"}, "this testbed reads ratioMetric indicators only")
    ratio = ctx.mapping((*path, "ratioMetric"), spec.get("ratioMetric"), required=True)
    if ratio is None:
        return None
    rpath = (*path, "ratioMetric")
    ctx.keys(rpath, ratio, {"counter", "good", "bad", "total"})
    if ratio.get("counter", True) is not True:
        ctx.error((*rpath, "counter"), "must be true: the SLI is computed from counters")
    if ("good" in ratio) == ("bad" in ratio):
        ctx.error(rpath, "give exactly one of good or bad, plus total")
        return None
    which = "good" if "good" in ratio else "bad"
    total = _selector(ctx, (*rpath, "total"), ratio.get("total"))
    part = _selector(ctx, (*rpath, which), ratio.get(which))
    if total is None or part is None:
        return None
    total_sel, total_thr = total
    part_sel, threshold = part
    if total_thr is not None:
        ctx.error((*rpath, "total"), "total must count every request (use the _count series, not a _bucket)")
        return None
    if family(total_sel.metric) != family(part_sel.metric):
        message = f"{which} and total must count one metric family ({part_sel.metric} vs {total_sel.metric})"
        ctx.error((*rpath, which), message)
        return None
    if threshold is not None:
        # Latency: good = bucket{same matchers, le}, total = _count{same matchers}.
        if which == "bad":
            ctx.error((*rpath, "bad"), "a latency SLI is written with good (requests under the threshold)")
            return None
        if not total_sel.metric.endswith("_count"):
            message = f"with a _bucket good selector, total must be {family(part_sel.metric)}_count"
            ctx.error((*rpath, "total"), message)
            return None
        if part_sel.without("le") != frozenset(total_sel.matchers):
            ctx.error((*rpath, "good"), "good must use the same label matchers as total, plus le")
            return None
    elif part_sel.metric != total_sel.metric or not set(total_sel.matchers) <= set(part_sel.matchers):
        ctx.error(
            (*rpath, which),
            f"{which} must be the total selector plus extra matchers (a subset of the same events), "
            f'e.g. total + status_class!="5xx"',
        )
        return None
    return total_sel, part_sel if which == "good" else None, part_sel if which == "bad" else None, threshold


def _selector(ctx: _Ctx, path: Path_, value: Any) -> tuple[Selector, float | None] | None:
    node = ctx.mapping(path, value, required=True)
    if node is None:
        return None
    ctx.keys(path, node, {"metricSource"})
    source = ctx.mapping((*path, "metricSource"), node.get("metricSource"), required=True)
    if source is None:
        return None
    spath = (*path, "metricSource")
    ctx.keys(spath, source, {"type", "spec", "metricSourceRef"})
    if source.get("type") != "Prometheus":
        ctx.error((*spath, "type"), f"must be 'Prometheus', got {source.get('type')!r}")
        return None
    inner = ctx.mapping((*spath, "spec"), source.get("spec"), required=True)
    if inner is None:
        return None
    ctx.keys((*spath, "spec"), inner, {"query"})
    query = ctx.string((*spath, "spec", "query"), inner.get("query"))
    if query is None:
        return None
    try:
        return check_selector(parse_selector(query))
    except SelectorError as exc:
        ctx.error((*spath, "spec", "query"), str(exc))
        return None
