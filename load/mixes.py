"""Journey mixes: how often each shopper journey is started (pure: no Locust, no I/O).

A mix names the weights of the journeys in `load/journeys.py`. `browsing` is the shape of a consumer web
shop's traffic (product views >> add-to-cart >> purchase), the default. It gives the checkout SLOs
about 4 % of the journeys, so a 30 s phase at the default experiment's load sees some 20-45 checkouts:
too few for a confident verdict on a 99 % objective (docs/slo.md "How many events a verdict needs").
`buying` keeps every journey but shifts the weight to the critical ones (checkout, login and the cart
steps that feed them), so the same phase sees several times as many checkouts without adding users:
experiments that judge the checkout SLOs use it (`mix: buying` in their configuration).

The weights are integers: Locust picks the next journey with probability weight / sum of weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# The journeys of load/journeys.py ShopUser, by method name. A mix must weigh each of them (0 is allowed).
JOURNEYS: tuple[str, ...] = (
    "browse_catalog",
    "view_product",
    "search",
    "recommendations",
    "view_cart",
    "add_to_cart",
    "remove_from_cart",
    "checkout",
    "sign_in_again",
    "order_history",
    "edit_profile",
    "cancel_order",
)


@dataclass(frozen=True)
class JourneyMix:
    name: str
    description: str
    weights: Mapping[str, int]

    def share(self, journey: str) -> float:
        """The share of started journeys that are `journey` (0..1)."""
        total = sum(self.weights.values())
        return self.weights.get(journey, 0) / total if total else 0.0


MIXES: dict[str, JourneyMix] = {
    mix.name: mix
    for mix in (
        JourneyMix(
            "browsing",
            "a consumer shop's funnel: mostly product views, ~4 % checkouts (the default)",
            {
                "browse_catalog": 20,
                "view_product": 30,
                "search": 12,
                "recommendations": 8,
                "view_cart": 8,
                "add_to_cart": 10,
                "remove_from_cart": 3,
                "checkout": 4,
                "sign_in_again": 4,
                "order_history": 2,
                "edit_profile": 1,  # about 1 % of journeys: a shopper rarely renames themselves
                "cancel_order": 1,  # and cancels about one order in four
            },
        ),
        JourneyMix(
            "buying",
            "weight on the critical journeys: ~30 % checkouts, ~25 % logins, browsing kept",
            {
                "browse_catalog": 8,
                "view_product": 10,
                "search": 4,
                "recommendations": 3,
                "view_cart": 4,
                "add_to_cart": 8,
                "remove_from_cart": 1,
                "checkout": 30,
                "sign_in_again": 25,
                "order_history": 2,
                "edit_profile": 1,
                "cancel_order": 3,  # one order in ten cancelled: refunds and order.cancelled e-mails
            },
        ),
    )
}
DEFAULT_MIX = "browsing"
MIX_NAMES: tuple[str, ...] = tuple(MIXES)


def check_mix(name: object) -> JourneyMix:
    """The mix called `name`; ValueError naming the valid ones otherwise."""
    if not isinstance(name, str) or name not in MIXES:
        raise ValueError(f"unknown mix {name!r}; valid mixes: {', '.join(MIX_NAMES)}")
    return MIXES[name]


def _check_complete() -> None:
    for mix in MIXES.values():
        missing = set(JOURNEYS) - set(mix.weights)
        extra = set(mix.weights) - set(JOURNEYS)
        if missing or extra or sum(mix.weights.values()) <= 0:
            raise AssertionError(f"mix {mix.name}: missing {sorted(missing)}, unknown {sorted(extra)}")


_check_complete()
