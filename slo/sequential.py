"""The decision rule: is an SLO met or breached in a window, and how sure is that? Pure: counts in,
decisions out; no I/O, no clock.

An SLO with target T has an error budget B = 1 - T: the share of bad events it may afford. A window's
events are treated as coin flips that come out bad with an unknown probability p. The rule asks one
question of them: is p small (a burn rate of at most `zone.low`, 0.5 by default: the budget would last
twice the period) or large (a burn rate of at least `zone.high`, 2 by default: gone in half the
period)? Between the two lies the indifference zone, where neither answer is wrong.

Method: Wald's sequential probability ratio test (SPRT) between p0 = low * B and p1 = high * B. After n
events with k bad ones the evidence is the log-likelihood ratio

    LLR(n, k) = k * ln(p1 / p0) + (n - k) * ln((1 - p1) / (1 - p0))

Each bad event adds ln(p1/p0) > 0 (at 99 % and the default zone: +1.39), each good one adds
ln((1-p1)/(1-p0)) < 0 (-0.0152). The verdict is `breached` once LLR >= ln(1/alpha), `met` once
LLR <= ln(beta), and `inconclusive` until then. The first crossing decides and is latched.

Guarantee (Ville's inequality): under p0 the likelihood ratio exp(LLR) is a non-negative martingale
starting at 1, so the chance that it EVER reaches 1/alpha is at most alpha - however often it is looked
at, continuously or on any schedule, and whenever the looking stops. For any p <= p0 it is a
supermartingale, so the bound holds there too. Symmetrically, exp(-LLR) under p1 (and any p >= p1)
bounds the chance of ever saying `met` by beta. So, with the defaults alpha = beta = 0.05:

- a window whose true burn rate is <= 0.5 comes out `breached` at most 5 % of the time;
- a window whose true burn rate is >= 2 comes out `met` at most 5 % of the time;
- in between, either verdict may come, or `inconclusive` when the window ends first.

These are Wald's bounds used without his approximations ((1-beta)/alpha): slightly more conservative,
and exact as upper bounds under optional stopping. docs/slo.md explains the rule with a worked example;
tests/slo/test_sequential_montecarlo.py checks the bounds by seeded simulation, read continuously.

The interval around the SLI is an anytime-valid confidence sequence (Robbins' Beta-mixture martingale;
Howard et al., "Time-uniform, nonparametric, nonasymptotic confidence sequences", 2021): the set of p
whose mixture likelihood ratio has stayed below 1/alpha, with the prior Beta(1, 1/B - 1) centred on the
budget. It covers the true p at every n at once with probability >= 1 - alpha, so it agrees with the
sequential verdict's way of reading the data.

References: A. Wald, "Sequential Tests of Statistical Hypotheses", Ann. Math. Statist. 16 (1945);
J. Ville, "Etude critique de la notion de collectif" (1939); M. Lindon et al., "Rapid Regression
Detection in Software Deployments through Sequential Testing", KDD 2022.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from slo.errors import SloError

if TYPE_CHECKING:  # numpy and scipy are imported where they compute: the SLO specs (and the supervisor,
    # which writes the Prometheus rules from them) do not pay about 25 MB and 0.3 s for them
    import numpy as np
    import numpy.typing as npt

Decision = Literal["met", "breached", "inconclusive"]
METHOD = "sprt"  # named in every report
METHOD_TEXT = "sequential probability ratio test on the bad-event rate (Wald), Ville bounds"

DEFAULT_ZONE = (0.5, 2.0)  # burn-rate multiples: <= low must be met, >= high must be breached
DEFAULT_ALPHA = 0.05  # at most this chance of `breached` when the burn rate is <= low
DEFAULT_BETA = 0.05  # at most this chance of `met` when the burn rate is >= high
NEVER = math.inf  # events needed when the observed rate gives the evidence no direction


class RuleError(SloError, ValueError):
    """A zone, alpha or beta that makes no rule (the message names the parameter)."""


@dataclass(frozen=True)
class DecisionRule:
    """The sequential test for one SLO objective. Build it with `rule_for`, which validates."""

    target: float
    zone_low: float = DEFAULT_ZONE[0]
    zone_high: float = DEFAULT_ZONE[1]
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA

    @property
    def budget(self) -> float:
        return 1.0 - self.target

    @property
    def p0(self) -> float:
        """Bad-event rate that must come out `met` (burn rate `zone_low`)."""
        return self.zone_low * self.budget

    @property
    def p1(self) -> float:
        """Bad-event rate that must come out `breached` (burn rate `zone_high`)."""
        return self.zone_high * self.budget

    @property
    def bad_weight(self) -> float:
        """Evidence one bad event adds (> 0)."""
        return math.log(self.p1 / self.p0)

    @property
    def good_weight(self) -> float:
        """Evidence one good event adds (< 0)."""
        return math.log((1.0 - self.p1) / (1.0 - self.p0))

    @property
    def upper(self) -> float:
        """`breached` once the evidence reaches this."""
        return math.log(1.0 / self.alpha)

    @property
    def lower(self) -> float:
        """`met` once the evidence falls to this."""
        return math.log(self.beta)

    def llr(self, total: float, bad: float) -> float:
        """The evidence after `total` events of which `bad` were bad."""
        return bad * self.bad_weight + (total - bad) * self.good_weight

    def decide(self, total: float, bad: float) -> Decision:
        """The verdict at one point (the path's first crossing is `first_crossing`)."""
        evidence = self.llr(total, bad)
        if evidence >= self.upper:
            return "breached"
        if evidence <= self.lower:
            return "met"
        return "inconclusive"

    def clean_events_to_meet(self) -> int:
        """Events with no bad one that say `met` from the start: ceil(ln(beta) / good_weight)."""
        return math.ceil(self.lower / self.good_weight)

    def bad_events_to_breach(self) -> int:
        """Bad events in a row that say `breached` from the start."""
        return math.ceil(self.upper / self.bad_weight)

    def describe(self) -> dict[str, float | str | list[float]]:
        return {
            "method": METHOD,
            "zone": [self.zone_low, self.zone_high],
            "alpha": self.alpha,
            "beta": self.beta,
        }


def rule_for(
    target: float,
    zone: tuple[float, float] = DEFAULT_ZONE,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
) -> DecisionRule:
    """A validated rule. Raises RuleError naming the bad parameter."""
    if not 0.0 < target < 1.0:
        raise RuleError(f"target: must be between 0 and 1 (exclusive), got {target!r}")
    low, high = zone
    if not (math.isfinite(low) and math.isfinite(high)) or not 0.0 < low < high:
        raise RuleError(
            f"zone: needs 0 < low < high (burn-rate multiples such as 0.5,2), got {low:g},{high:g}"
        )
    if high * (1.0 - target) >= 1.0:
        raise RuleError(
            f"zone: a burn rate of {high:g} at target {target:g} would mean every event is bad; lower it"
        )
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not 0.0 < value < 0.5:
            raise RuleError(f"{name}: must be between 0 and 0.5 (exclusive), got {value!r}")
    return DecisionRule(target, float(low), float(high), float(alpha), float(beta))


@dataclass(frozen=True)
class RuleSettings:
    """An SLO's rule settings (from its file's annotations, overridden on the command line); the rule
    itself also needs the SLO's target: `rule(target)`."""

    zone: tuple[float, float] = DEFAULT_ZONE
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA

    def rule(self, target: float) -> DecisionRule:
        return rule_for(target, self.zone, self.alpha, self.beta)

    def with_text(self, name: str, text: str) -> RuleSettings:
        """A copy with `name` (zone, alpha or beta) set from text as a user types it."""
        if name == "zone":
            return RuleSettings(parse_zone(text), self.alpha, self.beta)
        try:
            value = float(text)
        except ValueError:
            raise RuleError(f"{name}: expected a number such as 0.05, got {text!r}") from None
        # the range is rule_for's to check: every caller builds the rule before judging with it
        return (
            RuleSettings(self.zone, value, self.beta)
            if name == "alpha"
            else RuleSettings(self.zone, self.alpha, value)
        )

    def override(
        self, zone: tuple[float, float] | None, alpha: float | None, beta: float | None
    ) -> RuleSettings:
        return RuleSettings(
            zone if zone is not None else self.zone,
            alpha if alpha is not None else self.alpha,
            beta if beta is not None else self.beta,
        )


def parse_zone(text: str) -> tuple[float, float]:
    """'0.5,2' -> (0.5, 2.0); RuleError with the expected form otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise RuleError(f"zone: expected two burn-rate multiples such as 0.5,2, got {text!r}") from None
    return low, high


# --------------------------------------------------------------------------------------------------
# Reading a path of counts (the gate replays the window on its scrape grid; the runner reads it live)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crossing:
    """The first decision on a path of cumulative counts, and where it was taken."""

    decision: Decision
    index: int | None  # position in the path where it was taken (None: inconclusive)
    total: float  # events at that point (or at the end when inconclusive)
    bad: float
    evidence: float  # the LLR there


def first_crossing(
    rule: DecisionRule,
    totals: Sequence[float] | npt.NDArray[np.float64],
    bads: Sequence[float] | npt.NDArray[np.float64],
) -> Crossing:
    """Walk cumulative (events, bad events) counted from the window's start, in time order, and return
    the first point where the evidence crosses a boundary. That decision is final: later points cannot
    undo it (this is what keeps the error rates under continuous monitoring)."""
    import numpy as np

    total = np.asarray(totals, dtype=float)
    bad = np.asarray(bads, dtype=float)
    if total.shape != bad.shape:
        raise ValueError("totals and bads must have the same length")
    if total.size == 0:
        return Crossing("inconclusive", None, 0.0, 0.0, 0.0)
    evidence = bad * rule.bad_weight + (total - bad) * rule.good_weight
    crossed = (evidence >= rule.upper) | (evidence <= rule.lower)
    if not crossed.any():
        return Crossing("inconclusive", None, float(total[-1]), float(bad[-1]), float(evidence[-1]))
    i = int(np.argmax(crossed))
    decision: Decision = "breached" if evidence[i] >= rule.upper else "met"
    return Crossing(decision, i, float(total[i]), float(bad[i]), float(evidence[i]))


class SequentialJudge:
    """The live form of `first_crossing`: feed cumulative counts as they arrive; the first crossing is
    latched. `update` returns the decision so far."""

    def __init__(self, rule: DecisionRule) -> None:
        self.rule = rule
        self.decision: Decision = "inconclusive"
        self.decided_at: float | None = None  # the caller's timestamp of the crossing
        self.total = 0.0
        self.bad = 0.0

    def update(self, total: float, bad: float, at: float | None = None) -> Decision:
        self.total, self.bad = float(total), float(bad)
        if self.decision == "inconclusive":
            decision = self.rule.decide(total, bad)
            if decision != "inconclusive":
                self.decision, self.decided_at = decision, at
        return self.decision

    @property
    def decided(self) -> bool:
        return self.decision != "inconclusive"

    def events_needed(self) -> float:
        return 0.0 if self.decided else events_needed(self.rule, self.total, self.bad)


# --------------------------------------------------------------------------------------------------
# How many more events, and the interval
# --------------------------------------------------------------------------------------------------


def events_needed(rule: DecisionRule, total: float, bad: float, rate: float | None = None) -> float:
    """More events expected before a decision if bad events keep coming at `rate` (default: the
    observed rate bad/total). Each event moves the evidence by `drift` on average; the distance to the
    boundary it drifts towards divided by that drift is the expected number (Wald's approximation,
    without the overshoot). NEVER when the rate sits where the evidence has no drift (inside the zone)."""
    if total < 0 or bad < 0 or bad > total:
        raise ValueError(f"counts must satisfy 0 <= bad <= total, got bad={bad}, total={total}")
    evidence = rule.llr(total, bad)
    if evidence >= rule.upper or evidence <= rule.lower:
        return 0.0
    p = rate if rate is not None else (bad / total if total > 0 else 0.0)
    drift = p * rule.bad_weight + (1.0 - p) * rule.good_weight
    if abs(drift) < 1e-12:
        return NEVER
    distance = (rule.upper - evidence) if drift > 0 else (evidence - rule.lower)
    needed = distance / abs(drift)
    return float(math.ceil(needed)) if needed < 1e9 else NEVER


def neutral_rate(rule: DecisionRule) -> float:
    """The bad-event rate at which the evidence does not move on average (the slowest to decide)."""
    return -rule.good_weight / (rule.bad_weight - rule.good_weight)


def _log_mixture(rule: DecisionRule, total: float, bad: float, p: float) -> float:
    """log of the Beta-mixture likelihood ratio against the point p (Robbins)."""
    from scipy.special import betaln

    a, b = 1.0, 1.0 / rule.budget - 1.0
    good = total - bad
    log_likelihood_p = (bad * math.log(p) if bad else 0.0) + (good * math.log1p(-p) if good else 0.0)
    return float(betaln(a + bad, b + good) - betaln(a, b)) - log_likelihood_p


def bad_rate_interval(rule: DecisionRule, total: float, bad: float) -> tuple[float, float]:
    """Anytime-valid (1 - alpha) interval for the bad-event rate p after `total` events, `bad` bad:
    {p : mixture likelihood ratio < 1/alpha}, an interval around bad/total found by bisection."""
    if total < 0 or bad < 0 or bad > total:
        raise ValueError(f"counts must satisfy 0 <= bad <= total, got bad={bad}, total={total}")
    if total == 0:
        return 0.0, 1.0
    threshold = math.log(1.0 / rule.alpha)
    centre = min(max(bad / total, 1e-12), 1.0 - 1e-12)

    def inside(p: float) -> bool:
        return _log_mixture(rule, total, bad, p) < threshold

    def edge(outside: float, inner: float) -> float:
        if inside(outside):
            return outside
        for _ in range(80):  # the log-ratio is convex in p: one crossing on each side of the centre
            mid = (outside + inner) / 2.0
            if inside(mid):
                inner = mid
            else:
                outside = mid
        return inner

    low = edge(1e-15, centre) if bad > 0 else 0.0
    high = edge(1.0 - 1e-15, centre)
    return (0.0 if low <= 1e-15 else low), min(1.0, high)


def sli_interval(rule: DecisionRule, total: float, bad: float) -> tuple[float, float]:
    """The same interval for the SLI (the good-event share): [1 - p_high, 1 - p_low]."""
    low, high = bad_rate_interval(rule, total, bad)
    return 1.0 - high, 1.0 - low
