"""The order status lifecycle (pure rules; docs/shop.md, "Order lifecycle").

    pending --(checkout)--> paid --(admin)--> shipped --(admin)--> delivered
       |                     \\
       +--(checkout)--> failed  +--(shopper or admin)--> cancelled

`pending` and `failed` belong to the checkout saga (a transiently failed order goes back to `pending` when
it is retried with the same Idempotency-Key). Only a `paid` order can be cancelled: once shipped, it cannot.
"""

from __future__ import annotations

from typing import Final

PENDING: Final = "pending"
FAILED: Final = "failed"
PAID: Final = "paid"
SHIPPED: Final = "shipped"
DELIVERED: Final = "delivered"
CANCELLED: Final = "cancelled"
STATUSES: tuple[str, ...] = (PENDING, FAILED, PAID, SHIPPED, DELIVERED, CANCELLED)

# The checkout saga's own moves (internal), and the ones a person may ask for.
SAGA_TRANSITIONS: frozenset[tuple[str | None, str]] = frozenset(
    {(None, PENDING), (PENDING, PAID), (PENDING, FAILED), (FAILED, PENDING)}
)
MANAGED_TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {(PAID, SHIPPED), (SHIPPED, DELIVERED), (PAID, CANCELLED)}
)
SETTABLE_BY_ADMIN: tuple[str, ...] = (SHIPPED, DELIVERED, CANCELLED)


class TransitionRefused(Exception):
    """The order cannot move from its status to the one asked for; `code` is the API's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_managed(order_id: str, current: str, wanted: str) -> None:
    """Raise TransitionRefused unless a shopper or an admin may move the order from `current` to `wanted`."""
    if (current, wanted) in MANAGED_TRANSITIONS:
        return
    if wanted == CANCELLED:
        raise TransitionRefused(
            "order_not_cancellable",
            f"order {order_id} is {current}; only a paid order that has not shipped can be cancelled",
        )
    allowed = sorted(to for (frm, to) in MANAGED_TRANSITIONS if frm == current)
    hint = f"from {current} it can go to: {', '.join(allowed)}" if allowed else f"{current} is final here"
    raise TransitionRefused(
        "invalid_transition", f"order {order_id} cannot go from {current} to {wanted}; {hint}"
    )
